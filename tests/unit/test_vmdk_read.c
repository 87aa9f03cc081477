/* test_vmdk_read.c - unit tests of the streamOptimized reader.
 *
 * Streams are built by hand (testutil's tu_vmdk_*) in every layout facts §5
 * lists, then read through dsc_reader_open() from memory, through one-byte
 * reads, cut at every sector, with I/O errors injected, and with one hostile
 * field at a time. Content is compared as a whole disk image rebuilt from
 * the extents, never as compressed bytes.
 */
#include "testutil.h"

#include <zlib.h>

#define GRAIN 65536u
#define GS 128u /* grain in sectors */

static const char *layout_name(enum tu_layout l, size_t end_zeros)
{
	switch (l) {
	case TU_VMWARE: return "vmware";
	case TU_QEMU: return end_zeros ? "qemu+zeros" : "qemu+eof";
	case TU_OPENVMDK: return "open-vmdk";
	}
	return "?";
}

/* Read `len` bytes of stream, optionally through 1-byte reads, and compare
 * the disk with `want` (want_len bytes, zero padded to cap_bytes). */
static void check_image(const uint8_t *stream, size_t len, dsc_format fmt, bool one_byte,
			bool ordered, const uint8_t *want, size_t want_len, uint64_t cap_bytes,
			const char *what, int line)
{
	struct dsc_error e = {0};
	dsc_stream *s = tu_mem_stream(stream, len, "img.vmdk");
	uint8_t *img = NULL;
	uint64_t cap = 0;
	size_t n = 0;
	dsc_err err;

	if (one_byte) {
		struct tu_fault_opts o;
		tu_fault_defaults(&o);
		o.max_io = 1;
		o.no_seek = true;
		o.own_inner = true;
		s = tu_fault_stream(s, &o, "img.vmdk", NULL);
	}
	err = tu_read_image(s, fmt, ordered, &img, &cap, &n, &e);
	if (err != DSC_OK) {
		tu_fail(__FILE__, line, "%s: read failed: %s (%s)", what, dsc_err_name(err),
			e.message);
		goto out;
	}
	if (cap != cap_bytes) {
		tu_fail(__FILE__, line, "%s: capacity %llu, want %llu", what,
			(unsigned long long)cap, (unsigned long long)cap_bytes);
		goto out;
	}
	if (memcmp(img, want, want_len) != 0 || !dscp_is_zero(img + want_len, cap - want_len))
		tu_fail(__FILE__, line, "%s: content differs", what);
out:
	free(img);
	dsc_stream_close(s);
}

static uint64_t round512(uint64_t n) { return (n + 511) / 512 * 512; }

/* One source image through every layout, every way of reading. */
static void layouts_for(const uint8_t *src, size_t len, bool try_one_byte, const char *label)
{
	static const struct {
		enum tu_layout l;
		size_t end_zeros;
	} ls[] = {
		{TU_VMWARE, 0},   {TU_QEMU, 0},
		{TU_QEMU, GRAIN}, /* what qemu-img 7.2 leaves after the last grain */
		{TU_QEMU, 512},   {TU_OPENVMDK, 0},
	};
	char what[128];
	size_t i;

	for (i = 0; i < sizeof(ls) / sizeof(ls[0]); i++) {
		struct tu_vmdk v;
		tu_vmdk_begin(&v, ls[i].l, len, "img.vmdk");
		tu_vmdk_grains_from(&v, src, len);
		tu_vmdk_end(&v, ls[i].end_zeros);
		snprintf(what, sizeof(what), "%s %s", label, layout_name(ls[i].l, ls[i].end_zeros));
		check_image(v.b.data, v.b.len, DSC_FORMAT_VMDK, false, true, src, len,
			    round512(len), what, __LINE__);
		snprintf(what, sizeof(what), "%s %s detected", label,
			 layout_name(ls[i].l, ls[i].end_zeros));
		check_image(v.b.data, v.b.len, DSC_FORMAT_UNKNOWN, false, true, src, len,
			    round512(len), what, __LINE__);
		if (try_one_byte) {
			snprintf(what, sizeof(what), "%s %s 1-byte reads", label,
				 layout_name(ls[i].l, ls[i].end_zeros));
			check_image(v.b.data, v.b.len, DSC_FORMAT_UNKNOWN, true, true, src, len,
				    round512(len), what, __LINE__);
		}
		tu_vmdk_free(&v);
	}
}

static void test_layouts_small(void)
{
	/* 200000 bytes: not a multiple of the grain; grain 2 is a hole. */
	uint8_t *src = tu_pattern(200000, TU_RANDOM, 11);

	memset(src + 2 * GRAIN, 0, GRAIN);
	layouts_for(src, 200000, true, "200000 random");
	free(src);

	src = tu_pattern(512, TU_RANDOM, 12);
	layouts_for(src, 512, true, "1 sector");
	free(src);

	src = tu_pattern(1000, TU_COMPRESSIBLE, 13);
	layouts_for(src, 1000, true, "1000 bytes");
	free(src);

	src = tu_pattern(3 * GRAIN, TU_COMPRESSIBLE, 14);
	layouts_for(src, 3 * GRAIN, true, "3 grains");
	free(src);
}

static void test_layouts_zero(void)
{
	uint8_t *src = tu_xcalloc(1 << 20);
	layouts_for(src, 1 << 20, true, "all zero");
	free(src);
}

static void test_layouts_multi_table(void)
{
	/* 33 MiB + 512: two grain tables, data at the start, middle and end
	 * of the ranges; one-byte reads stay cheap since the stream is small. */
	size_t len = (33u << 20) + 512;
	uint8_t *src = tu_pattern(len, TU_SPARSE, 0);

	layouts_for(src, len, true, "33 MiB sparse");
	free(src);
}

static void test_own_writer(void)
{
	size_t len = 300000, vlen = 0;
	uint8_t *src = tu_pattern(len, TU_COMPRESSIBLE, 15), *v;

	memset(src + GRAIN, 0, GRAIN);
	v = tu_vmdk_from_raw(src, len, &vlen);
	check_image(v, vlen, DSC_FORMAT_VMDK, false, true, src, len, round512(len), "own writer",
		    __LINE__);
	check_image(v, vlen, DSC_FORMAT_UNKNOWN, true, true, src, len, round512(len),
		    "own writer 1-byte", __LINE__);
	free(v);
	free(src);
}

