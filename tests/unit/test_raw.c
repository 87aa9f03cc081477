/* test_raw.c - unit tests of the raw reader and the raw writer.
 *
 * Reader: all-zero 64 KiB units are holes, everything else comes back as
 * data at its offset; the capacity is the input size, known up front on
 * memory and files and only at the end on a pipe.
 * Writer: the output is exactly `capacity` bytes; holes stay holes on a
 * seekable file (checked with st_blocks), zeros are written to a pipe,
 * prealloc reserves the blocks.
 */
#include "testutil.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define UNIT 65536u

/* Read a raw image and check: content, capacity, and that no extent
 * overlaps an all-zero unit of the source. */
static void check_raw_read(const uint8_t *src, size_t len, bool pipe_like, bool one_byte,
			   const char *what, int line)
{
	struct dsc_error e = {0};
	dsc_stream *s = tu_mem_stream(src, len, "disk.raw");
	dsc_reader *r = NULL;
	uint8_t *img = tu_xcalloc(len);
	uint64_t prev_end = 0;
	size_t n = 0;
	dsc_err err;

	if (pipe_like || one_byte) {
		struct tu_fault_opts o;
		tu_fault_defaults(&o);
		o.no_seek = pipe_like;
		o.max_io = one_byte ? 1 : 0;
		o.own_inner = true;
		s = tu_fault_stream(s, &o, "disk.raw", NULL);
	}
	err = dsc_reader_open(s, DSC_FORMAT_RAW, &r, &e);
	if (err) {
		tu_fail(__FILE__, line, "%s: open: %s (%s)", what, dsc_err_name(err), e.message);
		goto out;
	}
	if (dsc_reader_format(r) != DSC_FORMAT_RAW)
		tu_fail(__FILE__, line, "%s: format %d", what, (int)dsc_reader_format(r));
	if (pipe_like && dsc_reader_capacity(r) != DSC_CAPACITY_UNKNOWN)
		tu_fail(__FILE__, line, "%s: pipe capacity known before the end: %llu", what,
			(unsigned long long)dsc_reader_capacity(r));
	if (!pipe_like && dsc_reader_capacity(r) != len)
		tu_fail(__FILE__, line, "%s: capacity %llu before reading, want %zu", what,
			(unsigned long long)dsc_reader_capacity(r), len);
	for (;;) {
		struct dsc_extent x;
		uint64_t u;
		err = dsc_reader_next(r, &x, &e);
		if (err) {
			tu_fail(__FILE__, line, "%s: next: %s (%s)", what, dsc_err_name(err),
				e.message);
			goto out;
		}
		if (x.length == 0)
			break;
		n++;
		if (x.offset < prev_end || x.offset + x.length > len || !x.data) {
			tu_fail(__FILE__, line, "%s: bad extent %llu+%zu (prev end %llu, len %zu)",
				what, (unsigned long long)x.offset, x.length,
				(unsigned long long)prev_end, len);
			goto out;
		}
		prev_end = x.offset + x.length;
		memcpy(img + x.offset, x.data, x.length);
		for (u = x.offset / UNIT * UNIT; u < x.offset + x.length; u += UNIT) {
			size_t ul = (size_t)DSC_MIN(UNIT, len - u);
			if (dscp_is_zero(src + u, ul)) {
				tu_fail(__FILE__, line,
					"%s: extent %llu+%zu covers the all-zero unit at %llu",
					what, (unsigned long long)x.offset, x.length,
					(unsigned long long)u);
				break;
			}
		}
	}
	if (dsc_reader_capacity(r) != len)
		tu_fail(__FILE__, line, "%s: capacity %llu at the end, want %zu", what,
			(unsigned long long)dsc_reader_capacity(r), len);
	if (memcmp(img, src, len) != 0)
		tu_fail(__FILE__, line, "%s: content differs", what);
	/* After the end, the end again. */
	{
		struct dsc_extent x;
		ASSERT_OK(dsc_reader_next(r, &x, &e), &e);
		ASSERT(x.length == 0);
	}
out:
	dsc_reader_close(r);
	dsc_stream_close(s);
	free(img);
}

static void all_ways(const uint8_t *src, size_t len, bool one_byte_too, const char *what)
{
	check_raw_read(src, len, false, false, what, __LINE__);
	check_raw_read(src, len, true, false, what, __LINE__);
	if (one_byte_too)
		check_raw_read(src, len, true, true, what, __LINE__);
}

static void test_reader_sizes(void)
{
	static const size_t sizes[] = {1,        511,           512,      1000,
				       UNIT - 1, UNIT,          UNIT + 1, 3 * UNIT + 512,
				       1u << 20, (1u << 20) + 7};
	size_t i;

	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		char what[64];
		uint8_t *src = tu_pattern(sizes[i], TU_RANDOM, (uint32_t)i + 1);
		snprintf(what, sizeof(what), "random %zu", sizes[i]);
		all_ways(src, sizes[i], sizes[i] <= 200000, what);
		free(src);

		src = tu_pattern(sizes[i], TU_SPARSE, (uint32_t)i);
		snprintf(what, sizeof(what), "sparse %zu", sizes[i]);
		all_ways(src, sizes[i], sizes[i] <= 200000, what);
		free(src);

		src = tu_xcalloc(sizes[i]);
		snprintf(what, sizeof(what), "zero %zu", sizes[i]);
		all_ways(src, sizes[i], sizes[i] <= 200000, what);
		free(src);
	}
}

