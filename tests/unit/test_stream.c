/* test_stream.c - unit tests of the stream layer: the memory and fd
 * backends, the read/write loops, sticky errors, unread, skip, hole
 * detection and the atomic file output.
 *
 * The fault stream from testutil stands in for a network or a failing disk:
 * it cuts reads to one byte, fails at byte N or ends at byte N, and the
 * library's wrappers must turn that into exact, repeatable results.
 */
#include "testutil.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static void test_mem_read(void)
{
	uint8_t *src = tu_pattern(10000, TU_RANDOM, 1), buf[10000];
	struct dsc_error e = {0};
	dsc_stream *s = tu_mem_stream(src, 10000, "mem.img");
	size_t n = 0;

	ASSERT(strcmp(dsc_stream_name(s), "mem.img") == 0);
	ASSERT_EQ_U64(dsc_stream_total(s), 10000);
	ASSERT_OK(dsc_read_full(s, buf, 3000, &n, &e), &e);
	ASSERT_EQ_U64(n, 3000);
	ASSERT(memcmp(buf, src, 3000) == 0);
	ASSERT_EQ_U64(dsc_stream_tell(s), 3000);
	ASSERT_OK(dsc_read_full(s, buf, 10000, &n, &e), &e);
	ASSERT_EQ_U64(n, 7000);
	ASSERT(memcmp(buf, src + 3000, 7000) == 0);
	ASSERT_OK(dsc_read_full(s, buf, 10, &n, &e), &e);
	ASSERT_EQ_U64(n, 0);
	ASSERT_EQ_U64(dsc_stream_tell(s), 10000);
	ASSERT_EQ_U64(dsc_stream_bytes(s), 10000);
	dsc_stream_close(s);
	dsc_stream_close(NULL);
	free(src);
}

static void test_read_full_one_byte(void)
{
	uint8_t *src = tu_pattern(5000, TU_RANDOM, 2), buf[6000];
	struct tu_fault_opts o;
	struct tu_fault *f;
	struct dsc_error e = {0};
	dsc_stream *s;
	size_t n = 0;

	tu_fault_defaults(&o);
	o.max_io = 1;
	o.own_inner = true;
	s = tu_fault_stream(tu_mem_stream(src, 5000, "in"), &o, "slow", &f);
	ASSERT_OK(dsc_read_full(s, buf, 4096, &n, &e), &e);
	ASSERT_EQ_U64(n, 4096);
	ASSERT(f->reads >= 4096);
	ASSERT_OK(dsc_read_full(s, buf + 4096, 2000, &n, &e), &e);
	ASSERT_EQ_U64(n, 904);
	ASSERT(memcmp(buf, src, 5000) == 0);
	ASSERT_EQ_U64(dsc_stream_tell(s), 5000);
	dsc_stream_close(s);
	free(src);
}

static void test_injected_error_sticky(void)
{
	uint8_t *src = tu_pattern(5000, TU_RANDOM, 3), buf[5000];
	struct tu_fault_opts o;
	struct tu_fault *f;
	struct dsc_error e = {0}, e2 = {0}, e3 = {0};
	dsc_stream *s;
	size_t n = 1234;
	uint64_t skipped = 0;
	unsigned long reads;

	tu_fault_defaults(&o);
	o.fail_at = 1000;
	o.max_io = 100;
	o.own_inner = true;
	s = tu_fault_stream(tu_mem_stream(src, 5000, "in"), &o, "flaky.img", &f);
	ASSERT_ERR(dsc_read_full(s, buf, 4000, &n, &e), DSC_ERR_IO);
	ASSERT_ERR(e.code, DSC_ERR_IO);
	ASSERT(strstr(e.message, "flaky.img") != NULL);
	ASSERT(memcmp(buf, src, 1000) == 0);
	/* Later calls repeat the error without asking the backend again. */
	reads = f->reads;
	ASSERT_ERR(dsc_read_full(s, buf, 10, &n, &e2), DSC_ERR_IO);
	ASSERT_ERR(e2.code, DSC_ERR_IO);
	ASSERT(strstr(e2.message, "flaky.img") != NULL);
	ASSERT_EQ_U64(n, 0);
	ASSERT_ERR(dsc_stream_skip(s, 10, &skipped, &e3), DSC_ERR_IO);
	ASSERT_ERR(dsc_write_all(s, buf, 1, NULL), DSC_ERR_IO);
	ASSERT(f->reads == reads);
	dsc_stream_close(s);
	free(src);
}

static void test_other_injected_code(void)
{
	uint8_t *src = tu_pattern(100, TU_RANDOM, 3), buf[100];
	struct tu_fault_opts o;
	struct dsc_error e = {0};
	dsc_stream *s;
	size_t n;

	tu_fault_defaults(&o);
	o.fail_at = 0;
	o.fail_code = DSC_ERR_REMOTE;
	o.own_inner = true;
	s = tu_fault_stream(tu_mem_stream(src, 100, "in"), &o, "http://x/y", NULL);
	ASSERT_ERR(dsc_read_full(s, buf, 10, &n, &e), DSC_ERR_REMOTE);
	ASSERT_ERR(dsc_read_full(s, buf, 10, &n, NULL), DSC_ERR_REMOTE);
	dsc_stream_close(s);
	free(src);
}

