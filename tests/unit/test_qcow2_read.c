/* test_qcow2_read.c - the qcow2 reader on hand-built images in memory.
 *
 * Each image is read through the seekable walk (a memory stream) and the
 * forward walk (the same stream with seeking hidden), with 1 and 2
 * threads, and in 1-byte reads; all must give the expected disk. Cases the
 * qemu-made images of tests/cli/qcow2_read.sh do not reach: 512-byte
 * clusters, a compressed cluster whose last sector runs past the end of the
 * file, compressed clusters sharing a sector, extended-L2 subclusters of
 * every kind, data held back before its table, data behind the hold-back
 * window (not stream-ordered), and an I/O error at every region. Then
 * dsc-img check's refcount check (right counts, a zeroed and a doubled
 * refcount, a leak, an L2 table used twice, data past the end) and what
 * an inspecting reader reports and refuses (info fields, a backing file).
 */
#include "testutil.h"

#include <zlib.h>

#include "qcow2.h"

struct qimg {
	struct tu_buf b;
	unsigned cbits;
	size_t c;
	bool extl2;
	uint64_t size;
};

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static void put_be64(uint8_t *p, uint64_t v)
{
	put_be32(p, (uint32_t)(v >> 32));
	put_be32(p + 4, (uint32_t)v);
}

/* Header in cluster 0, an empty refcount table in cluster 1, the L1 in
 * cluster 2 (l1n entries), nclusters clusters in all. */
static void q_begin(struct qimg *q, unsigned cbits, bool extl2, uint64_t size, uint32_t l1n,
		    size_t nclusters)
{
	uint8_t *h;

	memset(q, 0, sizeof *q);
	q->cbits = cbits;
	q->c = (size_t)1 << cbits;
	q->extl2 = extl2;
	q->size = size;
	tu_buf_zeros(&q->b, nclusters * q->c);
	h = q->b.data;
	put_be32(h, QCOW2_MAGIC);
	put_be32(h + 4, 3);
	put_be32(h + 20, cbits);
	put_be64(h + 24, size);
	put_be32(h + 36, l1n);
	put_be64(h + 40, 2 * q->c);
	put_be64(h + 48, q->c);
	put_be32(h + 56, 1);
	put_be64(h + 72, extl2 ? QCOW2_INCOMPAT_EXTL2 : 0);
	put_be32(h + 96, 4);
	put_be32(h + 100, 112);
}

static void q_l1(struct qimg *q, uint32_t i, uint64_t l2_cluster)
{
	put_be64(q->b.data + 2 * q->c + 8 * i, (l2_cluster * q->c) | QCOW2_OFLAG_COPIED);
}

static void q_l2(struct qimg *q, uint64_t l2_cluster, size_t j, uint64_t entry, uint64_t bitmap)
{
	size_t esz = q->extl2 ? 16 : 8;
	uint8_t *p = q->b.data + l2_cluster * q->c + j * esz;

	put_be64(p, entry);
	if (q->extl2)
		put_be64(p + 8, bitmap);
}

/* Raw deflate of one cluster at byte `at` (the file grows as needed);
 * returns its L2 entry. */
