/* test_vhdx.c - unit tests of CRC-32C and of the VHDX writer and reader.
 *
 * CRC-32C against published vectors (the "123456789" check value, RFC 3720
 * appendix B.4), in one call and in pieces. Then disks are written by the
 * VHDX writer into memory (dynamic and fixed, 1 MiB and 32 MiB blocks,
 * 512- and 4096-byte sectors) and read back by the reader from a seekable
 * stream, from a forward-only one with 1-byte reads, and cut short at
 * several points (TRUNCATED, never a crash), and with a flipped byte in
 * the current header (the other header is used) and in both.
 */
#include "testutil.h"

#include "crc32c.h"
#include "vhdx.h"

static void test_crc32c(void)
{
	uint8_t buf[48];
	uint32_t c;

	ASSERT_EQ_U64(dscp_crc32c(0, "123456789", 9), 0xe3069283u);
	ASSERT_EQ_U64(dscp_crc32c(0, "", 0), 0);
	memset(buf, 0, 32);
	ASSERT_EQ_U64(dscp_crc32c(0, buf, 32), 0x8a9136aau);
	memset(buf, 0xff, 32);
	ASSERT_EQ_U64(dscp_crc32c(0, buf, 32), 0x62a8ab43u);
	for (int i = 0; i < 32; i++)
		buf[i] = (uint8_t)i;
	ASSERT_EQ_U64(dscp_crc32c(0, buf, 32), 0x46dd794eu);
	for (int i = 0; i < 32; i++)
		buf[i] = (uint8_t)(31 - i);
	ASSERT_EQ_U64(dscp_crc32c(0, buf, 32), 0x113fdb5cu);
	/* In pieces: the same value. */
	c = dscp_crc32c(0, "1234", 4);
	c = dscp_crc32c(c, "56789", 5);
	ASSERT_EQ_U64(c, 0xe3069283u);
}

/* A disk with data in a few blocks, zeros and an odd tail. */
#define DISK_LEN (5 * VHDX_MIB + 3 * 512)
static uint8_t *make_disk(void)
{
	uint8_t *d = tu_xcalloc(DISK_LEN);

	tu_fill(d, 300000, TU_RANDOM, 1);
	tu_fill(d + 3 * VHDX_MIB + 4096, 70000, TU_COMPRESSIBLE, 2);
	tu_fill(d + DISK_LEN - 1000, 1000, TU_RANDOM, 3);
	return d;
}

/* Write `disk` as a VHDX with options `opts` into a membuf; the image
 * goes to *img (malloc'd). */
static void write_vhdx(const uint8_t *disk, size_t len, const char *opts, uint8_t **img,
		       size_t *img_len)
{
	struct dsc_error e = {0};
	struct dsc_writer_opts wo = {0};
	dsc_optlist *l = NULL;
	dsc_stream *out = NULL;
	dsc_writer *w = NULL;
	const uint8_t *data;
	size_t n;
	struct dsc_extent ext;

	*img = NULL;
	*img_len = 0;
	if (*opts) {
		REQUIRE_OK(dsc_optlist_new(&l, &e), &e);
		REQUIRE_OK(dsc_optlist_parse(l, opts, &e), &e);
	}
	REQUIRE_OK(dsc_stream_new_membuf("t.vhdx", &out, &e), &e);
	wo.capacity = len;
	wo.options = l;
	REQUIRE_OK(dsc_writer_open(out, dsc_format_from_name("vhdx"), &wo, &w, &e), &e);
	/* Out of order on purpose: the seekable writer takes any order. */
	ext.offset = VHDX_MIB;
	ext.length = len - VHDX_MIB;
	ext.data = disk + VHDX_MIB;
	ASSERT_OK(dsc_writer_put(w, &ext, &e), &e);
	ext.offset = 0;
	ext.length = VHDX_MIB;
	ext.data = disk;
	ASSERT_OK(dsc_writer_put(w, &ext, &e), &e);
	ASSERT_OK(dsc_writer_finish(w, len, &e), &e);
	dsc_stream_mem_buffer(out, &data, &n);
	*img = tu_xmalloc(n);
	memcpy(*img, data, n);
	*img_len = n;
	dsc_writer_close(w);
	dsc_stream_close(out);
	dsc_optlist_free(l);
}

/* Read img back through `in` into a disk buffer; the reader's result. */
static dsc_err read_vhdx(dsc_stream *in, uint8_t *disk, size_t len, uint64_t *cap,
			 struct dsc_error *e)
{
	dsc_reader *r = NULL;
	struct dsc_extent ext;
	dsc_err rc;

	memset(disk, 0, len);
	rc = dsc_reader_open(in, dsc_format_from_name("vhdx"), &r, e);
	if (rc != DSC_OK)
		return rc;
	*cap = dsc_reader_capacity(r);
	for (;;) {
		rc = dsc_reader_next(r, &ext, e);
		if (rc != DSC_OK || !ext.length)
			break;
		if (ext.offset + ext.length > len) {
			rc = DSC_ERR_FORMAT;
			break;
		}
		memcpy(disk + ext.offset, ext.data, ext.length);
	}
	dsc_reader_close(r);
	return rc;
}

