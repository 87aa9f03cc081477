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

/* The version of this header (the library's is dsc_version()). */
#define DSC_VERSION_MAJOR 0
#define DSC_VERSION_MINOR 2
#define DSC_VERSION_PATCH 0
#define DSC_VERSION_STRING "0.2.0"

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
	DSC_ERR_INTEGRITY,   /* the bytes differ from their expected digest */
	DSC_ERR_SEEK,        /* this image needs a seekable input or output
				(a qcow2 that is not stream-ordered, from a pipe) */
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
dsc_err dsc_error_set(struct dsc_error *e, dsc_err code, int sys_errno, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Map an errno value from an I/O call to a dsc_err (ENOSPC -> NOSPACE...). */
dsc_err dsc_err_from_errno(int errnum);

/* ---- streams --------------------------------------------------------- */

/* A byte stream: an ops table plus a backend context. Backends set the
 * message in `e` themselves, naming the stream. Optional ops may be NULL. */
struct dsc_stream_ops {
	const char *name; /* backend name, e.g. "fd", "mem", "curl" */
	/* Read up to len bytes. *nread = 0 means end of stream. */
	dsc_err (*read)(void *ctx, void *buf, size_t len, size_t *nread, struct dsc_error *e);
	/* Write up to len bytes (at least 1 unless an error is returned). */
	dsc_err (*write)(void *ctx, const void *buf, size_t len, size_t *nwritten,
			 struct dsc_error *e);
	/* Optional: move to absolute offset `off` (reads and writes). */
	dsc_err (*seek)(void *ctx, uint64_t off, struct dsc_error *e);
	/* Optional: the first offset >= off that holds data (SEEK_DATA);
	 * *data_off = UINT64_MAX when there is no data past off. */
	dsc_err (*next_data)(void *ctx, uint64_t off, uint64_t *data_off, struct dsc_error *e);
	/* Optional: make the output exactly `size` bytes long; when
	 * `allocate`, reserve the blocks too (posix_fallocate). */
	dsc_err (*set_size)(void *ctx, uint64_t size, bool allocate, struct dsc_error *e);
	/* Optional: make the output durable and visible (fsync, rename). */
	dsc_err (*finish)(void *ctx, struct dsc_error *e);
	/* Release the context. On an unfinished output, discard it. */
	void (*close)(void *ctx);
	/* Optional: answer a library-internal query about the backend, NULL
	 * when it has no answer. A stream made with dsc_stream_new_wrapper()
	 * passes the queries it does not answer to the stream it wraps. */
	const void *(*query)(void *ctx, int what);
};

typedef struct dsc_stream dsc_stream;

/* What a stream can do (dsc_stream_caps()). */
#define DSC_STREAM_READ 0x01u
#define DSC_STREAM_WRITE 0x02u
#define DSC_STREAM_SEEK 0x04u      /* dsc_stream_seek() */
#define DSC_STREAM_NEXT_DATA 0x08u /* dsc_stream_next_data() (holes) */
#define DSC_STREAM_SET_SIZE 0x10u  /* dsc_stream_set_size() */
#define DSC_STREAM_FINISH 0x20u    /* has a finish step (atomic file...) */

/* Wrap a backend. `name` (copied) names the stream in messages. On success
 * the stream owns ctx and calls ops->close(ctx) when closed; on failure
 * ctx is left to the caller. */
dsc_err dsc_stream_new(const struct dsc_stream_ops *ops, void *ctx, const char *name,
		       dsc_stream **out, struct dsc_error *e);

/* The same for a stream layered over `inner` (a filter, a gate, a
 * sub-stream): queries the backend does not answer go to `inner`, so
 * dsc_stream_temp_path() and the like see through it. `inner` is not
 * owned unless the backend closes it. */
dsc_err dsc_stream_new_wrapper(const struct dsc_stream_ops *ops, void *ctx, const char *name,
			       dsc_stream *inner, dsc_stream **out, struct dsc_error *e);

/* Flags for dsc_stream_open_sub. */
#define DSC_SUB_OWN 0x1u /* close `inner` when the sub-stream is closed */

/* A read stream over the next `length` bytes of `inner` (a tar member, a
 * body part): it ends there, and it is DSC_ERR_TRUNCATED when `inner`
 * ends first. It seeks (within those bytes) when `inner` can; its total
 * is `length`. Reading it moves `inner`. Unlike a wrapper it does not pass
 * queries on (dsc_stream_mem_buffer() or a digest of `inner` would be
 * about more than the part). */
dsc_err dsc_stream_open_sub(dsc_stream *inner, uint64_t length, unsigned flags, dsc_stream **out,
			    struct dsc_error *e);

/* Flags for dsc_stream_open_fd. */
#define DSC_FD_OWN 0x1u /* close the fd when the stream is closed */

/* A stream over an open fd: regular file, pipe, socket or tty. Seeking and
 * hole detection are offered only when the fd is a regular file. */
dsc_err dsc_stream_open_fd(int fd, const char *name, unsigned flags, dsc_stream **out,
			   struct dsc_error *e);

/* Open a local file for reading. */
dsc_err dsc_stream_open_file(const char *path, dsc_stream **out, struct dsc_error *e);

/* Let a VMDK descriptor file read from `s` (or from a stream layered over
 * it) open the extent files it names, in directory `dir` (copied; NULL
 * clears). Extents must be plain file names there (no '/', no symbolic
 * links). Without a directory, the default, a descriptor is refused
 * (DSC_ERR_UNSUPPORTED): set it only for a trusted local file's own
 * directory. DSC_ERR_NOMEM on failure. */
dsc_err dsc_stream_set_extent_dir(dsc_stream *s, const char *dir, struct dsc_error *e);

/* The same, with a directory already open (O_PATH will do): the stream
 * keeps its own duplicate (close `dirfd` when you like), so that what the
 * caller checked is the directory the extents open in, with no path to
 * look up again. It takes the place of a directory set by path; -1 clears.
 * DSC_ERR_IO if the descriptor cannot be duplicated. */
dsc_err dsc_stream_set_extent_dirfd(dsc_stream *s, int dirfd, struct dsc_error *e);

/* Flags for dsc_stream_create_file. */
#define DSC_CREATE_REPLACE 0x1u /* finish replaces an existing file */

/* Create `path` atomically: data goes to a temporary file in the same
 * directory; dsc_stream_finish() fsyncs it and renames it into place;
 * closing before finishing removes it, so a failed run leaves nothing.
 * Without DSC_CREATE_REPLACE, finish fails with DSC_ERR_EXISTS (and removes
 * the temporary) if `path` exists by then. */
dsc_err dsc_stream_create_file(const char *path, unsigned flags, dsc_stream **out,
			       struct dsc_error *e);

/* The temporary file behind a dsc_stream_create_file() stream, or NULL
 * (other streams, or after finish). Meant for a signal handler that must
 * unlink(2) it before the process dies. */
const char *dsc_stream_temp_path(const dsc_stream *s);

/* A read-only stream over caller memory (not copied; must outlive it). */
dsc_err dsc_stream_open_mem(const void *buf, size_t len, const char *name, dsc_stream **out,
			    struct dsc_error *e);

/* A seekable, growing in-memory output. dsc_stream_mem_buffer() exposes its
 * contents until the stream is closed. */
dsc_err dsc_stream_new_membuf(const char *name, dsc_stream **out, struct dsc_error *e);
void dsc_stream_mem_buffer(dsc_stream *s, const uint8_t **data, size_t *len);

/* Read exactly len bytes unless the stream ends first: *nread < len only at
 * end of stream. With nread == NULL a short read is DSC_ERR_TRUNCATED.
 * After any error, every later call returns that error. */
dsc_err dsc_read_full(dsc_stream *s, void *buf, size_t len, size_t *nread, struct dsc_error *e);
/* Write all len bytes or fail. */
dsc_err dsc_write_all(dsc_stream *s, const void *buf, size_t len, struct dsc_error *e);
/* Push up to DSC_UNREAD_MAX bytes back; the next read returns them first. */
#define DSC_UNREAD_MAX 4096
dsc_err dsc_stream_unread(dsc_stream *s, const void *buf, size_t len, struct dsc_error *e);
/* Read and drop n bytes (seeks forward when it can). *skipped < n only at
 * end of stream. */
dsc_err dsc_stream_skip(dsc_stream *s, uint64_t n, uint64_t *skipped, struct dsc_error *e);
bool dsc_stream_can_seek(const dsc_stream *s);
/* DSC_STREAM_* flags for what `s` offers. */
unsigned dsc_stream_caps(const dsc_stream *s);
dsc_err dsc_stream_seek(dsc_stream *s, uint64_t off, struct dsc_error *e);
/* SEEK_DATA; DSC_ERR_UNSUPPORTED when the backend cannot tell. */
dsc_err dsc_stream_next_data(dsc_stream *s, uint64_t off, uint64_t *data_off, struct dsc_error *e);
dsc_err dsc_stream_set_size(dsc_stream *s, uint64_t size, bool allocate, struct dsc_error *e);
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

/* ---- formats ----------------------------------------------------------
 *
 * Formats live in one table inside the library (src/lib/formats.def): each
 * entry has a name, aliases, file extensions, a probe, a reader and/or a
 * writer, capability flags and writer options. Formats dsc recognises but
 * cannot convert have probe-only entries, so that such an input is refused
 * by name instead of being taken for a raw disk. A dsc_format is an entry's
 * id: 0 is "unknown" (detect), raw and vmdk have the fixed ids below, every
 * other id comes from dsc_format_from_name() or dsc_format_at(). Ids never
 * change: the table only grows at its end.
 */
typedef unsigned dsc_format;
#define DSC_FORMAT_UNKNOWN 0u
#define DSC_FORMAT_RAW 1u
#define DSC_FORMAT_VMDK 2u /* VMDK (written as streamOptimized) */

/* Capability flags (dsc_format_info.flags). */
#define DSC_FMT_READ 0x0001u             /* dsc reads it */
#define DSC_FMT_WRITE 0x0002u            /* dsc writes it */
#define DSC_FMT_READ_STREAMS 0x0004u     /* read in file order: pipes work */
#define DSC_FMT_READ_NEEDS_SEEK 0x0008u  /* the reader needs a seekable input */
#define DSC_FMT_WRITE_NEEDS_SEEK 0x0010u /* the writer needs a seekable output */
#define DSC_FMT_WRITE_NEEDS_CAPACITY \
	0x0020u                          /* ... or, on an unseekable one,
						  the capacity up front */
#define DSC_FMT_WRITE_TWO_PASS 0x0040u   /* can read a seekable source twice */
#define DSC_FMT_WRITE_COMPRESSED 0x0080u /* its output is compressed (-c) */
#define DSC_FMT_WRAPPER \
	0x0100u /* a compression or archive layer
					    around an image, not a disk */

/* Types of format options. */
enum dsc_option_type {
	DSC_OPTION_BOOL,   /* on|off, true|false, yes|no, 1|0 */
	DSC_OPTION_UINT,   /* a decimal number from min to max */
	DSC_OPTION_SIZE,   /* a number with an optional k/M/G/T suffix (x1024) */
	DSC_OPTION_ENUM,   /* one of `choices` (case-insensitive) */
	DSC_OPTION_STRING, /* any text */
};

/* One option of a format's writer (qemu-img's names where qemu has it). */
struct dsc_option_info {
	const char *name;
	enum dsc_option_type type;
	const char *default_value;  /* as text; NULL: none */
	const char *help;           /* one line */
	const char *const *choices; /* DSC_OPTION_ENUM: NULL-terminated */
	uint64_t min, max;          /* DSC_OPTION_UINT / DSC_OPTION_SIZE */
};

/* What the table says about one format. Owned by the library, constant;
 * fields are only ever appended. */
struct dsc_format_info {
	const char *name;                      /* "raw", "vmdk", "qcow2", ... */
	const char *description;               /* "VMDK (streamOptimized output)" */
	const char *const *aliases;            /* NULL-terminated ("img" for raw) */
	const char *const *extensions;         /* NULL-terminated, with the dot; the
					  first is the one outputs get */
	unsigned flags;                        /* DSC_FMT_* */
	const struct dsc_option_info *options; /* writer options, ended by an
						  entry whose name is NULL */
};

/* The number of formats in the table, and entry i (0 <= i < count; NULL
 * past the end), whose id is i + 1. Probe-only formats have neither DSC_FMT_READ nor
 * DSC_FMT_WRITE. */
size_t dsc_format_count(void);
const struct dsc_format_info *dsc_format_at(size_t i);
/* The entry of an id; NULL for DSC_FORMAT_UNKNOWN and unknown ids. */
const struct dsc_format_info *dsc_format_get(dsc_format f);
/* A name or alias (case-insensitive: "raw", "img", "vmdk", "vpc", ...) ->
 * its id; DSC_FORMAT_UNKNOWN for anything else. */
dsc_format dsc_format_from_name(const char *name);
/* The name of an id, "unknown" when there is none. */
const char *dsc_format_name(dsc_format f);
/* The names of the formats whose flags include all of `flags`, in table
 * order, joined by ", " into buf (always NUL-terminated; cut short if
 * size is too small): dsc_format_list(DSC_FMT_WRITE, ...) gives
 * "raw, vmdk". Returns buf. */
const char *dsc_format_list(unsigned flags, char *buf, size_t size);
/* The format one of whose extensions is `ext` (".vmdk", case-insensitive,
 * with the dot); DSC_FORMAT_UNKNOWN when none is. */
dsc_format dsc_format_from_extension(const char *ext);

/* ---- format options ---------------------------------------------------
 *
 * Options reach a writer as a key/value list, so a format can grow options
 * without a change to any struct here. Keys and values are copied. */
typedef struct dsc_optlist dsc_optlist;

dsc_err dsc_optlist_new(dsc_optlist **out, struct dsc_error *e);
/* Add "key=value[,key=value...]" as qemu-img -o takes it: ",," stands for
 * a comma inside a value; a key given again replaces the earlier value.
 * Malformed text (no '=', an empty key) is DSC_ERR_INVAL naming it; on
 * error nothing of `text` is added. */
dsc_err dsc_optlist_parse(dsc_optlist *l, const char *text, struct dsc_error *e);
/* Set one key (replacing an earlier value). */
dsc_err dsc_optlist_set(dsc_optlist *l, const char *key, const char *value, struct dsc_error *e);
/* The value of `key`, or NULL. */
const char *dsc_optlist_get(const dsc_optlist *l, const char *key);
/* Entries in the order first set; NULL past the end. */
size_t dsc_optlist_count(const dsc_optlist *l);
const char *dsc_optlist_key(const dsc_optlist *l, size_t i);
const char *dsc_optlist_value(const dsc_optlist *l, size_t i);
void dsc_optlist_free(dsc_optlist *l);

/* Check `l` (may be NULL) against the options of format f: an unknown key
 * or a bad value is DSC_ERR_INVAL with a message that names the key and
 * lists the format's keys ("vmdk: unknown option 'foo' (vmdk options:
 * subformat, adapter_type, hwversion)"). dsc_writer_open() runs the same
 * check. */
dsc_err dsc_format_check_options(dsc_format f, const dsc_optlist *l, struct dsc_error *e);

/* ---- detection ---------------------------------------------------------- */

/* Probe `in` without consuming it: the first 4 KiB (pushed back after),
 * and on a seekable input of known size also its last 512 bytes (where a
 * fixed VHD and a DMG keep their only signature). *fmt gets the
 * best-scoring format, which may be probe-only (see dsc_format_info.flags)
 * or a wrapper; raw only when no other format matches. */
dsc_err dsc_format_detect(dsc_stream *in, dsc_format *fmt, struct dsc_error *e);

#define DSC_CAPACITY_UNKNOWN UINT64_MAX

typedef struct dsc_reader dsc_reader;

/* Open a reader on `in` (the reader does not own it). With
 * DSC_FORMAT_UNKNOWN the format is detected (dsc_format_detect()). A
 * format dsc knows but cannot read, named or detected, is
 * DSC_ERR_UNSUPPORTED naming it ("disk.img: a qcow2 image; qcow2 is not
 * supported yet"), before anything past the probe is read.
 * A compressed input (gzip, xz, zstd, bzip2; found by its magic, whatever
 * `fmt` says) is decompressed while it is read: `fmt` then names the image
 * inside, or the compression itself (the image inside is detected). The
 * image's reader sees an unseekable stream, as from a pipe. */
dsc_err dsc_reader_open(dsc_stream *in, dsc_format fmt, dsc_reader **out, struct dsc_error *e);

/* Choices for a reader (dsc_reader_open_opts; zeroed: the defaults). */
struct dsc_reader_opts {
	/* OVA: the disk to read: its number in the OVF's DiskSection (from
	 * 1), its ovf:diskId, or its file's name (ovf:href); NULL: the first. */
	const char *disk;
	/* Inspection (dsc-img info): an image that cannot be converted for
	 * what it depends on (a qcow2 backing file, a VMDK parent, a qcow2
	 * marked corrupt) still opens, so that its facts can be read; that
	 * file is never opened, and dsc_reader_next() refuses the image. */
	bool inspect;
};
/* dsc_reader_open() with choices (o may be NULL). An OVA (a tar whose
 * first member is an .ovf) is an archive layer: the chosen disk's member
 * is read as the image (its compression, if any, is a further layer). */
dsc_err dsc_reader_open_opts(dsc_stream *in, dsc_format fmt, const struct dsc_reader_opts *o,
			     dsc_reader **out, struct dsc_error *e);

/* One disk of an OVA, as its OVF descriptor describes it. */
struct dsc_ova_disk {
	char id[256];        /* ovf:diskId */
	char file[256];      /* the File's ovf:href */
	char format[256];    /* the ovf:format URL's fragment ("streamOptimized") */
	uint64_t capacity;   /* bytes (ovf:capacity x its units); 0: unknown */
	uint64_t file_size;  /* ovf:size; 0: not given */
	uint64_t chunk_size; /* ovf:chunkSize; 0: one member */
	bool gzip;           /* ovf:compression="gzip" */
};
/* Read the OVF descriptor at the start of an OVA on `in` (only its first
 * member) and list up to `max` of its disks in *n. */
dsc_err dsc_ova_list(dsc_stream *in, struct dsc_ova_disk *disks, size_t max, size_t *n,
		     struct dsc_error *e);
/* The next extent in ascending order (a VMDK stream may break the order;
 * writers report that). ext->length == 0 at the end of the image. */
dsc_err dsc_reader_next(dsc_reader *r, struct dsc_extent *ext, struct dsc_error *e);
/* Virtual disk size in bytes; DSC_CAPACITY_UNKNOWN for a raw pipe until
 * dsc_reader_next() has reported the end. */
uint64_t dsc_reader_capacity(const dsc_reader *r);
/* Decompression threads for a VMDK reader (0: one per CPU, 1: none
 * extra); call before the first dsc_reader_next(). Raw readers ignore it. */
void dsc_reader_set_threads(dsc_reader *r, unsigned threads);
dsc_format dsc_reader_format(const dsc_reader *r);
/* Called now and then while dsc_reader_next() reads without producing an
 * extent (a long zero run, tables): for a progress display; returning
 * false ends the read with DSC_ERR_CANCELLED. dsc_convert() sets its own. */
void dsc_reader_set_tick(dsc_reader *r, bool (*tick)(void *user), void *user);
/* The compression layer the image was read through (gzip, xz, zstd,
 * bzip2), DSC_FORMAT_UNKNOWN when none. */
dsc_format dsc_reader_compression(const dsc_reader *r);
/* The archive the image was read from (OVA), DSC_FORMAT_UNKNOWN when none. */
dsc_format dsc_reader_archive(const dsc_reader *r);
void dsc_reader_close(dsc_reader *r);

/* ---- image facts (dsc-img info, check) ---------------------------------
 *
 * What a reader learnt from the image's header and tables when it opened,
 * for `dsc-img info`: qemu-img info's fields and keys where qemu has them. */
enum dsc_info_type {
	DSC_INFO_STRING,
	DSC_INFO_UINT,
	DSC_INFO_BOOL, /* num is 0 or 1 */
};
/* One field of the format-specific data ("compat": "1.1"). A field of a
 * list's entry (a VMDK's "extents") names the list and the entry. */
struct dsc_info_item {
	const char *list; /* NULL: a field of the data itself */
	size_t index;     /* the list entry, from 0 */
	const char *key;
	enum dsc_info_type type;
	const char *str; /* DSC_INFO_STRING */
	uint64_t num;    /* DSC_INFO_UINT, DSC_INFO_BOOL */
};
/* The format-specific fields, in the order the reader set them. */
size_t dsc_reader_info_count(const dsc_reader *r);
const struct dsc_info_item *dsc_reader_info_at(const dsc_reader *r, size_t i);
/* The allocation unit (qcow2 cluster, VMDK grain, VHD/VHDX/VDI block); 0
 * for a format without one (raw, a fixed VHD, a flat VMDK). */
uint64_t dsc_reader_cluster_size(const dsc_reader *r);
/* The backing (parent) file the image names, never opened: a qcow2
 * backing file, a VMDK parentFileNameHint; NULL when none. Only an
 * inspecting reader (dsc_reader_opts.inspect) opens such an image. */
const char *dsc_reader_backing_file(const dsc_reader *r);
/* The backing file's format as the image names it (qcow2), or NULL. */
const char *dsc_reader_backing_format(const dsc_reader *r);
/* The image says it was not closed cleanly (qcow2's dirty bit, a VMDK's
 * uncleanShutdown): qemu-img info's dirty-flag. */
bool dsc_reader_dirty(const dsc_reader *r);

/* What `dsc-img check` found in the tables of an image (qcow2: refcounts
 * against the clusters the tables use), qemu-img check's counts. */
struct dsc_check_report {
	uint64_t corruptions; /* a refcount below its use, a table out of range */
	uint64_t leaks;       /* clusters with a refcount and no use */
	uint64_t allocated_clusters;
	uint64_t total_clusters; /* of the virtual disk */
	uint64_t image_end_offset;
	bool checked; /* the format has tables to check, and they were */
	/* Called for each problem found (may be NULL): a one-line message,
	 * and whether the problem is a leak (else a corruption). */
	void (*problem)(void *user, bool leak, const char *message);
	void *user;
};
/* Check the image's tables (only a qcow2 on a seekable input has tables
 * dsc checks; for the rest rep->checked stays false). Call it after
 * dsc_reader_next() has reported the end, or instead of reading: it moves
 * the input, so the reader reads nothing more after it. An error is a
 * failure to check (I/O, a named limit), not a problem found. */
dsc_err dsc_reader_check(dsc_reader *r, struct dsc_check_report *rep, struct dsc_error *e);

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
	/* VMDK: deflate level 1..12 (zlib builds clamp to 9); 0 means the
	 * default, which compresses at least as well as qemu-img (zlib 6). */
	int level;
	/* VMDK: compression threads; 0 means one per CPU, 1 none extra. */
	unsigned threads;
	/* The format's options (-o); NULL: defaults. Checked by
	 * dsc_writer_open() as dsc_format_check_options() does; not copied,
	 * so the list must outlive the writer. */
	const dsc_optlist *options;
	/* Compress the data (qemu-img -c): qcow2 compressed clusters. A VMDK
	 * (streamOptimized) is always compressed; raw cannot be. */
	bool compress;
};

