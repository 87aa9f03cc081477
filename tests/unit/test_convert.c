/* test_convert.c - unit tests of dsc_convert(): raw -> VMDK -> raw round
 * trips in memory, the stats, progress and cancellation, the capacity limit
 * and out-of-order grains against seekable and unseekable outputs.
 *
 * Round trips compare the logical disk, never compressed bytes: the VMDK
 * in the middle is also read back with the reader on its own.
 */
#include "testutil.h"
#include "qcow2.h"

#include <pthread.h>
#include <unistd.h>
#include <zlib.h>

#define UNIT 65536u

/* Convert `in` (len bytes) from src to dst format into a fresh membuf.
 * Returns the code; on success *out / *out_len show the membuf's contents,
 * valid until *os is closed (the caller closes it, also on failure). */
static dsc_err convert_mem(const uint8_t *in, size_t len, dsc_format src, dsc_format dst,
			   const struct dsc_convert_opts *extra, dsc_stream **os,
			   const uint8_t **out, size_t *out_len, struct dsc_convert_stats *st,
			   struct dsc_error *e)
{
	struct dsc_convert_opts o = {0};
	dsc_stream *is = tu_mem_stream(in, len, "in.img");
	dsc_err err;

	*os = NULL;
	*out = NULL;
	*out_len = 0;
	if (extra)
		o = *extra;
	o.src_fmt = src;
	o.dst_fmt = dst;
	err = dsc_stream_new_membuf(dst == DSC_FORMAT_VMDK ? "out.vmdk" : "out.raw", os, e);
	if (err)
		goto out;
	err = dsc_convert(is, *os, &o, st, e);
	if (err)
		goto out;
	dsc_stream_mem_buffer(*os, out, out_len);
out:
	dsc_stream_close(is);
	return err;
}

static void round_trip(const uint8_t *src, size_t len, const char *what, int line)
{
	struct dsc_error e = {0};
	struct dsc_convert_stats st1, st2;
	const uint8_t *vmdk = NULL, *raw = NULL;
	uint8_t *img = NULL;
	dsc_stream *vs = NULL, *rs = NULL;
	size_t vlen, rlen, padded = (len + 511) / 512 * 512;
	uint64_t cap;
	dsc_stream *s;
	dsc_err err;

	memset(&st1, 0xAA, sizeof(st1));
	err = convert_mem(src, len, DSC_FORMAT_UNKNOWN, DSC_FORMAT_VMDK, NULL, &vs, &vmdk, &vlen,
			  &st1, &e);
	if (err) {
		tu_fail(__FILE__, line, "%s: raw -> vmdk: %s (%s)", what, dsc_err_name(err),
			e.message);
		goto out;
	}
	if (vlen < 4 || memcmp(vmdk, "KDMV", 4) != 0)
		tu_fail(__FILE__, line, "%s: output is not a VMDK", what);
	/* facts §3: the last three sectors are footer marker, footer, EOS. */
	if (vlen % 512 || vlen < 3 * 512 || !dscp_is_zero(vmdk + vlen - 512, 512) ||
	    dscp_le32(vmdk + vlen - 1536 + 12) != VMDK_MARKER_FOOTER ||
	    memcmp(vmdk + vlen - 1024, "KDMV", 4) != 0)
		tu_fail(__FILE__, line, "%s: VMDK does not end with footer + EOS", what);
	/* The source's size or the VMDK's (rounded up to a sector): both are
	 * "the virtual disk size". */
	if (st1.capacity != padded && st1.capacity != len)
		tu_fail(__FILE__, line, "%s: stats capacity %llu, want %zu or %zu", what,
			(unsigned long long)st1.capacity, len, padded);
	if (st1.bytes_read != len)
		tu_fail(__FILE__, line, "%s: stats bytes_read %llu, want %zu", what,
			(unsigned long long)st1.bytes_read, len);
	if (st1.bytes_written != vlen)
		tu_fail(__FILE__, line, "%s: stats bytes_written %llu, output %zu", what,
			(unsigned long long)st1.bytes_written, vlen);
	if (!(st1.seconds >= 0 && st1.seconds < 60))
		tu_fail(__FILE__, line, "%s: stats seconds %f", what, st1.seconds);

	/* The VMDK on its own, through the reader. */
	s = tu_mem_stream(vmdk, vlen, "mid.vmdk");
	err = tu_read_image(s, DSC_FORMAT_VMDK, true, &img, &cap, NULL, &e);
	dsc_stream_close(s);
	if (err) {
		tu_fail(__FILE__, line, "%s: reading the VMDK: %s (%s)", what, dsc_err_name(err),
			e.message);
		goto out;
	}
	if (cap != padded || memcmp(img, src, len) != 0 || !dscp_is_zero(img + len, cap - len))
		tu_fail(__FILE__, line, "%s: VMDK content differs (capacity %llu)", what,
			(unsigned long long)cap);

	memset(&st2, 0xAA, sizeof(st2));
	free(img);
	img = NULL;
	err = convert_mem(vmdk, vlen, DSC_FORMAT_UNKNOWN, DSC_FORMAT_RAW, NULL, &rs, &raw, &rlen,
			  &st2, &e);
	if (err) {
		tu_fail(__FILE__, line, "%s: vmdk -> raw: %s (%s)", what, dsc_err_name(err),
			e.message);
		goto out;
	}
	if (rlen != padded)
		tu_fail(__FILE__, line, "%s: raw output %zu bytes, want %zu", what, rlen, padded);
	else if (memcmp(raw, src, len) != 0 || !dscp_is_zero(raw + len, padded - len))
		tu_fail(__FILE__, line, "%s: raw content differs", what);
	/* The reader may seek over the zeros before overHead: bytes_read
	 * counts what was transferred, at most the whole stream. */
	if (st2.capacity != padded || st2.bytes_read == 0 || st2.bytes_read > vlen)
		tu_fail(__FILE__, line, "%s: vmdk->raw stats capacity %llu read %llu", what,
			(unsigned long long)st2.capacity, (unsigned long long)st2.bytes_read);
	/* Holes are not counted as written, and a membuf is seekable. */
	if (st2.bytes_written > padded)
		tu_fail(__FILE__, line, "%s: vmdk->raw bytes_written %llu > %zu", what,
			(unsigned long long)st2.bytes_written, padded);
	if (!dscp_is_zero(src, len) && st2.bytes_written == 0)
		tu_fail(__FILE__, line, "%s: vmdk->raw wrote nothing", what);
out:
	dsc_stream_close(vs);
	dsc_stream_close(rs);
	free(img);
}

static void test_round_trips(void)
{
	static const struct {
		size_t len;
		enum tu_fill kind;
	} cases[] = {
		{512, TU_RANDOM},
		{1000, TU_RANDOM},
		{1000, TU_ZERO},
		{UNIT + 1, TU_RANDOM},
		{UNIT + 1, TU_COMPRESSIBLE},
		{3 * UNIT, TU_ZERO},
		{1u << 20, TU_RANDOM},
		{(2u << 20) + 300, TU_COMPRESSIBLE},
		{(32u << 20) + 512, TU_SPARSE},
		{(32u << 20) + 512, TU_ZERO},
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		static const char *kinds[] = {"zero", "random", "compressible", "sparse"};
		char what[64];
		uint8_t *src = tu_pattern(cases[i].len, cases[i].kind, (uint32_t)i);
		snprintf(what, sizeof(what), "%s %zu", kinds[cases[i].kind], cases[i].len);
		round_trip(src, cases[i].len, what, __LINE__);
		free(src);
	}
	{
		/* Data in the last sector only, after a 32 MiB hole. */
		size_t len = (32u << 20) + 512;
		uint8_t *src = tu_xcalloc(len);
		src[len - 1] = 0x42;
		src[0] = 1;
		round_trip(src, len, "first + last byte", __LINE__);
		free(src);
	}
}

static void test_raw_to_raw(void)
{
	uint8_t *src = tu_pattern(300000, TU_SPARSE, 1);
	const uint8_t *out = NULL;
	dsc_stream *os = NULL;
	struct dsc_error e = {0};
	struct dsc_convert_stats st;
	size_t olen = 0;

	/* dst_fmt left at 0 (UNKNOWN) means raw. */
	ASSERT_OK(convert_mem(src, 300000, DSC_FORMAT_RAW, DSC_FORMAT_UNKNOWN, NULL, &os, &out,
			      &olen, &st, &e),
		  &e);
	ASSERT_EQ_U64(olen, 300000);
	ASSERT(out && olen == 300000 && memcmp(out, src, 300000) == 0);
	ASSERT_EQ_U64(st.capacity, 300000);
	ASSERT(st.bytes_written > 0 && st.bytes_written <= 300000);
	dsc_stream_close(os);
	free(src);
}

