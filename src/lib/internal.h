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
	dsc_stream *inner; /* the stream a wrapper is layered over, or NULL */
	char *extent_dir;  /* dsc_stream_set_extent_dir(), or NULL */
	int extent_dirfd;  /* dsc_stream_set_extent_dirfd() (>= 3), or 0 */
};

/* The extent directory of s or of the streams it wraps, the first one set:
 * an open directory in *dirfd (-1 if none) or its path (NULL if none; both
 * none: descriptors are refused). */
const char *dscp_stream_extent_dir(const dsc_stream *s, int *dirfd);

/* Remember a failure on the stream so later calls repeat it. */
dsc_err dscp_stream_fail(dsc_stream *s, dsc_err code, struct dsc_error *e);

/* ---- formats ------------------------------------------------------------
 *
 * A format is one constant descriptor (struct dscp_format), defined in the
 * format's own file and listed once in formats.def. The framework
 * (format.c) looks formats up, probes, allocates and frees reader and
 * writer instances with their private state (`impl`, reader_size /
 * writer_size bytes, zeroed), keeps their sticky errors, and validates
 * writer options before the writer sees them.
 */

/* What a probe sees: the first bytes, and on a seekable input of known
 * size the last 512 bytes (tail_len 0 otherwise). */
#define DSCP_PROBE_HEAD 4096u
#define DSCP_PROBE_TAIL 512u
struct dscp_probe {
	const uint8_t *head;
	size_t head_len;
	const uint8_t *tail;
	size_t tail_len;
	uint64_t total; /* input size, UINT64_MAX when unknown */
};

/* Probe scores: the highest wins; raw answers DSCP_SCORE_FALLBACK to any
 * input, so it wins only when nothing else matches. */
#define DSCP_SCORE_NONE 0
#define DSCP_SCORE_FALLBACK 1
#define DSCP_SCORE_CERTAIN 100

struct dscp_format {
	struct dsc_format_info info;
	/* 0..100; NULL: never detected (only named). */
	int (*probe)(const struct dscp_probe *p);
	/* How a refusal names an input of this format ("a qcow2 image") and
	 * why it is refused when there is no reader ("qcow2 is not supported
	 * yet"); NULL: "a <name> image" / "<name> is not supported yet". */
	const char *noun;
	const char *refusal;

	const struct dscp_reader_class *reader; /* NULL: cannot read */
	const struct dscp_writer_class *writer; /* NULL: cannot write */
	/* A compression layer (DSC_FMT_WRAPPER): a read stream of the
	 * decompressed bytes of `in` (not owned), in which the image is then
	 * detected or named (decompress.c). NULL: not a layer dsc opens. */
	dsc_err (*unwrap)(dsc_stream *in, const struct dsc_reader_opts *opts, dsc_stream **out,
			  struct dsc_error *e);
	bool archive; /* the layer is an archive (OVA), not a compression */
};

/* A reader implementation. */
struct dscp_reader_class {
	size_t size; /* bytes of state at dsc_reader.impl (zeroed) */
	/* Read the image's header from r->in; set r->capacity. On failure the
	 * framework calls close and frees the instance. */
	dsc_err (*open)(dsc_reader *r, struct dsc_error *e);
	dsc_err (*next)(dsc_reader *r, struct dsc_extent *ext, struct dsc_error *e);
	/* Release what impl holds (never impl itself); may run after a failed
	 * open. Optional. */
	void (*close)(dsc_reader *r);
	/* dsc_reader_check(): check the tables on a seekable input (the
	 * reader reads nothing after it). Optional: no tables to check. */
	dsc_err (*check)(dsc_reader *r, struct dsc_check_report *rep, struct dsc_error *e);
};

/* A writer implementation. */
struct dscp_writer_class {
	size_t size;
	dsc_err (*open)(dsc_writer *w, struct dsc_error *e);
	dsc_err (*put)(dsc_writer *w, const struct dsc_extent *ext, struct dsc_error *e);
	/* Complete the image; may set w->image_size and w->file_size (they
	 * default to the capacity and to the bytes written). */
	dsc_err (*finish)(dsc_writer *w, uint64_t capacity, struct dsc_error *e);
	void (*close)(dsc_writer *w);
	/* Optional, for a layout that must be known before the first byte
	 * (qcow2 to a pipe). When open sets w->needs_plan, the converter
	 * feeds plan() every extent of a first pass over the source, then
	 * calls plan_done() with the capacity, which sets *file_size to the
	 * exact size of the output; the second pass then goes through put()
	 * and finish() as usual, with the same extents. */
	dsc_err (*plan)(dsc_writer *w, const struct dsc_extent *ext, struct dsc_error *e);
	dsc_err (*plan_done)(dsc_writer *w, uint64_t capacity, uint64_t *file_size,
			     struct dsc_error *e);
};