static void test_early_eof(void)
{
	uint8_t *src = tu_pattern(5000, TU_RANDOM, 4), buf[5000];
	struct tu_fault_opts o;
	struct dsc_error e = {0};
	dsc_stream *s;
	size_t n = 0;

	tu_fault_defaults(&o);
	o.eof_at = 777;
	o.max_io = 10;
	o.own_inner = true;
	s = tu_fault_stream(tu_mem_stream(src, 5000, "in"), &o, "short", NULL);
	ASSERT_OK(dsc_read_full(s, buf, 5000, &n, &e), &e);
	ASSERT_EQ_U64(n, 777);
	ASSERT(memcmp(buf, src, 777) == 0);
	ASSERT_OK(dsc_read_full(s, buf, 5000, &n, &e), &e);
	ASSERT_EQ_U64(n, 0);
	dsc_stream_close(s);
	free(src);
}

static void test_membuf_write(void)
{
	uint8_t *src = tu_pattern(200000, TU_COMPRESSIBLE, 5);
	struct dsc_error e = {0};
	dsc_stream *s = NULL;
	const uint8_t *data = NULL;
	size_t len = 0;

	REQUIRE_OK(dsc_stream_new_membuf("out.bin", &s, &e), &e);
	ASSERT_OK(dsc_write_all(s, src, 1, &e), &e);
	ASSERT_OK(dsc_write_all(s, src + 1, 199999, &e), &e);
	ASSERT_EQ_U64(dsc_stream_tell(s), 200000);
	ASSERT_EQ_U64(dsc_stream_bytes(s), 200000);
	dsc_stream_mem_buffer(s, &data, &len);
	ASSERT_EQ_U64(len, 200000);
	ASSERT(data && memcmp(data, src, 200000) == 0);
	/* A membuf is seekable; writing past the end leaves zeros between. */
	ASSERT(dsc_stream_can_seek(s));
	ASSERT_OK(dsc_stream_seek(s, 300000, &e), &e);
	ASSERT_OK(dsc_write_all(s, "xyz", 3, &e), &e);
	dsc_stream_mem_buffer(s, &data, &len);
	ASSERT_EQ_U64(len, 300003);
	ASSERT(data && dscp_is_zero(data + 200000, 100000));
	ASSERT(data && memcmp(data + 300000, "xyz", 3) == 0);
	/* Overwrite in the middle. */
	ASSERT_OK(dsc_stream_seek(s, 10, &e), &e);
	ASSERT_OK(dsc_write_all(s, "AB", 2, &e), &e);
	dsc_stream_mem_buffer(s, &data, &len);
	ASSERT_EQ_U64(len, 300003);
	ASSERT(data && data[10] == 'A' && data[11] == 'B' && data[12] == src[12]);
	ASSERT_OK(dsc_stream_finish(s, &e), &e);
	dsc_stream_close(s);
	free(src);
}

static void test_write_through_fault(void)
{
	uint8_t *src = tu_pattern(10000, TU_RANDOM, 6);
	struct tu_fault_opts o;
	struct dsc_error e = {0};
	dsc_stream *mb = NULL, *s;
	const uint8_t *data;
	size_t len;

	REQUIRE_OK(dsc_stream_new_membuf("mb", &mb, &e), &e);
	tu_fault_defaults(&o);
	o.max_io = 7;
	o.fail_at = 9000;
	s = tu_fault_stream(mb, &o, "disk-full", NULL);
	ASSERT_OK(dsc_write_all(s, src, 5000, &e), &e);
	ASSERT_ERR(dsc_write_all(s, src + 5000, 5000, &e), DSC_ERR_IO);
	ASSERT(strstr(e.message, "disk-full") != NULL);
	dsc_stream_mem_buffer(mb, &data, &len);
	ASSERT_EQ_U64(len, 9000);
	ASSERT(memcmp(data, src, 9000) == 0);
	ASSERT_ERR(dsc_write_all(s, src, 1, NULL), DSC_ERR_IO);
	dsc_stream_close(s);
	dsc_stream_close(mb);
	free(src);
}