struct prog {
	unsigned calls;
	unsigned cancel_after; /* 0: never */
	uint64_t last_in;
	bool backwards;
	bool bad_capacity;
	uint64_t capacity;
};

static bool on_progress(void *user, const struct dsc_progress *p)
{
	struct prog *pr = user;

	pr->calls++;
	if (p->in_bytes < pr->last_in)
		pr->backwards = true;
	pr->last_in = p->in_bytes;
	if (p->capacity != UINT64_MAX && p->capacity != pr->capacity)
		pr->bad_capacity = true;
	return !(pr->cancel_after && pr->calls >= pr->cancel_after);
}

/* A slow source: 4 MiB in 64 KiB reads, 15 ms each (about 1 s). */
static dsc_stream *slow_source(const uint8_t *src, size_t len)
{
	struct tu_fault_opts o;

	tu_fault_defaults(&o);
	o.max_io = UNIT;
	o.delay_us = 15000;
	o.own_inner = true;
	return tu_fault_stream(tu_mem_stream(src, len, "slow.raw"), &o, "slow.raw", NULL);
}

static void test_progress(void)
{
	size_t len = 4u << 20;
	uint8_t *src = tu_pattern(len, TU_COMPRESSIBLE, 3);
	struct dsc_error e = {0};
	struct dsc_convert_opts o = {0};
	struct dsc_convert_stats st;
	struct prog pr = {0};
	dsc_stream *in = slow_source(src, len), *out = NULL;

	pr.capacity = len;
	o.dst_fmt = DSC_FORMAT_VMDK;
	o.progress = on_progress;
	o.progress_user = &pr;
	REQUIRE_OK(dsc_stream_new_membuf("p.vmdk", &out, &e), &e);
	ASSERT_OK(dsc_convert(in, out, &o, &st, &e), &e);
	fprintf(stderr, "  progress called %u times in %.2f s\n", pr.calls, st.seconds);
	ASSERT(pr.calls >= 3);
	ASSERT(!pr.backwards);
	ASSERT(!pr.bad_capacity);
	ASSERT(st.seconds > 0.5);
	dsc_stream_close(out);
	dsc_stream_close(in);
	free(src);
}

static void test_cancel(void)
{
	size_t len = 4u << 20;
	uint8_t *src = tu_pattern(len, TU_COMPRESSIBLE, 4);
	struct dsc_error e = {0};
	struct dsc_convert_opts o = {0};
	struct dsc_convert_stats st;
	struct prog pr = {0};
	dsc_stream *in = slow_source(src, len), *out = NULL;
	const uint8_t *data;
	size_t dlen;

	pr.capacity = len;
	pr.cancel_after = 1;
	o.dst_fmt = DSC_FORMAT_VMDK;
	o.progress = on_progress;
	o.progress_user = &pr;
	REQUIRE_OK(dsc_stream_new_membuf("c.vmdk", &out, &e), &e);
	ASSERT_ERR(dsc_convert(in, out, &o, &st, &e), DSC_ERR_CANCELLED);
	ASSERT_ERR(e.code, DSC_ERR_CANCELLED);
	ASSERT(pr.calls == 1);
	/* It stopped early: the source was not read to the end, and no
	 * complete stream (EOS last) was produced. */
	ASSERT(dsc_stream_tell(in) < len);
	dsc_stream_mem_buffer(out, &data, &dlen);
	ASSERT(dlen < 1536 || !dscp_is_zero(data + dlen - 512, 512) ||
	       memcmp(data + dlen - 1024, "KDMV", 4) != 0);
	dsc_stream_close(out);
	dsc_stream_close(in);
	free(src);
}

static void test_max_capacity(void)
{
	size_t len = 2u << 20, vlen = 0;
	uint8_t *src = tu_pattern(len, TU_SPARSE, 5), *v;
	const uint8_t *out = NULL;
	dsc_stream *os = NULL;
	struct dsc_error e = {0};
	struct dsc_convert_opts o = {0};
	struct dsc_convert_stats st;
	size_t olen;

	o.max_capacity = 1u << 20;
	ASSERT_ERR(convert_mem(src, len, DSC_FORMAT_RAW, DSC_FORMAT_VMDK, &o, &os, &out, &olen, &st,
			       &e),
		   DSC_ERR_LIMIT);
	ASSERT(strstr(e.message, "in.img") != NULL);
	dsc_stream_close(os);

	/* VMDK input: the header's capacity is checked. */
	v = tu_vmdk_from_raw(src, len, &vlen);
	memset(&e, 0, sizeof(e));
	ASSERT_ERR(convert_mem(v, vlen, DSC_FORMAT_UNKNOWN, DSC_FORMAT_RAW, &o, &os, &out, &olen,
			       &st, &e),
		   DSC_ERR_LIMIT);
	dsc_stream_close(os);

	/* Exactly at the limit is fine. */
	o.max_capacity = len;
	ASSERT_OK(convert_mem(v, vlen, DSC_FORMAT_UNKNOWN, DSC_FORMAT_RAW, &o, &os, &out, &olen,
			      &st, &e),
		  &e);
	ASSERT(out && olen == len && memcmp(out, src, len) == 0);
	dsc_stream_close(os);
	free(v);
	free(src);
}

static void test_max_capacity_pipe(void)
{
	/* A raw pipe has no size up front: the limit must stop the
	 * conversion once the input passes it. */
	size_t len = 3u << 20;
	uint8_t *src = tu_pattern(len, TU_COMPRESSIBLE, 6);
	struct dsc_error e = {0};
	struct dsc_convert_opts o = {0};
	struct dsc_convert_stats st;
	struct tu_fault_opts fo;
	dsc_stream *in, *out = NULL;

	tu_fault_defaults(&fo);
	fo.no_seek = true;
	fo.own_inner = true;
	in = tu_fault_stream(tu_mem_stream(src, len, "x"), &fo, "pipe:", NULL);
	o.max_capacity = 1u << 20;
	o.dst_fmt = DSC_FORMAT_RAW;
	REQUIRE_OK(dsc_stream_new_membuf("o.raw", &out, &e), &e);
	ASSERT_ERR(dsc_convert(in, out, &o, &st, &e), DSC_ERR_LIMIT);
	/* It stopped near the limit instead of reading everything. */
	ASSERT(dsc_stream_tell(in) <= (1u << 20) + 2 * DSCP_IO_CHUNK);
	ASSERT(dsc_stream_tell(in) < len);
	dsc_stream_close(out);
	dsc_stream_close(in);
	free(src);
}

/* A VMDK written after a header, on a seekable output with the size known
 * only at the end: the header patched at finish is its own, not byte 0. */
static void test_vmdk_writer_mid_stream(void)
{
	size_t len = 3 * UNIT + 1000;
	uint8_t *src = tu_pattern(len, TU_RANDOM, 42), *img = NULL;
	struct dsc_error e = {0};
	struct dsc_writer_opts o = {0};
	dsc_stream *mb = NULL, *in;
	dsc_writer *w = NULL;
	const uint8_t *d;
	size_t dlen, n;
	uint8_t junk[512];
	uint64_t cap;
	int known;

	for (known = 0; known < 2; known++) {
		mb = NULL;
		w = NULL;
		memset(junk, 0x5A, sizeof(junk));
		REQUIRE_OK(dsc_stream_new_membuf("tar", &mb, &e), &e);
		ASSERT_OK(dsc_write_all(mb, junk, sizeof(junk), &e), &e);
		o.capacity = known ? len : DSC_CAPACITY_UNKNOWN;
		o.extent_name = "member.vmdk";
		ASSERT_OK(dsc_writer_open(mb, DSC_FORMAT_VMDK, &o, &w, &e), &e);
		if (w) {
			struct dsc_extent x = {0, len, src};
			ASSERT_OK(dsc_writer_put(w, &x, &e), &e);
			ASSERT_OK(dsc_writer_finish(w, len, &e), &e);
			dsc_writer_close(w);
		}
		dsc_stream_mem_buffer(mb, &d, &dlen);
		ASSERT(dlen > 1024 && memcmp(d, junk, 512) == 0);
		ASSERT(memcmp(d + 512, "KDMV", 4) == 0);
		in = tu_mem_stream(d, dlen, "tar");
		ASSERT_OK(dsc_read_full(in, junk, 512, &n, &e), &e);
		ASSERT_OK(tu_read_image(in, DSC_FORMAT_VMDK, true, &img, &cap, NULL, &e), &e);
		ASSERT(img && cap == (len + 511) / 512 * 512 && memcmp(img, src, len) == 0);
		free(img);
		img = NULL;
		dsc_stream_close(in);
		dsc_stream_close(mb);
	}
	free(src);
}