static void test_reader_holes(void)
{
	/* 20 units: data in units 0, 5, 6 and the last byte of unit 19. A
	 * single non-zero byte makes its unit data. */
	size_t len = 20 * UNIT;
	uint8_t *src = tu_xcalloc(len);
	struct dsc_error e = {0};
	dsc_stream *s;
	dsc_reader *r = NULL;
	uint64_t covered = 0;

	memset(src, 0x11, 100);
	tu_fill(src + 5 * UNIT, 2 * UNIT, TU_RANDOM, 5);
	src[len - 1] = 1;
	all_ways(src, len, false, "holes");

	s = tu_mem_stream(src, len, "holes.raw");
	ASSERT_OK(dsc_reader_open(s, DSC_FORMAT_UNKNOWN, &r, &e), &e);
	if (r) {
		ASSERT(dsc_reader_format(r) == DSC_FORMAT_RAW);
		for (;;) {
			struct dsc_extent x;
			if (dsc_reader_next(r, &x, &e) != DSC_OK || x.length == 0)
				break;
			covered += x.length;
		}
		/* At most the 4 data units; at least the bytes that are data. */
		ASSERT(covered <= 4 * UNIT);
		ASSERT(covered >= 2 * UNIT + 2);
		dsc_reader_close(r);
	}
	dsc_stream_close(s);
	free(src);
}

static void test_reader_io_error(void)
{
	uint8_t *src = tu_pattern(5 * UNIT, TU_RANDOM, 31);
	static const uint64_t at[] = {0, 1, UNIT, 3 * UNIT + 17, 5 * UNIT - 1};
	size_t i;

	for (i = 0; i < sizeof(at) / sizeof(at[0]); i++) {
		struct tu_fault_opts o;
		struct dsc_error e = {0};
		uint8_t *img = NULL;
		uint64_t cap;
		dsc_stream *s;
		dsc_err err;

		tu_fault_defaults(&o);
		o.fail_at = at[i];
		o.no_seek = i % 2;
		o.own_inner = true;
		s = tu_fault_stream(tu_mem_stream(src, 5 * UNIT, "x"), &o, "bad.raw", NULL);
		err = tu_read_image(s, DSC_FORMAT_RAW, true, &img, &cap, NULL, &e);
		ASSERT_ERR(err, DSC_ERR_IO);
		ASSERT(strstr(e.message, "bad.raw") != NULL);
		free(img);
		dsc_stream_close(s);
	}
	free(src);
}

static void test_reader_file_holes(void)
{
	/* A sparse regular file: 64 MiB with two small writes. The reader
	 * uses SEEK_DATA, so it must be fast and return just the data. */
	char *dir = tu_tmpdir(), path[4200];
	struct dsc_error e = {0};
	dsc_stream *s = NULL;
	dsc_reader *r = NULL;
	uint64_t covered = 0;
	bool seen_a = false, seen_b = false;
	int fd;

	snprintf(path, sizeof(path), "%s/sparse.raw", dir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	REQUIRE(fd >= 0);
	ASSERT(ftruncate(fd, 64 << 20) == 0);
	ASSERT(pwrite(fd, "A", 1, 10 << 20) == 1);
	ASSERT(pwrite(fd, "B", 1, (64 << 20) - 1) == 1);
	close(fd);
	ASSERT_OK(dsc_stream_open_file(path, &s, &e), &e);
	if (s)
		ASSERT_OK(dsc_reader_open(s, DSC_FORMAT_UNKNOWN, &r, &e), &e);
	if (r) {
		ASSERT_EQ_U64(dsc_reader_capacity(r), 64 << 20);
		for (;;) {
			struct dsc_extent x;
			if (dsc_reader_next(r, &x, &e) != DSC_OK) {
				tu_fail(__FILE__, __LINE__, "next: %s", e.message);
				break;
			}
			if (x.length == 0)
				break;
			covered += x.length;
			if (x.offset <= (10u << 20) && x.offset + x.length > (10u << 20))
				seen_a = x.data[(10u << 20) - x.offset] == 'A';
			if (x.offset + x.length == (64u << 20))
				seen_b = x.data[x.length - 1] == 'B';
		}
		ASSERT(seen_a && seen_b);
		ASSERT(covered <= 2 * UNIT);
		/* The holes were skipped, not read: far fewer bytes than 64 MiB
		 * came through the stream (one file system block per write). */
		if (tu_fs_sparse(dir))
			ASSERT(dsc_stream_bytes(s) < (8u << 20));
		dsc_reader_close(r);
	}
	dsc_stream_close(s);
	tu_rmdir_all(dir);
	free(dir);
}

/* ---- writer -------------------------------------------------------------- */

static dsc_err put_units(dsc_writer *w, const uint8_t *src, size_t len, struct dsc_error *e)
{
	size_t off;

	for (off = 0; off < len; off += UNIT) {
		struct dsc_extent x = {off, DSC_MIN(UNIT, len - off), src + off};
		dsc_err err;
		if (dscp_is_zero(x.data, x.length))
			continue;
		err = dsc_writer_put(w, &x, e);
		if (err)
			return err;
	}
	return DSC_OK;
}

/* Open a raw writer on s, put src's non-zero units and finish at len. */
static void write_units(dsc_stream *s, const struct dsc_writer_opts *o, const uint8_t *src,
			size_t len)
{
	struct dsc_error e = {0};
	dsc_writer *w = NULL;

	ASSERT_OK(dsc_writer_open(s, DSC_FORMAT_RAW, o, &w, &e), &e);
	if (w) {
		ASSERT_OK(put_units(w, src, len, &e), &e);
		ASSERT_OK(dsc_writer_finish(w, len, &e), &e);
		dsc_writer_close(w);
	}
}

static void write_membuf(const uint8_t *src, size_t len, bool pipe_like, const char *what, int line)
{
	struct dsc_error e = {0};
	struct dsc_writer_opts o = {0};
	dsc_stream *mb = NULL, *s;
	dsc_writer *w = NULL;
	struct tu_fault *f = NULL;
	const uint8_t *data;
	size_t dlen;
	dsc_err err;

	if (dsc_stream_new_membuf("out.raw", &mb, &e)) {
		tu_fail(__FILE__, line, "%s: membuf: %s", what, e.message);
		return;
	}
	s = mb;
	if (pipe_like) {
		struct tu_fault_opts fo;
		tu_fault_defaults(&fo);
		fo.no_seek = true;
		s = tu_fault_stream(mb, &fo, "out.raw", &f);
	}
	o.capacity = len;
	err = dsc_writer_open(s, DSC_FORMAT_RAW, &o, &w, &e);
	if (!err)
		err = put_units(w, src, len, &e);
	if (!err)
		err = dsc_writer_finish(w, len, &e);
	if (err) {
		tu_fail(__FILE__, line, "%s: %s (%s)", what, dsc_err_name(err), e.message);
		goto out;
	}
	dsc_stream_mem_buffer(mb, &data, &dlen);
	if (dlen != len)
		tu_fail(__FILE__, line, "%s: output %zu bytes, want %zu", what, dlen, len);
	else if (len && memcmp(data, src, len) != 0)
		tu_fail(__FILE__, line, "%s: content differs", what);
	if (f && f->seeks)
		tu_fail(__FILE__, line, "%s: seeked on a pipe", what);
out:
	dsc_writer_close(w);
	if (s != mb)
		dsc_stream_close(s);
	dsc_stream_close(mb);
}

static void test_writer_membuf(void)
{
	static const size_t sizes[] = {1, 512, 1000, UNIT + 1, 10 * UNIT + 300};
	size_t i;

	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		uint8_t *src = tu_pattern(sizes[i], TU_SPARSE, 0);
		char what[64];
		snprintf(what, sizeof(what), "sparse %zu", sizes[i]);
		write_membuf(src, sizes[i], false, what, __LINE__);
		snprintf(what, sizeof(what), "sparse %zu to a pipe", sizes[i]);
		write_membuf(src, sizes[i], true, what, __LINE__);
		free(src);

		src = tu_xcalloc(sizes[i]);
		snprintf(what, sizeof(what), "zero %zu", sizes[i]);
		write_membuf(src, sizes[i], false, what, __LINE__);
		snprintf(what, sizeof(what), "zero %zu to a pipe", sizes[i]);
		write_membuf(src, sizes[i], true, what, __LINE__);
		free(src);
	}
}

