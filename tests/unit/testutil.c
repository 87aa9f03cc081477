/* testutil.c - shared helpers of the libdsc unit tests.
 *
 * See testutil.h. Everything here aborts on its own failures (out of
 * memory, a broken fixture): a helper that cannot build its input must not
 * be mistaken for the library failing. What the library returns is always
 * handed back to the test to judge.
 */
#include "testutil.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <stdarg.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

int tu_failures;
static int tu_ran;
static bool tu_skipped;
static const char *tu_current = "?";

void tu_fail(const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s:%d: [%s] ", file, line, tu_current);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	tu_failures++;
}

const char *tu_msg(const struct dsc_error *e) { return e ? e->message : ""; }

static double mono_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void tu_run(const char *name, void (*fn)(void))
{
	int before = tu_failures;
	double t0 = mono_seconds();

	tu_current = name;
	/* A hung test (a pipe nobody closes) must end, not stall make check:
	 * SIGALRM kills the program after two minutes per case. */
	alarm(120);
	fn();
	alarm(0);
	tu_ran++;
	fprintf(stderr, "%s %s (%.2f s)\n", tu_failures == before ? "PASS" : "FAIL", name,
		mono_seconds() - t0);
	tu_current = "?";
}

void tu_skip(const char *why)
{
	const char *ci = getenv("CI");

	/* What a unit test skips for is missing (libcurl, libcrypto, python3),
	 * and CI installs everything: there it fails, as in tests/lib/common.sh. */
	if (ci && strcmp(ci, "true") == 0) {
		tu_fail(__FILE__, __LINE__, "under CI (CI=true) nothing may be skipped: %s", why);
		return;
	}
	fprintf(stderr, "SKIP: %s\n", why);
	tu_skipped = true;
}

int tu_exit(void)
{
	if (tu_failures) {
		fprintf(stderr, "%d check(s) failed\n", tu_failures);
		return 1;
	}
	if (tu_skipped && tu_ran == 0)
		return 77;
	return 0;
}

/* ---- data ------------------------------------------------------------- */

static void *oom(void)
{
	fprintf(stderr, "testutil: out of memory\n");
	abort();
}

void *tu_xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	return p ? p : oom();
}

void *tu_xcalloc(size_t n)
{
	void *p = calloc(1, n ? n : 1);
	return p ? p : oom();
}

void tu_fill(void *buf, size_t len, enum tu_fill kind, uint32_t seed)
{
	static const char words[] = "the quick brown fox jumps over the lazy dog; "
				    "grain table directory marker footer ";
	uint8_t *p = buf;
	uint32_t x = seed * 2654435761u + 0x9e3779b9u;
	size_t i;

	if (!x)
		x = 1;
	switch (kind) {
	case TU_ZERO: memset(p, 0, len); break;
	case TU_RANDOM:
		for (i = 0; i < len; i++) {
			x ^= x << 13;
			x ^= x >> 17;
			x ^= x << 5;
			p[i] = (uint8_t)(x >> 7);
		}
		break;
	case TU_COMPRESSIBLE:
		for (i = 0; i < len; i++)
			p[i] = (uint8_t)words[(i + seed + i / 4096) % (sizeof(words) - 1)];
		break;
	case TU_SPARSE:
		memset(p, 0, len);
		for (i = 0; i < len; i += 65536) {
			/* Every third unit gets data: at its start, its middle
			 * and its last byte, so holes alternate with data. */
			size_t unit = i / 65536, end = DSC_MIN(len, i + 65536);
			if ((unit + seed) % 3)
				continue;
			p[i] = (uint8_t)(0xA0 + unit);
			p[i + (end - i) / 2] = 0x5A;
			p[end - 1] = 0xFF;
		}
		break;
	}
}

uint8_t *tu_pattern(size_t len, enum tu_fill kind, uint32_t seed)
{
	uint8_t *p = tu_xmalloc(len);
	tu_fill(p, len, kind, seed);
	return p;
}