static void test_out_of_order_vmdk(void)
{
	uint8_t *src = tu_pattern(4 * UNIT, TU_RANDOM, 7);
	const uint8_t *out = NULL;
	dsc_stream *os = NULL;
	struct dsc_error e = {0};
	struct dsc_convert_opts o = {0};
	struct dsc_convert_stats st;
	struct tu_fault_opts fo;
	struct tu_vmdk v;
	dsc_stream *in, *mb = NULL, *pipe_out;
	size_t olen;

	tu_vmdk_begin(&v, TU_VMWARE, 4 * UNIT, "ooo.vmdk");
	tu_vmdk_grain(&v, 3 * 128, src + 3 * UNIT, UNIT);
	tu_vmdk_grain(&v, 0, src, UNIT);
	tu_vmdk_grain(&v, 128, src + UNIT, UNIT);
	tu_vmdk_grain(&v, 2 * 128, src + 2 * UNIT, UNIT);
	tu_vmdk_end(&v, 0);

	/* Seekable output: fine. */
	ASSERT_OK(convert_mem(v.b.data, v.b.len, DSC_FORMAT_VMDK, DSC_FORMAT_RAW, NULL, &os, &out,
			      &olen, &st, &e),
		  &e);
	ASSERT(out && olen == 4 * UNIT && memcmp(out, src, 4 * UNIT) == 0);
	dsc_stream_close(os);

	/* Unseekable raw output: a clear error. */
	in = tu_mem_stream(v.b.data, v.b.len, "ooo.vmdk");
	REQUIRE_OK(dsc_stream_new_membuf("mb", &mb, &e), &e);
	tu_fault_defaults(&fo);
	fo.no_seek = true;
	pipe_out = tu_fault_stream(mb, &fo, "stdout", NULL);
	o.src_fmt = DSC_FORMAT_VMDK;
	o.dst_fmt = DSC_FORMAT_RAW;
	memset(&e, 0, sizeof(e));
	{
		dsc_err err = dsc_convert(in, pipe_out, &o, &st, &e);
		ASSERT(err != DSC_OK);
		ASSERT(err != DSC_ERR_IO);
		fprintf(stderr, "  out of order to a pipe: %s: %s\n", dsc_err_name(err), e.message);
	}
	dsc_stream_close(pipe_out);
	dsc_stream_close(mb);
	dsc_stream_close(in);

	/* VMDK output refuses a lower offset whatever the output. */
	memset(&e, 0, sizeof(e));
	ASSERT(convert_mem(v.b.data, v.b.len, DSC_FORMAT_VMDK, DSC_FORMAT_VMDK, NULL, &os, &out,
			   &olen, &st, &e) != DSC_OK);
	dsc_stream_close(os);
	tu_vmdk_free(&v);
	free(src);
}

static void test_errors_propagate(void)
{
	uint8_t *src = tu_pattern(1u << 20, TU_RANDOM, 8);
	struct dsc_error e = {0};
	struct dsc_convert_opts o = {0};
	struct dsc_convert_stats st;
	struct tu_fault_opts fo;
	dsc_stream *in, *mb = NULL, *out;

	/* Output fails with NOSPACE half way: that code, not another. */
	in = tu_mem_stream(src, 1u << 20, "in.raw");
	REQUIRE_OK(dsc_stream_new_membuf("mb", &mb, &e), &e);
	tu_fault_defaults(&fo);
	fo.fail_at = 300000;
	fo.fail_code = DSC_ERR_NOSPACE;
	out = tu_fault_stream(mb, &fo, "full.vmdk", NULL);
	o.dst_fmt = DSC_FORMAT_VMDK;
	ASSERT_ERR(dsc_convert(in, out, &o, &st, &e), DSC_ERR_NOSPACE);
	ASSERT(strstr(e.message, "full.vmdk") != NULL);
	dsc_stream_close(out);
	dsc_stream_close(mb);
	dsc_stream_close(in);

	/* Input fails: IO. */
	tu_fault_defaults(&fo);
	fo.fail_at = 500000;
	fo.own_inner = true;
	in = tu_fault_stream(tu_mem_stream(src, 1u << 20, "x"), &fo, "bad.raw", NULL);
	mb = NULL;
	REQUIRE_OK(dsc_stream_new_membuf("o.vmdk", &mb, &e), &e);
	memset(&e, 0, sizeof(e));
	ASSERT_ERR(dsc_convert(in, mb, &o, &st, &e), DSC_ERR_IO);
	ASSERT(strstr(e.message, "bad.raw") != NULL);
	dsc_stream_close(mb);
	dsc_stream_close(in);
	free(src);
}

/* ---- the VMDK writer's layout, facts §1-4 --------------------------------- */

#define WL_GRAINS 1041u /* 65 MiB + 1000 bytes: ranges 0, 1 (empty) and 2 */

static bool wl_has_data(uint64_t g)
{
	return g == 0 || g == 1 || g == 511 || g == 1030 || g == WL_GRAINS - 1;
}