/* The table (format.c): entry i has id i + 1. */
const struct dscp_format *dscp_format_at(size_t i);
const struct dscp_format *dscp_format_by_id(dsc_format f);
dsc_format dscp_format_id(const struct dscp_format *f); /* 0 if not in the table */
/* Score `p` against every entry of a table; the best entry (the first of
 * equal scores) or NULL when nothing scores. Exposed for the unit tests,
 * which probe with tables of their own. */
const struct dscp_format *dscp_probe_table(const struct dscp_format *const *table, size_t n,
					   const struct dscp_probe *p, int *score);
/* Whether detection reads the input's last DSCP_PROBE_TAIL bytes by seeking
 * there and back (a seekable input that is not a URL); raw's reader checks
 * them at the end of the others. */
bool dscp_detect_sees_tail(const dsc_stream *in);
/* dsc_reader_open() for a given descriptor (also one of a unit test's own
 * table); `detected` says the format was probed, not named. */
dsc_err dscp_reader_open_format(dsc_stream *in, const struct dscp_format *f, bool detected,
				bool inspect, dsc_reader **out, struct dsc_error *e);
/* The layer (compression or archive) `in` starts with, by its magic, or
 * NULL (detection; nothing is consumed). */
dsc_err dscp_find_layer(dsc_stream *in, const struct dscp_format **layer, struct dsc_error *e);
/* "<stream>: <noun>; <refusal>" as DSC_ERR_UNSUPPORTED. */
dsc_err dscp_format_refuse(const struct dscp_format *f, dsc_stream *in, struct dsc_error *e);

/* The value of writer option `key`: the one given, else the format's
 * default, else NULL. Values were checked at open. */
const char *dscp_writer_option(const dsc_writer *w, const char *key);
/* The same, parsed: a DSC_OPTION_BOOL (0/1), _UINT or _SIZE value. */
uint64_t dscp_writer_option_uint(const dsc_writer *w, const char *key);
/* Parse a value of option `o`; false when it is not valid. */
bool dscp_option_value(const struct dsc_option_info *o, const char *text, uint64_t *num);

struct dsc_reader {
	const struct dscp_format *fmt;
	dsc_stream *in;
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
	bool detected;         /* the format was detected, not named */
	/* A compression layer under the image: `in` is its decompressed
	 * stream, owned by the reader and closed with it. */
	const struct dscp_format *wrapper; /* the compression, or NULL */
	const struct dscp_format *archive; /* the archive (OVA), or NULL */
	dsc_stream *layers[2];             /* outermost first; the innermost is r->in */
	bool drained;                      /* the layer was read to its end after the image */
	/* Inspection (dsc_reader_opts.inspect) and what info reports, set
	 * by open through dscp_info_*(). */
	bool inspect;
	struct dsc_info_item *info;
	size_t info_n, info_cap;
	bool info_nomem; /* an item was lost: open fails with DSC_ERR_NOMEM */
	uint64_t cluster_size;
	char *backing_file, *backing_format;
	bool dirty;
	/* Why next() refuses an image opened only to inspect it (a backing
	 * file, a corrupt mark), or DSC_OK. */
	dsc_err inspect_refusal;
	char inspect_why[160];
};

/* The most format-specific fields one image may report: above what any
 * reader sets (a VMDK descriptor of VMDK_MAX_EXTENTS extents sets 4 per
 * extent), so reaching it means a bug, reported as out of memory. */
#define DSCP_INFO_MAX_ITEMS (1u << 18)
/* Add a format-specific field (list NULL: of the data itself). Strings
 * are copied; running out of memory fails the open. */
void dscp_info_str(dsc_reader *r, const char *list, size_t index, const char *key,
		   const char *value);
void dscp_info_uint(dsc_reader *r, const char *list, size_t index, const char *key, uint64_t value);
void dscp_info_bool(dsc_reader *r, const char *list, size_t index, const char *key, bool value);
/* The backing file an image names (copied; `len` bytes, not NUL
 * terminated, control bytes replaced), and its format (may be NULL). */
void dscp_info_backing(dsc_reader *r, const char *name, size_t len, const char *format);
/* An inspecting reader opens what a converting one refuses: next() then
 * fails with `code` and this message (printf-like, after the input's
 * name). Returns true when the reader is inspecting (the caller goes on),
 * false when the caller should refuse now. */