static void test_unread(void)
{
	uint8_t *src = tu_pattern(1000, TU_RANDOM, 7), buf[1000];
	uint8_t big[DSC_UNREAD_MAX + 1];
	struct dsc_error e = {0};
	dsc_stream *s = tu_mem_stream(src, 1000, "u");
	size_t n = 0;

	ASSERT_OK(dsc_read_full(s, buf, 512, &n, &e), &e);
	ASSERT_OK(dsc_stream_unread(s, buf, 512, &e), &e);
	ASSERT_EQ_U64(dsc_stream_tell(s), 0);
	ASSERT_OK(dsc_read_full(s, buf, 100, &n, &e), &e);
	ASSERT(n == 100 && memcmp(buf, src, 100) == 0);
	/* A read spanning the pushed-back bytes and the backend. */
	ASSERT_OK(dsc_read_full(s, buf, 900, &n, &e), &e);
	ASSERT(n == 900 && memcmp(buf, src + 100, 900) == 0);
	ASSERT_OK(dsc_read_full(s, buf, 1, &n, &e), &e);
	ASSERT_EQ_U64(n, 0);
	/* More than DSC_UNREAD_MAX is refused. */
	memset(big, 1, sizeof(big));
	ASSERT(dsc_stream_unread(s, big, sizeof(big), NULL) != DSC_OK);
	dsc_stream_close(s);
	free(src);
}

static void test_skip(void)
{
	uint8_t *src = tu_pattern(100000, TU_RANDOM, 8), buf[100];
	struct tu_fault_opts o;
	struct dsc_error e = {0};
	dsc_stream *s;
	uint64_t skipped = 0;
	size_t n = 0;
	int pass;

	/* Seekable memory, then the same through a pipe-like wrapper. */
	for (pass = 0; pass < 2; pass++) {
		s = tu_mem_stream(src, 100000, "skip");
		if (pass) {
			tu_fault_defaults(&o);
			o.no_seek = true;
			o.max_io = 333;
			o.own_inner = true;
			s = tu_fault_stream(s, &o, "skip-pipe", NULL);
			ASSERT(!dsc_stream_can_seek(s));
		}
		ASSERT_OK(dsc_stream_skip(s, 12345, &skipped, &e), &e);
		ASSERT_EQ_U64(skipped, 12345);
		ASSERT_EQ_U64(dsc_stream_tell(s), 12345);
		ASSERT_OK(dsc_read_full(s, buf, 100, &n, &e), &e);
		ASSERT(n == 100 && memcmp(buf, src + 12345, 100) == 0);
		/* Unread bytes are skipped first. */
		ASSERT_OK(dsc_stream_unread(s, buf, 100, &e), &e);
		ASSERT_OK(dsc_stream_skip(s, 150, &skipped, &e), &e);
		ASSERT_EQ_U64(skipped, 150);
		ASSERT_OK(dsc_read_full(s, buf, 10, &n, &e), &e);
		ASSERT(n == 10 && memcmp(buf, src + 12495, 10) == 0);
		ASSERT_OK(dsc_stream_skip(s, 1000000, &skipped, &e), &e);
		ASSERT_EQ_U64(skipped, 100000 - 12505);
		dsc_stream_close(s);
	}
	free(src);
}