static void buf_reserve(struct tu_buf *b, size_t n)
{
	if (b->len + n <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 4096;
	while (cap < b->len + n)
		cap *= 2;
	b->data = realloc(b->data, cap);
	if (!b->data)
		oom();
	b->cap = cap;
}

void tu_buf_append(struct tu_buf *b, const void *p, size_t n)
{
	buf_reserve(b, n);
	memcpy(b->data + b->len, p, n);
	b->len += n;
}

void tu_buf_zeros(struct tu_buf *b, size_t n)
{
	buf_reserve(b, n);
	memset(b->data + b->len, 0, n);
	b->len += n;
}

void tu_buf_pad(struct tu_buf *b, size_t align)
{
	if (b->len % align)
		tu_buf_zeros(b, align - b->len % align);
}

void tu_buf_free(struct tu_buf *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}

/* ---- streams ----------------------------------------------------------- */

dsc_stream *tu_mem_stream(const void *buf, size_t len, const char *name)
{
	struct dsc_error e = {0};
	dsc_stream *s = NULL;

	if (dsc_stream_open_mem(buf, len, name, &s, &e) != DSC_OK || !s) {
		fprintf(stderr, "testutil: dsc_stream_open_mem: %s\n", e.message);
		abort();
	}
	return s;
}

static dsc_err null_write(void *ctx, const void *buf, size_t len, size_t *nwritten,
			  struct dsc_error *e)
{
	*nwritten = len;
	return DSC_OK;
}

static dsc_err null_seek(void *ctx, uint64_t off, struct dsc_error *e) { return DSC_OK; }

static dsc_err null_set_size(void *ctx, uint64_t size, bool allocate, struct dsc_error *e)
{
	return DSC_OK;
}

static void null_close(void *ctx) {}

static const struct dsc_stream_ops null_ops = {
	.name = "null",
	.write = null_write,
	.seek = null_seek,
	.set_size = null_set_size,
	.close = null_close,
};

dsc_stream *tu_null_stream(const char *name)
{
	struct dsc_error e = {0};
	dsc_stream *s = NULL;

	if (dsc_stream_new(&null_ops, NULL, name, &s, &e) != DSC_OK || !s) {
		fprintf(stderr, "testutil: dsc_stream_new: %s\n", e.message);
		abort();
	}
	return s;
}

void tu_fault_defaults(struct tu_fault_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->fail_at = UINT64_MAX;
	o->eof_at = UINT64_MAX;
	o->fail_code = DSC_ERR_IO;
}

/* Shorten a transfer of len bytes at f->pos so it stops at the cap, at the
 * failure point and at the early end. */
static size_t fault_clip(const struct tu_fault *f, size_t len, bool reading)
{
	if (f->o.max_io && len > f->o.max_io)
		len = f->o.max_io;
	if (f->o.fail_at != UINT64_MAX && len > f->o.fail_at - f->pos)
		len = (size_t)(f->o.fail_at - f->pos);
	if (reading && f->o.eof_at != UINT64_MAX && len > f->o.eof_at - f->pos)
		len = (size_t)(f->o.eof_at - f->pos);
	return len;
}

static dsc_err fault_read(void *ctx, void *buf, size_t len, size_t *nread, struct dsc_error *e)
{
	struct tu_fault *f = ctx;
	dsc_err err;

	*nread = 0;
	f->reads++;
	/* A slow link: the delay is per 64 KiB moved, not per call, so a
	 * reader taking one sector at a time is not slowed 128 times more. */
	if (f->o.delay_us && f->pos >= f->next_delay) {
		usleep(f->o.delay_us);
		f->next_delay = (f->pos / 65536 + 1) * 65536;
	}
	if (f->pos >= f->o.fail_at)
		return dsc_error_set(e, f->o.fail_code, EIO, "%s: injected error at byte %llu",
				     f->name, (unsigned long long)f->pos);
	if (f->pos >= f->o.eof_at || len == 0)
		return DSC_OK;
	len = fault_clip(f, len, true);
	err = dsc_read_full(f->inner, buf, len, nread, e);
	f->pos += *nread;
	return err;
}

static dsc_err fault_write(void *ctx, const void *buf, size_t len, size_t *nwritten,
			   struct dsc_error *e)
{
	struct tu_fault *f = ctx;
	dsc_err err;

	*nwritten = 0;
	f->writes++;
	if (f->pos >= f->o.fail_at)
		return dsc_error_set(e, f->o.fail_code, EIO, "%s: injected error at byte %llu",
				     f->name, (unsigned long long)f->pos);
	len = fault_clip(f, len, false);
	err = dsc_write_all(f->inner, buf, len, e);
	if (err == DSC_OK) {
		*nwritten = len;
		f->pos += len;
	}
	return err;
}

static dsc_err fault_seek(void *ctx, uint64_t off, struct dsc_error *e)
{
	struct tu_fault *f = ctx;
	dsc_err err;

	f->seeks++;
	err = dsc_stream_seek(f->inner, off, e);
	if (err == DSC_OK) {
		f->pos = off;
		/* The link stays slow after a seek back (a probe's look at the
		 * end of the input). */
		f->next_delay = off;
	}
	return err;
}

static dsc_err fault_next_data(void *ctx, uint64_t off, uint64_t *data_off, struct dsc_error *e)
{
	struct tu_fault *f = ctx;
	return dsc_stream_next_data(f->inner, off, data_off, e);
}

static dsc_err fault_set_size(void *ctx, uint64_t size, bool allocate, struct dsc_error *e)
{
	struct tu_fault *f = ctx;
	return dsc_stream_set_size(f->inner, size, allocate, e);
}

static dsc_err fault_finish(void *ctx, struct dsc_error *e)
{
	struct tu_fault *f = ctx;
	return dsc_stream_finish(f->inner, e);
}

static void fault_close(void *ctx)
{
	struct tu_fault *f = ctx;

	if (f->o.own_inner)
		dsc_stream_close(f->inner);
	free(f);
}

static const struct dsc_stream_ops fault_ops = {
	.name = "fault",
	.read = fault_read,
	.write = fault_write,
	.seek = fault_seek,
	.next_data = fault_next_data,
	.set_size = fault_set_size,
	.finish = fault_finish,
	.close = fault_close,
};

/* A pipe offers neither seek nor hole detection nor a size. */
static const struct dsc_stream_ops fault_pipe_ops = {
	.name = "fault-pipe",
	.read = fault_read,
	.write = fault_write,
	.finish = fault_finish,
	.close = fault_close,
};

dsc_stream *tu_fault_stream(dsc_stream *inner, const struct tu_fault_opts *o, const char *name,
			    struct tu_fault **ctl)
{
	struct tu_fault *f = tu_xcalloc(sizeof(*f));
	struct dsc_error e = {0};
	dsc_stream *s = NULL;
	bool pipe_like = o->no_seek || !dsc_stream_can_seek(inner);

	f->inner = inner;
	f->o = *o;
	snprintf(f->name, sizeof(f->name), "%s", name);
	if (dsc_stream_new(pipe_like ? &fault_pipe_ops : &fault_ops, f, name, &s, &e) != DSC_OK ||
	    !s) {
		fprintf(stderr, "testutil: dsc_stream_new: %s\n", e.message);
		abort();
	}
	if (!pipe_like && o->eof_at == UINT64_MAX)
		dsc_stream_set_total(s, dsc_stream_total(inner));
	if (ctl)
		*ctl = f;
	return s;
}

/* ---- reading whole images ---------------------------------------------- */

/* Cap on images the tests reassemble in memory. */
#define TU_MAX_IMAGE (256u << 20)

unsigned tu_reader_threads;

dsc_err tu_read_image(dsc_stream *in, dsc_format fmt, bool ordered, uint8_t **img, uint64_t *cap,
		      size_t *extents, struct dsc_error *e)
{
	dsc_reader *r = NULL;
	uint8_t *buf = NULL;
	size_t have = 0, n = 0;
	uint64_t prev_end = 0, c;
	dsc_err err;

	*img = NULL;
	*cap = 0;
	if (extents)
		*extents = 0;
	err = dsc_reader_open(in, fmt, &r, e);
	if (err)
		return err;
	if (tu_reader_threads)
		dsc_reader_set_threads(r, tu_reader_threads);
	for (;;) {
		struct dsc_extent x = {0};
		err = dsc_reader_next(r, &x, e);
		if (err) {
			/* Failures are sticky: asking again repeats the code. */
			dsc_err again = dsc_reader_next(r, &x, NULL);
			if (again != err)
				tu_fail(__FILE__, __LINE__, "after %s (%s), the next call gave %s",
					dsc_err_name(err), tu_msg(e), dsc_err_name(again));
			goto out;
		}
		if (x.length == 0) {
			/* The end is sticky: asking again gives the end again. */
			err = dsc_reader_next(r, &x, e);
			if (err)
				goto out;
			if (x.length != 0) {
				tu_fail(__FILE__, __LINE__, "an extent after the end (%llu+%zu)",
					(unsigned long long)x.offset, x.length);
				err = DSC_ERR_FORMAT;
				goto out;
			}
			break;
		}
		n++;
		if (!x.data || x.offset > TU_MAX_IMAGE || x.length > TU_MAX_IMAGE - x.offset) {
			tu_fail(__FILE__, __LINE__, "extent %zu at %llu+%zu: bad or too large", n,
				(unsigned long long)x.offset, x.length);
			err = DSC_ERR_FORMAT;
			goto out;
		}
		if (ordered && x.offset < prev_end) {
			tu_fail(__FILE__, __LINE__,
				"extent %zu at %llu starts before the previous end %llu", n,
				(unsigned long long)x.offset, (unsigned long long)prev_end);
		}
		prev_end = x.offset + x.length;
		if (prev_end > have) {
			buf = realloc(buf, prev_end);
			if (!buf)
				oom();
			memset(buf + have, 0, prev_end - have);
			have = prev_end;
		}
		memcpy(buf + x.offset, x.data, x.length);
	}
	c = dsc_reader_capacity(r);
	if (c == DSC_CAPACITY_UNKNOWN || c > TU_MAX_IMAGE) {
		tu_fail(__FILE__, __LINE__, "capacity %llu unknown or too large after the end",
			(unsigned long long)c);
		err = DSC_ERR_FORMAT;
		goto out;
	}
	if (have > c) {
		tu_fail(__FILE__, __LINE__, "extents reach byte %zu beyond capacity %llu", have,
			(unsigned long long)c);
		err = DSC_ERR_FORMAT;
		goto out;
	}
	buf = realloc(buf, c ? c : 1);
	if (!buf)
		oom();
	memset(buf + have, 0, c - have);
	*img = buf;
	buf = NULL;
	*cap = c;
	if (extents)
		*extents = n;
out:
	free(buf);
	dsc_reader_close(r);
	return err;
}

/* ---- images ------------------------------------------------------------ */

uint8_t *tu_vmdk_from_raw(const uint8_t *raw, size_t len, size_t *out_len)
{
	struct dsc_error e = {0};
	struct dsc_writer_opts o = {0};
	dsc_stream *s = NULL;
	dsc_writer *w = NULL;
	const uint8_t *data;
	size_t dlen, off;
	uint8_t *copy;

	o.capacity = len;
	o.extent_name = "test.vmdk";
	if (dsc_stream_new_membuf("test.vmdk", &s, &e) ||
	    dsc_writer_open(s, DSC_FORMAT_VMDK, &o, &w, &e))
		goto fail;
	for (off = 0; off < len; off += 65536) {
		struct dsc_extent x = {off, DSC_MIN(65536, len - off), raw + off};
		if (dscp_is_zero(x.data, x.length))
			continue;
		if (dsc_writer_put(w, &x, &e))
			goto fail;
	}
	if (dsc_writer_finish(w, len, &e))
		goto fail;
	dsc_stream_mem_buffer(s, &data, &dlen);
	copy = tu_xmalloc(dlen);
	memcpy(copy, data, dlen);
	*out_len = dlen;
	dsc_writer_close(w);
	dsc_stream_close(s);
	return copy;
fail:
	fprintf(stderr, "testutil: our VMDK writer failed: %s (%s)\n", dsc_err_name(e.code),
		e.message);
	abort();
}

#define TU_GRAIN_SECTORS 128u
#define TU_GT_SECTORS 4u /* 512 entries x 4 bytes, facts §3 */

static uint64_t div_up(uint64_t a, uint64_t b) { return (a + b - 1) / b; }

static uint64_t cur_sector(const struct tu_vmdk *v)
{
	if (v->b.len % VMDK_SECTOR) {
		fprintf(stderr, "testutil: VMDK builder off a sector boundary\n");
		abort();
	}
	return v->b.len / VMDK_SECTOR;
}

void tu_vmdk_begin(struct tu_vmdk *v, enum tu_layout layout, uint64_t capacity_bytes,
		   const char *name)
{
	tu_vmdk_begin_ex(v, layout, capacity_bytes, name, TU_GRAIN_SECTORS, false);
}

void tu_vmdk_begin_ex(struct tu_vmdk *v, enum tu_layout layout, uint64_t capacity_bytes,
		      const char *name, uint64_t grain_sectors, bool vbox_capacity)
{
	uint8_t sec[VMDK_SECTOR];
	char desc[1024];
	uint64_t cap = div_up(capacity_bytes, VMDK_SECTOR), ngt, gdsec, overhead;
	uint64_t desc_cap = cap;
	int n;

	memset(v, 0, sizeof(*v));
	v->layout = layout;
	v->capacity_bytes = capacity_bytes;
	/* VirtualBox: the header's capacity is rounded up to the grain, the
	 * exact size is only in the descriptor (facts §5). */
	if (vbox_capacity)
		cap = div_up(cap, grain_sectors) * grain_sectors;
	ngt = div_up(cap, grain_sectors * 512);
	v->gd_entries = ngt;
	gdsec = div_up(ngt * 4, VMDK_SECTOR);
	v->gd = tu_xcalloc(gdsec * VMDK_SECTOR);

	v->h.version = 3;
	v->h.flags = 0x30001;
	v->h.capacity = cap;
	v->h.grain_size = grain_sectors;
	v->h.desc_offset = 1;
	v->h.desc_size = 1;
	v->h.gtes_per_gt = 512;
	v->h.compress = 1;
	switch (layout) {
	case TU_VMWARE:
		v->h.gd_offset = VMDK_GD_AT_END;
		overhead = 128;
		break;
	case TU_QEMU:
		/* Seen in qemu-img 7.2 output: descriptor 20 sectors, the
		 * redundant directory at 21, its tables, then the directory
		 * and its tables, the data from the next grain boundary. */
		v->h.flags = 0x30003;
		v->h.desc_size = 20;
		v->rgd_sector = 21;
		v->gd_sector = v->rgd_sector + gdsec + ngt * TU_GT_SECTORS;
		v->h.rgd_offset = v->rgd_sector;
		v->h.gd_offset = v->gd_sector;
		overhead = div_up(v->gd_sector + gdsec + ngt * TU_GT_SECTORS, grain_sectors) *
			   grain_sectors;
		break;
	case TU_OPENVMDK:
	default:
		/* Tables right after the descriptor; the data starts at the
		 * next sector, deliberately not on a grain boundary. */
		v->h.desc_size = 2;
		v->gd_sector = 3;
		v->h.gd_offset = v->gd_sector;
		overhead = v->gd_sector + gdsec + ngt * TU_GT_SECTORS;
		break;
	}
	v->h.overhead = overhead;

	dscp_vmdk_header_encode(&v->h, sec);
	tu_buf_append(&v->b, sec, sizeof(sec));
	n = snprintf(desc, sizeof(desc),
		     "# Disk DescriptorFile\nversion=1\n%sCID=1234abcd\nparentCID=ffffffff\n"
		     "createType=\"streamOptimized\"\n\n# Extent description\n"
		     "RW %llu SPARSE \"%s\"\n\n# The Disk Data Base\n#DDB\n\n"
		     "ddb.virtualHWVersion = \"4\"\nddb.geometry.cylinders = \"1\"\n"
		     "ddb.geometry.heads = \"255\"\nddb.geometry.sectors = \"63\"\n"
		     "ddb.adapterType = \"%s\"\nddb.toolsVersion = \"2147483647\"\n",
		     layout == TU_QEMU ? "" : "encoding=\"UTF-8\"\n", (unsigned long long)desc_cap,
		     name, layout == TU_QEMU ? "ide" : "lsilogic");
	if (n < 0 || (size_t)n >= v->h.desc_size * VMDK_SECTOR) {
		fprintf(stderr, "testutil: descriptor too long\n");
		abort();
	}
	tu_buf_append(&v->b, desc, (size_t)n);
	tu_buf_zeros(&v->b, (size_t)(overhead * VMDK_SECTOR - v->b.len));
}

static void record_grain(struct tu_vmdk *v, uint64_t lba, uint64_t sector)
{
	if (v->ngrains == v->grains_cap) {
		v->grains_cap = v->grains_cap ? 2 * v->grains_cap : 64;
		v->gte_lba = realloc(v->gte_lba, v->grains_cap * sizeof(uint64_t));
		v->gte_sector = realloc(v->gte_sector, v->grains_cap * sizeof(uint64_t));
		if (!v->gte_lba || !v->gte_sector)
			oom();
	}
	v->gte_lba[v->ngrains] = lba;
	v->gte_sector[v->ngrains] = sector;
	v->ngrains++;
}

/* Fill `out` (4 sectors) with the grain table of range r. */
static bool build_gt(const struct tu_vmdk *v, uint64_t r, uint8_t *out)
{
	bool any = false;
	size_t i;

	memset(out, 0, TU_GT_SECTORS * VMDK_SECTOR);
	for (i = 0; i < v->ngrains; i++) {
		uint64_t g = v->gte_lba[i] / v->h.grain_size;
		if (g / 512 != r || v->gte_sector[i] > UINT32_MAX)
			continue;
		dscp_put32(out + 4 * (g % 512), (uint32_t)v->gte_sector[i]);
		any = true;
	}
	return any;
}

/* VMware: GT markers + tables for the ranges in [v->gt_next, to) that have
 * grains, each after the last grain of its range (facts §3). */
static void vmware_tables(struct tu_vmdk *v, uint64_t to)
{
	uint8_t gt[TU_GT_SECTORS * VMDK_SECTOR], sec[VMDK_SECTOR];
	uint64_t r;

	for (r = v->gt_next; r < to && r < v->gd_entries; r++) {
		if (!build_gt(v, r, gt))
			continue;
		dscp_vmdk_meta_marker_encode(TU_GT_SECTORS, VMDK_MARKER_GT, sec);
		tu_buf_append(&v->b, sec, sizeof(sec));
		dscp_put32(v->gd + 4 * r, (uint32_t)cur_sector(v));
		tu_buf_append(&v->b, gt, sizeof(gt));
	}
	if (to > v->gt_next)
		v->gt_next = to;
}

static void grain_common(struct tu_vmdk *v, uint64_t lba, uint32_t size, const void *payload,
			 size_t payload_len)
{
	uint8_t m[12];
	uint64_t r = lba / v->h.grain_size / 512;

	if (v->layout == TU_VMWARE && v->ngrains && r > v->gt_next)
		vmware_tables(v, r);
	record_grain(v, lba, cur_sector(v));
	dscp_put64(m, lba);
	dscp_put32(m + 8, size);
	tu_buf_append(&v->b, m, sizeof(m));
	tu_buf_append(&v->b, payload, payload_len);
	tu_buf_pad(&v->b, VMDK_SECTOR);
}

void tu_vmdk_grain(struct tu_vmdk *v, uint64_t lba, const void *data, size_t len)
{
	uLongf zlen = compressBound(len);
	uint8_t *z = tu_xmalloc(zlen);

	if (compress2(z, &zlen, data, len, 6) != Z_OK) {
		fprintf(stderr, "testutil: compress2 failed\n");
		abort();
	}
	grain_common(v, lba, (uint32_t)zlen, z, zlen);
	free(z);
}

void tu_vmdk_grain_raw(struct tu_vmdk *v, uint64_t lba, uint32_t size, const void *payload,
		       size_t payload_len)
{
	grain_common(v, lba, size, payload, payload_len);
}

void tu_vmdk_meta(struct tu_vmdk *v, uint64_t val, uint32_t type, const void *payload)
{
	uint8_t sec[VMDK_SECTOR];

	dscp_vmdk_meta_marker_encode(val, type, sec);
	tu_buf_append(&v->b, sec, sizeof(sec));
	if (payload)
		tu_buf_append(&v->b, payload, (size_t)val * VMDK_SECTOR);
	else
		tu_buf_zeros(&v->b, (size_t)val * VMDK_SECTOR);
}

/* qemu and open-vmdk: directories and tables live in the header area. */
static void patch_tables(struct tu_vmdk *v, uint64_t gd_sector)
{
	uint64_t gdsec = div_up(v->gd_entries * 4, VMDK_SECTOR), r;
	uint8_t gt[TU_GT_SECTORS * VMDK_SECTOR];

	for (r = 0; r < v->gd_entries; r++) {
		uint64_t gt_sector = gd_sector + gdsec + r * TU_GT_SECTORS;
		dscp_put32(v->b.data + gd_sector * VMDK_SECTOR + 4 * r, (uint32_t)gt_sector);
		build_gt(v, r, gt);
		memcpy(v->b.data + gt_sector * VMDK_SECTOR, gt, sizeof(gt));
	}
}

void tu_vmdk_end(struct tu_vmdk *v, size_t end_zeros)
{
	uint8_t sec[VMDK_SECTOR];

	switch (v->layout) {
	case TU_VMWARE: {
		uint64_t gdsec = div_up(v->gd_entries * 4, VMDK_SECTOR);
		struct vmdk_header f = v->h;

		vmware_tables(v, v->gd_entries);
		tu_vmdk_meta(v, gdsec, VMDK_MARKER_GD, v->gd);
		f.gd_offset = cur_sector(v) - gdsec;
		dscp_vmdk_header_encode(&f, sec);
		tu_vmdk_meta(v, 1, VMDK_MARKER_FOOTER, sec);
		tu_vmdk_meta(v, 0, VMDK_MARKER_EOS, NULL);
		break;
	}
	case TU_QEMU:
		patch_tables(v, v->gd_sector);
		patch_tables(v, v->rgd_sector);
		tu_buf_zeros(&v->b, end_zeros);
		break;
	case TU_OPENVMDK:
		patch_tables(v, v->gd_sector);
		tu_vmdk_meta(v, 0, VMDK_MARKER_EOS, NULL);
		break;
	}
}

void tu_vmdk_free(struct tu_vmdk *v)
{
	tu_buf_free(&v->b);
	free(v->gte_lba);
	free(v->gte_sector);
	free(v->gd);
	memset(v, 0, sizeof(*v));
}

void tu_vmdk_grains_from(struct tu_vmdk *v, const uint8_t *img, size_t len)
{
	size_t gb = (size_t)v->h.grain_size * VMDK_SECTOR;
	uint8_t *grain = tu_xmalloc(gb);
	uint64_t end = v->h.capacity * VMDK_SECTOR;
	size_t off;

	for (off = 0; off < len; off += gb) {
		size_t n = DSC_MIN(gb, len - off), in;
		if (dscp_is_zero(img + off, n))
			continue;
		memset(grain, 0, gb);
		memcpy(grain, img + off, n);
		/* qemu compresses the last grain only up to the capacity;
		 * VMware and open-vmdk pad it to a full grain (facts §2). */
		in = v->layout == TU_QEMU ? (size_t)DSC_MIN(gb, end - off) : gb;
		tu_vmdk_grain(v, off / VMDK_SECTOR, grain, in);
	}
	free(grain);
}

/* ---- files ------------------------------------------------------------- */

char *tu_tmpdir(void)
{
	const char *base = getenv("TMPDIR");
	char *p = tu_xmalloc(4096);

	snprintf(p, 4096, "%s/dsc-unit-XXXXXX", base && *base ? base : "/tmp");
	if (!mkdtemp(p)) {
		perror("testutil: mkdtemp");
		abort();
	}
	return p;
}

void tu_rmdir_all(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char path[4096];

	if (!d)
		return;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		unlink(path);
	}
	closedir(d);
	rmdir(dir);
}

bool tu_fs_sparse(const char *dir)
{
	char path[4200];
	struct stat st;
	bool sparse = false;
	int fd;

	snprintf(path, sizeof(path), "%s/.sparse-probe", dir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		return false;
	if (ftruncate(fd, 64 << 20) == 0 && pwrite(fd, "x", 1, 32 << 20) == 1 && fsync(fd) == 0 &&
	    fstat(fd, &st) == 0)
		sparse = (uint64_t)st.st_blocks * 512 < (1u << 20) && lseek(fd, 0, SEEK_DATA) > 0;
	close(fd);
	unlink(path);
	if (!sparse)
		fprintf(stderr, "  %s: no holes on this file system; sparse checks skipped\n", dir);
	return sparse;
}

int tu_dir_count(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	if (!d)
		return -1;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	closedir(d);
	return n;
}