static void test_writer_out_of_order(void)
{
	uint8_t *src = tu_pattern(4 * UNIT, TU_RANDOM, 41);
	struct dsc_error e = {0};
	struct dsc_writer_opts o = {0};
	struct tu_fault_opts fo;
	dsc_stream *mb = NULL, *s;
	dsc_writer *w = NULL;
	const uint8_t *data;
	size_t dlen;
	struct dsc_extent hi = {2 * UNIT, UNIT, src + 2 * UNIT}, lo = {0, UNIT, src};

	/* Seekable: fine, and the result is right. */
	REQUIRE_OK(dsc_stream_new_membuf("ooo.raw", &mb, &e), &e);
	o.capacity = 4 * UNIT;
	ASSERT_OK(dsc_writer_open(mb, DSC_FORMAT_RAW, &o, &w, &e), &e);
	if (w) {
		ASSERT_OK(dsc_writer_put(w, &hi, &e), &e);
		ASSERT_OK(dsc_writer_put(w, &lo, &e), &e);
		ASSERT_OK(dsc_writer_finish(w, 4 * UNIT, &e), &e);
		dsc_stream_mem_buffer(mb, &data, &dlen);
		ASSERT_EQ_U64(dlen, 4 * UNIT);
		ASSERT(dlen == 4 * UNIT && memcmp(data, src, UNIT) == 0 &&
		       dscp_is_zero(data + UNIT, UNIT) &&
		       memcmp(data + 2 * UNIT, src + 2 * UNIT, UNIT) == 0 &&
		       dscp_is_zero(data + 3 * UNIT, UNIT));
		dsc_writer_close(w);
		w = NULL;
	}
	dsc_stream_close(mb);

	/* Not seekable: a clear error naming the output. */
	REQUIRE_OK(dsc_stream_new_membuf("mb", &mb, &e), &e);
	tu_fault_defaults(&fo);
	fo.no_seek = true;
	fo.own_inner = true;
	s = tu_fault_stream(mb, &fo, "pipe-out", NULL);
	ASSERT_OK(dsc_writer_open(s, DSC_FORMAT_RAW, &o, &w, &e), &e);
	if (w) {
		dsc_err err;
		memset(&e, 0, sizeof(e));
		ASSERT_OK(dsc_writer_put(w, &hi, &e), &e);
		/* The writer may buffer: the error may come with this put or
		 * with finish, but it must come. */
		err = dsc_writer_put(w, &lo, &e);
		if (err == DSC_OK)
			err = dsc_writer_finish(w, 4 * UNIT, &e);
		ASSERT(err != DSC_OK);
		ASSERT(strstr(e.message, "pipe-out") != NULL);
		/* Finishing a failed writer must fail too. */
		ASSERT(dsc_writer_finish(w, 4 * UNIT, NULL) != DSC_OK);
		dsc_writer_close(w);
	}
	dsc_stream_close(s);
	dsc_writer_close(NULL);

	free(src);
}

static void test_writer_extent_past_capacity(void)
{
	uint8_t *src = tu_pattern(UNIT, TU_RANDOM, 42);
	struct dsc_error e = {0};
	struct dsc_writer_opts o = {0};
	dsc_stream *mb = NULL;
	dsc_writer *w = NULL;
	struct dsc_extent x = {UNIT, UNIT, src};

	REQUIRE_OK(dsc_stream_new_membuf("cap.raw", &mb, &e), &e);
	o.capacity = UNIT;
	ASSERT_OK(dsc_writer_open(mb, DSC_FORMAT_RAW, &o, &w, &e), &e);
	if (w) {
		dsc_err err = dsc_writer_put(w, &x, &e);
		if (err == DSC_OK)
			err = dsc_writer_finish(w, UNIT, &e);
		ASSERT(err != DSC_OK);
		dsc_writer_close(w);
	}
	dsc_stream_close(mb);
	free(src);
}