static void test_open_reports(void)
{
	uint8_t *src = tu_pattern(200000, TU_RANDOM, 16);
	struct dsc_error e = {0};
	struct tu_vmdk v;
	dsc_reader *r = NULL;
	dsc_stream *s;

	tu_vmdk_begin(&v, TU_VMWARE, 200000, "img.vmdk");
	tu_vmdk_grains_from(&v, src, 200000);
	tu_vmdk_end(&v, 0);
	s = tu_mem_stream(v.b.data, v.b.len, "img.vmdk");
	ASSERT_OK(dsc_reader_open(s, DSC_FORMAT_UNKNOWN, &r, &e), &e);
	if (r) {
		ASSERT(dsc_reader_format(r) == DSC_FORMAT_VMDK);
		/* Known from the header, before any extent. */
		ASSERT_EQ_U64(dsc_reader_capacity(r), round512(200000));
		dsc_reader_close(r);
	}
	dsc_reader_close(NULL);
	dsc_stream_close(s);
	tu_vmdk_free(&v);
	free(src);
}

static void test_type4_marker(void)
{
	uint8_t *src = tu_pattern(3 * GRAIN, TU_RANDOM, 17);
	struct tu_vmdk v;

	/* vSphere exports carry a type 4 marker; VirtualBox skips the marker
	 * sector (facts §2). Put one before, between and after the grains. */
	tu_vmdk_begin(&v, TU_VMWARE, 3 * GRAIN, "img.vmdk");
	tu_vmdk_meta(&v, 0, 4, NULL);
	tu_vmdk_grain(&v, 0, src, GRAIN);
	tu_vmdk_meta(&v, 0, 4, NULL);
	tu_vmdk_grain(&v, GS, src + GRAIN, GRAIN);
	tu_vmdk_grain(&v, 2 * GS, src + 2 * GRAIN, GRAIN);
	tu_vmdk_meta(&v, 0, 4, NULL);
	tu_vmdk_end(&v, 0);
	check_image(v.b.data, v.b.len, DSC_FORMAT_VMDK, false, true, src, 3 * GRAIN, 3 * GRAIN,
		    "type 4 marker", __LINE__);
	check_image(v.b.data, v.b.len, DSC_FORMAT_VMDK, true, true, src, 3 * GRAIN, 3 * GRAIN,
		    "type 4 marker 1-byte", __LINE__);
	tu_vmdk_free(&v);
	free(src);
}

static void test_out_of_order(void)
{
	uint8_t *src = tu_pattern(4 * GRAIN, TU_RANDOM, 18);
	struct dsc_error e = {0};
	struct dsc_extent x;
	struct tu_vmdk v;
	dsc_reader *r = NULL;
	dsc_stream *s;

	memset(src + GRAIN, 0, GRAIN);
	tu_vmdk_begin(&v, TU_VMWARE, 4 * GRAIN, "img.vmdk");
	tu_vmdk_grain(&v, 3 * GS, src + 3 * GRAIN, GRAIN);
	tu_vmdk_grain(&v, 0, src, GRAIN);
	tu_vmdk_grain(&v, 2 * GS, src + 2 * GRAIN, GRAIN);
	tu_vmdk_end(&v, 0);
	check_image(v.b.data, v.b.len, DSC_FORMAT_VMDK, false, false, src, 4 * GRAIN, 4 * GRAIN,
		    "out of order", __LINE__);
	/* The reader hands grains over in stream order; ordering is the
	 * writer's business. */
	s = tu_mem_stream(v.b.data, v.b.len, "img.vmdk");
	ASSERT_OK(dsc_reader_open(s, DSC_FORMAT_VMDK, &r, &e), &e);
	if (r) {
		ASSERT_OK(dsc_reader_next(r, &x, &e), &e);
		ASSERT_EQ_U64(x.offset, 3 * GRAIN);
		ASSERT(x.length == GRAIN && x.data && memcmp(x.data, src + 3 * GRAIN, GRAIN) == 0);
		ASSERT_OK(dsc_reader_next(r, &x, &e), &e);
		ASSERT_EQ_U64(x.offset, 0);
		dsc_reader_close(r);
	}
	dsc_stream_close(s);
	tu_vmdk_free(&v);
	free(src);
}

static void test_last_grain_short(void)
{
	/* Capacity 130 sectors: the last grain may inflate to just the 2
	 * sectors up to the capacity (qemu does), or to a full grain. */
	uint8_t *src = tu_pattern(130 * 512, TU_RANDOM, 19), full[GRAIN];
	struct tu_vmdk v;

	tu_vmdk_begin(&v, TU_VMWARE, 130 * 512, "img.vmdk");
	tu_vmdk_grain(&v, 0, src, GRAIN);
	tu_vmdk_grain(&v, GS, src + GRAIN, 1024);
	tu_vmdk_end(&v, 0);
	check_image(v.b.data, v.b.len, DSC_FORMAT_VMDK, false, true, src, 130 * 512, 130 * 512,
		    "short last grain", __LINE__);
	tu_vmdk_free(&v);

	memset(full, 0, sizeof(full));
	memcpy(full, src + GRAIN, 1024);
	tu_vmdk_begin(&v, TU_VMWARE, 130 * 512, "img.vmdk");
	tu_vmdk_grain(&v, 0, src, GRAIN);
	tu_vmdk_grain(&v, GS, full, GRAIN);
	tu_vmdk_end(&v, 0);
	check_image(v.b.data, v.b.len, DSC_FORMAT_VMDK, false, true, src, 130 * 512, 130 * 512,
		    "padded last grain", __LINE__);
	tu_vmdk_free(&v);
	free(src);
}

/* Open + read everything; the first error. */
static dsc_err read_all(const uint8_t *buf, size_t len, const char *name, dsc_format fmt,
			struct dsc_error *e)
{
	dsc_stream *s = tu_mem_stream(buf, len, name);
	uint8_t *img = NULL;
	uint64_t cap;
	dsc_err err = tu_read_image(s, fmt, false, &img, &cap, NULL, e);

	free(img);
	dsc_stream_close(s);
	return err;
}

/* Re-encode v's edited header over its first sector and read the image,
 * named "evil.vmdk" (e, when given, is cleared first). */
static dsc_err read_patched(struct tu_vmdk *v, dsc_format fmt, struct dsc_error *e)
{
	dscp_vmdk_header_encode(&v->h, v->b.data);
	if (e != NULL)
		memset(e, 0, sizeof(*e));
	return read_all(v->b.data, v->b.len, "evil.vmdk", fmt, e);
}

