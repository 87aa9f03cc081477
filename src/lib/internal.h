/* internal.h - shared by every libdsc source file; include it first.
 *
 * Holds the stream instance layout, the reader/writer vtables and the named
 * limits applied to everything read from an input.
 */
#ifndef DSC_INTERNAL_H
#define DSC_INTERNAL_H

#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dsc.h"

#define DSC_MIN(a, b) ((a) < (b) ? (a) : (b))
#define DSC_MAX(a, b) ((a) > (b) ? (a) : (b))

/* Size of the buffers the raw reader and writer move data in. */
#define DSCP_IO_CHUNK (1u << 20)
/* The unit the raw reader tests for zeros (one VMDK grain). */
#define DSCP_ZERO_UNIT 65536u

struct dsc_stream {
	const struct dsc_stream_ops *ops;
	void *ctx;
	char *name;
	uint64_t pos;   /* logical position */
	uint64_t bytes; /* bytes moved by the backend */
	uint64_t total; /* size if known, else UINT64_MAX */
	dsc_err sticky; /* first error; every later call returns it */
	struct dsc_error sticky_detail;
	size_t unread_len;
	size_t unread_off;
	uint8_t unread[DSC_UNREAD_MAX];
};

/* Remember a failure on the stream so later calls repeat it. */
dsc_err dscp_stream_fail(dsc_stream *s, dsc_err code, struct dsc_error *e);

/* Reader and writer vtables: one per format. */
struct dscp_reader_ops {
	dsc_err (*next)(dsc_reader *r, struct dsc_extent *ext, struct dsc_error *e);
	void (*close)(dsc_reader *r);
};

struct dsc_reader {
	const struct dscp_reader_ops *ops;
	dsc_stream *in;
	dsc_format format;
	uint64_t capacity;
	unsigned threads;
	void *impl;
	dsc_err failed; /* first error of next(): every later call repeats it */
	struct dsc_error failure;
	/* Set by the converter: called by readers while they read without
	 * producing extents (zero runs, metadata); false cancels. */
	bool (*tick)(void *user);
	void *tick_user;
	uint64_t max_capacity; /* set by the converter; 0: none */
};

/* Give the tick a chance to run; DSC_ERR_CANCELLED when it says stop. */
dsc_err dscp_reader_tick(dsc_reader *r, struct dsc_error *e);

struct dscp_writer_ops {
	dsc_err (*put)(dsc_writer *w, const struct dsc_extent *ext, struct dsc_error *e);
	dsc_err (*finish)(dsc_writer *w, uint64_t capacity, struct dsc_error *e);
	void (*close)(dsc_writer *w);
};

struct dsc_writer {
	const struct dscp_writer_ops *ops;
	dsc_stream *out;
	dsc_format format;
	struct dsc_writer_opts opts;
	bool finished;
	bool failed;
	void *impl;
};

dsc_err dscp_raw_reader_open(dsc_stream *in, dsc_reader **out, struct dsc_error *e);
dsc_err dscp_vmdk_reader_open(dsc_stream *in, dsc_reader **out, struct dsc_error *e);
dsc_err dscp_raw_writer_open(dsc_stream *out, const struct dsc_writer_opts *o,
			     dsc_writer **w, struct dsc_error *e);
dsc_err dscp_vmdk_writer_open(dsc_stream *out, const struct dsc_writer_opts *o,
			      dsc_writer **w, struct dsc_error *e);

/* True when all n bytes are zero (word-wise; fast on long zero runs). */
bool dscp_is_zero(const void *buf, size_t n);

/* The part of a path after its last '/'. */
const char *dscp_basename(const char *path);

#endif /* DSC_INTERNAL_H */