static void test_writer_file_sparse(void)
{
	char *dir = tu_tmpdir(), path[4200];
	struct dsc_error e = {0};
	struct dsc_writer_opts o = {0};
	dsc_stream *s = NULL;
	dsc_writer *w = NULL;
	uint8_t *src = tu_pattern(UNIT, TU_RANDOM, 43);
	uint64_t cap = (1ull << 30) + 1000; /* 1 GiB + 1000: not a multiple of anything */
	struct stat st;

	snprintf(path, sizeof(path), "%s/sparse.raw", dir);
	ASSERT_OK(dsc_stream_create_file(path, 0, &s, &e), &e);
	if (!s)
		goto out;
	o.capacity = cap;
	ASSERT_OK(dsc_writer_open(s, DSC_FORMAT_RAW, &o, &w, &e), &e);
	if (w) {
		struct dsc_extent a = {0, UNIT, src}, b = {512ull << 20, UNIT, src};
		ASSERT_OK(dsc_writer_put(w, &a, &e), &e);
		ASSERT_OK(dsc_writer_put(w, &b, &e), &e);
		/* Nothing visible before finish. */
		ASSERT(stat(path, &st) != 0);
		ASSERT_OK(dsc_writer_finish(w, cap, &e), &e);
		dsc_writer_close(w);
	}
	dsc_stream_close(s);
	REQUIRE(stat(path, &st) == 0);
	ASSERT_EQ_U64(st.st_size, cap);
	/* Two 64 KiB extents: well under 1 MiB allocated. */
	if (tu_fs_sparse(dir) && (uint64_t)st.st_blocks * 512 >= (1u << 20))
		tu_fail(__FILE__, __LINE__, "sparse output allocates %llu bytes",
			(unsigned long long)st.st_blocks * 512);
	{
		int fd = open(path, O_RDONLY);
		uint8_t buf[UNIT];
		ASSERT(fd >= 0);
		ASSERT(pread(fd, buf, UNIT, 512ull << 20) == (ssize_t)UNIT &&
		       memcmp(buf, src, UNIT) == 0);
		ASSERT(pread(fd, buf, 1000, 1ull << 30) == 1000 && dscp_is_zero(buf, 1000));
		ASSERT(pread(fd, buf, UNIT, UNIT) == (ssize_t)UNIT && dscp_is_zero(buf, UNIT));
		close(fd);
	}
out:
	tu_rmdir_all(dir);
	free(dir);
	free(src);
}

static void test_writer_file_trailing_hole(void)
{
	/* Only zeros: the size must still be the capacity (ftruncate). */
	char *dir = tu_tmpdir(), path[4200];
	struct dsc_error e = {0};
	struct dsc_writer_opts o = {0};
	dsc_stream *s = NULL;
	dsc_writer *w = NULL;
	struct stat st;

	snprintf(path, sizeof(path), "%s/zero.raw", dir);
	ASSERT_OK(dsc_stream_create_file(path, 0, &s, &e), &e);
	if (!s)
		goto out;
	o.capacity = DSC_CAPACITY_UNKNOWN;
	ASSERT_OK(dsc_writer_open(s, DSC_FORMAT_RAW, &o, &w, &e), &e);
	if (w) {
		ASSERT_OK(dsc_writer_finish(w, 5000000, &e), &e);
		dsc_writer_close(w);
	}
	dsc_stream_close(s);
	ASSERT(stat(path, &st) == 0 && st.st_size == 5000000);
out:
	tu_rmdir_all(dir);
	free(dir);
}

static void test_writer_unfinished_file(void)
{
	char *dir = tu_tmpdir(), path[4200];
	struct dsc_error e = {0};
	struct dsc_writer_opts o = {0};
	dsc_stream *s = NULL;
	dsc_writer *w = NULL;
	uint8_t *src = tu_pattern(UNIT, TU_RANDOM, 44);

	snprintf(path, sizeof(path), "%s/abandoned.raw", dir);
	ASSERT_OK(dsc_stream_create_file(path, 0, &s, &e), &e);
	if (!s)
		goto out;
	o.capacity = 4 * UNIT;
	ASSERT_OK(dsc_writer_open(s, DSC_FORMAT_RAW, &o, &w, &e), &e);
	if (w) {
		struct dsc_extent a = {0, UNIT, src};
		ASSERT_OK(dsc_writer_put(w, &a, &e), &e);
		dsc_writer_close(w);
	}
	dsc_stream_close(s);
	ASSERT(tu_dir_count(dir) == 0);
out:
	tu_rmdir_all(dir);
	free(dir);
	free(src);
}

/* prealloc reserves the whole capacity: at open when the size is known,
 * at finish when it is known only then (a pipe source). */
static void prealloc_case(bool known, uint64_t cap, uint32_t seed)
{
	char *dir = tu_tmpdir(), path[4200];
	struct dsc_error e = {0};
	struct dsc_writer_opts o = {0};
	dsc_stream *s = NULL;
	dsc_writer *w = NULL;
	uint8_t *src = tu_pattern(UNIT, TU_RANDOM, seed);
	struct stat st;

	snprintf(path, sizeof(path), "%s/prealloc.raw", dir);
	ASSERT_OK(dsc_stream_create_file(path, 0, &s, &e), &e);
	if (!s)
		goto out;
	o.capacity = known ? cap : DSC_CAPACITY_UNKNOWN;
	o.prealloc = true;
	ASSERT_OK(dsc_writer_open(s, DSC_FORMAT_RAW, &o, &w, &e), &e);
	if (w) {
		struct dsc_extent a = {UNIT, UNIT, src};
		ASSERT_OK(dsc_writer_put(w, &a, &e), &e);
		ASSERT_OK(dsc_writer_finish(w, cap, &e), &e);
		dsc_writer_close(w);
	}
	dsc_stream_close(s);
	REQUIRE(stat(path, &st) == 0);
	ASSERT_EQ_U64(st.st_size, cap);
	if ((uint64_t)st.st_blocks * 512 < cap)
		tu_fail(__FILE__, __LINE__, "prealloc (%s size): %llu bytes allocated for %llu",
			known ? "known" : "late", (unsigned long long)st.st_blocks * 512,
			(unsigned long long)cap);
	{
		int fd = open(path, O_RDONLY);
		uint8_t buf[UNIT];
		ASSERT(pread(fd, buf, UNIT, UNIT) == (ssize_t)UNIT && memcmp(buf, src, UNIT) == 0);
		ASSERT(pread(fd, buf, UNIT, 0) == (ssize_t)UNIT && dscp_is_zero(buf, UNIT));
		close(fd);
	}
out:
	tu_rmdir_all(dir);
	free(dir);
	free(src);
}