static void test_truncated(void)
{
	uint8_t *src = tu_pattern(3 * GRAIN, TU_RANDOM, 20);
	struct tu_vmdk v;
	size_t cut, cuts = 0;
	static const size_t odd[] = {1, 3, 4, 77, 511, 513, 1000};

	memset(src + GRAIN, 0, GRAIN);
	tu_vmdk_begin(&v, TU_VMWARE, 3 * GRAIN, "cut.vmdk");
	tu_vmdk_grains_from(&v, src, 3 * GRAIN);
	tu_vmdk_end(&v, 0);
	REQUIRE(read_all(v.b.data, v.b.len, "cut.vmdk", DSC_FORMAT_VMDK, NULL) == DSC_OK);

	for (cut = 0; cut <= v.b.len; cut += 512) {
		size_t k;
		for (k = 0; k < 3; k++) {
			/* At the boundary, just after it (inside a marker), and
			 * 12 bytes in (just past a grain marker's fields). */
			size_t c = cut + (k == 0 ? 0 : k == 1 ? 1 : 12);
			struct dsc_error e = {0};
			dsc_err err;
			if (c >= v.b.len)
				continue;
			err = read_all(v.b.data, c, "cut.vmdk", DSC_FORMAT_VMDK, &e);
			cuts++;
			if (err != DSC_ERR_TRUNCATED && err != DSC_ERR_FORMAT)
				tu_fail(__FILE__, __LINE__, "cut at %zu of %zu: got %s (%s)", c,
					v.b.len, dsc_err_name(err), e.message);
			else if (!strstr(e.message, "cut.vmdk"))
				tu_fail(__FILE__, __LINE__, "cut at %zu: message lacks name: %s", c,
					e.message);
		}
	}
	for (size_t i = 0; i < sizeof(odd) / sizeof(odd[0]); i++) {
		dsc_err err = read_all(v.b.data, odd[i], "cut.vmdk", DSC_FORMAT_VMDK, NULL);
		ASSERT(err == DSC_ERR_TRUNCATED || err == DSC_ERR_FORMAT);
	}
	/* One byte short of the end, and the same cut met through a stream
	 * that ends early with one-byte reads. */
	ASSERT(read_all(v.b.data, v.b.len - 1, "cut.vmdk", DSC_FORMAT_VMDK, NULL) ==
	       DSC_ERR_TRUNCATED);
	{
		static const size_t ends[] = {600, 128 * 512 + 6, 128 * 512 + 700};
		for (size_t i = 0; i < 3; i++) {
			struct tu_fault_opts o;
			uint8_t *img = NULL;
			uint64_t cap;
			dsc_stream *s;
			dsc_err err;
			tu_fault_defaults(&o);
			o.max_io = 1;
			o.eof_at = ends[i];
			o.own_inner = true;
			s = tu_fault_stream(tu_mem_stream(v.b.data, v.b.len, "x"), &o, "cut.vmdk",
					    NULL);
			err = tu_read_image(s, DSC_FORMAT_VMDK, true, &img, &cap, NULL, NULL);
			ASSERT(err == DSC_ERR_TRUNCATED || err == DSC_ERR_FORMAT);
			free(img);
			dsc_stream_close(s);
		}
	}
	fprintf(stderr, "  %zu cut points of a %zu-byte stream\n", cuts, v.b.len);
	tu_vmdk_free(&v);
	free(src);
}

static void test_injected_io(void)
{
	uint8_t *src = tu_pattern(3 * GRAIN, TU_RANDOM, 21);
	struct tu_vmdk v;
	size_t i;

	tu_vmdk_begin(&v, TU_VMWARE, 3 * GRAIN, "img.vmdk");
	tu_vmdk_grains_from(&v, src, 3 * GRAIN);
	tu_vmdk_end(&v, 0);
	uint64_t at[] = {0,
			 1,
			 300,
			 512,
			 128 * 512,
			 128 * 512 + 13,
			 128 * 512 + 40000,
			 v.b.len - 512,
			 v.b.len - 1};
	for (i = 0; i < sizeof(at) / sizeof(at[0]); i++) {
		struct tu_fault_opts o;
		struct dsc_error e = {0};
		uint8_t *img = NULL;
		uint64_t cap;
		dsc_stream *s;
		dsc_err err;

		tu_fault_defaults(&o);
		o.fail_at = at[i];
		o.max_io = i % 2 ? 1 : 0;
		o.own_inner = true;
		s = tu_fault_stream(tu_mem_stream(v.b.data, v.b.len, "x"), &o, "flaky.vmdk", NULL);
		err = tu_read_image(s, DSC_FORMAT_UNKNOWN, true, &img, &cap, NULL, &e);
		if (err != DSC_ERR_IO)
			tu_fail(__FILE__, __LINE__, "I/O error at %llu: got %s (%s)",
				(unsigned long long)at[i], dsc_err_name(err), e.message);
		ASSERT(strstr(e.message, "flaky.vmdk") != NULL);
		free(img);
		dsc_stream_close(s);
	}
	tu_vmdk_free(&v);
	free(src);
}

/* ---- hostile streams ------------------------------------------------------ */

static void expect_bad(struct tu_vmdk *v, const char *what, int line)
{
	struct dsc_error e = {0};
	dsc_err err;

	tu_vmdk_end(v, 0);
	err = read_all(v->b.data, v->b.len, "evil.vmdk", DSC_FORMAT_VMDK, &e);
	if (err != DSC_ERR_FORMAT && err != DSC_ERR_LIMIT)
		tu_fail(__FILE__, line, "%s: got %s (%s)", what, dsc_err_name(err), e.message);
	else if (!strstr(e.message, "evil.vmdk"))
		tu_fail(__FILE__, line, "%s: message lacks the stream name: \"%s\"", what,
			e.message);
	else
		fprintf(stderr, "  %s -> %s: %s\n", what, dsc_err_name(err), e.message);
	tu_vmdk_free(v);
}

static void zgrain(const void *data, size_t len, uint8_t **z, uLongf *zlen)
{
	*zlen = compressBound(len);
	*z = tu_xmalloc(*zlen);
	if (compress2(*z, zlen, data, len, 6) != Z_OK)
		abort();
}