static void test_vmdk_writer_layout(void)
{
	uint64_t cap = (uint64_t)(WL_GRAINS - 1) * UNIT + 1000, g, sec, cap_sectors;
	uint8_t *grain = tu_xmalloc(UNIT), *inflated = tu_xmalloc(UNIT);
	struct dsc_error e = {0};
	struct dsc_writer_opts o = {0};
	struct tu_fault_opts fo;
	struct tu_fault *f = NULL;
	struct vmdk_header h, foot;
	struct vmdk_descriptor d;
	dsc_stream *mb = NULL, *out;
	dsc_writer *w = NULL;
	const uint8_t *b;
	size_t len, ngrains = 0;
	uint64_t last_lba = 0, gt_of[3] = {0}, marker_of[WL_GRAINS];
	bool any = false, footer = false;

	memset(marker_of, 0, sizeof(marker_of));
	REQUIRE_OK(dsc_stream_new_membuf("mb", &mb, &e), &e);
	tu_fault_defaults(&fo);
	fo.no_seek = true;
	out = tu_fault_stream(mb, &fo, "/some/dir/disk-7.vmdk", &f);
	o.capacity = cap;
	ASSERT_OK(dsc_writer_open(out, DSC_FORMAT_VMDK, &o, &w, &e), &e);
	if (!w)
		goto out;
	for (g = 0; g < WL_GRAINS; g++) {
		struct dsc_extent x = {g * UNIT, (size_t)DSC_MIN(UNIT, cap - g * UNIT), grain};
		if (!wl_has_data(g))
			continue;
		tu_fill(grain, UNIT, g % 2 ? TU_RANDOM : TU_COMPRESSIBLE, (uint32_t)g);
		ASSERT_OK(dsc_writer_put(w, &x, &e), &e);
	}
	ASSERT_OK(dsc_writer_finish(w, cap, &e), &e);
	dsc_writer_close(w);
	ASSERT(f->seeks == 0);
	dsc_stream_mem_buffer(mb, &b, &len);
	REQUIRE(len % 512 == 0 && len > 4 * 512);

	/* §1 header. */
	ASSERT(memcmp(b, "KDMV", 4) == 0);
	dscp_vmdk_header_decode(b, &h);
	cap_sectors = (cap + 511) / 512;
	ASSERT(h.version == 3 && h.flags == 0x30001 && h.compress == 1);
	ASSERT_EQ_U64(h.capacity, cap_sectors);
	ASSERT_EQ_U64(h.grain_size, 128);
	ASSERT_EQ_U64(h.desc_offset, 1);
	ASSERT(h.desc_size >= 1 && h.desc_size < h.overhead);
	ASSERT(h.gtes_per_gt == 512);
	ASSERT_EQ_U64(h.rgd_offset, 0);
	ASSERT_EQ_U64(h.gd_offset, VMDK_GD_AT_END);
	ASSERT(b[73] == '\n' && b[74] == ' ' && b[75] == '\r' && b[76] == '\n');
	ASSERT_OK(dscp_vmdk_header_validate(&h, "w", &e), &e);
	REQUIRE(h.overhead * 512 < len);

	/* §4 descriptor: names the output's own basename. */
	ASSERT_OK(dscp_vmdk_descriptor_parse((const char *)b + 512, h.desc_size * 512, "w", &d, &e),
		  &e);
	ASSERT(strcmp(d.extent_file, "disk-7.vmdk") == 0);
	ASSERT(strcmp(d.create_type, "streamOptimized") == 0);
	ASSERT_EQ_U64(d.extent_sectors, cap_sectors);
	ASSERT(dscp_is_zero(b + 512 + strlen((const char *)b + 512),
			    h.overhead * 512 - 512 - strlen((const char *)b + 512)));

	/* §3: grains ascending, a GT after each non-empty range, GD, footer,
	 * EOS as the last sector. */
	for (sec = h.overhead; sec < len / 512;) {
		struct vmdk_marker m;
		const uint8_t *p = b + sec * 512;
		dscp_vmdk_marker_decode(p, &m);
		if (footer) {
			/* Only the EOS may follow the footer. */
			ASSERT(m.size == 0 && m.type == VMDK_MARKER_EOS && m.val == 0);
			ASSERT(dscp_is_zero(p, 512));
			ASSERT_EQ_U64(sec, len / 512 - 1);
			break;
		}
		if (m.size) {
			uLongf il = UNIT;
			g = m.val / 128;
			ASSERT(m.val % 128 == 0 && g < WL_GRAINS && wl_has_data(g));
			ASSERT(!any || m.val > last_lba);
			ASSERT(m.size <= 2 * UNIT && sec * 512 + 12 + m.size <= len);
			if (g < WL_GRAINS)
				marker_of[g] = sec;
			/* zlib (RFC 1950), exactly one grain, the last one padded. */
			ASSERT(uncompress(inflated, &il, p + 12, m.size) == Z_OK);
			ASSERT_EQ_U64(il, UNIT);
			tu_fill(grain, UNIT, g % 2 ? TU_RANDOM : TU_COMPRESSIBLE, (uint32_t)g);
			if (g == WL_GRAINS - 1)
				ASSERT(memcmp(inflated, grain, 1000) == 0 &&
				       dscp_is_zero(inflated + 1000, UNIT - 1000));
			else
				ASSERT(memcmp(inflated, grain, UNIT) == 0);
			last_lba = m.val;
			any = true;
			ngrains++;
			sec += (12 + m.size + 511) / 512;
			continue;
		}
		ASSERT(dscp_is_zero(p + 16, 496));
		if (m.type == VMDK_MARKER_GT) {
			uint64_t r = last_lba / 128 / 512, i;
			ASSERT_EQ_U64(m.val, 4);
			ASSERT(r < 3 && gt_of[r] == 0);
			if (r < 3)
				gt_of[r] = sec + 1;
			for (i = 0; i < 512; i++) {
				uint64_t gg = r * 512 + i;
				uint32_t ent = dscp_le32(p + 512 + 4 * i);
				if (gg < WL_GRAINS && wl_has_data(gg))
					ASSERT_EQ_U64(ent, marker_of[gg]);
				else
					ASSERT_EQ_U64(ent, 0);
			}
			sec += 1 + 4;
		} else if (m.type == VMDK_MARKER_GD) {
			ASSERT_EQ_U64(m.val, 1); /* 3 entries fit one sector */
			ASSERT_EQ_U64(dscp_le32(p + 512), gt_of[0]);
			ASSERT_EQ_U64(dscp_le32(p + 516), 0); /* empty range: no table */
			ASSERT_EQ_U64(dscp_le32(p + 520), gt_of[2]);
			ASSERT(dscp_is_zero(p + 524, 512 - 12));
			ASSERT(gt_of[0] && gt_of[2]);
			/* Remember where the directory is for the footer. */
			last_lba = sec + 1;
			sec += 1 + m.val;
		} else if (m.type == VMDK_MARKER_FOOTER) {
			ASSERT_EQ_U64(m.val, 1);
			ASSERT(memcmp(p + 512, "KDMV", 4) == 0);
			dscp_vmdk_header_decode(p + 512, &foot);
			ASSERT_EQ_U64(foot.gd_offset, last_lba);
			ASSERT_EQ_U64(foot.capacity, h.capacity);
			ASSERT(foot.flags == h.flags && foot.overhead == h.overhead);
			/* The last three sectors: footer marker, footer, EOS. */
			ASSERT_EQ_U64(sec, len / 512 - 3);
			footer = true;
			sec += 2;
		} else {
			tu_fail(__FILE__, __LINE__, "unexpected marker type %u at sector %llu",
				m.type, (unsigned long long)sec);
			break;
		}
	}
	ASSERT(footer);
	ASSERT_EQ_U64(ngrains, 5);
out:
	dsc_stream_close(out);
	dsc_stream_close(mb);
	free(grain);
	free(inflated);
}

/* A raw pipe has no size: VMDK to a seekable output patches the header at
 * the end; to a pipe it is refused up front with a clear message. */
static void test_raw_pipe_to_vmdk(void)
{
	size_t len = 200000;
	uint8_t *src = tu_pattern(len, TU_COMPRESSIBLE, 9), *img = NULL;
	struct dsc_error e = {0};
	struct dsc_convert_opts o = {0};
	struct dsc_convert_stats st;
	struct tu_fault_opts fo;
	dsc_stream *in, *mb = NULL, *po;
	const uint8_t *b;
	size_t blen;
	uint64_t cap;
	dsc_err err;

	tu_fault_defaults(&fo);
	fo.no_seek = true;
	fo.own_inner = true;
	in = tu_fault_stream(tu_mem_stream(src, len, "x"), &fo, "pipe:", NULL);
	o.src_fmt = DSC_FORMAT_RAW;
	o.dst_fmt = DSC_FORMAT_VMDK;
	REQUIRE_OK(dsc_stream_new_membuf("seek.vmdk", &mb, &e), &e);
	ASSERT_OK(dsc_convert(in, mb, &o, &st, &e), &e);
	ASSERT(st.capacity == len || st.capacity == (len + 511) / 512 * 512);
	dsc_stream_close(in);
	dsc_stream_mem_buffer(mb, &b, &blen);
	in = tu_mem_stream(b, blen, "seek.vmdk");
	err = tu_read_image(in, DSC_FORMAT_VMDK, true, &img, &cap, NULL, &e);
	ASSERT_ERR(err, DSC_OK);
	ASSERT_EQ_U64(cap, (len + 511) / 512 * 512);
	ASSERT(img && memcmp(img, src, len) == 0);
	free(img);
	dsc_stream_close(in);
	dsc_stream_close(mb);

	/* Pipe to pipe. */
	in = tu_fault_stream(tu_mem_stream(src, len, "x"), &fo, "pipe:", NULL);
	mb = NULL;
	REQUIRE_OK(dsc_stream_new_membuf("mb", &mb, &e), &e);
	tu_fault_defaults(&fo);
	fo.no_seek = true;
	po = tu_fault_stream(mb, &fo, "stdout", NULL);
	memset(&e, 0, sizeof(e));
	err = dsc_convert(in, po, &o, &st, &e);
	ASSERT(err == DSC_ERR_UNSUPPORTED || err == DSC_ERR_INVAL);
	ASSERT(strstr(e.message, "stdout") != NULL || strstr(e.message, "pipe:") != NULL);
	dsc_stream_close(po);
	dsc_stream_close(mb);
	dsc_stream_close(in);
	free(src);
}

static void test_vmdk_to_vmdk(void)
{
	size_t len = 5 * UNIT + 700, vlen = 0, v2len = 0;
	uint8_t *src = tu_pattern(len, TU_SPARSE, 1), *v, *img = NULL;
	struct dsc_error e = {0};
	struct dsc_convert_stats st;
	dsc_stream *os = NULL, *s;
	const uint8_t *v2;
	uint64_t cap;

	tu_fill(src + UNIT, UNIT, TU_RANDOM, 2);
	v = tu_vmdk_from_raw(src, len, &vlen);
	ASSERT_OK(convert_mem(v, vlen, DSC_FORMAT_UNKNOWN, DSC_FORMAT_VMDK, NULL, &os, &v2, &v2len,
			      &st, &e),
		  &e);
	if (v2) {
		s = tu_mem_stream(v2, v2len, "v2.vmdk");
		ASSERT_OK(tu_read_image(s, DSC_FORMAT_VMDK, true, &img, &cap, NULL, &e), &e);
		ASSERT(img && cap == (len + 511) / 512 * 512 && memcmp(img, src, len) == 0);
		dsc_stream_close(s);
	}
	dsc_stream_close(os);
	free(img);
	free(v);
	free(src);
}

