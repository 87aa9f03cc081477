/* fuzz_vmdk_read.c - libFuzzer harness: the VMDK stream reader.
 *
 * Each input is read three times, to the end or the first error: over a
 * memory stream with the decompression inline (threads 1), through the
 * thread pool (threads 2), and over a "trickle" stream whose reads return
 * 1 to 13 bytes at a time (threads 1). The three runs must agree exactly:
 * the same extents (offset, length, bytes: an FNV-1a digest) and the same
 * result code. Every extent must lie inside the reported capacity; a
 * failure must carry a message. A crash, a sanitizer report, a hang or an
 * abort() here is a bug in libdsc.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dsc.h"

/* Upper bound on dsc_reader_next() calls: an input of the fuzzer's maximum
 * length cannot hold more grain markers than sectors. */
#define MAX_CALLS (1u << 16)

struct trickle {
	const uint8_t *data;
	size_t len, pos;
	unsigned n;
};

static dsc_err trickle_read(void *ctx, void *buf, size_t len, size_t *nread, struct dsc_error *e)
{
	struct trickle *t = ctx;
	size_t n = 1 + t->n++ % 13;

	(void)e;
	if (n > len)
		n = len;
	if (n > t->len - t->pos)
		n = t->len - t->pos;
	memcpy(buf, t->data + t->pos, n);
	t->pos += n;
	*nread = n;
	return DSC_OK;
}

static void trickle_close(void *ctx) { free(ctx); }

static const struct dsc_stream_ops trickle_ops = {
	.name = "trickle",
	.read = trickle_read,
	.close = trickle_close,
};

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
	const uint8_t *b = p;

	while (n--)
		h = (h ^ *b++) * 0x100000001b3ull;
	return h;
}

/* Read everything; returns the result code, *digest covers the extents. */
static dsc_err read_all(const uint8_t *data, size_t size, unsigned threads, bool trickle,
			uint64_t *digest)
{
	struct dsc_error e = {0};
	struct dsc_extent ext;
	dsc_stream *in = NULL;
	dsc_reader *r = NULL;
	uint64_t cap, h = 0xcbf29ce484222325ull;
	unsigned calls = 0;
	dsc_err rc;

	if (trickle) {
		struct trickle *t = calloc(1, sizeof *t);

		if (!t)
			abort();
		t->data = data;
		t->len = size;
		if (dsc_stream_new(&trickle_ops, t, "fuzz.vmdk", &in, &e) != DSC_OK)
			abort();
	} else if (dsc_stream_open_mem(data, size, "fuzz.vmdk", &in, &e) != DSC_OK) {
		abort();
	}
	rc = dsc_reader_open(in, DSC_FORMAT_VMDK, &r, &e);
	if (rc != DSC_OK) {
		/* A failure must say what is wrong and leave no reader. */
		if (r || e.code != rc || !e.message[0])
			abort();
		goto out;
	}
	dsc_reader_set_threads(r, threads);
	cap = dsc_reader_capacity(r);
	h = fnv(h, &cap, sizeof cap);
	for (;;) {
		rc = dsc_reader_next(r, &ext, &e);
		if (rc != DSC_OK) {
			if (e.code != rc || !e.message[0])
				abort();
			break;
		}
		if (ext.length == 0)
			break;
		if (++calls > MAX_CALLS)
			abort();
		if (!ext.data || ext.offset >= cap || ext.length > cap - ext.offset)
			abort();
		/* Every byte is read, so ASan sees any access past the grain. */
		h = fnv(h, &ext.offset, sizeof ext.offset);
		h = fnv(h, &ext.length, sizeof ext.length);
		h = fnv(h, ext.data, ext.length);
	}
out:
	dsc_reader_close(r);
	dsc_stream_close(in);
	*digest = h;
	return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t d1, d2, d3;
	dsc_err r1, r2, r3;

	r1 = read_all(data, size, 1, false, &d1);
	r2 = read_all(data, size, 2, false, &d2);
	r3 = read_all(data, size, 1, true, &d3);
	if (r1 != r2 || d1 != d2)
		abort(); /* the thread pool changed the outcome */
	if (r1 != r3 || d1 != d3)
		abort(); /* short reads changed the outcome */
	return 0;
}