static void test_fd_pipe(void)
{
	int fds[2];
	uint8_t *src = tu_pattern(300000, TU_RANDOM, 9), *buf = tu_xmalloc(300001);
	struct dsc_error e = {0};
	dsc_stream *s = NULL;
	pid_t pid;
	size_t n = 0;
	int status;

	REQUIRE(pipe(fds) == 0);
	pid = fork();
	REQUIRE(pid >= 0);
	if (pid == 0) {
		size_t off = 0;
		close(fds[0]);
		while (off < 300000) {
			ssize_t w = write(fds[1], src + off, DSC_MIN(4093, 300000 - off));
			if (w <= 0)
				_exit(1);
			off += (size_t)w;
		}
		_exit(0);
	}
	close(fds[1]);
	ASSERT_OK(dsc_stream_open_fd(fds[0], "pipe:", DSC_FD_OWN, &s, &e), &e);
	if (s) {
		uint64_t d = 0;
		ASSERT(!dsc_stream_can_seek(s));
		ASSERT_EQ_U64(dsc_stream_total(s), UINT64_MAX);
		ASSERT(dsc_stream_seek(s, 0, NULL) != DSC_OK);
		ASSERT_ERR(dsc_stream_next_data(s, 0, &d, NULL), DSC_ERR_UNSUPPORTED);
		ASSERT_OK(dsc_read_full(s, buf, 300001, &n, &e), &e);
		ASSERT_EQ_U64(n, 300000);
		ASSERT(memcmp(buf, src, 300000) == 0);
		dsc_stream_close(s);
	} else {
		close(fds[0]);
	}
	ASSERT(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
	free(src);
	free(buf);
}

static void test_fd_regular_holes(void)
{
	char *dir = tu_tmpdir(), path[4200];
	struct dsc_error e = {0};
	dsc_stream *s = NULL;
	uint64_t d = 0;
	off_t want, want_past;
	uint8_t buf[16];
	size_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/holes.img", dir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	REQUIRE(fd >= 0);
	ASSERT(ftruncate(fd, 8 << 20) == 0);
	ASSERT(pwrite(fd, "hello", 5, 4 << 20) == 5);
	/* The oracle is the kernel's own answer for this file system (one
	 * without holes says "data" everywhere). */
	want = lseek(fd, 0, SEEK_DATA);
	want_past = lseek(fd, 6 << 20, SEEK_DATA);
	ASSERT_OK(dsc_stream_open_fd(fd, "holes.img", DSC_FD_OWN, &s, &e), &e);
	if (!s) {
		close(fd);
		goto out;
	}
	ASSERT(dsc_stream_can_seek(s));
	ASSERT_EQ_U64(dsc_stream_total(s), 8 << 20);
	ASSERT_OK(dsc_stream_next_data(s, 0, &d, &e), &e);
	ASSERT_EQ_U64(d, (uint64_t)want);
	ASSERT(d <= (4u << 20));
	ASSERT_OK(dsc_stream_next_data(s, 4 << 20, &d, &e), &e);
	ASSERT_EQ_U64(d, 4 << 20);
	/* Past the last data block: none (ENXIO from the kernel). */
	ASSERT_OK(dsc_stream_next_data(s, 6 << 20, &d, &e), &e);
	ASSERT_EQ_U64(d, want_past < 0 ? UINT64_MAX : (uint64_t)want_past);
	ASSERT_OK(dsc_stream_seek(s, 4 << 20, &e), &e);
	ASSERT_EQ_U64(dsc_stream_tell(s), 4 << 20);
	ASSERT_OK(dsc_read_full(s, buf, 5, &n, &e), &e);
	ASSERT(n == 5 && memcmp(buf, "hello", 5) == 0);
	dsc_stream_close(s);
	s = NULL;
	/* dsc_stream_open_file: the same, by path. */
	ASSERT_OK(dsc_stream_open_file(path, &s, &e), &e);
	if (s) {
		ASSERT(dsc_stream_can_seek(s));
		ASSERT_EQ_U64(dsc_stream_total(s), 8 << 20);
		ASSERT(strstr(dsc_stream_name(s), "holes.img") != NULL);
		dsc_stream_close(s);
	}
out:
	tu_rmdir_all(dir);
	free(dir);
}

static void test_open_file_errors(void)
{
	char *dir = tu_tmpdir(), path[4200];
	struct dsc_error e = {0};
	dsc_stream *s = (dsc_stream *)1;

	snprintf(path, sizeof(path), "%s/missing.img", dir);
	ASSERT_ERR(dsc_stream_open_file(path, &s, &e), DSC_ERR_NOTFOUND);
	ASSERT(s == NULL);
	ASSERT(strstr(e.message, "missing.img") != NULL);
	ASSERT(e.sys_errno == ENOENT);
	tu_rmdir_all(dir);
	free(dir);
}

static int read_file(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, buf, size - 1);
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = '\0';
	return (int)n;
}

static void write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text)) {
		perror(path);
		abort();
	}
	close(fd);
}

static void test_create_file(void)
{
	char *dir = tu_tmpdir(), path[4200], got[64];
	struct dsc_error e = {0};
	dsc_stream *s = NULL;
	struct stat st;

	snprintf(path, sizeof(path), "%s/out.img", dir);
	ASSERT_OK(dsc_stream_create_file(path, 0, &s, &e), &e);
	REQUIRE(s != NULL);
	ASSERT_OK(dsc_write_all(s, "abc", 3, &e), &e);
	/* The temporary lives in the same directory, under another name. */
	ASSERT(stat(path, &st) != 0 && errno == ENOENT);
	ASSERT(tu_dir_count(dir) == 1);
	ASSERT_OK(dsc_stream_finish(s, &e), &e);
	dsc_stream_close(s);
	ASSERT(read_file(path, got, sizeof(got)) == 3 && strcmp(got, "abc") == 0);
	ASSERT(tu_dir_count(dir) == 1);
	tu_rmdir_all(dir);
	free(dir);
}

static void test_create_file_abandoned(void)
{
	char *dir = tu_tmpdir(), path[4200];
	struct dsc_error e = {0};
	dsc_stream *s = NULL;

	snprintf(path, sizeof(path), "%s/never.img", dir);
	ASSERT_OK(dsc_stream_create_file(path, DSC_CREATE_REPLACE, &s, &e), &e);
	REQUIRE(s != NULL);
	ASSERT_OK(dsc_write_all(s, "partial", 7, &e), &e);
	dsc_stream_close(s);
	ASSERT(tu_dir_count(dir) == 0);
	tu_rmdir_all(dir);
	free(dir);
}