static void test_hostile_grains(void)
{
	uint8_t *g = tu_pattern(2 * GRAIN, TU_COMPRESSIBLE, 22), *z, *pad;
	uint8_t *junk = tu_pattern(1000, TU_RANDOM, 23);
	struct tu_vmdk v;
	uLongf zlen;

	/* Capacity 4 grains = 512 sectors. */
	tu_vmdk_begin(&v, TU_VMWARE, 4 * GRAIN, "evil.vmdk");
	tu_vmdk_grain(&v, 4 * GS, g, GRAIN);
	expect_bad(&v, "grain LBA == capacity", __LINE__);

	tu_vmdk_begin(&v, TU_VMWARE, 4 * GRAIN, "evil.vmdk");
	tu_vmdk_grain(&v, 1ull << 62, g, GRAIN);
	expect_bad(&v, "grain LBA 2^62", __LINE__);

	tu_vmdk_begin(&v, TU_VMWARE, 4 * GRAIN, "evil.vmdk");
	tu_vmdk_grain(&v, UINT64_MAX - 127, g, GRAIN);
	expect_bad(&v, "grain LBA near 2^64 (overflow)", __LINE__);

	tu_vmdk_begin(&v, TU_VMWARE, 4 * GRAIN, "evil.vmdk");
	tu_vmdk_grain(&v, 1, g, GRAIN);
	expect_bad(&v, "grain LBA not aligned", __LINE__);

	tu_vmdk_begin(&v, TU_VMWARE, 4 * GRAIN, "evil.vmdk");
	tu_vmdk_grain(&v, GS + 64, g, GRAIN);
	expect_bad(&v, "grain LBA half a grain", __LINE__);

	/* Size 0 makes it a metadata marker whose type field is the zlib
	 * header (0x....9c78): no type a stream can hold. */
	zgrain(g, GRAIN, &z, &zlen);
	tu_vmdk_begin(&v, TU_VMWARE, 4 * GRAIN, "evil.vmdk");
	tu_vmdk_grain_raw(&v, GS, 0, z, zlen);
	expect_bad(&v, "compressed size 0", __LINE__);

	/* A valid zlib stream, but the size field claims more than 2 x grain:
	 * only the size check can catch it. */
	pad = tu_xcalloc(2 * GRAIN + 1);
	memcpy(pad, z, zlen);
	tu_vmdk_begin(&v, TU_VMWARE, 4 * GRAIN, "evil.vmdk");
	tu_vmdk_grain_raw(&v, 0, 2 * GRAIN + 1, pad, 2 * GRAIN + 1);
	expect_bad(&v, "compressed size 2 x grain + 1", __LINE__);
	free(pad);

	tu_vmdk_begin(&v, TU_VMWARE, 4 * GRAIN, "evil.vmdk");
	tu_vmdk_grain_raw(&v, 0, 4294967280u, z, zlen);
	expect_bad(&v, "compressed size 4294967280", __LINE__);
	free(z);

	tu_vmdk_begin(&v, TU_VMWARE, 4 * GRAIN, "evil.vmdk");
	tu_vmdk_grain_raw(&v, 0, 1000, junk, 1000);
	expect_bad(&v, "garbage zlib", __LINE__);

	/* Raw deflate (no zlib header) is what the spec text says but no
	 * reader accepts (facts §2). */
	{
		z_stream zs;
		uint8_t out[70000];
		memset(&zs, 0, sizeof(zs));
		if (deflateInit2(&zs, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK)
			abort();
		zs.next_in = g;
		zs.avail_in = GRAIN;
		zs.next_out = out;
		zs.avail_out = sizeof(out);
		if (deflate(&zs, Z_FINISH) != Z_STREAM_END)
			abort();
		tu_vmdk_begin(&v, TU_VMWARE, 4 * GRAIN, "evil.vmdk");
		tu_vmdk_grain_raw(&v, 0, (uint32_t)zs.total_out, out, zs.total_out);
		deflateEnd(&zs);
		expect_bad(&v, "raw deflate grain", __LINE__);
	}

	/* A zlib stream cut short (its size field matches the cut). */
	zgrain(g, GRAIN, &z, &zlen);
	tu_vmdk_begin(&v, TU_VMWARE, 4 * GRAIN, "evil.vmdk");
	tu_vmdk_grain_raw(&v, 0, (uint32_t)(zlen / 2), z, zlen / 2);
	expect_bad(&v, "zlib stream cut short", __LINE__);

	/* Corrupt Adler-32. */
	z[zlen - 1] ^= 0xFF;
	tu_vmdk_begin(&v, TU_VMWARE, 4 * GRAIN, "evil.vmdk");
	tu_vmdk_grain_raw(&v, 0, (uint32_t)zlen, z, zlen);
	expect_bad(&v, "bad adler32", __LINE__);
	free(z);

	tu_vmdk_begin(&v, TU_VMWARE, 4 * GRAIN, "evil.vmdk");
	tu_vmdk_grain(&v, 0, g, 2 * GRAIN);
	expect_bad(&v, "grain inflating to 2 grains", __LINE__);

	/* The same grain twice: a second copy would silently overwrite the
	 * first on a seekable output. In order and out of order. */
	tu_vmdk_begin(&v, TU_VMWARE, 4 * GRAIN, "evil.vmdk");
	tu_vmdk_grain(&v, GS, g, GRAIN);
	tu_vmdk_grain(&v, GS, g + 1, GRAIN);
	expect_bad(&v, "grain LBA repeated", __LINE__);

	tu_vmdk_begin(&v, TU_VMWARE, 4 * GRAIN, "evil.vmdk");
	tu_vmdk_grain(&v, GS, g, GRAIN);
	tu_vmdk_grain(&v, 3 * GS, g, GRAIN);
	tu_vmdk_grain(&v, GS, g + 1, GRAIN);
	expect_bad(&v, "grain LBA repeated after another", __LINE__);

	tu_vmdk_begin(&v, TU_VMWARE, 4 * GRAIN, "evil.vmdk");
	tu_vmdk_grain(&v, 0, g, GRAIN + 1);
	expect_bad(&v, "grain inflating to grain + 1", __LINE__);

	tu_vmdk_begin(&v, TU_VMWARE, 4 * GRAIN, "evil.vmdk");
	tu_vmdk_grain(&v, 0, g, 1000);
	tu_vmdk_grain(&v, GS, g, GRAIN);
	expect_bad(&v, "grain inflating to 1000 bytes (not last)", __LINE__);

	tu_vmdk_begin(&v, TU_VMWARE, 4 * GRAIN, "evil.vmdk");
	tu_vmdk_grain(&v, 3 * GS, g, GRAIN - 512);
	expect_bad(&v, "last grain short of the capacity", __LINE__);

	/* Capacity 130 sectors: the last grain must reach sector 130. */
	tu_vmdk_begin(&v, TU_VMWARE, 130 * 512, "evil.vmdk");
	tu_vmdk_grain(&v, GS, g, 512);
	expect_bad(&v, "last grain stops before the capacity", __LINE__);

	free(g);
	free(junk);
}

static void test_hostile_metadata(void)
{
	uint8_t *g = tu_pattern(GRAIN, TU_COMPRESSIBLE, 24);
	struct dsc_error e = {0};
	struct tu_vmdk v;
	dsc_err err;

	/* A table marker claiming 2^40 sectors of metadata follow. */
	tu_vmdk_begin(&v, TU_VMWARE, 4 * GRAIN, "evil.vmdk");
	tu_vmdk_grain(&v, 0, g, GRAIN);
	{
		uint8_t sec[512];
		dscp_vmdk_meta_marker_encode(1ull << 40, VMDK_MARKER_GT, sec);
		tu_buf_append(&v.b, sec, 512);
	}
	tu_vmdk_end(&v, 0);
	err = read_all(v.b.data, v.b.len, "evil.vmdk", DSC_FORMAT_VMDK, &e);
	ASSERT(err == DSC_ERR_FORMAT || err == DSC_ERR_LIMIT || err == DSC_ERR_TRUNCATED);
	ASSERT(strstr(e.message, "evil.vmdk") != NULL);
	tu_vmdk_free(&v);

	/* An unknown metadata type. */
	tu_vmdk_begin(&v, TU_VMWARE, 4 * GRAIN, "evil.vmdk");
	tu_vmdk_grain(&v, 0, g, GRAIN);
	tu_vmdk_meta(&v, 1, 0x12345, NULL);
	expect_bad(&v, "metadata type 0x12345", __LINE__);

	/* EOS before the footer in a GD_AT_END stream: truncated or corrupt. */
	tu_vmdk_begin(&v, TU_VMWARE, 4 * GRAIN, "evil.vmdk");
	tu_vmdk_grain(&v, 0, g, GRAIN);
	tu_vmdk_meta(&v, 0, VMDK_MARKER_EOS, NULL);
	err = read_all(v.b.data, v.b.len, "evil.vmdk", DSC_FORMAT_VMDK, &e);
	ASSERT(err == DSC_ERR_FORMAT || err == DSC_ERR_TRUNCATED);
	tu_vmdk_free(&v);

	/* Data after the EOS marker of a VMware stream: must not be read as
	 * more grains. */
	tu_vmdk_begin(&v, TU_VMWARE, 4 * GRAIN, "evil.vmdk");
	tu_vmdk_grain(&v, 0, g, GRAIN);
	tu_vmdk_end(&v, 0);
	{
		size_t before = v.b.len;
		uint8_t m[12];
		uLongf zlen;
		uint8_t *z;
		zgrain(g, GRAIN, &z, &zlen);
		dscp_put64(m, GS);
		dscp_put32(m + 8, (uint32_t)zlen);
		tu_buf_append(&v.b, m, 12);
		tu_buf_append(&v.b, z, zlen);
		tu_buf_pad(&v.b, 512);
		free(z);
		uint8_t *img = NULL;
		uint64_t cap;
		dsc_stream *s = tu_mem_stream(v.b.data, v.b.len, "evil.vmdk");
		memset(&e, 0, sizeof(e));
		err = tu_read_image(s, DSC_FORMAT_VMDK, true, &img, &cap, NULL, &e);
		/* Either ignore the trailer or call it corrupt, but never
		 * report the grain behind EOS as disk content. */
		if (err == DSC_OK)
			ASSERT(img && dscp_is_zero(img + GRAIN, GRAIN));
		else
			ASSERT(err == DSC_ERR_FORMAT);
		ASSERT(before < v.b.len);
		free(img);
		dsc_stream_close(s);
	}
	tu_vmdk_free(&v);
	free(g);
}

static void test_hostile_header(void)
{
	uint8_t *g = tu_pattern(GRAIN, TU_COMPRESSIBLE, 25);
	struct dsc_error e = {0};
	struct tu_vmdk v;
	dsc_err err;

	/* Version 4 in an otherwise good stream. */
	tu_vmdk_begin(&v, TU_VMWARE, 4 * GRAIN, "evil.vmdk");
	tu_vmdk_grain(&v, 0, g, GRAIN);
	tu_vmdk_end(&v, 0);
	v.h.version = 4;
	err = read_patched(&v, DSC_FORMAT_UNKNOWN, &e);
	ASSERT(err == DSC_ERR_FORMAT || err == DSC_ERR_UNSUPPORTED);
	ASSERT(strstr(e.message, "evil.vmdk") != NULL);
	tu_vmdk_free(&v);

	/* overHead inside the descriptor: a forward reader cannot go back. */
	tu_vmdk_begin(&v, TU_VMWARE, 4 * GRAIN, "evil.vmdk");
	tu_vmdk_grain(&v, 0, g, GRAIN);
	tu_vmdk_end(&v, 0);
	v.h.overhead = 1;
	err = read_patched(&v, DSC_FORMAT_VMDK, &e);
	ASSERT(err == DSC_ERR_FORMAT);
	tu_vmdk_free(&v);

	/* Descriptor fields that point nowhere sensible: at sector 0 (the
	 * header), or wrapping around 2^64 past the overHead check. A forward
	 * reader must call these corrupt, not read to the end of the input
	 * and report a truncation. */
	{
		static const struct {
			uint64_t off, size;
		} bad[] = {{0, 1}, {UINT64_MAX, 2}, {UINT64_MAX - 5, 10}, {200, 1}};
		size_t i;
		for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			tu_vmdk_begin(&v, TU_VMWARE, 4 * GRAIN, "evil.vmdk");
			tu_vmdk_grain(&v, 0, g, GRAIN);
			tu_vmdk_end(&v, 0);
			v.h.desc_offset = bad[i].off;
			v.h.desc_size = bad[i].size;
			err = read_patched(&v, DSC_FORMAT_VMDK, &e);
			if (err != DSC_ERR_FORMAT && err != DSC_ERR_LIMIT)
				tu_fail(__FILE__, __LINE__,
					"descriptor at %llu, %llu sectors: %s (%s)",
					(unsigned long long)bad[i].off,
					(unsigned long long)bad[i].size, dsc_err_name(err),
					e.message);
			tu_vmdk_free(&v);
		}
	}

	/* Uncompressed (monolithicSparse-like flags) is not a stream we read
	 * marker by marker: refused, not misread. */
	tu_vmdk_begin(&v, TU_VMWARE, 4 * GRAIN, "evil.vmdk");
	tu_vmdk_end(&v, 0);
	v.h.flags = 0x3;
	err = read_patched(&v, DSC_FORMAT_VMDK, NULL);
	ASSERT(err == DSC_ERR_FORMAT || err == DSC_ERR_UNSUPPORTED);
	tu_vmdk_free(&v);

	/* Header only. */
	tu_vmdk_begin(&v, TU_VMWARE, 4 * GRAIN, "evil.vmdk");
	err = read_all(v.b.data, 512, "evil.vmdk", DSC_FORMAT_VMDK, NULL);
	ASSERT(err == DSC_ERR_TRUNCATED || err == DSC_ERR_FORMAT);
	tu_vmdk_free(&v);
	free(g);
}