static void test_empty_source(void)
{
	struct dsc_error e = {0};
	struct dsc_convert_stats st;
	dsc_stream *os = NULL;
	const uint8_t *out;
	size_t olen = 99;
	dsc_err err;

	/* Raw to raw: an empty image is an empty file. */
	ASSERT_OK(convert_mem((const uint8_t *)"", 0, DSC_FORMAT_RAW, DSC_FORMAT_RAW, NULL, &os,
			      &out, &olen, &st, &e),
		  &e);
	ASSERT_EQ_U64(olen, 0);
	ASSERT_EQ_U64(st.capacity, 0);
	dsc_stream_close(os);

	/* Raw to VMDK: no reader opens a zero-sector VMDK, so refuse it
	 * clearly instead of writing one. */
	err = convert_mem((const uint8_t *)"", 0, DSC_FORMAT_RAW, DSC_FORMAT_VMDK, NULL, &os, &out,
			  &olen, &st, &e);
	ASSERT(err == DSC_ERR_UNSUPPORTED || err == DSC_ERR_INVAL);
	ASSERT(strstr(e.message, "empty") != NULL);
	dsc_stream_close(os);
}

/* Unaligned, sub-grain and grain-straddling extents into the VMDK writer,
 * read back with the reader. */
static void test_vmdk_writer_unaligned(void)
{
	static const struct {
		uint64_t off;
		size_t len;
	} ext[] = {
		{0, 1},          {1, 511},        {700, 1000},      {65000, 1072},
		{66100, 10},     {131072, 65536}, {200000, 300000}, {500000, 1},
		{524288, 65535}, {589823, 1},     {700000, 77777},  {(3u << 20) - 5, 5},
	};
	size_t cap = 3u << 20, i;
	uint8_t *data = tu_pattern(cap, TU_RANDOM, 3), *want = tu_xcalloc(cap), *img = NULL;
	struct dsc_error e = {0};
	struct dsc_writer_opts o = {0};
	struct tu_fault_opts fo;
	dsc_stream *mb = NULL, *out, *s;
	dsc_writer *w = NULL;
	const uint8_t *b;
	size_t blen;
	uint64_t got_cap;

	REQUIRE_OK(dsc_stream_new_membuf("mb", &mb, &e), &e);
	tu_fault_defaults(&fo);
	fo.no_seek = true;
	out = tu_fault_stream(mb, &fo, "u.vmdk", NULL);
	o.capacity = cap;
	o.level = 1;
	ASSERT_OK(dsc_writer_open(out, DSC_FORMAT_VMDK, &o, &w, &e), &e);
	for (i = 0; w && i < sizeof(ext) / sizeof(ext[0]); i++) {
		struct dsc_extent x = {ext[i].off, ext[i].len, data + ext[i].off};
		memcpy(want + ext[i].off, data + ext[i].off, ext[i].len);
		ASSERT_OK(dsc_writer_put(w, &x, &e), &e);
	}
	if (w)
		ASSERT_OK(dsc_writer_finish(w, cap, &e), &e);
	dsc_writer_close(w);
	dsc_stream_mem_buffer(mb, &b, &blen);
	s = tu_mem_stream(b, blen, "u.vmdk");
	ASSERT_OK(tu_read_image(s, DSC_FORMAT_VMDK, true, &img, &got_cap, NULL, &e), &e);
	ASSERT(img && got_cap == cap && memcmp(img, want, cap) == 0);
	dsc_stream_close(s);
	dsc_stream_close(out);
	dsc_stream_close(mb);
	free(img);
	free(want);
	free(data);
}

static void test_vmdk_writer_bad_args(void)
{
	struct dsc_error e = {0};
	struct dsc_writer_opts o = {0};
	dsc_stream *mb = NULL;
	dsc_writer *w = (dsc_writer *)1;
	uint8_t b[512] = {1};

	REQUIRE_OK(dsc_stream_new_membuf("bad.vmdk", &mb, &e), &e);
	/* A name that cannot be quoted in the descriptor. */
	o.capacity = 1 << 20;
	o.extent_name = "a\"b.vmdk";
	ASSERT_ERR(dsc_writer_open(mb, DSC_FORMAT_VMDK, &o, &w, &e), DSC_ERR_INVAL);
	ASSERT(w == NULL);
	/* Compression level out of range (1..12, 0 = default). */
	o.extent_name = NULL;
	o.level = 13;
	memset(&e, 0, sizeof(e));
	w = (dsc_writer *)1;
	ASSERT_ERR(dsc_writer_open(mb, DSC_FORMAT_VMDK, &o, &w, &e), DSC_ERR_INVAL);
	ASSERT(w == NULL);
	o.level = -1;
	w = (dsc_writer *)1;
	ASSERT_ERR(dsc_writer_open(mb, DSC_FORMAT_VMDK, &o, &w, NULL), DSC_ERR_INVAL);
	ASSERT(w == NULL);
	/* Data past the announced capacity. */
	o.level = 0;
	w = NULL;
	ASSERT_OK(dsc_writer_open(mb, DSC_FORMAT_VMDK, &o, &w, &e), &e);
	if (w) {
		struct dsc_extent x = {1 << 20, 512, b};
		dsc_err err = dsc_writer_put(w, &x, &e);
		if (err == DSC_OK)
			err = dsc_writer_finish(w, 1 << 20, &e);
		ASSERT(err != DSC_OK);
		dsc_writer_close(w);
	}
	dsc_stream_close(mb);
}

/* Parallel compression: same content whatever the thread count, grains
 * still in ascending order; failures and cancellation with workers busy
 * end cleanly. */
static void test_writer_threads(void)
{
	static const unsigned counts[] = {1, 2, 3, 8};
	size_t len = (6u << 20) + 1000, i;
	uint8_t *src = tu_pattern(len, TU_COMPRESSIBLE, 11);

	tu_fill(src + (1u << 20), 1u << 20, TU_RANDOM, 12);
	memset(src + (3u << 20), 0, 1u << 20);
	for (i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
		struct dsc_error e = {0};
		struct dsc_convert_opts o = {0};
		struct dsc_convert_stats st;
		struct tu_fault_opts fo;
		dsc_stream *os = NULL, *s, *in, *mb = NULL;
		const uint8_t *v = NULL;
		size_t vlen = 0;
		uint8_t *img = NULL;
		uint64_t cap;
		struct prog pr = {0};

		o.threads = counts[i];
		o.level = i % 2 ? 1 : 0;
		ASSERT_OK(convert_mem(src, len, DSC_FORMAT_RAW, DSC_FORMAT_VMDK, &o, &os, &v, &vlen,
				      &st, &e),
			  &e);
		if (v) {
			s = tu_mem_stream(v, vlen, "t.vmdk");
			ASSERT_OK(tu_read_image(s, DSC_FORMAT_VMDK, true, &img, &cap, NULL, &e),
				  &e);
			ASSERT(img && cap == (len + 511) / 512 * 512 && memcmp(img, src, len) == 0);
			dsc_stream_close(s);
			free(img);
		}
		dsc_stream_close(os);

		/* Output full half way. */
		in = tu_mem_stream(src, len, "in.raw");
		REQUIRE_OK(dsc_stream_new_membuf("mb", &mb, &e), &e);
		tu_fault_defaults(&fo);
		fo.fail_at = 1u << 20;
		fo.fail_code = DSC_ERR_NOSPACE;
		s = tu_fault_stream(mb, &fo, "full.vmdk", NULL);
		o.dst_fmt = DSC_FORMAT_VMDK;
		memset(&e, 0, sizeof(e));
		ASSERT_ERR(dsc_convert(in, s, &o, &st, &e), DSC_ERR_NOSPACE);
		ASSERT(strstr(e.message, "full.vmdk") != NULL);
		dsc_stream_close(s);
		dsc_stream_close(mb);
		dsc_stream_close(in);

		/* Cancelled on the first progress call. */
		in = slow_source(src, len);
		mb = NULL;
		REQUIRE_OK(dsc_stream_new_membuf("c.vmdk", &mb, &e), &e);
		pr.capacity = len;
		pr.cancel_after = 1;
		o.progress = on_progress;
		o.progress_user = &pr;
		memset(&e, 0, sizeof(e));
		ASSERT_ERR(dsc_convert(in, mb, &o, &st, &e), DSC_ERR_CANCELLED);
		dsc_stream_close(mb);
		dsc_stream_close(in);
	}
	free(src);
}