static void test_create_file_exists(void)
{
	char *dir = tu_tmpdir(), path[4200], got[64];
	struct dsc_error e = {0}, e2 = {0};
	dsc_stream *s = NULL;
	dsc_err err;

	/* Exists before: create may refuse at once or at finish. */
	snprintf(path, sizeof(path), "%s/exists.img", dir);
	write_file(path, "old");
	err = dsc_stream_create_file(path, 0, &s, &e);
	if (err == DSC_OK) {
		ASSERT_OK(dsc_write_all(s, "new data", 8, &e), &e);
		ASSERT_ERR(dsc_stream_finish(s, &e2), DSC_ERR_EXISTS);
		ASSERT(strstr(e2.message, "exists.img") != NULL);
		dsc_stream_close(s);
	} else {
		ASSERT_ERR(err, DSC_ERR_EXISTS);
		ASSERT(s == NULL);
	}
	ASSERT(read_file(path, got, sizeof(got)) == 3 && strcmp(got, "old") == 0);
	ASSERT(tu_dir_count(dir) == 1);

	/* Appears while we write: finish must notice. */
	snprintf(path, sizeof(path), "%s/race.img", dir);
	s = NULL;
	memset(&e2, 0, sizeof(e2));
	ASSERT_OK(dsc_stream_create_file(path, 0, &s, &e), &e);
	if (s) {
		ASSERT_OK(dsc_write_all(s, "mine", 4, &e), &e);
		write_file(path, "theirs");
		ASSERT_ERR(dsc_stream_finish(s, &e2), DSC_ERR_EXISTS);
		dsc_stream_close(s);
		ASSERT(read_file(path, got, sizeof(got)) == 6 && strcmp(got, "theirs") == 0);
		ASSERT(tu_dir_count(dir) == 2);
	}

	/* With DSC_CREATE_REPLACE the existing file is replaced. */
	s = NULL;
	ASSERT_OK(dsc_stream_create_file(path, DSC_CREATE_REPLACE, &s, &e), &e);
	if (s) {
		ASSERT_OK(dsc_write_all(s, "replaced", 8, &e), &e);
		ASSERT_OK(dsc_stream_finish(s, &e), &e);
		dsc_stream_close(s);
		ASSERT(read_file(path, got, sizeof(got)) == 8 && strcmp(got, "replaced") == 0);
		ASSERT(tu_dir_count(dir) == 2);
	}
	tu_rmdir_all(dir);
	free(dir);
}

static void test_create_file_bad_dir(void)
{
	char *dir = tu_tmpdir(), path[4200];
	struct dsc_error e = {0};
	dsc_stream *s = (dsc_stream *)1;

	snprintf(path, sizeof(path), "%s/no/such/dir/out.img", dir);
	ASSERT(dsc_stream_create_file(path, 0, &s, &e) != DSC_OK);
	ASSERT(s == NULL);
	ASSERT(strstr(e.message, "out.img") != NULL);
	tu_rmdir_all(dir);
	free(dir);
}

static void test_read_full_null_nread(void)
{
	/* Without nread, a short read is an error: TRUNCATED, naming the
	 * stream; and it sticks. */
	uint8_t src[100] = {1, 2, 3}, buf[200];
	struct dsc_error e = {0};
	dsc_stream *s = tu_mem_stream(src, sizeof(src), "short.img");

	ASSERT_OK(dsc_read_full(s, buf, 60, NULL, &e), &e);
	ASSERT_ERR(dsc_read_full(s, buf, 60, NULL, &e), DSC_ERR_TRUNCATED);
	ASSERT(strstr(e.message, "short.img") != NULL);
	ASSERT_ERR(dsc_read_full(s, buf, 1, NULL, NULL), DSC_ERR_TRUNCATED);
	dsc_stream_close(s);
}

static void test_temp_path(void)
{
	char *dir = tu_tmpdir(), path[4200];
	struct dsc_error e = {0};
	dsc_stream *s = NULL, *m;
	const char *tp;
	struct stat st;
	size_t dl = strlen(dir);

	m = tu_mem_stream(path, 1, "m");
	ASSERT(dsc_stream_temp_path(m) == NULL);
	dsc_stream_close(m);

	snprintf(path, sizeof(path), "%s/t.img", dir);
	ASSERT_OK(dsc_stream_create_file(path, 0, &s, &e), &e);
	REQUIRE(s != NULL);
	tp = dsc_stream_temp_path(s);
	ASSERT(tp != NULL);
	if (tp) {
		/* In the destination's directory, existing, not the destination. */
		ASSERT(strncmp(tp, dir, dl) == 0 && tp[dl] == '/' && !strchr(tp + dl + 1, '/'));
		ASSERT(strcmp(tp, path) != 0);
		ASSERT(stat(tp, &st) == 0 && S_ISREG(st.st_mode));
	}
	ASSERT_OK(dsc_stream_finish(s, &e), &e);
	ASSERT(dsc_stream_temp_path(s) == NULL);
	dsc_stream_close(s);
	ASSERT(stat(path, &st) == 0);
	tu_rmdir_all(dir);
	free(dir);
}