static void test_writer_prealloc(void) { prealloc_case(true, (8u << 20) + 512, 45); }

static void test_writer_prealloc_late(void) { prealloc_case(false, (6u << 20) + 512, 72); }

static void test_writer_prealloc_too_big(void)
{
	/* Far more than any test machine's disk: refused before writing,
	 * with NOSPACE (or LIMIT/IO where the file system says EFBIG). */
	char *dir = tu_tmpdir(), path[4200];
	struct dsc_error e = {0};
	struct dsc_writer_opts o = {0};
	dsc_stream *s = NULL;
	dsc_writer *w = NULL;
	dsc_err err;

	snprintf(path, sizeof(path), "%s/huge.raw", dir);
	ASSERT_OK(dsc_stream_create_file(path, 0, &s, &e), &e);
	if (!s)
		goto out;
	o.capacity = 1ull << 50; /* 1 PiB */
	o.prealloc = true;
	err = dsc_writer_open(s, DSC_FORMAT_RAW, &o, &w, &e);
	if (err == DSC_OK) {
		uint8_t b[512] = {1};
		struct dsc_extent a = {0, 512, b};
		err = dsc_writer_put(w, &a, &e);
		if (err == DSC_OK)
			err = dsc_writer_finish(w, o.capacity, &e);
		dsc_writer_close(w);
	}
	ASSERT(err != DSC_OK);
	ASSERT(err == DSC_ERR_NOSPACE || err == DSC_ERR_LIMIT || err == DSC_ERR_IO);
	dsc_stream_close(s);
	ASSERT(tu_dir_count(dir) == 0);
out:
	tu_rmdir_all(dir);
	free(dir);
}

/* Real pipes (pipe(2)): a child produces or consumes the bytes. */
static pid_t spawn_writer(int fd, int other, const uint8_t *src, size_t len)
{
	pid_t pid = fork();

	if (pid == 0) {
		size_t off = 0;
		close(other);
		while (off < len) {
			ssize_t w = write(fd, src + off, DSC_MIN(50000, len - off));
			if (w <= 0)
				_exit(1);
			off += (size_t)w;
		}
		_exit(0);
	}
	return pid;
}

static pid_t spawn_checker(int fd, int other, const uint8_t *want, size_t len)
{
	pid_t pid = fork();

	if (pid == 0) {
		uint8_t buf[65536];
		size_t off = 0;
		/* Without this the child holds the write end open itself and
		 * never sees end of file. */
		close(other);
		alarm(20);
		for (;;) {
			ssize_t n = read(fd, buf, sizeof(buf));
			if (n < 0)
				_exit(2);
			if (n == 0)
				break;
			if (off + (size_t)n > len || memcmp(buf, want + off, (size_t)n) != 0)
				_exit(1);
			off += (size_t)n;
		}
		_exit(off == len ? 0 : 3);
	}
	return pid;
}