/* A source that is all zeros yields no extent until its end: progress must
 * still be reported about 10 times a second, and cancellation must work,
 * or a 20 GiB empty disk from a pipe freezes the progress bar and cannot
 * be stopped by a server whose client went away. */
static void test_progress_zero_input(void)
{
	size_t len = 4u << 20;
	uint8_t *src = tu_xcalloc(len);
	struct dsc_error e = {0};
	struct dsc_convert_opts o = {0};
	struct dsc_convert_stats st;
	struct prog pr = {0};
	dsc_stream *in = slow_source(src, len), *out = NULL;

	pr.capacity = len;
	o.dst_fmt = DSC_FORMAT_RAW;
	o.progress = on_progress;
	o.progress_user = &pr;
	REQUIRE_OK(dsc_stream_new_membuf("z.raw", &out, &e), &e);
	ASSERT_OK(dsc_convert(in, out, &o, &st, &e), &e);
	fprintf(stderr, "  all-zero input: progress called %u times in %.2f s\n", pr.calls,
		st.seconds);
	ASSERT(pr.calls >= 3);
	dsc_stream_close(out);
	dsc_stream_close(in);

	/* Cancelled on the first call: it must come before the end. */
	memset(&pr, 0, sizeof(pr));
	pr.capacity = len;
	pr.cancel_after = 1;
	in = slow_source(src, len);
	out = NULL;
	memset(&e, 0, sizeof(e));
	REQUIRE_OK(dsc_stream_new_membuf("z.raw", &out, &e), &e);
	ASSERT_ERR(dsc_convert(in, out, &o, &st, &e), DSC_ERR_CANCELLED);
	ASSERT(dsc_stream_tell(in) < len);
	dsc_stream_close(out);
	dsc_stream_close(in);
	free(src);
}

/* The largest disk the limits allow (64 TiB) with data at both ends: a
 * directory of 8 MiB, one table per end; read back. One sector more is
 * LIMIT. */
static void test_vmdk_max_capacity(void)
{
	uint64_t cap = (uint64_t)VMDK_MAX_CAPACITY_SECTORS * 512;
	uint8_t *g = tu_pattern(UNIT, TU_RANDOM, 21);
	struct dsc_error e = {0};
	struct dsc_writer_opts o = {0};
	dsc_stream *mb = NULL, *in;
	dsc_writer *w = NULL;
	dsc_reader *r = NULL;
	const uint8_t *d;
	size_t len;
	struct dsc_extent a = {0, UNIT, g}, b = {cap - UNIT, UNIT, g};
	int seen = 0;

	REQUIRE_OK(dsc_stream_new_membuf("big.vmdk", &mb, &e), &e);
	o.capacity = cap + 512;
	ASSERT_ERR(dsc_writer_open(mb, DSC_FORMAT_VMDK, &o, &w, &e), DSC_ERR_LIMIT);
	o.capacity = cap;
	ASSERT_OK(dsc_writer_open(mb, DSC_FORMAT_VMDK, &o, &w, &e), &e);
	if (w) {
		ASSERT_OK(dsc_writer_put(w, &a, &e), &e);
		ASSERT_OK(dsc_writer_put(w, &b, &e), &e);
		ASSERT_OK(dsc_writer_finish(w, cap, &e), &e);
		dsc_writer_close(w);
	}
	dsc_stream_mem_buffer(mb, &d, &len);
	ASSERT(len < (16u << 20));
	in = tu_mem_stream(d, len, "big.vmdk");
	ASSERT_OK(dsc_reader_open(in, DSC_FORMAT_UNKNOWN, &r, &e), &e);
	if (r) {
		ASSERT_EQ_U64(dsc_reader_capacity(r), cap);
		for (;;) {
			struct dsc_extent x;
			if (dsc_reader_next(r, &x, &e) != DSC_OK) {
				tu_fail(__FILE__, __LINE__, "next: %s", e.message);
				break;
			}
			if (x.length == 0)
				break;
			ASSERT(x.length == UNIT && memcmp(x.data, g, UNIT) == 0);
			ASSERT(x.offset == (seen ? cap - UNIT : 0));
			seen++;
		}
		ASSERT(seen == 2);
		dsc_reader_close(r);
	}
	dsc_stream_close(in);
	dsc_stream_close(mb);
	free(g);
}

/* Misuse of a VMDK writer is refused, naming the output. */
static void test_vmdk_writer_misuse(void)
{
	uint8_t *g = tu_pattern(2 * UNIT, TU_RANDOM, 22);
	struct dsc_error e = {0};
	struct dsc_writer_opts o = {0};
	dsc_stream *mb = NULL;
	dsc_writer *w = NULL;
	struct dsc_extent hi = {UNIT, UNIT, g}, lo = {0, UNIT, g};
	dsc_err err;

	o.capacity = 4 * UNIT;
	/* A lower offset than the last extent. */
	REQUIRE_OK(dsc_stream_new_membuf("m.vmdk", &mb, &e), &e);
	ASSERT_OK(dsc_writer_open(mb, DSC_FORMAT_VMDK, &o, &w, &e), &e);
	if (w) {
		ASSERT_OK(dsc_writer_put(w, &hi, &e), &e);
		err = dsc_writer_put(w, &lo, &e);
		if (err == DSC_OK)
			err = dsc_writer_finish(w, 4 * UNIT, &e);
		ASSERT(err != DSC_OK);
		ASSERT(strstr(e.message, "m.vmdk") != NULL);
		dsc_writer_close(w);
		w = NULL;
	}
	dsc_stream_close(mb);

	/* A capacity at finish that differs from the announced one, then
	 * finish or put after the end. */
	mb = NULL;
	memset(&e, 0, sizeof(e));
	REQUIRE_OK(dsc_stream_new_membuf("m.vmdk", &mb, &e), &e);
	ASSERT_OK(dsc_writer_open(mb, DSC_FORMAT_VMDK, &o, &w, &e), &e);
	if (w) {
		ASSERT_OK(dsc_writer_put(w, &lo, &e), &e);
		ASSERT(dsc_writer_finish(w, 8 * UNIT, NULL) != DSC_OK);
		dsc_writer_close(w);
		w = NULL;
	}
	dsc_stream_close(mb);
	mb = NULL;
	REQUIRE_OK(dsc_stream_new_membuf("m.vmdk", &mb, &e), &e);
	ASSERT_OK(dsc_writer_open(mb, DSC_FORMAT_VMDK, &o, &w, &e), &e);
	if (w) {
		ASSERT_OK(dsc_writer_put(w, &lo, &e), &e);
		ASSERT_OK(dsc_writer_finish(w, 4 * UNIT, &e), &e);
		ASSERT(dsc_writer_finish(w, 4 * UNIT, NULL) != DSC_OK);
		ASSERT(dsc_writer_put(w, &hi, NULL) != DSC_OK);
		dsc_writer_close(w);
	}
	dsc_stream_close(mb);
	free(g);
}

/* Written through dsc_stream_create_file(), the descriptor names the final
 * file, not the temporary it is written to (libvmdk opens that name). */
static void test_vmdk_to_file_names_itself(void)
{
	char *dir = tu_tmpdir(), path[4200];
	size_t len = 3 * UNIT;
	uint8_t *src = tu_pattern(len, TU_COMPRESSIBLE, 31), *file = NULL;
	struct dsc_error e = {0};
	struct dsc_convert_opts o = {0};
	struct dsc_convert_stats st;
	struct vmdk_descriptor d;
	struct vmdk_header h;
	dsc_stream *in = tu_mem_stream(src, len, "in.raw"), *out = NULL;
	FILE *f;
	long n;

	snprintf(path, sizeof(path), "%s/final-name.vmdk", dir);
	ASSERT_OK(dsc_stream_create_file(path, 0, &out, &e), &e);
	if (!out)
		goto done;
	o.dst_fmt = DSC_FORMAT_VMDK;
	ASSERT_OK(dsc_convert(in, out, &o, &st, &e), &e);
	dsc_stream_close(out);
	f = fopen(path, "rb");
	REQUIRE(f != NULL);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	file = tu_xmalloc((size_t)n);
	ASSERT(fread(file, 1, (size_t)n, f) == (size_t)n);
	fclose(f);
	ASSERT_EQ_U64(st.bytes_written, n);
	dscp_vmdk_header_decode(file, &h);
	ASSERT_OK(dscp_vmdk_descriptor_parse((const char *)file + 512, h.desc_size * 512, "f", &d,
					     &e),
		  &e);
	ASSERT(strcmp(d.extent_file, "final-name.vmdk") == 0);
	if (strcmp(d.extent_file, "final-name.vmdk") != 0)
		fprintf(stderr, "  descriptor names \"%s\"\n", d.extent_file);
done:
	dsc_stream_close(in);
	free(file);
	free(src);
	tu_rmdir_all(dir);
	free(dir);
}

