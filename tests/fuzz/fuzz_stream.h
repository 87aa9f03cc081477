/* fuzz_stream.h - what the reader harnesses share: the fuzz input as a
 * forward-only stream that returns 1 to 13 bytes a read (so every
 * boundary of a header, table or grain falls inside a read somewhere), or
 * as a seekable memory stream; and FNV-1a over the extents produced, to
 * compare two runs.
 */
#ifndef DSC_FUZZ_STREAM_H
#define DSC_FUZZ_STREAM_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dsc.h"

/* FNV-1a's offset basis: the start of a digest. */
#define FUZZ_FNV_INIT 0xcbf29ce484222325ull

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

/* The input as a stream named `name`: trickled (forward-only) or from
 * memory (seekable). Aborts when it cannot be made. */
static dsc_stream *fuzz_stream(const uint8_t *data, size_t size, bool trickle, const char *name)
{
	struct dsc_error e = {0};
	dsc_stream *in = NULL;

	if (trickle) {
		struct trickle *t = calloc(1, sizeof *t);

		if (!t)
			abort();
		t->data = data;
		t->len = size;
		if (dsc_stream_new(&trickle_ops, t, name, &in, &e) != DSC_OK)
			abort();
	} else if (dsc_stream_open_mem(data, size, name, &in, &e) != DSC_OK) {
		abort();
	}
	return in;
}

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
	const uint8_t *b = p;

	while (n--)
		h = (h ^ *b++) * 0x100000001b3ull;
	return h;
}

/* An order-free digest of an extent's non-zero 512-byte sectors (each
 * sector's offset and bytes, mixed and summed), so that two walks that
 * give the same disk in different extents and orders agree. */
static inline uint64_t fuzz_sector_sum(const struct dsc_extent *ext)
{
	uint64_t sum = 0, x;

	for (size_t k = 0; k < ext->length; k += 512) {
		size_t i = 0;

		while (i < 512 && !ext->data[k + i])
			i++;
		if (i == 512)
			continue;
		x = (ext->offset + k) ^ fnv(FUZZ_FNV_INIT, ext->data + k, 512);
		x ^= x >> 33;
		x *= 0xff51afd7ed558ccdull;
		x ^= x >> 33;
		sum += x;
	}
	return sum;
}

#endif