static bool child_ok(pid_t pid)
{
	int st;
	return pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static void test_real_pipes(void)
{
	size_t len = 20 * UNIT + 300;
	uint8_t *src = tu_pattern(len, TU_SPARSE, 2), *img = NULL;
	struct dsc_error e = {0};
	struct dsc_writer_opts o = {0};
	dsc_stream *s = NULL;
	uint64_t cap = 0;
	int fds[2];
	pid_t pid;

	/* Reading a raw pipe. */
	REQUIRE(pipe(fds) == 0);
	pid = spawn_writer(fds[1], fds[0], src, len);
	close(fds[1]);
	ASSERT_OK(dsc_stream_open_fd(fds[0], "pipe:", DSC_FD_OWN, &s, &e), &e);
	if (s) {
		ASSERT_OK(tu_read_image(s, DSC_FORMAT_UNKNOWN, true, &img, &cap, NULL, &e), &e);
		ASSERT_EQ_U64(cap, len);
		ASSERT(img && memcmp(img, src, len) == 0);
		dsc_stream_close(s);
	} else {
		close(fds[0]);
	}
	ASSERT(child_ok(pid));
	free(img);

	/* Writing raw to a pipe: holes become zeros, the size is exact. */
	REQUIRE(pipe(fds) == 0);
	pid = spawn_checker(fds[0], fds[1], src, len);
	close(fds[0]);
	s = NULL;
	ASSERT_OK(dsc_stream_open_fd(fds[1], "stdout", DSC_FD_OWN, &s, &e), &e);
	if (s) {
		ASSERT(!dsc_stream_can_seek(s));
		o.capacity = DSC_CAPACITY_UNKNOWN;
		write_units(s, &o, src, len);
		dsc_stream_close(s);
	} else {
		close(fds[1]);
	}
	ASSERT(child_ok(pid));
	free(src);
}

static void test_reader_tiny_and_empty(void)
{
	static const struct {
		const char *bytes;
		size_t len;
	} cases[] = {{"", 0}, {"K", 1}, {"KDM", 3}, {"KDMX", 4}, {"\0\0\0\0\0", 5}};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int f;
		for (f = 0; f < 2; f++) {
			struct dsc_error e = {0};
			dsc_stream *s = tu_mem_stream(cases[i].bytes, cases[i].len, "tiny.img");
			uint8_t *img = NULL;
			uint64_t cap = 99;
			size_t n = 99;
			dsc_err err = tu_read_image(s, f ? DSC_FORMAT_UNKNOWN : DSC_FORMAT_RAW,
						    true, &img, &cap, &n, &e);
			if (err != DSC_OK) {
				tu_fail(__FILE__, __LINE__, "%zu-byte input (%s): %s (%s)",
					cases[i].len, f ? "detected" : "raw", dsc_err_name(err),
					e.message);
			} else {
				ASSERT_EQ_U64(cap, cases[i].len);
				ASSERT(memcmp(img, cases[i].bytes, cases[i].len) == 0);
				/* Only non-zero content is reported. */
				if (dscp_is_zero(cases[i].bytes, cases[i].len))
					ASSERT_EQ_U64(n, 0);
				else
					ASSERT_EQ_U64(n, 1);
			}
			free(img);
			dsc_stream_close(s);
		}
	}
	{
		/* The VMDK magic is enough to be detected as VMDK, which then
		 * fails on the rest. Forced raw, the same bytes are data. */
		uint8_t b[512];
		struct dsc_error e = {0};
		dsc_stream *s;
		uint8_t *img = NULL;
		uint64_t cap;
		dsc_err err;

		memset(b, 0x33, sizeof(b));
		memcpy(b, "KDMV", 4);
		s = tu_mem_stream(b, sizeof(b), "magic.img");
		err = tu_read_image(s, DSC_FORMAT_UNKNOWN, true, &img, &cap, NULL, &e);
		ASSERT(err == DSC_ERR_FORMAT || err == DSC_ERR_UNSUPPORTED);
		ASSERT(strstr(e.message, "magic.img") != NULL);
		dsc_stream_close(s);
		free(img);
		img = NULL;
		s = tu_mem_stream(b, sizeof(b), "magic.img");
		ASSERT_OK(tu_read_image(s, DSC_FORMAT_RAW, true, &img, &cap, NULL, &e), &e);
		ASSERT(img && cap == 512 && memcmp(img, b, 512) == 0);
		dsc_stream_close(s);
		free(img);
	}
}

/* Ascending extents of random sizes and gaps, some adjacent, some
 * sub-sector, written to a seekable and a pipe-like membuf. */
static void test_writer_random_extents(void)
{
	uint32_t seed;

	for (seed = 1; seed <= 6; seed++) {
		size_t cap = 3u << 20, off = 0;
		uint8_t *want = tu_xcalloc(cap), *data = tu_pattern(cap, TU_RANDOM, seed);
		uint32_t x = seed * 7919u;
		int pipe_like;
		struct {
			uint64_t off;
			size_t len;
		} ext[400];
		size_t n = 0, i;

		while (n < 400) {
			size_t gap, len;
			x ^= x << 13, x ^= x >> 17, x ^= x << 5;
			gap = x % 4 == 0 ? 0 : x % 5 == 0 ? (x >> 8) % 300000 : (x >> 8) % 3000;
			x ^= x << 13, x ^= x >> 17, x ^= x << 5;
			len = x % 3 == 0 ? 1 + (x >> 8) % 511 : 1 + (x >> 8) % 150000;
			if (off + gap + len > cap - 1000)
				break;
			ext[n].off = off + gap;
			ext[n].len = len;
			memcpy(want + off + gap, data + off + gap, len);
			off += gap + len;
			n++;
		}
		for (pipe_like = 0; pipe_like < 2; pipe_like++) {
			struct dsc_error e = {0};
			struct dsc_writer_opts o = {0};
			struct tu_fault_opts fo;
			dsc_stream *mb = NULL, *s;
			dsc_writer *w = NULL;
			const uint8_t *b;
			size_t blen;

			if (dsc_stream_new_membuf("rand.raw", &mb, &e))
				break;
			s = mb;
			if (pipe_like) {
				tu_fault_defaults(&fo);
				fo.no_seek = true;
				fo.max_io = 4000;
				s = tu_fault_stream(mb, &fo, "rand.raw", NULL);
			}
			o.capacity = pipe_like ? DSC_CAPACITY_UNKNOWN : cap;
			ASSERT_OK(dsc_writer_open(s, DSC_FORMAT_RAW, &o, &w, &e), &e);
			for (i = 0; w && i < n; i++) {
				struct dsc_extent xt = {ext[i].off, ext[i].len, data + ext[i].off};
				if (dsc_writer_put(w, &xt, &e) != DSC_OK) {
					tu_fail(__FILE__, __LINE__, "seed %u put %zu: %s", seed, i,
						e.message);
					break;
				}
			}
			if (w)
				ASSERT_OK(dsc_writer_finish(w, cap, &e), &e);
			dsc_writer_close(w);
			dsc_stream_mem_buffer(mb, &b, &blen);
			if (blen != cap || memcmp(b, want, cap) != 0)
				tu_fail(__FILE__, __LINE__,
					"seed %u %s: %zu extents: output differs "
					"(%zu bytes)",
					seed, pipe_like ? "pipe" : "seekable", n, blen);
			if (s != mb)
				dsc_stream_close(s);
			dsc_stream_close(mb);
		}
		free(want);
		free(data);
	}
}

/* Sparse files with data at awkward places: unaligned to the 64 KiB unit,
 * across unit boundaries, allocated-but-zero blocks, a size that is not a
 * multiple of 512, a trailing hole. */