bool dscp_inspect_only(dsc_reader *r, dsc_err code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Give the tick a chance to run; DSC_ERR_CANCELLED when it says stop. */
dsc_err dscp_reader_tick(dsc_reader *r, struct dsc_error *e);

struct dsc_writer {
	const struct dscp_format *fmt;
	dsc_stream *out;
	struct dsc_writer_opts opts;
	bool finished;
	bool failed;
	void *impl;
	/* Set by the format's finish: the virtual size of the image written
	 * (a VMDK counts whole sectors) and the bytes of the finished output
	 * (a VMDK's file size; a raw disk's bytes written, holes excluded). */
	uint64_t image_size;
	uint64_t file_size;
	/* Set by open: the writer needs a first pass through plan() (see
	 * struct dscp_writer_class) before put(). */
	bool needs_plan;
	bool planned; /* plan_done() succeeded */
	/* Set by open when the exact size of the output is known from the
	 * capacity before the first byte (a fixed VHD): the converter passes
	 * it to dsc_convert_opts.output_size (a Content-Length). 0: unknown. */
	uint64_t output_size;
};

/* The first pass of a two-pass writer (w->needs_plan): every extent, then
 * the capacity; *file_size is the exact size of the output to come. */
dsc_err dscp_writer_plan(dsc_writer *w, const struct dsc_extent *ext, struct dsc_error *e);
dsc_err dscp_writer_plan_done(dsc_writer *w, uint64_t capacity, uint64_t *file_size,
			      struct dsc_error *e);

/* ---- streams ------------------------------------------------------------ */

/* Where a reader is in its input (blockmap.c): image offsets from `base`. */
struct dscp_rpos {
	dsc_stream *in;
	const char *fmt;   /* "VHD": named in the seekable-input message */
	uint64_t base;     /* stream offset of the image's byte 0 */
	uint64_t pos;      /* image offset the stream is at */
	uint64_t file_len; /* seekable: the image's bytes from base */
	bool seekable;     /* seekable, of known size (dscp_detect_sees_tail) */
};
/* Start at the stream's current offset. */
void dscp_rpos_init(struct dscp_rpos *p, dsc_stream *in, const char *fmt);
/* To image byte `to`: seek where the input can, else skip forward (going
 * back is DSC_ERR_SEEK; an input that ends first, DSC_ERR_TRUNCATED). */
dsc_err dscp_rpos_go(struct dscp_rpos *p, uint64_t to, struct dsc_error *e);
/* Exactly `len` bytes at image byte `at`; short is DSC_ERR_TRUNCATED
 * naming `what` ("BAT", "block map"). */
dsc_err dscp_rpos_read(struct dscp_rpos *p, uint64_t at, void *buf, size_t len, const char *what,
		       struct dsc_error *e);

/* A writer's block being gathered (blockmap.c). */
#define DSCP_NO_BLOCK UINT64_MAX
struct dscp_gather {
	uint8_t *blk;    /* size bytes */
	size_t size;     /* the block size */
	uint64_t cur;    /* the block held in blk, or DSCP_NO_BLOCK */
	const char *fmt; /* "VHD": named in the ascending-order message */
	/* Write or skip the block held (w->impl knows where), then set cur
	 * to DSCP_NO_BLOCK. */
	dsc_err (*flush)(dsc_writer *w, struct dsc_error *e);
};
/* Copy ext into the held block, flushing it first when ext reaches the
 * next one; data behind the held block is DSC_ERR_UNSUPPORTED. */
dsc_err dscp_gather(dsc_writer *w, struct dscp_gather *g, const struct dsc_extent *ext,
		    struct dsc_error *e);

/* Internal queries (dsc_stream_ops.query); each answers with the backend's
 * context, so identity is asked, never read off an ops table. */
enum {
	DSCP_Q_FILE = 1, /* struct fd_ctx of a file/fd stream */
	DSCP_Q_MEM,      /* struct mem_ctx */
	DSCP_Q_SHA256,   /* struct hash_stream */
	DSCP_Q_URL,      /* struct curl_ctx */
};
/* Ask s, then the streams it wraps, in turn. */
const void *dscp_stream_query(const dsc_stream *s, int what);
/* A URL stream opened with dsc_url_opts.seek_to_tail (io_curl.c). */
bool dscp_url_seeks_to_tail(const dsc_stream *s);

/* Little-endian helpers. */
static inline uint16_t dscp_le16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static inline uint32_t dscp_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t dscp_le64(const uint8_t *p)
{
	return (uint64_t)dscp_le32(p) | (uint64_t)dscp_le32(p + 4) << 32;
}
static inline void dscp_put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}
static inline void dscp_put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}
static inline void dscp_put64(uint8_t *p, uint64_t v)
{
	dscp_put32(p, (uint32_t)v);
	dscp_put32(p + 4, (uint32_t)(v >> 32));
}
/* Big-endian readers (qcow2, VHD, LUKS headers). */
static inline uint16_t dscp_be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static inline uint32_t dscp_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}
static inline uint64_t dscp_be64(const uint8_t *p)
{
	return (uint64_t)dscp_be32(p) << 32 | (uint64_t)dscp_be32(p + 4);
}

/* True when all n bytes are zero (word-wise; fast on long zero runs). */
bool dscp_is_zero(const void *buf, size_t n);

/* The part of a path after its last '/'. */
const char *dscp_basename(const char *path);

#endif /* DSC_INTERNAL_H */