/* Named levels for dsc_writer_opts.level. */
#define DSC_LEVEL_FAST 1
#define DSC_LEVEL_DEFAULT 0
#define DSC_LEVEL_BEST 9

/* Parse a compression level as dsc-convert -level and dsc-server level=
 * take it: "fast" (DSC_LEVEL_FAST), "default" (DSC_LEVEL_DEFAULT), "best"
 * (DSC_LEVEL_BEST) or a number from 1 to 12 in decimal digits; nothing
 * else (not empty, no sign, no spaces). On success *level holds the level
 * for dsc_writer_opts.level. Else *level is DSC_LEVEL_DEFAULT and the
 * result is DSC_ERR_INVAL, with a message quoting (at most 64 bytes of)
 * `text`. `text` and `level` must not be NULL. Thread safe. */
dsc_err dsc_level_parse(const char *text, int *level, struct dsc_error *e);

typedef struct dsc_writer dsc_writer;

/* Open a writer on `out` (not owned). opts may be NULL (defaults). */
dsc_err dsc_writer_open(dsc_stream *out, dsc_format fmt, const struct dsc_writer_opts *opts,
			dsc_writer **w, struct dsc_error *e);
/* Add an extent. Extents must not overlap; a lower offset than the last
 * one needs a seekable output (raw) and is refused by VMDK. */