/* Parallel decompression must not change what comes out, nor which error
 * is reported: the first bad grain in stream order, after exactly the good
 * grains before it. */
static void test_threads(void)
{
	static const unsigned counts[] = {1, 2, 4, 7};
	size_t len = 40 * GRAIN + 1000, i;
	uint8_t *src = tu_pattern(len, TU_RANDOM, 26), *junk = tu_pattern(3000, TU_RANDOM, 27);
	uint8_t *full = tu_pattern(20 * GRAIN, TU_COMPRESSIBLE, 28);

	for (i = 0; i < 40; i += 3)
		memset(src + i * GRAIN, 0, GRAIN);
	for (i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
		char what[64];
		struct tu_vmdk v;
		unsigned g;

		tu_reader_threads = counts[i];
		snprintf(what, sizeof(what), "%u threads", counts[i]);
		layouts_for(src, len, false, what);

		/* Good grains 0..9, garbage at 10, a short grain at 11, more
		 * good grains after. */
		tu_vmdk_begin(&v, TU_VMWARE, len, "evil.vmdk");
		for (g = 0; g < 20; g++) {
			if (g == 10)
				tu_vmdk_grain_raw(&v, g * GS, 3000, junk, 3000);
			else if (g == 11)
				tu_vmdk_grain(&v, g * GS, full + g * GRAIN, 1000);
			else
				tu_vmdk_grain(&v, g * GS, full + g * GRAIN, GRAIN);
		}
		tu_vmdk_end(&v, 0);
		{
			struct dsc_error e = {0};
			dsc_stream *s = tu_mem_stream(v.b.data, v.b.len, "evil.vmdk");
			dsc_reader *r = NULL;
			uint64_t next = 0;
			dsc_err err = dsc_reader_open(s, DSC_FORMAT_VMDK, &r, &e);

			if (r) {
				dsc_reader_set_threads(r, counts[i]);
				for (;;) {
					struct dsc_extent x;
					err = dsc_reader_next(r, &x, &e);
					if (err || x.length == 0)
						break;
					/* In order, and nothing from grain 10 on. */
					ASSERT(x.offset >= next &&
					       x.offset + x.length <= 10 * GRAIN);
					ASSERT(memcmp(x.data, full + x.offset, x.length) == 0);
					next = x.offset + x.length;
				}
				ASSERT_ERR(err, DSC_ERR_FORMAT);
				ASSERT(strstr(e.message, "LBA 1280)") != NULL);
				ASSERT_EQ_U64(next, 10 * GRAIN);
				/* Sticky: asking again repeats the failure. */
				{
					struct dsc_extent x;
					ASSERT(dsc_reader_next(r, &x, NULL) != DSC_OK);
				}
				dsc_reader_close(r);
			}
			dsc_stream_close(s);
		}
		tu_vmdk_free(&v);

		/* An I/O error in the middle with workers busy. */
		tu_vmdk_begin(&v, TU_VMWARE, len, "img.vmdk");
		tu_vmdk_grains_from(&v, src, len);
		tu_vmdk_end(&v, 0);
		{
			struct tu_fault_opts o;
			struct dsc_error e = {0};
			uint8_t *img = NULL;
			uint64_t cap;
			dsc_stream *s;
			tu_fault_defaults(&o);
			o.fail_at = v.b.len / 2;
			o.own_inner = true;
			s = tu_fault_stream(tu_mem_stream(v.b.data, v.b.len, "x"), &o, "flaky.vmdk",
					    NULL);
			ASSERT_ERR(tu_read_image(s, DSC_FORMAT_VMDK, true, &img, &cap, NULL, &e),
				   DSC_ERR_IO);
			ASSERT(strstr(e.message, "flaky.vmdk") != NULL);
			free(img);
			dsc_stream_close(s);
		}
		/* Closing a reader in the middle, with grains in flight. */
		{
			dsc_stream *s = tu_mem_stream(v.b.data, v.b.len, "img.vmdk");
			dsc_reader *r = NULL;
			struct dsc_extent x;
			if (dsc_reader_open(s, DSC_FORMAT_VMDK, &r, NULL) == DSC_OK) {
				dsc_reader_set_threads(r, counts[i]);
				ASSERT_OK(dsc_reader_next(r, &x, NULL), (struct dsc_error *)NULL);
				dsc_reader_close(r);
			}
			dsc_stream_close(s);
		}
		tu_vmdk_free(&v);
	}
	tu_reader_threads = 0;
	free(src);
	free(junk);
	free(full);
}

