/* pool.c - an ordered ring of jobs run by a few threads.
 *
 * One mutex guards the ring; `work` wakes workers when a slot is
 * submitted, `done` wakes the caller when a job finishes. Workers take the
 * oldest submitted slot, so results tend to complete in order and the
 * caller, which always collects the oldest, rarely waits behind a newer one.
 */
#include "pool.h"

#include <pthread.h>
#include <unistd.h>

enum {
	SLOT_FREE,
	SLOT_QUEUED,
	SLOT_RUNNING,
	SLOT_DONE
};

struct dscp_pool {
	pthread_mutex_t mu;
	pthread_cond_t work;
	pthread_cond_t done;
	struct dscp_slot *slots;
	size_t nslots;
	size_t head;    /* next slot to fill */
	size_t tail;    /* oldest slot not released */
	size_t pending; /* slots between tail and head */
	bool stop;
	dscp_job_fn job;
	dscp_ctx_free_fn ctx_free;
	void *inline_ctx;
	unsigned nthreads;      /* threads running */
	unsigned threads_alloc; /* contexts allocated */
	pthread_t *threads;
	void **thread_ctx;
};

struct worker_arg {
	struct dscp_pool *p;
	void *ctx;
};

static void *worker_main(void *arg)
{
	struct dscp_pool *p = ((struct worker_arg *)arg)->p;
	void *ctx = ((struct worker_arg *)arg)->ctx;
	struct dscp_slot *s;
	size_t i, k;

	free(arg);
	pthread_mutex_lock(&p->mu);
	for (;;) {
		s = NULL;
		for (k = 0; k < p->pending; k++) {
			i = (p->tail + k) % p->nslots;
			if (p->slots[i].state == SLOT_QUEUED) {
				s = &p->slots[i];
				break;
			}
		}
		if (!s) {
			if (p->stop)
				break;
			pthread_cond_wait(&p->work, &p->mu);
			continue;
		}
		s->state = SLOT_RUNNING;
		pthread_mutex_unlock(&p->mu);
		p->job(ctx, s);
		pthread_mutex_lock(&p->mu);
		s->state = SLOT_DONE;
		pthread_cond_broadcast(&p->done);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

unsigned dscp_cpu_count(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n > 0 ? (unsigned)n : 1;
}

dsc_err dscp_pool_new(unsigned threads, size_t slots, size_t in_cap, size_t out_cap,
		      dscp_job_fn job, dscp_ctx_new_fn ctx_new, dscp_ctx_free_fn ctx_free,
		      void *ctx_arg, struct dscp_pool **out)
{
	struct dscp_pool *p;
	struct worker_arg *wa;
	size_t i;

	*out = NULL;
	p = calloc(1, sizeof *p);
	if (!p)
		return DSC_ERR_NOMEM;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->work, NULL);
	pthread_cond_init(&p->done, NULL);
	p->job = job;
	p->ctx_free = ctx_free;
	p->nslots = slots ? slots : 1;
	p->slots = calloc(p->nslots, sizeof *p->slots);
	if (!p->slots)
		goto fail;
	for (i = 0; i < p->nslots; i++) {
		p->slots[i].in = malloc(in_cap);
		p->slots[i].out = malloc(out_cap);
		p->slots[i].out_cap = out_cap;
		if (!p->slots[i].in || !p->slots[i].out)
			goto fail;
	}
	if (threads == 0) {
		p->inline_ctx = ctx_new(ctx_arg);
		if (!p->inline_ctx)
			goto fail;
		*out = p;
		return DSC_OK;
	}
	p->threads = calloc(threads, sizeof *p->threads);
	p->thread_ctx = calloc(threads, sizeof *p->thread_ctx);
	if (!p->threads || !p->thread_ctx)
		goto fail;
	p->threads_alloc = threads;
	for (i = 0; i < threads; i++) {
		p->thread_ctx[i] = ctx_new(ctx_arg);
		wa = malloc(sizeof *wa);
		if (!p->thread_ctx[i] || !wa) {
			free(wa);
			goto fail;
		}
		wa->p = p;
		wa->ctx = p->thread_ctx[i];
		if (pthread_create(&p->threads[i], NULL, worker_main, wa) != 0) {
			free(wa);
			goto fail;
		}
		p->nthreads++;
	}
	*out = p;
	return DSC_OK;
fail:
	dscp_pool_free(p);
	return DSC_ERR_NOMEM;
}

void dscp_pool_free(struct dscp_pool *p)
{
	size_t i;

	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	p->stop = true;
	pthread_cond_broadcast(&p->work);
	pthread_mutex_unlock(&p->mu);
	for (i = 0; i < p->nthreads; i++)
		pthread_join(p->threads[i], NULL);
	for (i = 0; p->thread_ctx && i < p->threads_alloc; i++)
		if (p->thread_ctx[i] && p->ctx_free)
			p->ctx_free(p->thread_ctx[i]);
	if (p->inline_ctx && p->ctx_free)
		p->ctx_free(p->inline_ctx);
	for (i = 0; p->slots && i < p->nslots; i++) {
		free(p->slots[i].in);
		free(p->slots[i].out);
	}
	free(p->slots);
	free(p->threads);
	free(p->thread_ctx);
	pthread_cond_destroy(&p->work);
	pthread_cond_destroy(&p->done);
	pthread_mutex_destroy(&p->mu);
	free(p);
}

struct dscp_slot *dscp_pool_head(struct dscp_pool *p)
{
	if (p->pending == p->nslots)
		return NULL;
	return &p->slots[p->head];
}

void dscp_pool_submit(struct dscp_pool *p)
{
	struct dscp_slot *s = &p->slots[p->head];

	if (!p->nthreads) {
		p->job(p->inline_ctx, s);
		s->state = SLOT_DONE;
		p->head = (p->head + 1) % p->nslots;
		p->pending++;
		return;
	}
	pthread_mutex_lock(&p->mu);
	s->state = SLOT_QUEUED;
	p->head = (p->head + 1) % p->nslots;
	p->pending++;
	pthread_cond_signal(&p->work);
	pthread_mutex_unlock(&p->mu);
}

size_t dscp_pool_pending(const struct dscp_pool *p) { return p->pending; }

struct dscp_slot *dscp_pool_collect(struct dscp_pool *p)
{
	struct dscp_slot *s;

	if (p->pending == 0)
		return NULL;
	s = &p->slots[p->tail];
	if (!p->nthreads)
		return s;
	pthread_mutex_lock(&p->mu);
	while (s->state != SLOT_DONE)
		pthread_cond_wait(&p->done, &p->mu);
	pthread_mutex_unlock(&p->mu);
	return s;
}

void dscp_pool_release(struct dscp_pool *p)
{
	if (p->pending == 0)
		return;
	if (p->nthreads)
		pthread_mutex_lock(&p->mu);
	p->slots[p->tail].state = SLOT_FREE;
	p->tail = (p->tail + 1) % p->nslots;
	p->pending--;
	if (p->nthreads)
		pthread_mutex_unlock(&p->mu);
}