dsc_err dsc_writer_put(dsc_writer *w, const struct dsc_extent *ext, struct dsc_error *e);
/* Complete the image at `capacity` bytes (trailer, size, fsync, rename
 * through dsc_stream_finish). Nothing is visible before this succeeds. */
dsc_err dsc_writer_finish(dsc_writer *w, uint64_t capacity, struct dsc_error *e);
/* Release the writer (not its stream). */
void dsc_writer_close(dsc_writer *w);

/* ---- conversion ------------------------------------------------------ */

struct dsc_progress {
	uint64_t in_bytes;  /* bytes consumed from the input (this pass) */
	uint64_t in_total;  /* input size if known, else UINT64_MAX */
	uint64_t disk_pos;  /* logical offset reached in the image */
	uint64_t capacity;  /* image size if known, else UINT64_MAX */
	uint64_t out_bytes; /* bytes written to the output stream */
	double seconds;     /* since the start */
};

/* Return false to cancel the conversion (DSC_ERR_CANCELLED). */
typedef bool (*dsc_progress_fn)(void *user, const struct dsc_progress *p);

struct dsc_convert_opts {
	dsc_format src_fmt; /* DSC_FORMAT_UNKNOWN: detect */
	dsc_format dst_fmt; /* default raw */
	bool prealloc;
	int level;                /* see dsc_writer_opts */
	unsigned threads;         /* codec threads, see dsc_writer_opts */
	const char *extent_name;  /* see dsc_writer_opts */
	uint64_t max_capacity;    /* refuse larger images; 0: no limit */
	dsc_progress_fn progress; /* optional, called about 10 times/s */
	void *progress_user;
	const dsc_optlist *options; /* the output format's options (-o) */
	bool compress;              /* see dsc_writer_opts */
	/* Optional: called once, before the first output byte, when the
	 * writer knows the exact size of the output in advance (a qcow2
	 * written to a pipe in two passes), e.g. for a Content-Length. */
	void (*output_size)(void *user, uint64_t bytes);
	void *output_size_user;
	const char *disk; /* an OVA's disk: see dsc_reader_opts.disk */
};