static void test_reader_file_patterns(void)
{
	static const struct {
		uint64_t off;
		size_t len;
		int zero;
	} w[] = {
		{4096, 10, 0},
		{UNIT - 3, 6, 0},
		{5 * UNIT + 100, 200000, 0},
		{20 * UNIT, 3 * UNIT, 1}, /* written zeros: allocated, still a hole */
		{40 * UNIT + 511, 1, 0},
		{(10u << 20) - 4096, 4096, 1},
	};
	uint64_t size = (10u << 20) + 77;
	char *dir = tu_tmpdir(), path[4200];
	uint8_t *want = tu_xcalloc(size), *img = NULL;
	struct dsc_error e = {0};
	dsc_stream *s = NULL;
	uint64_t cap = 0, u;
	size_t i, n = 0;
	int fd;

	snprintf(path, sizeof(path), "%s/pat.raw", dir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	REQUIRE(fd >= 0);
	ASSERT(ftruncate(fd, (off_t)size) == 0);
	for (i = 0; i < sizeof(w) / sizeof(w[0]); i++) {
		uint8_t *b = w[i].zero ? tu_xcalloc(w[i].len) :
					 tu_pattern(w[i].len, TU_RANDOM, (uint32_t)i);
		ASSERT(pwrite(fd, b, w[i].len, (off_t)w[i].off) == (ssize_t)w[i].len);
		memcpy(want + w[i].off, b, w[i].len);
		free(b);
	}
	close(fd);
	ASSERT_OK(dsc_stream_open_file(path, &s, &e), &e);
	if (s) {
		ASSERT_OK(tu_read_image(s, DSC_FORMAT_UNKNOWN, true, &img, &cap, &n, &e), &e);
		ASSERT_EQ_U64(cap, size);
		ASSERT(img && cap == size && memcmp(img, want, size) == 0);
		dsc_stream_close(s);
	}
	/* Again, checking that no extent covers an all-zero unit. */
	s = NULL;
	ASSERT_OK(dsc_stream_open_file(path, &s, &e), &e);
	if (s) {
		dsc_reader *r = NULL;
		ASSERT_OK(dsc_reader_open(s, DSC_FORMAT_RAW, &r, &e), &e);
		while (r) {
			struct dsc_extent x;
			if (dsc_reader_next(r, &x, &e) != DSC_OK || x.length == 0)
				break;
			for (u = x.offset / UNIT * UNIT; u < x.offset + x.length; u += UNIT)
				if (dscp_is_zero(want + u, (size_t)DSC_MIN(UNIT, size - u)))
					tu_fail(__FILE__, __LINE__,
						"extent %llu+%zu covers the all-zero unit at %llu",
						(unsigned long long)x.offset, x.length,
						(unsigned long long)u);
		}
		dsc_reader_close(r);
		dsc_stream_close(s);
	}
	free(img);
	free(want);
	tu_rmdir_all(dir);
	free(dir);
}

/* raw -> raw into a real file: the holes are not written. */
static void test_convert_to_sparse_file(void)
{
	char *dir = tu_tmpdir(), path[4200];
	size_t len = 64u << 20;
	uint8_t *src = tu_xcalloc(len);
	struct dsc_error e = {0};
	struct dsc_convert_opts o = {0};
	struct dsc_convert_stats st;
	dsc_stream *in, *out = NULL;
	struct stat sb;

	memset(src + (7u << 20), 0x77, 1000);
	src[len - 1] = 1;
	snprintf(path, sizeof(path), "%s/out.raw", dir);
	in = tu_mem_stream(src, len, "in.raw");
	ASSERT_OK(dsc_stream_create_file(path, 0, &out, &e), &e);
	if (out) {
		o.dst_fmt = DSC_FORMAT_RAW;
		ASSERT_OK(dsc_convert(in, out, &o, &st, &e), &e);
		ASSERT(st.bytes_written <= 2 * UNIT);
		ASSERT_EQ_U64(st.capacity, len);
		dsc_stream_close(out);
		ASSERT(stat(path, &sb) == 0 && (uint64_t)sb.st_size == len);
		if (tu_fs_sparse(dir))
			ASSERT((uint64_t)sb.st_blocks * 512 < (1u << 20));
	}
	dsc_stream_close(in);
	free(src);
	tu_rmdir_all(dir);
	free(dir);
}

/* A stream that announced its size (a regular file, an HTTP body with
 * Content-Length) and ends early is truncated, not a smaller disk. */
static void test_reader_short_of_total(void)
{
	size_t len = 3u << 20;
	uint8_t *src = tu_pattern(len, TU_RANDOM, 51);
	int pipe_like;

	for (pipe_like = 0; pipe_like < 2; pipe_like++) {
		struct tu_fault_opts o;
		struct dsc_error e = {0};
		uint8_t *img = NULL;
		uint64_t cap = 0;
		dsc_stream *s;
		dsc_err err;

		tu_fault_defaults(&o);
		o.eof_at = len / 2;
		o.no_seek = pipe_like;
		o.own_inner = true;
		s = tu_fault_stream(tu_mem_stream(src, len, "x"), &o, "shrunk.raw", NULL);
		dsc_stream_set_total(s, len);
		err = tu_read_image(s, DSC_FORMAT_RAW, true, &img, &cap, NULL, &e);
		if (err != DSC_ERR_TRUNCATED)
			tu_fail(__FILE__, __LINE__,
				"%s: announced %zu bytes, ended at %zu: got %s, capacity %llu",
				pipe_like ? "pipe" : "seekable", len, len / 2, dsc_err_name(err),
				(unsigned long long)cap);
		else
			ASSERT(strstr(e.message, "shrunk.raw") != NULL);
		free(img);
		dsc_stream_close(s);
	}
	free(src);
}

/* A reader opened on a stream that already moved (a header consumed by the
 * caller, stdin inherited at an offset) sees the image from there: offsets
 * and capacity relative to where it started. */
static void test_reader_mid_stream(void)
{
	size_t len = 5 * UNIT + 300, skip = 1000;
	uint8_t *src = tu_pattern(len, TU_SPARSE, 61), buf[1000];
	int pipe_like;

	src[skip] = 0x42;
	for (pipe_like = 0; pipe_like < 2; pipe_like++) {
		struct dsc_error e = {0};
		dsc_stream *s = tu_mem_stream(src, len, "mid.raw");
		uint8_t *img = NULL;
		uint64_t cap = 0;
		size_t n;

		if (pipe_like) {
			struct tu_fault_opts o;
			tu_fault_defaults(&o);
			o.no_seek = true;
			o.own_inner = true;
			s = tu_fault_stream(s, &o, "mid.raw", NULL);
		}
		ASSERT_OK(dsc_read_full(s, buf, skip, &n, &e), &e);
		ASSERT_OK(tu_read_image(s, DSC_FORMAT_RAW, true, &img, &cap, NULL, &e), &e);
		ASSERT_EQ_U64(cap, len - skip);
		ASSERT(img && cap == len - skip && memcmp(img, src + skip, len - skip) == 0);
		free(img);
		dsc_stream_close(s);
	}
	free(src);

	/* The same on a sparse regular file, where the reader jumps over
	 * holes with SEEK_DATA (absolute offsets) and must stay relative. */
	{
		char *dir = tu_tmpdir(), path[4200];
		uint64_t size = 4u << 20, cap = 0;
		struct dsc_error e = {0};
		dsc_stream *s = NULL;
		uint8_t *img = NULL, *want = tu_xcalloc(size);
		size_t n;
		int fd;

		snprintf(path, sizeof(path), "%s/mid.raw", dir);
		fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
		REQUIRE(fd >= 0);
		ASSERT(ftruncate(fd, (off_t)size) == 0);
		memset(want, 0x11, 300);
		memset(want + (2u << 20) + 5, 0x22, 100);
		want[size - 1] = 0x33;
		ASSERT(pwrite(fd, want, 300, 0) == 300);
		ASSERT(pwrite(fd, want + (2u << 20) + 5, 100, (2 << 20) + 5) == 100);
		ASSERT(pwrite(fd, want + size - 1, 1, (off_t)size - 1) == 1);
		close(fd);
		ASSERT_OK(dsc_stream_open_file(path, &s, &e), &e);
		if (s) {
			ASSERT_OK(dsc_read_full(s, buf, skip, &n, &e), &e);
			ASSERT_OK(tu_read_image(s, DSC_FORMAT_RAW, true, &img, &cap, NULL, &e), &e);
			ASSERT_EQ_U64(cap, size - skip);
			ASSERT(img && cap == size - skip &&
			       memcmp(img, want + skip, size - skip) == 0);
			dsc_stream_close(s);
		}
		free(img);
		free(want);
		tu_rmdir_all(dir);
		free(dir);
	}
}

/* An output that does not start at byte 0 (stdout appending to a file, a
 * stream after a header) is written forward from where it is. */
static void test_writer_mid_stream(void)
{
	size_t len = 3 * UNIT + 100;
	uint8_t *src = tu_pattern(len, TU_SPARSE, 71);
	struct dsc_error e = {0};
	struct dsc_writer_opts o = {0};
	dsc_stream *mb = NULL;
	const uint8_t *d;
	size_t dlen;

	REQUIRE_OK(dsc_stream_new_membuf("after-header", &mb, &e), &e);
	ASSERT_OK(dsc_write_all(mb, "HEADER", 6, &e), &e);
	o.capacity = len;
	write_units(mb, &o, src, len);
	dsc_stream_mem_buffer(mb, &d, &dlen);
	ASSERT_EQ_U64(dlen, 6 + len);
	ASSERT(dlen == 6 + len && memcmp(d, "HEADER", 6) == 0 && memcmp(d + 6, src, len) == 0);
	dsc_stream_close(mb);

	/* O_APPEND: the kernel ignores the offset, so it must not count as
	 * seekable. */
	{
		char *dir = tu_tmpdir(), path[4200];
		uint8_t *back = tu_xmalloc(6 + len);
		dsc_stream *s = NULL;
		int fd;

		snprintf(path, sizeof(path), "%s/append.raw", dir);
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		REQUIRE(fd >= 0 && write(fd, "HEADER", 6) == 6);
		close(fd);
		fd = open(path, O_WRONLY | O_APPEND);
		REQUIRE(fd >= 0);
		ASSERT_OK(dsc_stream_open_fd(fd, "append.raw", DSC_FD_OWN, &s, &e), &e);
		if (s) {
			ASSERT(!dsc_stream_can_seek(s));
			write_units(s, &o, src, len);
			dsc_stream_close(s);
		}
		fd = open(path, O_RDONLY);
		ASSERT(fd >= 0 && read(fd, back, 6 + len) == (ssize_t)(6 + len));
		ASSERT(memcmp(back, "HEADER", 6) == 0 && memcmp(back + 6, src, len) == 0);
		close(fd);
		free(back);
		tu_rmdir_all(dir);
		free(dir);
	}
	free(src);
}

int main(void)
{
	TU_RUN(test_reader_sizes);
	TU_RUN(test_reader_holes);
	TU_RUN(test_reader_io_error);
	TU_RUN(test_reader_file_holes);
	TU_RUN(test_writer_membuf);
	TU_RUN(test_writer_out_of_order);
	TU_RUN(test_writer_extent_past_capacity);
	TU_RUN(test_writer_file_sparse);
	TU_RUN(test_writer_file_trailing_hole);
	TU_RUN(test_writer_unfinished_file);
	TU_RUN(test_writer_prealloc);
	TU_RUN(test_writer_prealloc_too_big);
	TU_RUN(test_real_pipes);
	TU_RUN(test_reader_tiny_and_empty);
	TU_RUN(test_writer_random_extents);
	TU_RUN(test_reader_file_patterns);
	TU_RUN(test_convert_to_sparse_file);
	TU_RUN(test_reader_short_of_total);
	TU_RUN(test_reader_mid_stream);
	TU_RUN(test_writer_mid_stream);
	TU_RUN(test_writer_prealloc_late);
	return tu_exit();
}
