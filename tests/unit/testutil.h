/* testutil.h - assertions, a fault-injecting stream and image builders for
 * the libdsc unit tests.
 *
 * Each unit test is a standalone program: main() calls TU_RUN() for each
 * case and returns tu_exit() (0 pass, 1 fail, 77 skip). ASSERT records a
 * failure and continues, so one run shows every broken check; REQUIRE
 * returns from the current test function when continuing would crash
 * (NULL pointer, missing buffer).
 *
 * The fault stream is built only from the public dsc_stream_ops, like any
 * third-party backend: it wraps another dsc_stream and can cut every read
 * short, fail at byte N, end early at byte N, sleep per read and hide seek.
 *
 * The VMDK builder writes streams by hand (header through
 * dscp_vmdk_header_encode, markers, zlib grains from compress2) so the
 * reader meets layouts our own writer never produces: qemu-img's, VMware's,
 * open-vmdk's, unknown metadata markers, out-of-order and hostile grains.
 */
#ifndef DSC_TESTUTIL_H
#define DSC_TESTUTIL_H

#include "internal.h"

#include <stdio.h>

#include "vmdk.h"

/* ---- assertions ------------------------------------------------------- */

extern int tu_failures;

void tu_fail(const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define ASSERT(cond)                                                      \
	do {                                                              \
		if (!(cond))                                              \
			tu_fail(__FILE__, __LINE__, "ASSERT(%s)", #cond); \
	} while (0)

/* Like ASSERT, but leave the current (void) test function on failure. */
#define REQUIRE(cond)                                                      \
	do {                                                               \
		if (!(cond)) {                                             \
			tu_fail(__FILE__, __LINE__, "REQUIRE(%s)", #cond); \
			return;                                            \
		}                                                          \
	} while (0)

/* Compare two dsc_err values and print both names on mismatch. */
#define ASSERT_ERR(got, want)                                                                 \
	do {                                                                                  \
		dsc_err tu_g_ = (got), tu_w_ = (want);                                        \
		if (tu_g_ != tu_w_)                                                           \
			tu_fail(__FILE__, __LINE__, "%s == %s: got %s, want %s", #got, #want, \
				dsc_err_name(tu_g_), dsc_err_name(tu_w_));                    \
	} while (0)

/* The message of an optional error struct ("" for NULL). */
const char *tu_msg(const struct dsc_error *e);

/* A call that must succeed; prints the error message when it does not. */
#define ASSERT_OK(call, errp)                                                                  \
	do {                                                                                   \
		dsc_err tu_g_ = (call);                                                        \
		if (tu_g_ != DSC_OK)                                                           \
			tu_fail(__FILE__, __LINE__, "%s: %s (%s)", #call, dsc_err_name(tu_g_), \
				tu_msg(errp));                                                 \
	} while (0)
#define REQUIRE_OK(call, errp)                                                                 \
	do {                                                                                   \
		dsc_err tu_g_ = (call);                                                        \
		if (tu_g_ != DSC_OK) {                                                         \
			tu_fail(__FILE__, __LINE__, "%s: %s (%s)", #call, dsc_err_name(tu_g_), \
				tu_msg(errp));                                                 \
			return;                                                                \
		}                                                                              \
	} while (0)

#define ASSERT_EQ_U64(a, b)                                                            \
	do {                                                                           \
		uint64_t tu_a_ = (uint64_t)(a), tu_b_ = (uint64_t)(b);                 \
		if (tu_a_ != tu_b_)                                                    \
			tu_fail(__FILE__, __LINE__, "%s == %s: %llu != %llu", #a, #b,  \
				(unsigned long long)tu_a_, (unsigned long long)tu_b_); \
	} while (0)

/* Run one test function and say which one failed. */
#define TU_RUN(fn) tu_run(#fn, fn)
void tu_run(const char *name, void (*fn)(void));
/* 1 if anything failed, else 0 (or 77 when tu_skip() was called and
 * nothing ran). */
int tu_exit(void);
/* Mark the whole program skipped (exit 77 if no test failed and none ran),
 * for a missing prerequisite; under CI (CI=true) this is a failure. */
void tu_skip(const char *why);

/* ---- data ------------------------------------------------------------- */

enum tu_fill {
	TU_ZERO,         /* all zero */
	TU_RANDOM,       /* xorshift bytes: incompressible */
	TU_COMPRESSIBLE, /* text-like, repeats: deflates well */
	TU_SPARSE,       /* zeros with a few non-zero bytes per 64 KiB */
};
/* Fill buf with a reproducible pattern. */
void tu_fill(void *buf, size_t len, enum tu_fill kind, uint32_t seed);
/* malloc + tu_fill; aborts on out of memory. */
uint8_t *tu_pattern(size_t len, enum tu_fill kind, uint32_t seed);
void *tu_xmalloc(size_t n);
void *tu_xcalloc(size_t n);

/* A growing byte buffer. */
struct tu_buf {
	uint8_t *data;
	size_t len;
	size_t cap;
};
void tu_buf_append(struct tu_buf *b, const void *p, size_t n);
void tu_buf_zeros(struct tu_buf *b, size_t n);
/* Append zeros up to the next multiple of `align`. */
void tu_buf_pad(struct tu_buf *b, size_t align);
void tu_buf_free(struct tu_buf *b);

/* ---- streams ----------------------------------------------------------- */

/* A read-only stream over buf (not copied). Aborts on failure. */
dsc_stream *tu_mem_stream(const void *buf, size_t len, const char *name);

/* A seekable output that drops what it is given (like /dev/null, but it
 * also takes set_size and finish). Aborts on failure. */
dsc_stream *tu_null_stream(const char *name);

/* Fault injection. Offsets count bytes that went through this wrapper. */
struct tu_fault_opts {
	size_t max_io;     /* cap on each read/write; 0: no cap */
	uint64_t fail_at;  /* reads/writes reaching this byte fail; UINT64_MAX: never */
	dsc_err fail_code; /* error returned there (default DSC_ERR_IO) */
	uint64_t eof_at;   /* reads end here; UINT64_MAX: never */
	bool no_seek;      /* no seek/next_data/set_size: looks like a pipe */
	unsigned delay_us; /* sleep once per 64 KiB read */
	bool own_inner;    /* close the inner stream with this one */
};
/* Defaults: no cap, no failure, no early EOF, seekable when inner is. */
void tu_fault_defaults(struct tu_fault_opts *o);

struct tu_fault {
	dsc_stream *inner;
	struct tu_fault_opts o;
	uint64_t pos;
	unsigned long reads;  /* read calls seen */
	unsigned long writes; /* write calls seen */
	unsigned long seeks;
	uint64_t next_delay; /* position of the next delay_us sleep */
	char name[128];
};
/* Wrap inner. *ctl (optional) lets the test look at counters while the
 * stream is open. Aborts on failure. */
dsc_stream *tu_fault_stream(dsc_stream *inner, const struct tu_fault_opts *o, const char *name,
			    struct tu_fault **ctl);

/* Read a whole image through a reader into a zeroed buffer of the reader's
 * capacity, checking that every extent lies inside it. Returns the code of
 * the first failing call; *img (malloc'd, caller frees) and *cap are set on
 * success. `ordered`: also require ascending, non-overlapping extents.
 * extents (optional) counts the extents seen. */
/* When non-zero, tu_read_image() calls dsc_reader_set_threads() with it. */
extern unsigned tu_reader_threads;
dsc_err tu_read_image(dsc_stream *in, dsc_format fmt, bool ordered, uint8_t **img, uint64_t *cap,
		      size_t *extents, struct dsc_error *e);

/* ---- images ------------------------------------------------------------ */

/* Convert raw bytes to a VMDK stream with our own writer into a membuf.
 * Non-zero 64 KiB units are put as extents; capacity = len. The returned
 * buffer is malloc'd. Aborts on failure. */
uint8_t *tu_vmdk_from_raw(const uint8_t *raw, size_t len, size_t *out_len);

/* Hand-built VMDK streams. */
enum tu_layout {
	TU_VMWARE,   /* GD_AT_END, GT/GD markers, footer, EOS (facts §3) */
	TU_QEMU,     /* flags 0x30003, tables in the header area, no markers
			 after the grains; ends with zeros (end_zeros) or EOF */
	TU_OPENVMDK, /* real gdOffset, tables after the descriptor, EOS, no
			 footer */
};

struct tu_vmdk {
	struct tu_buf b;
	enum tu_layout layout;
	struct vmdk_header h;
	uint64_t capacity_bytes;
	/* grain LBA (sectors) -> marker sector, for the tables */
	uint64_t *gte_lba;
	uint64_t *gte_sector;
	size_t ngrains;
	size_t grains_cap;
	size_t gd_entries;
	uint64_t gd_sector;  /* qemu / open-vmdk: where the directory is */
	uint64_t rgd_sector; /* qemu: redundant directory */
	uint8_t *gd;         /* VMware: directory being filled */
	uint64_t gt_next;    /* VMware: first range whose table is not out */
};

/* Start a stream: header, descriptor naming `name`, zeros to overHead. */
void tu_vmdk_begin(struct tu_vmdk *v, enum tu_layout layout, uint64_t capacity_bytes,
		   const char *name);
/* The same with another grain size (sectors, a power of two), and with
 * VirtualBox's habit of a grain-rounded header capacity (vbox_capacity). */
void tu_vmdk_begin_ex(struct tu_vmdk *v, enum tu_layout layout, uint64_t capacity_bytes,
		      const char *name, uint64_t grain_sectors, bool vbox_capacity);
/* A grain marker holding compress2(data, len) (len <= one grain; the
 * caller pads a full grain unless it means to test a short one). */
void tu_vmdk_grain(struct tu_vmdk *v, uint64_t lba, const void *data, size_t len);
/* A grain marker with arbitrary size field and payload (hostile input). */
void tu_vmdk_grain_raw(struct tu_vmdk *v, uint64_t lba, uint32_t size, const void *payload,
		       size_t payload_len);
/* A metadata marker followed by `val` sectors of zeros (or payload). */
void tu_vmdk_meta(struct tu_vmdk *v, uint64_t val, uint32_t type, const void *payload);
/* End the stream the way its layout does. qemu: `end_zeros` zero bytes
 * after the last grain (0 = plain EOF). Tables are filled in. */
void tu_vmdk_end(struct tu_vmdk *v, size_t end_zeros);
void tu_vmdk_free(struct tu_vmdk *v);

/* Put the non-zero grains of `img` (capacity bytes) into v in order. */
void tu_vmdk_grains_from(struct tu_vmdk *v, const uint8_t *img, size_t len);

/* A fresh temporary directory (removed with tu_rmdir_all). */
char *tu_tmpdir(void);
void tu_rmdir_all(const char *dir);
/* Whether files in dir can have holes (a 64 MiB file with one byte written
 * allocates less than 1 MiB). Sparse-output checks are skipped otherwise. */
bool tu_fs_sparse(const char *dir);
/* Number of entries in dir other than . and .. */
int tu_dir_count(const char *dir);

#endif /* DSC_TESTUTIL_H */