struct dsc_convert_stats {
	uint64_t bytes_read;    /* from the input stream (both passes of two) */
	uint64_t bytes_written; /* the output: a VMDK's file size, a raw
				   disk's bytes written (holes excluded) */
	uint64_t capacity;      /* size of the image written, in bytes */
	double seconds;
	dsc_format src_format;      /* the image read (detected or named) */
	dsc_format src_compression; /* its compression layer, or 0 (none) */
	dsc_format src_archive;     /* the archive it came in (OVA), or 0 */
};

/* Read all of `in`, write `out` and finish it. On failure the output is
 * not finished: closing its stream discards it.
 * A writer that needs its layout before the first byte (qcow2 to an
 * output that cannot seek) gets two passes: the source is read once to
 * map its data, seeked back to where it started and read again, so `in`
 * must then seek (DSC_ERR_UNSUPPORTED otherwise); stats->bytes_read counts
 * both passes, and progress runs from the start once per pass. */
dsc_err dsc_convert(dsc_stream *in, dsc_stream *out, const struct dsc_convert_opts *opts,
		    struct dsc_convert_stats *stats, struct dsc_error *e);

/* ---- URL sources and integrity ----------------------------------------
 *
 * dsc_stream_open_url() reads an http or https URL as an input stream,
 * forward-only unless the server serves ranges. A transfer that breaks off (connection reset, idle timeout, short
 * body, HTTP 5xx) is resumed from the next byte with Range + If-Range, so
 * the reader never sees a gap or a duplicate byte; a resource that changed
 * in between is an error, never a silent mix (a server without ETag and
 * Last-Modified is resumed only when the caller asks, see
 * resume_without_validator). Memory stays bounded: the
 * transfer pauses while the buffer is full. Every connection (each redirect
 * hop, IPv4 and IPv6) is checked against an optional address policy.
 * A failure is DSC_ERR_REMOTE (or PERM, INVAL...) whose struct dsc_error
 * says why in fields, not only in words: http_status is the status of a
 * response that could not be used, and sys_errno is ETIMEDOUT when the
 * transfer timed out (the idle timeout, or libcurl's connect or TLS
 * timeouts), so that a caller never has to search the message.
 * Built without libcurl, dsc_stream_open_url() fails with
 * DSC_ERR_UNSUPPORTED; without libcrypto, so does dsc_stream_open_sha256().
 */