/* A VMDK stream that is mostly metadata (8192 type-4 markers = 4 MiB)
 * yields no extent for a second: progress and cancellation still work. */
static void test_progress_metadata_input(void)
{
	uint8_t *g = tu_pattern(UNIT, TU_RANDOM, 41);
	struct dsc_error e = {0};
	struct dsc_convert_opts o = {0};
	struct dsc_convert_stats st;
	struct tu_fault_opts fo;
	struct prog pr = {0};
	struct tu_vmdk v;
	dsc_stream *in, *out = NULL;
	int i;

	tu_vmdk_begin(&v, TU_VMWARE, 2 * UNIT, "meta.vmdk");
	tu_vmdk_grain(&v, 0, g, UNIT);
	for (i = 0; i < 8192; i++)
		tu_vmdk_meta(&v, 0, 4, NULL);
	tu_vmdk_grain(&v, 128, g, UNIT);
	tu_vmdk_end(&v, 0);

	tu_fault_defaults(&fo);
	fo.max_io = UNIT;
	fo.delay_us = 15000;
	fo.own_inner = true;
	in = tu_fault_stream(tu_mem_stream(v.b.data, v.b.len, "x"), &fo, "meta.vmdk", NULL);
	pr.capacity = 2 * UNIT;
	o.progress = on_progress;
	o.progress_user = &pr;
	REQUIRE_OK(dsc_stream_new_membuf("m.raw", &out, &e), &e);
	ASSERT_OK(dsc_convert(in, out, &o, &st, &e), &e);
	fprintf(stderr, "  metadata input: progress called %u times in %.2f s\n", pr.calls,
		st.seconds);
	ASSERT(pr.calls >= 3);
	dsc_stream_close(out);
	dsc_stream_close(in);

	memset(&pr, 0, sizeof(pr));
	pr.capacity = 2 * UNIT;
	pr.cancel_after = 2;
	in = tu_fault_stream(tu_mem_stream(v.b.data, v.b.len, "x"), &fo, "meta.vmdk", NULL);
	out = NULL;
	memset(&e, 0, sizeof(e));
	REQUIRE_OK(dsc_stream_new_membuf("m.raw", &out, &e), &e);
	ASSERT_ERR(dsc_convert(in, out, &o, &st, &e), DSC_ERR_CANCELLED);
	ASSERT(dsc_stream_tell(in) < v.b.len);
	dsc_stream_close(out);
	dsc_stream_close(in);
	tu_vmdk_free(&v);

	/* qemu-img's layout of a 32 GiB disk: 4 MiB of preallocated tables
	 * before the first grain marker. */
	tu_vmdk_begin(&v, TU_QEMU, 32ull << 30, "q.vmdk");
	tu_vmdk_grain(&v, 0, g, UNIT);
	tu_vmdk_end(&v, 0);
	REQUIRE(v.h.overhead * 512 >= (4u << 20));
	memset(&pr, 0, sizeof(pr));
	pr.capacity = 32ull << 30;
	pr.cancel_after = 2;
	in = tu_fault_stream(tu_mem_stream(v.b.data, v.b.len, "x"), &fo, "q.vmdk", NULL);
	out = NULL;
	memset(&e, 0, sizeof(e));
	out = tu_null_stream("q.raw");
	ASSERT_ERR(dsc_convert(in, out, &o, &st, &e), DSC_ERR_CANCELLED);
	ASSERT(dsc_stream_tell(in) < v.b.len);
	dsc_stream_close(out);
	dsc_stream_close(in);
	tu_vmdk_free(&v);
	free(g);
}

/* ---- qcow2: a small decoder to check the writer's output ---------------- */

static uint64_t be64_at(const uint8_t *b, uint64_t off) { return dscp_be64(b + off); }

/* Decode a qcow2 made by dsc (no snapshots, no backing file): the guest
 * image into *img (*cap bytes), and every refcount checked against the
 * references the image makes. False with a note on the first problem. */
static bool qcow2_decode(const uint8_t *f, size_t len, uint8_t **img, uint64_t *cap)
{
	uint32_t cb, l1_size, rtc, order;
	uint64_t cs, l1_at, rt_at, i, j, nclusters, l2e, x, *refs = NULL;
	bool ok = false;
	uint8_t *out = NULL;

	*img = NULL;
	if (len < 72 || dscp_be32(f) != QCOW2_MAGIC)
		return false;
	cb = dscp_be32(f + 20);
	cs = 1ull << cb;
	*cap = dscp_be64(f + 24);
	l1_size = dscp_be32(f + 36);
	l1_at = dscp_be64(f + 40);
	rt_at = dscp_be64(f + 48);
	rtc = dscp_be32(f + 56);
	order = dscp_be32(f + 4) >= 3 ? dscp_be32(f + 96) : 4;
	if (len % cs || order != 4 || *cap > (64u << 20)) {
		fprintf(stderr, "# qcow2_decode: size %zu, order %u\n", len, order);
		return false;
	}
	nclusters = len / cs;
	l2e = cs / 8;
	x = 62 - (cb - 8);
	refs = tu_xcalloc(nclusters * sizeof *refs);
	out = tu_xcalloc(*cap + 1);
#define REF(off)                             \
	do {                                 \
		if ((off) / cs >= nclusters) \
			goto bad;            \
		refs[(off) / cs]++;          \
	} while (0)
	REF(0);
	for (i = 0; i < (l1_size * 8 + cs - 1) / cs; i++)
		REF(l1_at + i * cs);
	for (i = 0; i < rtc; i++)
		REF(rt_at + i * cs);
	for (i = 0; i < rtc * cs / 8; i++)
		if (be64_at(f, rt_at + 8 * i))
			REF(be64_at(f, rt_at + 8 * i));
	for (i = 0; i < l1_size; i++) {
		uint64_t l2 = be64_at(f, l1_at + 8 * i) & QCOW2_L1_OFFSET_MASK;

		if (!l2)
			continue;
		REF(l2);
		for (j = 0; j < l2e; j++) {
			uint64_t e = be64_at(f, l2 + 8 * j), g = (i * l2e + j) * cs;
			size_t n = (size_t)DSC_MIN(cs, *cap - DSC_MIN(g, *cap));

			if (!e)
				continue;
			if (g >= *cap)
				goto bad;
			if (e & QCOW2_OFLAG_COMPRESSED) {
				uint64_t off = e & ((1ull << x) - 1), k;
				uint64_t ns = ((e >> x) & ((1ull << (cb - 8)) - 1)) + 1;
				uint64_t clen = ns * 512 - (off & 511);
				uint8_t *tmp = tu_xmalloc((size_t)cs);
				z_stream z = {0};

				for (k = off / cs; k <= (off + clen - 1) / cs; k++)
					REF(k * cs);
				if (off + clen > len)
					clen = len - off;
				inflateInit2(&z, -12);
				z.next_in = (uint8_t *)f + off;
				z.avail_in = (uInt)clen;
				z.next_out = tmp;
				z.avail_out = (uInt)cs;
				inflate(&z, Z_FINISH);
				inflateEnd(&z);
				if (z.avail_out) {
					free(tmp);
					goto bad;
				}
				memcpy(out + g, tmp, n);
				free(tmp);
			} else {
				uint64_t off = e & QCOW2_L2_OFFSET_MASK;

				if (!(e & QCOW2_OFLAG_COPIED))
					goto bad;
				REF(off);
				memcpy(out + g, f + off, n);
			}
		}
	}
	for (i = 0; i < nclusters; i++) {
		uint64_t rb = be64_at(f, rt_at + 8 * (i / (cs / 2))) & QCOW2_REFT_OFFSET_MASK;
		uint64_t rc = rb ? dscp_be16(f + rb + 2 * (i % (cs / 2))) : 0;

		if (rc != refs[i]) {
			fprintf(stderr, "# qcow2_decode: cluster %llu: refcount %llu, %llu refs\n",
				(unsigned long long)i, (unsigned long long)rc,
				(unsigned long long)refs[i]);
			goto bad;
		}
	}
#undef REF
	ok = true;
	*img = out;
	out = NULL;
bad:
	free(out);
	free(refs);
	return ok;
}

