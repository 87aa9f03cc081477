/* pool.h - an ordered ring of jobs run by a few threads.
 *
 * The caller fills slots in order and collects them in the same order;
 * worker threads run the job function on submitted slots in between. With
 * zero threads a submitted job runs at once in the caller. The ring's size
 * bounds the memory whatever the speed of either side.
 */
#ifndef DSC_POOL_H
#define DSC_POOL_H

#include "internal.h"

struct dscp_slot {
	uint8_t *in; /* job input, in_cap bytes */
	/* Or the caller's own bytes, when it sets this (and keeps them
	 * until the slot is collected); NULL: `in`. */
	const uint8_t *in_ref;
	size_t in_len;
	uint8_t *out;   /* job output */
	size_t out_cap; /* set by the pool */
	size_t out_len;
	uint64_t tag; /* caller's data (LBA, file offset...) */
	uint64_t tag2;
	int result; /* set by the job */
	int state;  /* pool-private */
};

/* Runs on a worker thread with that thread's context. */
typedef void (*dscp_job_fn)(void *thread_ctx, struct dscp_slot *slot);
typedef void *(*dscp_ctx_new_fn)(void *arg);
typedef void (*dscp_ctx_free_fn)(void *ctx);

struct dscp_pool;

/* threads: 0 runs jobs inline. ctx_new makes one context per thread (and
 * one for inline use); NULL from it fails the creation. */
dsc_err dscp_pool_new(unsigned threads, size_t slots, size_t in_cap, size_t out_cap,
		      dscp_job_fn job, dscp_ctx_new_fn ctx_new, dscp_ctx_free_fn ctx_free,
		      void *ctx_arg, struct dscp_pool **out);
void dscp_pool_free(struct dscp_pool *p);
/* The next slot to fill, or NULL when the ring is full (collect first). */
struct dscp_slot *dscp_pool_head(struct dscp_pool *p);
/* Queue the slot returned by dscp_pool_head(). */
void dscp_pool_submit(struct dscp_pool *p);
/* Number of slots submitted and not yet released. */
size_t dscp_pool_pending(const struct dscp_pool *p);
/* Wait for the oldest submitted slot's job and return it (NULL if none).
 * It stays owned by the caller until dscp_pool_release(). */
struct dscp_slot *dscp_pool_collect(struct dscp_pool *p);
void dscp_pool_release(struct dscp_pool *p);

/* The number of online CPUs (at least 1). */
unsigned dscp_cpu_count(void);

#endif