struct sockaddr;

/* An address policy: which peer addresses a URL source may connect to.
 * A verdict is reached in this order:
 *   1. the caller's rules: the most specific CIDR that contains the
 *      address decides (on equal prefixes, deny wins);
 *   2. built-in special ranges are denied: 0/8, 10/8, 100.64/10 (CGNAT),
 *      127/8, 169.254/16, 172.16/12, 192.0.0/24, 192.0.2/24, 192.88.99/24,
 *      192.168/16, 198.18/15, 198.51.100/24, 203.0.113/24, 224/4 and 240/4
 *      (multicast, reserved, broadcast); ::, ::1, ::/96, 100::/64,
 *      2001::/32, 2001:db8::/32, fc00::/7 (ULA), fe80::/10, fec0::/10,
 *      ff00::/8 and a few more reserved IPv6 blocks;
 *   3. everything else gets the default verdict (allow, unless changed).
 * An IPv4-mapped address (::ffff:a.b.c.d) is judged exactly as a.b.c.d;
 * addresses embedding IPv4 (64:ff9b::/96 NAT64, 2002::/16 6to4) are also
 * denied when their IPv4 part is. To let a test fetch from loopback, allow
 * "127.0.0.0/8" (and "::1") explicitly.
 * A policy is immutable while streams use it; checks are thread safe. */
