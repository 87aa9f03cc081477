/* test_vhd.c - the VHD writer and reader in memory.
 *
 * The geometry search and the size rule against values qemu-img 7.2
 * gives; a disk written dynamic, fixed, force_size and azure into a memory
 * buffer and read back seekable, forward-only and in 1-byte reads; and an
 * I/O error or an early end at every region of the file, which must fail
 * cleanly (a code and a message), never crash.
 */
#include "testutil.h"

#include "vhd.h"

static void test_geometry(void)
{
	uint16_t c;
	uint8_t h, s;
	uint8_t f[VHD_FOOTER_LEN] = {0};

	/* qemu-img convert -O vpc of 5 000 000 bytes: 144/4/17. */
	dscp_vhd_geometry(9792, &c, &h, &s);
	ASSERT(c == 144 && h == 4 && s == 17);
	/* Past 65535*16*63 sectors: 255 sectors per track, 16 heads. */
	dscp_vhd_geometry(65535ull * 16 * 63 + 1000, &c, &h, &s);
	ASSERT(s == 255 && h == 16);
	dscp_vhd_geometry(UINT64_MAX, &c, &h, &s);
	ASSERT(c == 65535 && h == 16 && s == 255);

	/* The size rule: CHS for "qemu", current_size for "qem2" and the
	 * others, and for the maximum geometry whatever the creator. */
	vhd_put64(f + VHD_F_CUR_SIZE, 4u << 20);
	vhd_put16(f + VHD_F_CYLS, 144);
	f[VHD_F_HEADS] = 4;
	f[VHD_F_SPT] = 17;
	memcpy(f + VHD_F_CREATOR_APP, "qemu", 4);
	ASSERT_EQ_U64(dscp_vhd_footer_size(f), 9792ull * 512);
	memcpy(f + VHD_F_CREATOR_APP, "wa\0\0", 4);
	ASSERT_EQ_U64(dscp_vhd_footer_size(f), 9792ull * 512);
	memcpy(f + VHD_F_CREATOR_APP, "tap\0", 4);
	ASSERT_EQ_U64(dscp_vhd_footer_size(f), 4u << 20);
	memcpy(f + VHD_F_CREATOR_APP, "win ", 4);
	ASSERT_EQ_U64(dscp_vhd_footer_size(f), 4u << 20);
	memcpy(f + VHD_F_CREATOR_APP, "vpc ", 4);
	vhd_put16(f + VHD_F_CYLS, 65535);
	f[VHD_F_HEADS] = 16;
	f[VHD_F_SPT] = 255;
	ASSERT_EQ_U64(dscp_vhd_footer_size(f), 4u << 20);
}

/* Write `len` bytes of `raw` (its non-zero 4 KiB units as extents) as a
 * VHD with options `opts` ("k=v,..." or NULL) into a memory buffer. */
static uint8_t *write_vhd(const uint8_t *raw, size_t len, const char *opts, size_t *out_len)
{
	struct dsc_error e = {0};
	struct dsc_writer_opts wo = {.capacity = len};
	dsc_optlist *ol = NULL;
	dsc_stream *out = NULL;
	dsc_writer *w = NULL;
	const uint8_t *data;
	uint8_t *copy = NULL;
	size_t n;

	if (opts &&
	    (dsc_optlist_new(&ol, &e) != DSC_OK || dsc_optlist_parse(ol, opts, &e) != DSC_OK))
		goto fail;
	wo.options = ol;
	if (dsc_stream_new_membuf("t.vhd", &out, &e) != DSC_OK ||
	    dsc_writer_open(out, dsc_format_from_name("vhd"), &wo, &w, &e) != DSC_OK)
		goto fail;
	for (size_t off = 0; off < len; off += 4096) {
		struct dsc_extent x = {.offset = off, .length = DSC_MIN(4096, len - off)};

		x.data = raw + off;
		if (!dscp_is_zero(x.data, x.length) && dsc_writer_put(w, &x, &e) != DSC_OK)
			goto fail;
	}
	if (dsc_writer_finish(w, len, &e) != DSC_OK)
		goto fail;
	dsc_stream_mem_buffer(out, &data, &n);
	copy = tu_xmalloc(n);
	memcpy(copy, data, n);
	*out_len = n;
	goto out;
fail:
	tu_fail(__FILE__, __LINE__, "writing %s: %s", opts ? opts : "defaults", tu_msg(&e));
out:
	dsc_writer_close(w);
	dsc_stream_close(out);
	dsc_optlist_free(ol);
	return copy;
}

static dsc_stream *image_stream(const uint8_t *b, size_t len, bool seek, size_t max_io,
				uint64_t fail_at, uint64_t eof_at)
{
	struct tu_fault_opts o;

	tu_fault_defaults(&o);
	o.no_seek = !seek;
	o.max_io = max_io;
	o.fail_at = fail_at;
	o.eof_at = eof_at;
	o.own_inner = true;
	return tu_fault_stream(tu_mem_stream(b, len, "t.vhd"), &o, "t.vhd", NULL);
}