static void round_trip(const char *opts, uint64_t want_cap)
{
	uint8_t *disk = make_disk(), *img = NULL, *back = tu_xcalloc(DISK_LEN + 4096);
	struct dsc_error e = {0};
	struct tu_fault_opts o;
	size_t img_len;
	uint64_t cap = 0;
	dsc_stream *in;

	write_vhdx(disk, DISK_LEN, opts, &img, &img_len);
	REQUIRE(img != NULL);
	/* Seekable. */
	in = tu_mem_stream(img, img_len, "t.vhdx");
	ASSERT_OK(read_vhdx(in, back, DISK_LEN + 4096, &cap, &e), &e);
	dsc_stream_close(in);
	ASSERT_EQ_U64(cap, want_cap);
	ASSERT(!memcmp(back, disk, DISK_LEN));
	ASSERT(dscp_is_zero(back + DISK_LEN, 4096));
	/* Forward-only, small reads. */
	tu_fault_defaults(&o);
	o.no_seek = true;
	o.max_io = 4093;
	o.own_inner = true;
	in = tu_fault_stream(tu_mem_stream(img, img_len, "t.vhdx"), &o, "t.vhdx", NULL);
	ASSERT_OK(read_vhdx(in, back, DISK_LEN + 4096, &cap, &e), &e);
	dsc_stream_close(in);
	ASSERT(!memcmp(back, disk, DISK_LEN));
	/* Cut short: TRUNCATED, never a crash; or, when only the unused tail
	 * of the last block went, the whole disk. */
	for (uint64_t cut = 1; cut < img_len; cut = cut * 3 + 7777) {
		struct dsc_error ce = {0};
		dsc_err rc;

		tu_fault_defaults(&o);
		o.eof_at = cut;
		o.own_inner = true;
		in = tu_fault_stream(tu_mem_stream(img, img_len, "t.vhdx"), &o, "t.vhdx", NULL);
		rc = read_vhdx(in, back, DISK_LEN + 4096, &cap, &ce);
		dsc_stream_close(in);
		if (rc == DSC_OK)
			ASSERT(cut + VHDX_DEFAULT_BLOCK > img_len && !memcmp(back, disk, DISK_LEN));
		else
			ASSERT_ERR(rc, DSC_ERR_TRUNCATED);
	}
	free(disk);
	free(back);
	free(img);
}

static void test_round_trips(void)
{
	round_trip("", DISK_LEN);
	round_trip("block_size=1M", DISK_LEN);
	round_trip("subformat=fixed,block_size=1M", DISK_LEN);
	round_trip("subformat=fixed", DISK_LEN);
	round_trip("log_size=2M,block_size=2M", DISK_LEN);
	/* 4096-byte sectors: the size rounds up to a whole sector. */
	round_trip("logical_sector_size=4096", (DISK_LEN + 4095) / 4096 * 4096);
}

static void test_headers(void)
{
	uint8_t *disk = make_disk(), *img = NULL, *back = tu_xcalloc(DISK_LEN);
	struct dsc_error e = {0};
	size_t img_len;
	uint64_t cap;
	dsc_stream *in;

	write_vhdx(disk, DISK_LEN, "block_size=1M", &img, &img_len);
	REQUIRE(img != NULL);
	/* Header 2 (sequence 2) is current; broken, header 1 is used. */
	img[VHDX_HEADER2_OFFSET + 100] ^= 1;
	in = tu_mem_stream(img, img_len, "t.vhdx");
	ASSERT_OK(read_vhdx(in, back, DISK_LEN, &cap, &e), &e);
	dsc_stream_close(in);
	ASSERT(!memcmp(back, disk, DISK_LEN));
	/* Both broken. */
	img[VHDX_HEADER1_OFFSET + 100] ^= 1;
	in = tu_mem_stream(img, img_len, "t.vhdx");
	ASSERT_ERR(read_vhdx(in, back, DISK_LEN, &cap, &e), DSC_ERR_FORMAT);
	dsc_stream_close(in);
	ASSERT(strstr(e.message, "no valid VHDX header: header 1 at byte 65536: checksum") != NULL);
	img[VHDX_HEADER1_OFFSET + 100] ^= 1;
	img[VHDX_HEADER2_OFFSET + 100] ^= 1;
	/* The first region table broken: the second is used. */
	img[VHDX_REGION1_OFFSET + 1000] ^= 1;
	in = tu_mem_stream(img, img_len, "t.vhdx");
	ASSERT_OK(read_vhdx(in, back, DISK_LEN, &cap, &e), &e);
	dsc_stream_close(in);
	ASSERT(!memcmp(back, disk, DISK_LEN));
	free(disk);
	free(back);
	free(img);
}

int main(void)
{
	TU_RUN(test_crc32c);
	TU_RUN(test_round_trips);
	TU_RUN(test_headers);
	return tu_exit();
}