/* Grain sizes other than VMware's 128 sectors: the reader must take every
 * power of two up to VMDK_MAX_GRAIN_SECTORS, in every layout. */
static void test_grain_sizes(void)
{
	static const uint64_t sizes[] = {8, 16, 256, VMDK_MAX_GRAIN_SECTORS};
	static const enum tu_layout ls[] = {TU_VMWARE, TU_QEMU, TU_OPENVMDK};
	size_t i, j;

	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		size_t gb = (size_t)sizes[i] * 512;
		/* Grain 8 (4 KiB): 3 MiB spans two tables of 512 grains. */
		size_t len = sizes[i] == 8 ? (3u << 20) + 1000 : 5 * gb + 1000;
		uint8_t *src = tu_pattern(len, TU_RANDOM, (uint32_t)i + 40);
		size_t g;

		for (g = 1; g * gb < len; g += 3)
			memset(src + g * gb, 0, DSC_MIN(gb, len - g * gb));
		for (j = 0; j < sizeof(ls) / sizeof(ls[0]); j++) {
			struct tu_vmdk v;
			char what[64];
			tu_vmdk_begin_ex(&v, ls[j], len, "img.vmdk", sizes[i], false);
			tu_vmdk_grains_from(&v, src, len);
			tu_vmdk_end(&v, 0);
			snprintf(what, sizeof(what), "grain %llu sectors %s",
				 (unsigned long long)sizes[i], layout_name(ls[j], 0));
			check_image(v.b.data, v.b.len, DSC_FORMAT_VMDK, false, true, src, len,
				    round512(len), what, __LINE__);
			tu_vmdk_free(&v);
		}
		/* A grain of this size inflating to one grain + 1 byte. */
		{
			struct tu_vmdk v;
			uint8_t *big = tu_pattern(gb + 1, TU_COMPRESSIBLE, 3);
			tu_vmdk_begin_ex(&v, TU_VMWARE, len, "evil.vmdk", sizes[i], false);
			tu_vmdk_grain(&v, 0, big, gb + 1);
			expect_bad(&v, "grain + 1 byte at a custom grain size", __LINE__);
			free(big);
		}
		free(src);
	}
}