typedef struct dsc_netpolicy dsc_netpolicy;

dsc_err dsc_netpolicy_new(dsc_netpolicy **out, struct dsc_error *e);
/* Add rules: `cidrs` is one or more addresses or CIDRs separated by commas
 * or blanks ("10.1.0.0/16, 2001:db8::/32 192.0.2.7"). Bits set beyond the
 * prefix are an error (DSC_ERR_INVAL, naming the bad item); on error no
 * rule of the list is added. */
dsc_err dsc_netpolicy_add(dsc_netpolicy *p, const char *cidrs, bool allow, struct dsc_error *e);
/* The verdict for addresses no rule or special range covers (default:
 * true). false turns the rules into an allow-list. */
void dsc_netpolicy_set_default(dsc_netpolicy *p, bool allow);
/* Whether a connection to `sa` (AF_INET or AF_INET6) is allowed. Other
 * address families are denied. */
bool dsc_netpolicy_allows(const dsc_netpolicy *p, const struct sockaddr *sa);
/* The same for a numeric address string; false when it does not parse. */
bool dsc_netpolicy_allows_str(const dsc_netpolicy *p, const char *addr);
void dsc_netpolicy_free(dsc_netpolicy *p);

/* Options of a URL source. Call dsc_url_opts_init() first, then change
 * what you need; the values are then taken as they are (0 retries means
 * no retry). Strings and the header list are copied by
 * dsc_stream_open_url(); the policy is not and must outlive the stream. */
