/* dsc.h - the public interface of libdsc, the disk-stream-convert library.
 *
 * libdsc converts disk images between formats in one forward pass. A source
 * is a dsc_stream (file, pipe, socket, memory, HTTP body...) read by a
 * dsc_reader, which yields the image's non-zero extents in logical order
 * (offset + bytes). A dsc_writer takes those extents and produces the output
 * format on another dsc_stream. dsc_convert() joins the two. Nothing here
 * needs to seek on the input, and the VMDK writer never seeks on its output.
 *
 * Conventions:
 * - Fallible functions return a dsc_err; DSC_OK is 0. Results come back in
 *   out-parameters, which are set to NULL/0 on failure.
 * - Every fallible function takes an optional `struct dsc_error *` (may be
 *   NULL). It receives a one-line message naming the file and what is wrong.
 *   The first error recorded wins: later ones do not overwrite it. Zero the
 *   struct (`struct dsc_error e = {0};`) before first use.
 * - Every _open/_new has a _close/_free, and those accept NULL.
 * - Objects are not thread safe; distinct objects may be used from distinct
 *   threads. The library keeps no mutable global state and never prints.
 */
#ifndef DSC_H
#define DSC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- errors ---------------------------------------------------------- */

/* Append only; never renumber. */
typedef enum dsc_err {
	DSC_OK = 0,
	DSC_ERR_NOMEM,       /* out of memory */
	DSC_ERR_INVAL,       /* bad argument from the caller */
	DSC_ERR_IO,          /* an I/O call failed (errno in sys_errno) */
	DSC_ERR_FORMAT,      /* input is not a valid image of its format */
	DSC_ERR_UNSUPPORTED, /* valid, but a variant we do not handle */
	DSC_ERR_LIMIT,       /* a value exceeds a named limit */
	DSC_ERR_REMOTE,      /* a remote peer failed (HTTP status, network) */
	DSC_ERR_CANCELLED,   /* the caller asked to stop */
	DSC_ERR_EXISTS,      /* the destination exists and may not be replaced */
	DSC_ERR_TRUNCATED,   /* the input ended before the image did */
	DSC_ERR_NOSPACE,     /* the output device is full */
	DSC_ERR_NOTFOUND,    /* a named file does not exist */
	DSC_ERR_PERM,        /* permission denied */
} dsc_err;

#define DSC_ERROR_TEXT 512

/* Detail for the first error met. `message` is a complete sentence-like line
 * that begins with the name of the file or URL concerned. */
struct dsc_error {
	dsc_err code;
	int sys_errno;   /* errno captured at the failing call, or 0 */
	int http_status; /* HTTP status from a remote source, or 0 */
	char message[DSC_ERROR_TEXT];
};

/* A static, lower-case name for a code ("malformed image", ...). */
const char *dsc_strerror(dsc_err code);
/* A static upper-case identifier for a code ("FORMAT", "NOSPACE", ...). */
const char *dsc_err_name(dsc_err code);

/* Record an error in `e` unless it already holds one; returns `code`.
 * `fmt` is printf-style. Safe with e == NULL. */