/* VirtualBox rounds the header's capacity up to the grain; the exact size
 * is in the descriptor (facts §5). */
static void test_vbox_capacity(void)
{
	size_t len = 100 * 512 + 2 * GRAIN; /* 2 grains + 100 sectors */
	uint8_t *src = tu_pattern(len, TU_RANDOM, 50), *last = tu_xcalloc(GRAIN);
	struct tu_vmdk v;

	tu_vmdk_begin_ex(&v, TU_VMWARE, len, "vbox.vmdk", GS, true);
	ASSERT_EQ_U64(v.h.capacity, 3 * GS);
	tu_vmdk_grains_from(&v, src, len);
	tu_vmdk_end(&v, 0);
	check_image(v.b.data, v.b.len, DSC_FORMAT_VMDK, false, true, src, len, len,
		    "VirtualBox capacity", __LINE__);
	check_image(v.b.data, v.b.len, DSC_FORMAT_VMDK, true, true, src, len, len,
		    "VirtualBox capacity 1-byte", __LINE__);
	tu_vmdk_free(&v);

	/* Non-zero bytes in the last grain beyond the descriptor's size:
	 * never reported past the capacity. */
	memcpy(last, src + 2 * GRAIN, 100 * 512);
	memset(last + 100 * 512, 0xEE, GRAIN - 100 * 512);
	tu_vmdk_begin_ex(&v, TU_VMWARE, len, "vbox.vmdk", GS, true);
	tu_vmdk_grain(&v, 0, src, GRAIN);
	tu_vmdk_grain(&v, GS, src + GRAIN, GRAIN);
	tu_vmdk_grain(&v, 2 * GS, last, GRAIN);
	tu_vmdk_end(&v, 0);
	{
		struct dsc_error e = {0};
		dsc_stream *s = tu_mem_stream(v.b.data, v.b.len, "vbox.vmdk");
		uint8_t *img = NULL;
		uint64_t cap = 0;
		dsc_err err = tu_read_image(s, DSC_FORMAT_VMDK, true, &img, &cap, NULL, &e);
		if (err == DSC_OK)
			ASSERT(cap == len && memcmp(img, src, len) == 0);
		else
			ASSERT_ERR(err, DSC_ERR_FORMAT);
		free(img);
		dsc_stream_close(s);
	}
	tu_vmdk_free(&v);
	free(last);
	free(src);
}

/* Read every extent without building an image; check each lies inside the
 * capacity. */
static dsc_err walk(const uint8_t *buf, size_t len, unsigned threads, struct dsc_error *e)
{
	dsc_stream *s = tu_mem_stream(buf, len, "mut.vmdk");
	dsc_reader *r = NULL;
	dsc_err err = dsc_reader_open(s, DSC_FORMAT_UNKNOWN, &r, e);

	if (err == DSC_OK) {
		uint64_t cap = dsc_reader_capacity(r);
		dsc_reader_set_threads(r, threads);
		for (;;) {
			struct dsc_extent x;
			err = dsc_reader_next(r, &x, e);
			if (err || x.length == 0)
				break;
			if (x.offset > cap || x.length > cap - x.offset) {
				tu_fail(__FILE__, __LINE__, "extent %llu+%zu beyond capacity %llu",
					(unsigned long long)x.offset, x.length,
					(unsigned long long)cap);
				break;
			}
		}
	}
	dsc_reader_close(r);
	dsc_stream_close(s);
	return err;
}

/* Seeded random damage: never a crash, never an unnamed error code. */
static void test_mutations(void)
{
	size_t len = 3 * GRAIN + 5000, i;
	uint8_t *src = tu_pattern(len, TU_COMPRESSIBLE, 60), *m;
	struct tu_vmdk v;
	uint32_t x = 12345;
	unsigned ok = 0, bad = 0;

	tu_fill(src + GRAIN, GRAIN, TU_RANDOM, 61);
	tu_vmdk_begin(&v, TU_VMWARE, len, "mut.vmdk");
	tu_vmdk_grains_from(&v, src, len);
	tu_vmdk_end(&v, 0);
	m = tu_xmalloc(v.b.len);
	for (i = 0; i < 1500; i++) {
		struct dsc_error e = {0};
		unsigned k, flips;
		dsc_err err;

		memcpy(m, v.b.data, v.b.len);
		x ^= x << 13, x ^= x >> 17, x ^= x << 5;
		flips = 1 + x % 4;
		for (k = 0; k < flips; k++) {
			size_t pos;
			x ^= x << 13, x ^= x >> 17, x ^= x << 5;
			/* Half the hits in the header, descriptor and marker
			 * fields, where one byte changes the meaning. */
			if (x & 1)
				pos = (x >> 1) % 1024;
			else if (x & 2)
				pos = 128 * 512 + (x >> 2) % 16;
			else
				pos = (x >> 2) % v.b.len;
			x ^= x << 13, x ^= x >> 17, x ^= x << 5;
			m[pos] = (uint8_t)(x & 4 ? m[pos] ^ (1u << (x % 8)) : x >> 8);
		}
		err = walk(m, v.b.len, 1 + i % 3, &e);
		if (err == DSC_OK) {
			ok++;
			continue;
		}
		bad++;
		if (err != DSC_ERR_FORMAT && err != DSC_ERR_TRUNCATED && err != DSC_ERR_LIMIT &&
		    err != DSC_ERR_UNSUPPORTED)
			tu_fail(__FILE__, __LINE__, "mutation %zu: %s (%s)", i, dsc_err_name(err),
				e.message);
		else if (!*e.message)
			tu_fail(__FILE__, __LINE__, "mutation %zu: %s without a message", i,
				dsc_err_name(err));
	}
	fprintf(stderr, "  1500 mutations: %u read, %u refused\n", ok, bad);
	free(m);
	tu_vmdk_free(&v);
	free(src);
}