/* The image reads as `raw` padded with zeros to `vsize`, three ways. */
static void expect_disk(const uint8_t *b, size_t len, const uint8_t *raw, size_t raw_len,
			uint64_t vsize, const char *what)
{
	static const struct {
		bool seek;
		size_t max_io;
	} ways[] = {{true, 0}, {false, 0}, {false, 1}};

	for (size_t k = 0; k < sizeof ways / sizeof ways[0]; k++) {
		struct dsc_error e = {0};
		dsc_stream *in =
			image_stream(b, len, ways[k].seek, ways[k].max_io, UINT64_MAX, UINT64_MAX);
		uint8_t *img = NULL;
		uint64_t cap = 0;

		if (tu_read_image(in, dsc_format_from_name("vhd"), ways[k].seek, &img, &cap, NULL,
				  &e) != DSC_OK) {
			tu_fail(__FILE__, __LINE__, "%s, way %zu: %s", what, k, tu_msg(&e));
		} else {
			ASSERT_EQ_U64(cap, vsize);
			if (memcmp(img, raw, raw_len) ||
			    !dscp_is_zero(img + raw_len, vsize - raw_len))
				tu_fail(__FILE__, __LINE__, "%s, way %zu: wrong bytes", what, k);
		}
		free(img);
		dsc_stream_close(in);
	}
}

/* An I/O error and an early end at each of `n` offsets: a clean failure. */
static void expect_faults(const uint8_t *b, size_t len, const uint64_t *at, size_t n,
			  const char *what)
{
	for (size_t i = 0; i < n; i++)
		for (int seek = 0; seek < 2; seek++)
			for (int eof = 0; eof < 2; eof++) {
				struct dsc_error e = {0};
				dsc_stream *in =
					image_stream(b, len, seek, 0, eof ? UINT64_MAX : at[i],
						     eof ? at[i] : UINT64_MAX);
				uint8_t *img = NULL;
				uint64_t cap;
				dsc_err rc = tu_read_image(in, dsc_format_from_name("vhd"), false,
							   &img, &cap, NULL, &e);

				if (rc == DSC_OK || !e.message[0])
					tu_fail(__FILE__, __LINE__, "%s: %s at byte %llu (%s): %s",
						what, eof ? "end" : "I/O error",
						(unsigned long long)at[i],
						seek ? "seekable" : "forward",
						rc == DSC_OK ? "read anyway" : "no message");
				else if (!eof && rc != DSC_ERR_IO)
					tu_fail(__FILE__, __LINE__, "%s: I/O error at %llu gave %s",
						what, (unsigned long long)at[i], dsc_err_name(rc));
				free(img);
				dsc_stream_close(in);
			}
}

static void test_round_trips(void)
{
	/* 5 MiB + 1000 bytes: three 2 MiB blocks, the middle one all zeros;
	 * data in the first and the last, at odd places. */
	const size_t len = (5u << 20) + 1000;
	uint8_t *raw = tu_xcalloc(len);
	static const struct {
		const char *opts;
		uint64_t vsize; /* what qemu-img makes of the same size */
		bool fixed;
	} kinds[] = {
		{NULL, 5257216, false},
		{"subformat=fixed", 5257216, true},
		{"force_size=on", 5243904, false},
		{"subformat=fixed,force_size=on", 5243904, true},
		{"azure=on", 6u << 20, true},
	};

	tu_fill(raw + 1000, 70000, TU_RANDOM, 1);
	tu_fill(raw + (4u << 20) + 512, 300000, TU_RANDOM, 2);
	tu_fill(raw + len - 900, 900, TU_RANDOM, 3);
	for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
		const char *what = kinds[k].opts ? kinds[k].opts : "dynamic";
		size_t n = 0;
		uint8_t *b = write_vhd(raw, len, kinds[k].opts, &n);

		if (!b)
			continue;
		if (kinds[k].fixed) {
			ASSERT_EQ_U64(n, kinds[k].vsize + 512);
		} else {
			/* Two data blocks of bitmap + 2 MiB after the header and BAT. */
			ASSERT_EQ_U64(n, 1536 + 512 + 2 * (512 + (2u << 20)) + 512);
			ASSERT(!memcmp(b, b + n - 512, 512));
		}
		ASSERT(!memcmp(b + n - 512, "conectix", 8));
		ASSERT_EQ_U64(dscp_be32(b + n - 512 + VHD_F_CHECKSUM),
			      dscp_vhd_checksum(b + n - 512, 512, VHD_F_CHECKSUM));
		expect_disk(b, n, raw, len, kinds[k].vsize, what);
		{
			uint64_t at[] = {0,       100,    511,  512,
					 700,     1536,   2100, 2048 + 512 + 4096,
					 n - 600, n - 100};

			/* A forward read of a dynamic disk (and a stream that
			 * ends early has no known size, so it is read forward)
			 * stops after the last block: its trailing footer is
			 * only checked from a file (tests/cli/vhd.sh). */
			expect_faults(b, n, at, sizeof at / sizeof at[0] - !kinds[k].fixed, what);
		}
		free(b);
	}
	free(raw);
}

int main(void)
{
	TU_RUN(test_geometry);
	TU_RUN(test_round_trips);
	return tu_exit();
}