struct dsc_url_opts {
	const char *const *headers;  /* NULL-terminated "Name: value" list,
				       sent on every request and redirect hop */
	const char *cacert;          /* PEM CA bundle; NULL: the system store */
	bool insecure;               /* skip TLS certificate and host checks */
	unsigned retries;            /* further tries after a failure that
				       brought no new byte (default 5) */
	unsigned idle_timeout;       /* seconds without a byte before a try is
				       abandoned and resumed; 0: none (60) */
	unsigned connect_timeout;    /* seconds; 0: libcurl's default (30) */
	unsigned max_redirects;      /* redirects followed per try (10) */
	unsigned retry_delay_ms;     /* first backoff, doubled on each failure
				       and capped at 30 s (1000) */
	const dsc_netpolicy *policy; /* NULL: any address may be reached */
	bool use_env_proxy;          /* honour http_proxy/https_proxy (false);
				       the policy then sees the proxy address */
	size_t buffer_size;          /* bytes buffered ahead of the reader, at
				       least 64 KiB (default 1 MiB) */
	const char *user_agent;      /* NULL: "dsc/<version>" */
	/* Optional: polled about once a second while waiting (network, backoff);
	 * returning true ends the stream with DSC_ERR_CANCELLED. */
	bool (*cancel)(void *user);
	void *cancel_user;
	/* A server that sends neither ETag nor Last-Modified cannot prove that
	 * a resumed body is the same resource, so by default such a transfer
	 * fails at its first break. true: resume it anyway with Range (no
	 * If-Range), provided the first response had a Content-Length and the
	 * 206's Content-Range states the same total. Set it only when the
	 * caller verifies the bytes itself, e.g. with dsc_stream_open_sha256()
	 * and an expected digest (false). */
	bool resume_without_validator;
	/* Let detection and the readers fetch the end of the resource with a
	 * Range request, as they seek on a file (a fixed VHD's footer): for
	 * reading little of a large image (dsc-img info). false: a URL is
	 * read front to back, one request for a whole conversion (false). */
	bool seek_to_tail;
};

/* Fill `o` with the defaults shown above. */
void dsc_url_opts_init(struct dsc_url_opts *o);