/* A VMDK that starts where the stream already is (a member of a tar/OVA
 * after its 512-byte header, a header consumed by the caller): markers and
 * overHead are relative to the start of the VMDK, as for the raw reader. */
static void test_mid_stream(void)
{
	size_t len = 3 * GRAIN + 1000, pre;
	uint8_t *src = tu_pattern(len, TU_RANDOM, 70);
	static const size_t pres[] = {512, 1000};
	size_t i;

	for (i = 0; i < sizeof(pres) / sizeof(pres[0]); i++) {
		static const enum tu_layout ls[] = {TU_VMWARE, TU_QEMU, TU_OPENVMDK};
		size_t j;
		pre = pres[i];
		for (j = 0; j < 3; j++) {
			struct tu_vmdk v;
			struct tu_buf b = {0};
			struct dsc_error e = {0};
			uint8_t junk[1000], *img = NULL;
			uint64_t cap = 0;
			size_t n;
			dsc_stream *s;
			dsc_err err;

			tu_vmdk_begin(&v, ls[j], len, "img.vmdk");
			tu_vmdk_grains_from(&v, src, len);
			tu_vmdk_end(&v, 0);
			memset(junk, 0x5A, sizeof(junk));
			tu_buf_append(&b, junk, pre);
			tu_buf_append(&b, v.b.data, v.b.len);
			s = tu_mem_stream(b.data, b.len, "member.vmdk");
			ASSERT_OK(dsc_read_full(s, junk, pre, &n, &e), &e);
			err = tu_read_image(s, DSC_FORMAT_UNKNOWN, true, &img, &cap, NULL, &e);
			if (err != DSC_OK)
				tu_fail(__FILE__, __LINE__, "%s after %zu bytes: %s (%s)",
					layout_name(ls[j], 0), pre, dsc_err_name(err), e.message);
			else
				ASSERT(cap == round512(len) && memcmp(img, src, len) == 0);
			free(img);
			dsc_stream_close(s);
			tu_buf_free(&b);
			tu_vmdk_free(&v);
		}
	}
	free(src);
}

/* qemu-img and open-vmdk streams have no footer, but their tables (in the
 * header area) say how many grains follow: a cut before the last grain's
 * data is TRUNCATED; a cut in the zeros after it is the normal end. */
static void test_truncated_table_layouts(void)
{
	size_t len = 4 * GRAIN + 700;
	uint8_t *src = tu_pattern(len, TU_RANDOM, 80);
	static const enum tu_layout ls[] = {TU_QEMU, TU_OPENVMDK};
	size_t j, cuts = 0;

	memset(src + GRAIN, 0, GRAIN);
	for (j = 0; j < 2; j++) {
		struct tu_vmdk v;
		size_t data_end, cut;

		tu_vmdk_begin(&v, ls[j], len, "cut.vmdk");
		tu_vmdk_grains_from(&v, src, len);
		data_end = v.b.len; /* end of the last grain's sectors */
		tu_vmdk_end(&v, ls[j] == TU_QEMU ? GRAIN : 0);
		REQUIRE(read_all(v.b.data, v.b.len, "cut.vmdk", DSC_FORMAT_VMDK, NULL) == DSC_OK);
		for (cut = 0; cut <= v.b.len; cut += 512) {
			size_t k;
			for (k = 0; k < 2; k++) {
				size_t c = cut + (k ? 100 : 0);
				struct dsc_error e = {0};
				dsc_err err;
				if (c > v.b.len)
					continue;
				err = read_all(v.b.data, c, "cut.vmdk", DSC_FORMAT_VMDK, &e);
				cuts++;
				if (c < data_end) {
					if (err != DSC_ERR_TRUNCATED && err != DSC_ERR_FORMAT)
						tu_fail(__FILE__, __LINE__,
							"%s cut at %zu of %zu: %s (%s)",
							layout_name(ls[j], 1), c, v.b.len,
							dsc_err_name(err), e.message);
				} else if (c % 512 == 0 && err != DSC_OK) {
					/* After the last grain, at a sector boundary: the
					 * stream is whole. */
					tu_fail(__FILE__, __LINE__,
						"%s cut at %zu (data ends at %zu): %s (%s)",
						layout_name(ls[j], 1), c, data_end,
						dsc_err_name(err), e.message);
				}
			}
		}
		tu_vmdk_free(&v);
	}
	fprintf(stderr, "  %zu cut points of qemu and open-vmdk streams\n", cuts);
	free(src);
}

static void test_zero_capacity(void)
{
	struct tu_vmdk v;
	struct dsc_error e = {0};
	dsc_err err;

	tu_vmdk_begin(&v, TU_VMWARE, 512, "evil.vmdk");
	tu_vmdk_end(&v, 0);
	v.h.capacity = 0;
	err = read_patched(&v, DSC_FORMAT_VMDK, &e);
	ASSERT(err == DSC_ERR_FORMAT || err == DSC_ERR_UNSUPPORTED);
	ASSERT(strstr(e.message, "evil.vmdk") != NULL);
	tu_vmdk_free(&v);
}

int main(void)
{
	TU_RUN(test_layouts_small);
	TU_RUN(test_layouts_zero);
	TU_RUN(test_layouts_multi_table);
	TU_RUN(test_own_writer);
	TU_RUN(test_open_reports);
	TU_RUN(test_type4_marker);
	TU_RUN(test_out_of_order);
	TU_RUN(test_last_grain_short);
	TU_RUN(test_truncated);
	TU_RUN(test_injected_io);
	TU_RUN(test_hostile_grains);
	TU_RUN(test_hostile_metadata);
	TU_RUN(test_hostile_header);
	TU_RUN(test_threads);
	TU_RUN(test_grain_sizes);
	TU_RUN(test_vbox_capacity);
	TU_RUN(test_mutations);
	TU_RUN(test_mid_stream);
	TU_RUN(test_truncated_table_layouts);
	TU_RUN(test_zero_capacity);
	return tu_exit();
}