dsc_err dsc_error_set(struct dsc_error *e, dsc_err code, int sys_errno,
		      const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Map an errno value from an I/O call to a dsc_err (ENOSPC -> NOSPACE...). */
dsc_err dsc_err_from_errno(int errnum);

/* ---- streams --------------------------------------------------------- */

/* A byte stream: an ops table plus a backend context. Backends set the
 * message in `e` themselves, naming the stream. Optional ops may be NULL. */
struct dsc_stream_ops {
	const char *name; /* backend name, e.g. "fd", "mem", "curl" */
	/* Read up to len bytes. *nread = 0 means end of stream. */
	dsc_err (*read)(void *ctx, void *buf, size_t len, size_t *nread,
			struct dsc_error *e);
	/* Write up to len bytes (at least 1 unless an error is returned). */
	dsc_err (*write)(void *ctx, const void *buf, size_t len,
			 size_t *nwritten, struct dsc_error *e);
	/* Optional: move to absolute offset `off` (reads and writes). */
	dsc_err (*seek)(void *ctx, uint64_t off, struct dsc_error *e);
	/* Optional: the first offset >= off that holds data (SEEK_DATA);
	 * *data_off = UINT64_MAX when there is no data past off. */
	dsc_err (*next_data)(void *ctx, uint64_t off, uint64_t *data_off,
			     struct dsc_error *e);
	/* Optional: make the output exactly `size` bytes long; when
	 * `allocate`, reserve the blocks too (posix_fallocate). */
	dsc_err (*set_size)(void *ctx, uint64_t size, bool allocate,
			    struct dsc_error *e);
	/* Optional: make the output durable and visible (fsync, rename). */
	dsc_err (*finish)(void *ctx, struct dsc_error *e);
	/* Release the context. On an unfinished output, discard it. */
	void (*close)(void *ctx);
};

typedef struct dsc_stream dsc_stream;

/* Wrap a backend. `name` (copied) names the stream in messages. On success
 * the stream owns ctx and calls ops->close(ctx) when closed; on failure
 * ctx is left to the caller. */
dsc_err dsc_stream_new(const struct dsc_stream_ops *ops, void *ctx,
		       const char *name, dsc_stream **out, struct dsc_error *e);

/* Flags for dsc_stream_open_fd. */
#define DSC_FD_OWN 0x1u /* close the fd when the stream is closed */

/* A stream over an open fd: regular file, pipe, socket or tty. Seeking and
 * hole detection are offered only when the fd is a regular file. */
dsc_err dsc_stream_open_fd(int fd, const char *name, unsigned flags,
			   dsc_stream **out, struct dsc_error *e);

/* Open a local file for reading. */
dsc_err dsc_stream_open_file(const char *path, dsc_stream **out,
			     struct dsc_error *e);

/* Flags for dsc_stream_create_file. */
#define DSC_CREATE_REPLACE 0x1u /* finish replaces an existing file */

/* Create `path` atomically: data goes to a temporary file in the same
 * directory; dsc_stream_finish() fsyncs it and renames it into place;
 * closing before finishing removes it, so a failed run leaves nothing.
 * Without DSC_CREATE_REPLACE, finish fails with DSC_ERR_EXISTS (and removes
 * the temporary) if `path` exists by then. */
dsc_err dsc_stream_create_file(const char *path, unsigned flags,
			       dsc_stream **out, struct dsc_error *e);

/* A read-only stream over caller memory (not copied; must outlive it). */
dsc_err dsc_stream_open_mem(const void *buf, size_t len, const char *name,
			    dsc_stream **out, struct dsc_error *e);

/* A seekable, growing in-memory output. dsc_stream_mem_buffer() exposes its
 * contents until the stream is closed. */
dsc_err dsc_stream_new_membuf(const char *name, dsc_stream **out,
			      struct dsc_error *e);
void dsc_stream_mem_buffer(dsc_stream *s, const uint8_t **data, size_t *len);

/* Read exactly len bytes unless the stream ends first: *nread < len only at
 * end of stream. After any error, every later call returns that error. */
dsc_err dsc_read_full(dsc_stream *s, void *buf, size_t len, size_t *nread,
		      struct dsc_error *e);
/* Write all len bytes or fail. */
dsc_err dsc_write_all(dsc_stream *s, const void *buf, size_t len,
		      struct dsc_error *e);
/* Push up to DSC_UNREAD_MAX bytes back; the next read returns them first. */
#define DSC_UNREAD_MAX 4096
dsc_err dsc_stream_unread(dsc_stream *s, const void *buf, size_t len,
			  struct dsc_error *e);
/* Read and drop n bytes (seeks forward when it can). *skipped < n only at
 * end of stream. */
dsc_err dsc_stream_skip(dsc_stream *s, uint64_t n, uint64_t *skipped,
			struct dsc_error *e);
bool dsc_stream_can_seek(const dsc_stream *s);
dsc_err dsc_stream_seek(dsc_stream *s, uint64_t off, struct dsc_error *e);
/* SEEK_DATA; DSC_ERR_UNSUPPORTED when the backend cannot tell. */
dsc_err dsc_stream_next_data(dsc_stream *s, uint64_t off, uint64_t *data_off,
			     struct dsc_error *e);
dsc_err dsc_stream_set_size(dsc_stream *s, uint64_t size, bool allocate,
			    struct dsc_error *e);
/* Complete an output (fsync, rename); required for the output to exist. */
dsc_err dsc_stream_finish(dsc_stream *s, struct dsc_error *e);
/* Current position: bytes consumed by reads / produced by writes, moved
 * by seeks. */
uint64_t dsc_stream_tell(const dsc_stream *s);
/* Bytes actually transferred by the backend (seeks excluded). */
uint64_t dsc_stream_bytes(const dsc_stream *s);
/* The total size of the stream if known in advance (regular file), else
 * UINT64_MAX. Set by backends with dsc_stream_set_total(). */
uint64_t dsc_stream_total(const dsc_stream *s);
void dsc_stream_set_total(dsc_stream *s, uint64_t total);
const char *dsc_stream_name(const dsc_stream *s);
/* Discard an output or release an input. Safe with NULL. */
void dsc_stream_close(dsc_stream *s);

/* ---- image readers ---------------------------------------------------- */

/* A run of image bytes at a logical offset. Bytes not covered by any
 * extent read as zero. `data` stays valid until the next call on the
 * reader that produced it. */
struct dsc_extent {
	uint64_t offset;
	size_t length;
	const uint8_t *data;
};

typedef enum dsc_format {
	DSC_FORMAT_UNKNOWN = 0,
	DSC_FORMAT_RAW,
	DSC_FORMAT_VMDK, /* VMDK streamOptimized */
} dsc_format;

/* "raw" / "vmdk" -> format; DSC_FORMAT_UNKNOWN for anything else. */
dsc_format dsc_format_from_name(const char *name);
const char *dsc_format_name(dsc_format f);

#define DSC_CAPACITY_UNKNOWN UINT64_MAX

typedef struct dsc_reader dsc_reader;

/* Open a reader on `in` (the reader does not own it). With
 * DSC_FORMAT_UNKNOWN the format is detected from the first bytes: the
 * VMDK magic means VMDK, anything else raw. */
dsc_err dsc_reader_open(dsc_stream *in, dsc_format fmt, dsc_reader **out,
			struct dsc_error *e);
/* The next extent in ascending order (a VMDK stream may break the order;
 * writers report that). ext->length == 0 at the end of the image. */
dsc_err dsc_reader_next(dsc_reader *r, struct dsc_extent *ext,
			struct dsc_error *e);
/* Virtual disk size in bytes; DSC_CAPACITY_UNKNOWN for a raw pipe until
 * dsc_reader_next() has reported the end. */
uint64_t dsc_reader_capacity(const dsc_reader *r);
dsc_format dsc_reader_format(const dsc_reader *r);
void dsc_reader_close(dsc_reader *r);

/* ---- image writers ---------------------------------------------------- */

struct dsc_writer_opts {
	/* Virtual size in bytes if known, else DSC_CAPACITY_UNKNOWN. The
	 * VMDK writer needs it up front on an unseekable output. */
	uint64_t capacity;
	/* raw: allocate the whole capacity before writing. Ignored by VMDK
	 * (a compressed stream has no size to reserve). */
	bool prealloc;
	/* VMDK: the file name written in the descriptor's extent line; the
	 * output's own basename. NULL: the output stream's name's basename. */
	const char *extent_name;
	/* VMDK: deflate level 1..9; 0 means the default (6). */
	int level;
};

typedef struct dsc_writer dsc_writer;

/* Open a writer on `out` (not owned). opts may be NULL (defaults). */
dsc_err dsc_writer_open(dsc_stream *out, dsc_format fmt,
			const struct dsc_writer_opts *opts, dsc_writer **w,
			struct dsc_error *e);
/* Add an extent. Extents must not overlap; a lower offset than the last
 * one needs a seekable output (raw) and is refused by VMDK. */
dsc_err dsc_writer_put(dsc_writer *w, const struct dsc_extent *ext,
		       struct dsc_error *e);
/* Complete the image at `capacity` bytes (trailer, size, fsync, rename
 * through dsc_stream_finish). Nothing is visible before this succeeds. */
dsc_err dsc_writer_finish(dsc_writer *w, uint64_t capacity,
			  struct dsc_error *e);
/* Release the writer (not its stream). */
void dsc_writer_close(dsc_writer *w);

/* ---- conversion ------------------------------------------------------ */

struct dsc_progress {
	uint64_t in_bytes;   /* bytes consumed from the input stream */
	uint64_t in_total;   /* input size if known, else UINT64_MAX */
	uint64_t disk_pos;   /* logical offset reached in the image */
	uint64_t capacity;   /* image size if known, else UINT64_MAX */
	uint64_t out_bytes;  /* bytes written to the output stream */
	double seconds;      /* since the start */
};

/* Return false to cancel the conversion (DSC_ERR_CANCELLED). */
typedef bool (*dsc_progress_fn)(void *user, const struct dsc_progress *p);

struct dsc_convert_opts {
	dsc_format src_fmt;       /* DSC_FORMAT_UNKNOWN: detect */
	dsc_format dst_fmt;       /* default raw */
	bool prealloc;
	int level;                /* see dsc_writer_opts */
	const char *extent_name;  /* see dsc_writer_opts */
	uint64_t max_capacity;    /* refuse larger images; 0: no limit */
	dsc_progress_fn progress; /* optional, called about 10 times/s */
	void *progress_user;
};

struct dsc_convert_stats {
	uint64_t bytes_read;    /* from the input stream */
	uint64_t bytes_written; /* to the output stream (holes excluded) */
	uint64_t capacity;      /* virtual disk size in bytes */
	double seconds;
};

/* Read all of `in`, write `out` and finish it. On failure the output is
 * not finished: closing its stream discards it. */
dsc_err dsc_convert(dsc_stream *in, dsc_stream *out,
		    const struct dsc_convert_opts *opts,
		    struct dsc_convert_stats *stats, struct dsc_error *e);

/* Library version string, e.g. "0.1.0". */
const char *dsc_version(void);

#ifdef __cplusplus
}
#endif
#endif /* DSC_H */