/* True when `s` starts with a URL scheme ("name://"), whether or not the
 * scheme is supported: callers route such sources to dsc_stream_open_url(),
 * which refuses anything but http and https with a clear message. */
bool dsc_looks_like_url(const char *s);

/* Open `url` (http or https; redirects may only lead to those) for reading.
 * Blocks until the response headers arrived, so an unreachable host, a TLS
 * failure, an address refused by the policy or an HTTP error status is
 * reported here. The stream's total is set from Content-Length when the
 * server sends one. `o` may be NULL (defaults). Messages name the URL
 * without its user:password and query string:
 *   "https://host/x.vmdk: HTTP 404 Not Found"
 *   "http://127.0.0.1:8/x.raw: cannot connect: Connection refused"
 * Remote failures are DSC_ERR_REMOTE with e->http_status set when there was
 * a status; bad URLs and schemes are DSC_ERR_INVAL; a refused address is
 * DSC_ERR_PERM. Later reads can fail the same ways (after the retries).
 *
 * The stream seeks (DSC_STREAM_SEEK) only when the first response is a 200
 * with Accept-Ranges: bytes, a Content-Length and an ETag or Last-Modified
 * (or neither, with resume_without_validator); otherwise it is forward-only.
 * A seek to the current offset is free; one forward by less than 256 KiB
 * past the buffered bytes reads on and drops them; any other seek ends the
 * transfer, and the next read sends a new request with Range: bytes=OFF-
 * and If-Range, checked, retried and policed like a resume. An answer that
 * is not the range asked for (a 200: the server ignored Range, or the
 * resource changed) fails the stream with DSC_ERR_REMOTE. A seek past the
 * total is DSC_ERR_INVAL; one to the total reads end of stream without a
 * request. Format detection does not seek a URL to look at its end, so a
 * reader that does not seek still makes exactly one request. */
dsc_err dsc_stream_open_url(const char *url, const struct dsc_url_opts *o, dsc_stream **out,
			    struct dsc_error *e);

/* Retries done so far by a URL stream (0 for other streams). */
unsigned dsc_stream_url_retries(const dsc_stream *s);

/* HTTP requests made so far by a URL stream: the first, each retry and
 * each request a seek needed (the redirects followed within a request are
 * not counted apart). 0 for other streams. */
unsigned dsc_stream_url_requests(const dsc_stream *s);

/* SHA-256 pass-through. A read wrapper hashes every byte read through it;
 * it hides seek and hole detection from its reader so no byte escapes the
 * hash. A write wrapper (DSC_SHA256_WRITE) hashes what is written; it can
 * seek forward over holes when the inner stream can (the gap is hashed as
 * the zeros it reads back as) and pads the hash with zeros up to a size set
 * by dsc_stream_set_size(), so the digest is that of the finished file. */
#define DSC_SHA256_WRITE 0x1u /* wrap an output instead of an input */
#define DSC_SHA256_OWN 0x2u   /* close `inner` when the wrapper is closed */
#define DSC_SHA256_HEX_LEN 64

dsc_err dsc_stream_open_sha256(dsc_stream *inner, unsigned flags, dsc_stream **out,
			       struct dsc_error *e);
/* The lower-case hex digest of the bytes seen so far (a write wrapper adds
 * the zero padding described above); `hex` gets 64 digits and a NUL. May be
 * called more than once. DSC_ERR_UNSUPPORTED when a write wrapper was asked
 * to seek backwards (the bytes no longer form one sequence); DSC_ERR_INVAL
 * when `s` is not a SHA-256 wrapper. */
dsc_err dsc_stream_sha256_hex(dsc_stream *s, char hex[DSC_SHA256_HEX_LEN + 1], struct dsc_error *e);
/* True when `hex` is exactly 64 hex digits (either case). */
bool dsc_sha256_hex_valid(const char *hex);

/* Read the rest of `in` (a SHA-256 read wrapper) and compare its digest
 * with `expected_hex` (64 hex digits, either case). A mismatch is
 * DSC_ERR_INTEGRITY: "<in>: SHA-256 mismatch: expected <hex>, got <hex>". */
dsc_err dsc_stream_sha256_verify(dsc_stream *in, const char *expected_hex, struct dsc_error *e);

/* An output gated on the input's digest: writes, seeks and set_size go to
 * `out`; dsc_stream_finish() first runs dsc_stream_sha256_verify(in,
 * expected_hex) and only finishes `out` when it succeeds, so a mismatch
 * fails the conversion before the output becomes visible (closing it then
 * discards it). With DSC_SHA256_OWN the gate closes `out`, never `in`. */
dsc_err dsc_stream_open_sha256_gate(dsc_stream *out, dsc_stream *in, const char *expected_hex,
				    unsigned flags, dsc_stream **gated, struct dsc_error *e);

/* Library version string, e.g. "0.1.0": the version of the library that
 * runs, which may be newer than the DSC_VERSION_* a program was built
 * with. */
const char *dsc_version(void);

#ifdef __cplusplus
}
#endif
#endif /* DSC_H */