static void test_fd_epipe(void)
{
	/* Writing to a pipe nobody reads: EPIPE becomes DSC_ERR_IO naming the
	 * stream (SIGPIPE ignored, as the CLI and the server do). */
	struct dsc_error e = {0};
	dsc_stream *s = NULL;
	uint8_t buf[4096] = {1};
	void (*old)(int) = signal(SIGPIPE, SIG_IGN);
	int fds[2];

	REQUIRE(pipe(fds) == 0);
	close(fds[0]);
	ASSERT_OK(dsc_stream_open_fd(fds[1], "stdout", DSC_FD_OWN, &s, &e), &e);
	if (s) {
		ASSERT_ERR(dsc_write_all(s, buf, sizeof(buf), &e), DSC_ERR_IO);
		ASSERT(e.sys_errno == EPIPE);
		ASSERT(strstr(e.message, "stdout") != NULL);
		dsc_stream_close(s);
	} else {
		close(fds[1]);
	}
	signal(SIGPIPE, old);
}

static volatile sig_atomic_t usr1_count;

static void on_usr1(int sig)
{
	(void)sig;
	usr1_count++;
}

/* waitpid that survives the signals of the test around it. */
static bool wait_ok(pid_t pid)
{
	int st;
	pid_t r;

	do
		r = waitpid(pid, &st, 0);
	while (r < 0 && errno == EINTR);
	return r == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

/* A child that sends SIGUSR1 to `target` every 200 us until killed. */
static pid_t start_pest(pid_t target)
{
	pid_t pid = fork();

	if (pid == 0) {
		for (;;) {
			if (kill(target, SIGUSR1) != 0)
				_exit(0);
			usleep(200);
		}
	}
	return pid;
}

static void test_fd_eintr(void)
{
	/* Signals without SA_RESTART interrupt read(2) and write(2) with
	 * EINTR; the fd backend must retry, not fail or lose bytes. */
	size_t len = 4u << 20;
	uint8_t *src = tu_pattern(len, TU_RANDOM, 12), *buf = tu_xmalloc(len);
	struct sigaction sa, old;
	struct dsc_error e = {0};
	dsc_stream *s = NULL;
	pid_t pest, child;
	int fds[2], st;
	size_t n = 0;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0; /* no SA_RESTART */
	sigaction(SIGUSR1, &sa, &old);
	pest = start_pest(getpid());

	/* Reading: a child trickles the data in small slow writes. */
	REQUIRE(pipe(fds) == 0);
	child = fork();
	if (child == 0) {
		size_t off = 0;
		close(fds[0]);
		signal(SIGUSR1, SIG_IGN);
		while (off < len) {
			ssize_t w = write(fds[1], src + off, DSC_MIN(65536, len - off));
			if (w <= 0)
				_exit(1);
			off += (size_t)w;
			usleep(300);
		}
		_exit(0);
	}
	close(fds[1]);
	ASSERT_OK(dsc_stream_open_fd(fds[0], "pipe:", DSC_FD_OWN, &s, &e), &e);
	if (s) {
		ASSERT_OK(dsc_read_full(s, buf, len, &n, &e), &e);
		ASSERT_EQ_U64(n, len);
		ASSERT(memcmp(buf, src, len) == 0);
		dsc_stream_close(s);
	}
	ASSERT(wait_ok(child));

	/* Writing: a slow reader keeps the pipe full, so writes block. */
	REQUIRE(pipe(fds) == 0);
	child = fork();
	if (child == 0) {
		size_t off = 0;
		close(fds[1]);
		signal(SIGUSR1, SIG_IGN);
		for (;;) {
			ssize_t r = read(fds[0], buf, 65536);
			if (r < 0)
				_exit(2);
			if (r == 0)
				break;
			if (off + (size_t)r > len || memcmp(buf, src + off, (size_t)r) != 0)
				_exit(1);
			off += (size_t)r;
			usleep(300);
		}
		_exit(off == len ? 0 : 3);
	}
	close(fds[0]);
	s = NULL;
	ASSERT_OK(dsc_stream_open_fd(fds[1], "stdout", DSC_FD_OWN, &s, &e), &e);
	if (s) {
		ASSERT_OK(dsc_write_all(s, src, len, &e), &e);
		dsc_stream_close(s);
	}
	ASSERT(wait_ok(child));

	kill(pest, SIGKILL);
	while (waitpid(pest, &st, 0) < 0 && errno == EINTR)
		;
	/* The test means something only if signals did arrive. */
	fprintf(stderr, "  %d signals during the transfers\n", (int)usr1_count);
	ASSERT(usr1_count > 10);
	sigaction(SIGUSR1, &old, NULL);
	free(src);
	free(buf);
}

static void test_open_file_directory(void)
{
	char *dir = tu_tmpdir();
	struct dsc_error e = {0};
	dsc_stream *s = NULL;
	uint8_t buf[16];
	size_t n;
	dsc_err err = dsc_stream_open_file(dir, &s, &e);

	/* Refused at open, or at the first read; never data. */
	if (err == DSC_OK) {
		err = dsc_read_full(s, buf, sizeof(buf), &n, &e);
		dsc_stream_close(s);
	}
	ASSERT(err != DSC_OK);
	ASSERT(strstr(e.message, dir) != NULL || strstr(e.message, "dsc-unit-") != NULL);
	tu_rmdir_all(dir);
	free(dir);
}

static void test_create_file_mode(void)
{
	/* The finished file gets the mode any program creating it would
	 * give it (0666 & ~umask), not the temporary's 0600. */
	char *dir = tu_tmpdir(), path[4200];
	struct dsc_error e = {0};
	dsc_stream *s = NULL;
	struct stat st;
	mode_t old = umask(022);

	snprintf(path, sizeof(path), "%s/mode.img", dir);
	ASSERT_OK(dsc_stream_create_file(path, 0, &s, &e), &e);
	if (s) {
		ASSERT_OK(dsc_write_all(s, "x", 1, &e), &e);
		ASSERT_OK(dsc_stream_finish(s, &e), &e);
		dsc_stream_close(s);
		ASSERT(stat(path, &st) == 0);
		if ((st.st_mode & 0777) != 0644)
			tu_fail(__FILE__, __LINE__, "mode %03o, want 644 under umask 022",
				(unsigned)(st.st_mode & 0777));
	}
	umask(old);
	tu_rmdir_all(dir);
	free(dir);
}

static void test_seek_drops_unread(void)
{
	uint8_t *src = tu_pattern(2000, TU_RANDOM, 13), buf[100];
	struct dsc_error e = {0};
	dsc_stream *s = tu_mem_stream(src, 2000, "seek.img");
	size_t n = 0;

	ASSERT_OK(dsc_read_full(s, buf, 100, &n, &e), &e);
	ASSERT_OK(dsc_stream_unread(s, buf, 100, &e), &e);
	ASSERT_OK(dsc_stream_seek(s, 500, &e), &e);
	ASSERT_EQ_U64(dsc_stream_tell(s), 500);
	ASSERT_OK(dsc_read_full(s, buf, 100, &n, &e), &e);
	ASSERT(n == 100 && memcmp(buf, src + 500, 100) == 0);
	/* Backwards too. */
	ASSERT_OK(dsc_stream_seek(s, 10, &e), &e);
	ASSERT_OK(dsc_read_full(s, buf, 10, &n, &e), &e);
	ASSERT(n == 10 && memcmp(buf, src + 10, 10) == 0);
	dsc_stream_close(s);
	free(src);
}

static void test_membuf_set_size(void)
{
	struct dsc_error e = {0};
	dsc_stream *s = NULL;
	const uint8_t *d;
	size_t len;
	uint8_t *src = tu_pattern(1000, TU_RANDOM, 14);

	REQUIRE_OK(dsc_stream_new_membuf("sz", &s, &e), &e);
	ASSERT_OK(dsc_write_all(s, src, 1000, &e), &e);
	ASSERT_OK(dsc_stream_set_size(s, 500, false, &e), &e);
	dsc_stream_mem_buffer(s, &d, &len);
	ASSERT(len == 500 && memcmp(d, src, 500) == 0);
	ASSERT_OK(dsc_stream_set_size(s, 3000, false, &e), &e);
	dsc_stream_mem_buffer(s, &d, &len);
	ASSERT(len == 3000 && memcmp(d, src, 500) == 0 && dscp_is_zero(d + 500, 2500));
	dsc_stream_close(s);
	free(src);
}

static void test_stream_new_args(void)
{
	static const struct dsc_stream_ops none = {.name = "none"};
	struct dsc_error e = {0};
	dsc_stream *s = (dsc_stream *)1;
	int ctx;

	ASSERT_ERR(dsc_stream_new(&none, &ctx, "x", &s, &e), DSC_ERR_INVAL);
	ASSERT(s == NULL);
	s = (dsc_stream *)1;
	ASSERT_ERR(dsc_stream_new(NULL, &ctx, "x", &s, NULL), DSC_ERR_INVAL);
	ASSERT(s == NULL);
}

static void test_fd_socket(void)
{
	/* A socket, as the server hands to the library: no seek, data in
	 * whatever pieces the peer sends, both directions. */
	int sv[2];
	size_t len = 1u << 20, n = 0;
	uint8_t *src = tu_pattern(len, TU_RANDOM, 15), *buf = tu_xmalloc(len + 1);
	struct dsc_error e = {0};
	dsc_stream *s = NULL;
	pid_t pid;

	REQUIRE(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
	pid = fork();
	if (pid == 0) {
		size_t off = 0;
		close(sv[0]);
		while (off < len) {
			ssize_t w = write(sv[1], src + off, DSC_MIN(7777, len - off));
			if (w <= 0)
				_exit(1);
			off += (size_t)w;
		}
		/* Then read our own bytes back from the parent. */
		shutdown(sv[1], SHUT_WR);
		off = 0;
		for (;;) {
			ssize_t r = read(sv[1], buf, 65536);
			if (r <= 0)
				break;
			if (memcmp(buf, src + off, (size_t)r) != 0)
				_exit(2);
			off += (size_t)r;
		}
		_exit(off == len ? 0 : 3);
	}
	close(sv[1]);
	ASSERT_OK(dsc_stream_open_fd(sv[0], "socket", DSC_FD_OWN, &s, &e), &e);
	if (s) {
		ASSERT(!dsc_stream_can_seek(s));
		ASSERT_OK(dsc_read_full(s, buf, len + 1, &n, &e), &e);
		ASSERT(n == len && memcmp(buf, src, len) == 0);
		ASSERT_OK(dsc_write_all(s, src, len, &e), &e);
		dsc_stream_close(s);
	} else {
		close(sv[0]);
	}
	ASSERT(wait_ok(pid));
	free(src);
	free(buf);
}

static void test_create_file_long_name(void)
{
	/* A 255-byte name (NAME_MAX): the temporary's name must fit too. */
	char *dir = tu_tmpdir(), path[4200], base[256];
	struct dsc_error e = {0};
	dsc_stream *s = NULL;
	struct stat st;

	memset(base, 'L', 255);
	base[255] = '\0';
	snprintf(path, sizeof(path), "%s/%s", dir, base);
	ASSERT_OK(dsc_stream_create_file(path, 0, &s, &e), &e);
	if (s) {
		ASSERT_OK(dsc_write_all(s, "x", 1, &e), &e);
		ASSERT_OK(dsc_stream_finish(s, &e), &e);
		dsc_stream_close(s);
		ASSERT(stat(path, &st) == 0 && st.st_size == 1);
		ASSERT(tu_dir_count(dir) == 1);
	}
	tu_rmdir_all(dir);
	free(dir);
}

static void test_create_file_on_directory(void)
{
	char *dir = tu_tmpdir(), path[4200];
	struct dsc_error e = {0};
	dsc_stream *s = (dsc_stream *)1;
	struct stat st;

	snprintf(path, sizeof(path), "%s/sub", dir);
	REQUIRE(mkdir(path, 0700) == 0);
	ASSERT(dsc_stream_create_file(path, DSC_CREATE_REPLACE, &s, &e) != DSC_OK);
	ASSERT(s == NULL);
	ASSERT(strstr(e.message, "sub") != NULL);
	ASSERT(stat(path, &st) == 0 && S_ISDIR(st.st_mode));
	ASSERT(tu_dir_count(dir) == 1);
	rmdir(path);
	tu_rmdir_all(dir);
	free(dir);
}

static void test_fd_ownership(void)
{
	struct dsc_error e = {0};
	dsc_stream *s = NULL;
	int fds[2];

	/* Without DSC_FD_OWN the caller's fd survives the stream. */
	REQUIRE(pipe(fds) == 0);
	ASSERT_OK(dsc_stream_open_fd(fds[0], "borrowed", 0, &s, &e), &e);
	dsc_stream_close(s);
	ASSERT(fcntl(fds[0], F_GETFD) >= 0);
	/* With it, closing the stream closes the fd. */
	s = NULL;
	ASSERT_OK(dsc_stream_open_fd(fds[0], "owned", DSC_FD_OWN, &s, &e), &e);
	dsc_stream_close(s);
	ASSERT(fcntl(fds[0], F_GETFD) < 0 && errno == EBADF);
	close(fds[1]);
	/* A closed fd is refused at open or at the first read. */
	s = NULL;
	{
		uint8_t b[4];
		size_t n;
		dsc_err err = dsc_stream_open_fd(fds[0], "gone", 0, &s, &e);
		if (err == DSC_OK) {
			err = dsc_read_full(s, b, sizeof(b), &n, &e);
			dsc_stream_close(s);
		}
		ASSERT(err != DSC_OK);
	}
}

int main(void)
{
	TU_RUN(test_mem_read);
	TU_RUN(test_read_full_one_byte);
	TU_RUN(test_injected_error_sticky);
	TU_RUN(test_other_injected_code);
	TU_RUN(test_early_eof);
	TU_RUN(test_membuf_write);
	TU_RUN(test_write_through_fault);
	TU_RUN(test_unread);
	TU_RUN(test_skip);
	TU_RUN(test_fd_pipe);
	TU_RUN(test_fd_regular_holes);
	TU_RUN(test_open_file_errors);
	TU_RUN(test_create_file);
	TU_RUN(test_create_file_abandoned);
	TU_RUN(test_create_file_exists);
	TU_RUN(test_create_file_bad_dir);
	TU_RUN(test_read_full_null_nread);
	TU_RUN(test_temp_path);
	TU_RUN(test_fd_epipe);
	TU_RUN(test_fd_eintr);
	TU_RUN(test_open_file_directory);
	TU_RUN(test_create_file_mode);
	TU_RUN(test_seek_drops_unread);
	TU_RUN(test_membuf_set_size);
	TU_RUN(test_stream_new_args);
	TU_RUN(test_fd_socket);
	TU_RUN(test_create_file_long_name);
	TU_RUN(test_create_file_on_directory);
	TU_RUN(test_fd_ownership);
	return tu_exit();
}