static uint64_t q_compressed(struct qimg *q, uint64_t at, const uint8_t *data, size_t *zlen)
{
	uint8_t out[1 << 17];
	z_stream zs;
	unsigned x = 62 - (q->cbits - 8);
	uint64_t nsect;

	memset(&zs, 0, sizeof zs);
	if (deflateInit2(&zs, 6, Z_DEFLATED, -12, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		abort();
	zs.next_in = (Bytef *)data;
	zs.avail_in = (uInt)q->c;
	zs.next_out = out;
	zs.avail_out = sizeof out;
	deflate(&zs, Z_FINISH);
	*zlen = sizeof out - zs.avail_out;
	deflateEnd(&zs);
	if (at + *zlen > q->b.len)
		tu_buf_zeros(&q->b, at + *zlen - q->b.len);
	memcpy(q->b.data + at, out, *zlen);
	nsect = ((at + *zlen - 1) >> 9) - (at >> 9) + 1;
	return QCOW2_OFLAG_COMPRESSED | ((nsect - 1) << x) | at;
}

/* The image as "t.qcow2": seekable or forward-only, reads of at most
 * max_io bytes (0: any). */
static dsc_stream *image_stream(const struct qimg *q, bool seek, size_t max_io)
{
	struct tu_fault_opts o;

	tu_fault_defaults(&o);
	o.no_seek = !seek;
	o.max_io = max_io;
	o.own_inner = true;
	return tu_fault_stream(tu_mem_stream(q->b.data, q->b.len, "t.qcow2"), &o, "t.qcow2", NULL);
}

/* Read the image five ways; each must succeed with `want`. */
static void expect_disk(const struct qimg *q, const uint8_t *want, const char *what)
{
	static const struct {
		bool seek;
		size_t max_io;
		unsigned threads;
	} ways[] = {{true, 0, 1}, {true, 0, 2}, {false, 0, 1}, {false, 0, 2}, {false, 1, 2}};

	for (size_t k = 0; k < sizeof ways / sizeof ways[0]; k++) {
		struct dsc_error e = {0};
		dsc_stream *in = image_stream(q, ways[k].seek, ways[k].max_io);
		uint8_t *img = NULL;
		uint64_t cap = 0;

		tu_reader_threads = ways[k].threads;
		if (tu_read_image(in, dsc_format_from_name("qcow2"), ways[k].seek, &img, &cap, NULL,
				  &e) != DSC_OK) {
			tu_fail(__FILE__, __LINE__, "%s, way %zu: %s", what, k, e.message);
		} else {
			ASSERT_EQ_U64(cap, q->size);
			if (memcmp(img, want, (size_t)q->size))
				tu_fail(__FILE__, __LINE__, "%s, way %zu: wrong bytes", what, k);
		}
		free(img);
		dsc_stream_close(in);
	}
	tu_reader_threads = 0;
}

/* Read the image seekable or forward; the code and a phrase of the message. */
static void expect_fail(const struct qimg *q, bool seek, dsc_err code, const char *phrase)
{
	struct dsc_error e = {0};
	dsc_stream *in = image_stream(q, seek, 0);
	uint8_t *img = NULL;
	uint64_t cap = 0;

	ASSERT_ERR(tu_read_image(in, dsc_format_from_name("qcow2"), false, &img, &cap, NULL, &e),
		   code);
	if (!strstr(e.message, phrase))
		tu_fail(__FILE__, __LINE__, "message '%s' lacks '%s'", e.message, phrase);
	free(img);
	dsc_stream_close(in);
}

/* 512-byte clusters: a normal cluster, a zero one, an unallocated one, two
 * compressed clusters sharing a sector, and a compressed cluster at the
 * very end whose last sector is counted whole but cut by the end. */
static void test_small_clusters(void)
{
	struct qimg q;
	uint8_t *want = tu_xcalloc(8 * 512), *d;
	size_t z1, z2, z3;
	uint64_t e1, e2, e3;

	q_begin(&q, 9, false, 8 * 512, 1, 5);
	q_l1(&q, 0, 3);
	d = tu_pattern(512, TU_RANDOM, 1);
	memcpy(q.b.data + 4 * 512, d, 512);
	memcpy(want, d, 512);
	q_l2(&q, 3, 0, 4 * 512 | QCOW2_OFLAG_COPIED, 0);
	q_l2(&q, 3, 2, QCOW2_OFLAG_ZERO, 0);
	free(d);
	/* g4 and g5 packed from byte 5*512 + 7, sharing a sector. */
	d = tu_pattern(512, TU_COMPRESSIBLE, 2);
	memcpy(want + 4 * 512, d, 512);
	e1 = q_compressed(&q, 5 * 512 + 7, d, &z1);
	free(d);
	d = tu_pattern(512, TU_COMPRESSIBLE, 3);
	memcpy(want + 5 * 512, d, 512);
	e2 = q_compressed(&q, 5 * 512 + 7 + z1, d, &z2);
	free(d);
	/* g7 last in the file, its count one sector more than the file has. */
	d = tu_pattern(512, TU_COMPRESSIBLE, 4);
	memcpy(want + 7 * 512, d, 512);
	e3 = q_compressed(&q, q.b.len + 3, d, &z3);
	free(d);
	q_l2(&q, 3, 4, e1, 0);
	q_l2(&q, 3, 5, e2, 0);
	q_l2(&q, 3, 7, e3 | (1ull << (62 - 1)), 0);
	expect_disk(&q, want, "512-byte clusters");
	tu_buf_free(&q.b);
	free(want);
}

/* Extended L2, 16 KiB clusters (512-byte subclusters): allocated runs,
 * zero and unallocated subclusters in one cluster, an all-zero one with a
 * host offset, an unallocated cluster with zero bits. */
static void test_subclusters(void)
{
	struct qimg q;
	size_t c = 16384, sc = c / 32;
	uint8_t *want = tu_xcalloc(4 * c), *d = tu_pattern(c, TU_RANDOM, 9);
	uint32_t alloc = 0x0f0f00ffu, zero = 0x30f0ff00u;

	q_begin(&q, 14, true, 4 * c, 1, 6);
	q_l1(&q, 0, 3);
	memcpy(q.b.data + 4 * c, d, c);
	for (unsigned i = 0; i < 32; i++)
		if (alloc & (1u << i))
			memcpy(want + i * sc, d + i * sc, sc);
	q_l2(&q, 3, 0, 4 * c, (uint64_t)zero << 32 | alloc);
	q_l2(&q, 3, 1, 5 * c, 0xffffffffull << 32);
	q_l2(&q, 3, 2, 0, 0xffull << 32);
	memcpy(q.b.data + 5 * c, d, c); /* reads as zero all the same */
	expect_disk(&q, want, "subclusters");
	tu_buf_free(&q.b);
	free(d);
	free(want);
}

/* 64 KiB clusters: data before the L2 that maps it. Within the hold-back
 * window a pipe reads it; further back it is "not stream-ordered", which
 * the seekable walk reads all the same. */
static void test_holdback(void)
{
	struct qimg q;
	size_t c = 65536;
	uint8_t *want = tu_xcalloc(2 * c), *d = tu_pattern(c, TU_RANDOM, 5);

	/* clusters: 0 hdr, 1 reftable, 2 L1, 3 data, 4 L2 */
	q_begin(&q, 16, false, 2 * c, 1, 5);
	q_l1(&q, 0, 4);
	memcpy(q.b.data + 3 * c, d, c);
	memcpy(want + c, d, c);
	q_l2(&q, 4, 1, 3 * c | QCOW2_OFLAG_COPIED, 0);
	expect_disk(&q, want, "data one cluster before its table");
	tu_buf_free(&q.b);

	/* The L2 table 16 MiB further on: past the window (which holds back
	 * at least 4 MiB and at most about 9). */
	q_begin(&q, 16, false, 2 * c, 1, 4 + 256 + 1);
	q_l1(&q, 0, 4 + 256);
	memcpy(q.b.data + 3 * c, d, c);
	q_l2(&q, 4 + 256, 1, 3 * c | QCOW2_OFLAG_COPIED, 0);
	expect_fail(&q, false, DSC_ERR_SEEK, "is not stream-ordered (the L2 table at byte");
	{
		struct dsc_error e = {0};
		dsc_stream *in = tu_mem_stream(q.b.data, q.b.len, "t.qcow2");
		uint8_t *img = NULL;
		uint64_t cap;

		ASSERT_OK(tu_read_image(in, dsc_format_from_name("qcow2"), true, &img, &cap, NULL,
					&e),
			  &e);
		ASSERT(img && !memcmp(img, want, 2 * c));
		free(img);
		dsc_stream_close(in);
	}
	tu_buf_free(&q.b);
	free(d);
	free(want);
}

/* An I/O error at any byte, and an early end, fail cleanly either way. */
static void test_faults(void)
{
	struct qimg q;
	uint8_t *d = tu_pattern(4096, TU_COMPRESSIBLE, 7);
	size_t z;
	uint64_t at;

	q_begin(&q, 12, false, 8 * 4096, 1, 6);
	q_l1(&q, 0, 3);
	memcpy(q.b.data + 4 * 4096, d, 4096);
	q_l2(&q, 3, 0, 4 * 4096, 0);
	q_l2(&q, 3, 3, q_compressed(&q, 5 * 4096, d, &z), 0);
	for (at = 0; at < q.b.len; at += 333) {
		for (int seek = 0; seek < 2; seek++) {
			struct dsc_error e = {0};
			struct tu_fault_opts o;
			dsc_stream *in;
			uint8_t *img = NULL;
			uint64_t cap;
			dsc_err rc;

			tu_fault_defaults(&o);
			o.no_seek = !seek;
			o.own_inner = true;
			if (at % 2)
				o.fail_at = at;
			else
				o.eof_at = at;
			in = tu_fault_stream(tu_mem_stream(q.b.data, q.b.len, "t.qcow2"), &o,
					     "t.qcow2", NULL);
			rc = tu_read_image(in, dsc_format_from_name("qcow2"), false, &img, &cap,
					   NULL, &e);
			/* A pipe read to its end: only an early end past the
			 * last mapped byte is not an error (a seekable input
			 * may never read the bytes that fail). */
			if (rc != DSC_OK)
				ASSERT(e.message[0] &&
				       (rc == DSC_ERR_IO || rc == DSC_ERR_TRUNCATED));
			else if (!seek)
				ASSERT(!(at % 2) && at >= 5 * 4096 + z);
			free(img);
			dsc_stream_close(in);
		}
	}
	tu_buf_free(&q.b);
	free(d);
}

/* An image whose refcounts are right: header, refcount table, L1, L2, one
 * data cluster and the refcount block (clusters 0-5), each refcount 1. */
static void q_counted(struct qimg *q)
{
	uint8_t *d = tu_pattern(1u << 12, TU_RANDOM, 9);
	size_t i;

	q_begin(q, 12, false, 16 << 12, 1, 6);
	q_l1(q, 0, 3);
	memcpy(q->b.data + 4 * q->c, d, q->c);
	q_l2(q, 3, 1, 4 * q->c | QCOW2_OFLAG_COPIED, 0);
	put_be64(q->b.data + q->c, 5 * q->c); /* refcount table -> block */
	for (i = 0; i < 6; i++)
		q->b.data[5 * q->c + 2 * i + 1] = 1;
	free(d);
}

struct counted {
	uint64_t corruptions, leaks, allocated, end;
	dsc_err rc;
};

static void check_image(const struct qimg *q, struct counted *c)
{
	struct dsc_reader_opts ro = {.inspect = true};
	struct dsc_check_report rep = {0};
	struct dsc_error e = {0};
	dsc_stream *in = tu_mem_stream(q->b.data, q->b.len, "t.qcow2");
	dsc_reader *r = NULL;

	memset(c, 0, sizeof *c);
	c->rc = dsc_reader_open_opts(in, dsc_format_from_name("qcow2"), &ro, &r, &e);
	if (c->rc == DSC_OK)
		c->rc = dsc_reader_check(r, &rep, &e);
	REQUIRE(c->rc == DSC_OK && rep.checked);
	c->corruptions = rep.corruptions;
	c->leaks = rep.leaks;
	c->allocated = rep.allocated_clusters;
	c->end = rep.image_end_offset;
	dsc_reader_close(r);
	dsc_stream_close(in);
}

/* dsc-img check's refcount check, and what info reports. */
static void test_check(void)
{
	struct qimg q;
	struct counted c;
	struct dsc_error e = {0};
	struct dsc_extent x;
	dsc_stream *in;
	dsc_reader *r = NULL;
	size_t i;
	bool compat = false, bits = false;

	q_counted(&q);
	check_image(&q, &c);
	REQUIRE(c.corruptions == 0 && c.leaks == 0);
	REQUIRE(c.allocated == 1 && c.end == 6 * q.c);
	/* The data cluster's refcount 0: below its use, and its COPIED flag
	 * then disagrees (qemu-img check counts both). */
	q.b.data[5 * q.c + 2 * 4 + 1] = 0;
	check_image(&q, &c);
	REQUIRE(c.corruptions == 2 && c.leaks == 0);
	q.b.data[5 * q.c + 2 * 4 + 1] = 1;
	/* An unused cluster with a refcount: a leak. */
	tu_buf_zeros(&q.b, q.c);
	q.b.data[5 * q.c + 2 * 6 + 1] = 1;
	check_image(&q, &c);
	REQUIRE(c.corruptions == 0 && c.leaks == 1);
	/* Refcount 2 on the data cluster: a leak, and COPIED is wrong. */
	q.b.data[5 * q.c + 2 * 6 + 1] = 0;
	q.b.data[5 * q.c + 2 * 4 + 1] = 2;
	check_image(&q, &c);
	REQUIRE(c.corruptions == 1 && c.leaks == 1);
	q.b.data[5 * q.c + 2 * 4 + 1] = 1;
	/* Two L1 entries through one L2 table: its second use and its
	 * refcount below two uses are reported, and it is walked once (the
	 * data cluster's count stays 1). */
	put_be32(q.b.data + 36, 2);
	put_be64(q.b.data + 2 * q.c + 8, 3 * q.c | QCOW2_OFLAG_COPIED);
	check_image(&q, &c);
	REQUIRE(c.corruptions == 2 && c.leaks == 0);
	/* A data cluster past the end of the file. */
	put_be32(q.b.data + 36, 1);
	put_be64(q.b.data + 2 * q.c + 8, 0);
	q_l2(&q, 3, 2, 40 * q.c | QCOW2_OFLAG_COPIED, 0);
	check_image(&q, &c);
	REQUIRE(c.corruptions == 2 && c.allocated == 2); /* past the end; COPIED vs 0 */
	tu_buf_free(&q.b);

	/* info: the format-specific fields; a backing file opens only to
	 * inspect, and reading it is refused. */
	q_counted(&q);
	in = tu_mem_stream(q.b.data, q.b.len, "t.qcow2");
	REQUIRE_OK(dsc_reader_open(in, dsc_format_from_name("qcow2"), &r, &e), &e);
	REQUIRE(dsc_reader_cluster_size(r) == q.c && !dsc_reader_backing_file(r));
	for (i = 0; i < dsc_reader_info_count(r); i++) {
		const struct dsc_info_item *it = dsc_reader_info_at(r, i);

		if (!strcmp(it->key, "compat"))
			compat = it->type == DSC_INFO_STRING && !strcmp(it->str, "1.1");
		if (!strcmp(it->key, "refcount-bits"))
			bits = it->type == DSC_INFO_UINT && it->num == 16;
	}
	REQUIRE(compat && bits && !dsc_reader_info_at(r, i));
	dsc_reader_close(r);
	dsc_stream_close(in);
	memcpy(q.b.data + 1024, "base.img", 8); /* in the header cluster */
	put_be64(q.b.data + 8, 1024);
	put_be32(q.b.data + 16, 8);
	in = tu_mem_stream(q.b.data, q.b.len, "t.qcow2");
	REQUIRE(dsc_reader_open(in, dsc_format_from_name("qcow2"), &r, &e) == DSC_ERR_UNSUPPORTED);
	REQUIRE(strstr(e.message, "backing file 'base.img'"));
	dsc_stream_close(in);
	memset(&e, 0, sizeof e);
	in = tu_mem_stream(q.b.data, q.b.len, "t.qcow2");
	{
		struct dsc_reader_opts ro = {.inspect = true};

		REQUIRE_OK(dsc_reader_open_opts(in, dsc_format_from_name("qcow2"), &ro, &r, &e),
			   &e);
	}
	REQUIRE(dsc_reader_backing_file(r) && !strcmp(dsc_reader_backing_file(r), "base.img"));
	REQUIRE(dsc_reader_next(r, &x, &e) == DSC_ERR_UNSUPPORTED);
	REQUIRE(strstr(e.message, "t.qcow2: has a backing file 'base.img'"));
	dsc_reader_close(r);
	dsc_stream_close(in);
	tu_buf_free(&q.b);
}

int main(void)
{
	TU_RUN(test_small_clusters);
	TU_RUN(test_subclusters);
	TU_RUN(test_holdback);
	TU_RUN(test_faults);
	TU_RUN(test_check);
	return tu_exit();
}