static size_t output_size_calls;
static uint64_t output_size_value;

static void note_output_size(void *user, uint64_t bytes)
{
	(void)user;
	output_size_calls++;
	output_size_value = bytes;
}

/* One conversion of src to qcow2 into a membuf, its seeking hidden when
 * `pipe_out`, from a source whose seeking is hidden when `pipe_in`. */
static dsc_err to_qcow2(const uint8_t *src, size_t len, bool pipe_in, bool pipe_out,
			const char *opts, bool compress, struct tu_buf *res,
			struct dsc_convert_stats *st, struct dsc_error *e)
{
	struct dsc_convert_opts o = {.src_fmt = DSC_FORMAT_RAW, .compress = compress};
	struct tu_fault_opts fo;
	dsc_stream *mem = NULL, *in, *out;
	dsc_optlist *ol = NULL;
	const uint8_t *data;
	size_t n;
	dsc_err err;

	o.dst_fmt = dsc_format_from_name("qcow2");
	o.output_size = note_output_size;
	tu_fault_defaults(&fo);
	fo.own_inner = true;
	fo.no_seek = pipe_in;
	in = tu_fault_stream(tu_mem_stream(src, len, "in.raw"), &fo, "in.raw", NULL);
	if (dsc_optlist_new(&ol, NULL) || (opts && dsc_optlist_parse(ol, opts, NULL)))
		abort();
	o.options = ol;
	if (dsc_stream_new_membuf("out.qcow2", &mem, NULL))
		abort();
	fo.own_inner = false;
	fo.no_seek = pipe_out;
	out = tu_fault_stream(mem, &fo, "out.qcow2", NULL);
	output_size_calls = 0;
	err = dsc_convert(in, out, &o, st, e);
	dsc_stream_mem_buffer(mem, &data, &n);
	memset(res, 0, sizeof *res);
	if (n)
		tu_buf_append(res, data, n);
	dsc_stream_close(out);
	dsc_stream_close(mem);
	dsc_stream_close(in);
	dsc_optlist_free(ol);
	return err;
}

/* Two passes into an output that cannot seek give a sound image of the
 * announced size; so does the seekable layout; the refusals name why. */
static void test_qcow2_two_pass(void)
{
	static const char *const opts[] = {NULL, "cluster_size=4k", "compat=0.10",
					   "cluster_size=512"};
	size_t len = 5 * 1048576 + 4321, k;
	uint8_t *src = tu_xcalloc(len), *img;
	struct dsc_convert_stats st;
	struct dsc_error e = {0};
	struct tu_buf b;
	uint64_t cap;

	tu_fill(src + 100, 70000, TU_RANDOM, 1);
	tu_fill(src + 2 * 1048576, 300000, TU_COMPRESSIBLE, 2);
	tu_fill(src + len - 1000, 1000, TU_RANDOM, 3);
	for (k = 0; k < sizeof opts / sizeof *opts; k++) {
		for (int mode = 0; mode < 3; mode++) {
			bool pipe = mode == 0, c = mode == 2;

			ASSERT_ERR(to_qcow2(src, len, false, pipe, opts[k], c, &b, &st, &e),
				   DSC_OK);
			ASSERT(qcow2_decode(b.data, b.len, &img, &cap));
			ASSERT(cap == (len + 511) / 512 * 512);
			ASSERT(img && !memcmp(img, src, len));
			ASSERT(output_size_calls == (pipe ? 1u : 0u));
			if (pipe) {
				ASSERT(output_size_value == b.len);
				/* Both passes are counted. */
				ASSERT(st.bytes_read >= 2 * (uint64_t)(70000 + 300000));
			}
			ASSERT(st.bytes_written == b.len);
			free(img);
			tu_buf_free(&b);
		}
	}
	/* A source that cannot seek cannot go to a qcow2 pipe, nor -c. */
	ASSERT_ERR(to_qcow2(src, len, true, true, NULL, false, &b, &st, &e), DSC_ERR_SEEK);
	ASSERT(strstr(tu_msg(&e), "needs a seekable source (two passes)"));
	ASSERT(b.len == 0);
	tu_buf_free(&b);
	memset(&e, 0, sizeof e);
	ASSERT_ERR(to_qcow2(src, len, false, true, NULL, true, &b, &st, &e), DSC_ERR_SEEK);
	ASSERT(strstr(tu_msg(&e), "compressed qcow2 output needs a seekable output"));
	ASSERT(b.len == 0);
	tu_buf_free(&b);
	/* An unseekable source of unknown size to a seekable output. */
	ASSERT_ERR(to_qcow2(src, len, true, false, NULL, true, &b, &st, &e), DSC_OK);
	ASSERT(qcow2_decode(b.data, b.len, &img, &cap));
	ASSERT(img && !memcmp(img, src, len));
	free(img);
	tu_buf_free(&b);
	free(src);
}

struct drain_arg {
	int fd;
	struct tu_buf got;
};

static void *drain_pipe(void *p)
{
	struct drain_arg *d = p;
	uint8_t buf[65536];
	ssize_t n;

	while ((n = read(d->fd, buf, sizeof buf)) > 0)
		tu_buf_append(&d->got, buf, (size_t)n);
	return NULL;
}

/* The same through a real pipe fd, as dsc-convert -dst - | cat has it. */
static void test_qcow2_pipe_fd(void)
{
	size_t len = 3 * 1048576 + 512;
	uint8_t *src = tu_xcalloc(len), *img = NULL;
	struct dsc_convert_opts o = {.src_fmt = DSC_FORMAT_RAW, .output_size = note_output_size};
	struct dsc_error e = {0};
	struct drain_arg d = {0};
	dsc_stream *in, *out = NULL;
	pthread_t t;
	uint64_t cap;
	int fds[2];

	tu_fill(src + 4096, 200000, TU_RANDOM, 9);
	tu_fill(src + len - 512, 512, TU_COMPRESSIBLE, 10);
	o.dst_fmt = dsc_format_from_name("qcow2");
	REQUIRE(pipe(fds) == 0);
	d.fd = fds[0];
	REQUIRE(pthread_create(&t, NULL, drain_pipe, &d) == 0);
	in = tu_mem_stream(src, len, "in.raw");
	ASSERT_ERR(dsc_stream_open_fd(fds[1], "pipe", DSC_FD_OWN, &out, &e), DSC_OK);
	ASSERT(out && !dsc_stream_can_seek(out));
	output_size_calls = 0;
	if (out)
		ASSERT_ERR(dsc_convert(in, out, &o, NULL, &e), DSC_OK);
	dsc_stream_close(out); /* closes the write end: the reader sees EOF */
	pthread_join(t, NULL);
	close(fds[0]);
	ASSERT(output_size_calls == 1 && output_size_value == d.got.len);
	ASSERT(qcow2_decode(d.got.data, d.got.len, &img, &cap));
	ASSERT(img && cap == len && !memcmp(img, src, len));
	free(img);
	tu_buf_free(&d.got);
	dsc_stream_close(in);
	free(src);
}

int main(void)
{
	TU_RUN(test_round_trips);
	TU_RUN(test_raw_to_raw);
	TU_RUN(test_progress);
	TU_RUN(test_cancel);
	TU_RUN(test_progress_zero_input);
	TU_RUN(test_progress_metadata_input);
	TU_RUN(test_max_capacity);
	TU_RUN(test_max_capacity_pipe);
	TU_RUN(test_out_of_order_vmdk);
	TU_RUN(test_errors_propagate);
	TU_RUN(test_vmdk_writer_layout);
	TU_RUN(test_raw_pipe_to_vmdk);
	TU_RUN(test_vmdk_to_vmdk);
	TU_RUN(test_empty_source);
	TU_RUN(test_vmdk_writer_unaligned);
	TU_RUN(test_vmdk_writer_bad_args);
	TU_RUN(test_writer_threads);
	TU_RUN(test_vmdk_max_capacity);
	TU_RUN(test_vmdk_writer_misuse);
	TU_RUN(test_vmdk_to_file_names_itself);
	TU_RUN(test_vmdk_writer_mid_stream);
	TU_RUN(test_qcow2_two_pass);
	TU_RUN(test_qcow2_pipe_fd);
	return tu_exit();
}
