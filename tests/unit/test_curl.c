/* test_curl.c - unit tests of URL streams against the loopback test server.
 *
 * The program starts tests/tools/httpd.py on 127.0.0.1 (port chosen by the
 * kernel) and reads from it through dsc_stream_open_url(): 1-byte reads
 * with a buffer small enough that the transfer pauses all the time, resume
 * after cuts and stalls, the size from Content-Length, error codes and
 * HTTP statuses, the address policy on the first hop and on redirects,
 * cancellation, the URL shown in messages without its secrets, and seeks
 * (only when the server serves ranges; the requests they cost).
 * Skipped when python3 or the tools directory is missing.
 */
#include "testutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#if HAVE_CURL

static pid_t server_pid;
static char root[64];
static int port;
static uint8_t *file_data;
static size_t file_len = 2u << 20;

static void stop_server(void)
{
	char cmd[128];

	if (server_pid > 0) {
		kill(server_pid, SIGTERM);
		waitpid(server_pid, NULL, 0);
		server_pid = 0;
	}
	if (root[0]) {
		snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
		if (system(cmd) != 0)
			fprintf(stderr, "cannot remove %s\n", root);
		root[0] = '\0';
	}
}

static bool start_server(void)
{
	const char *top = getenv("top_srcdir");
	char script[1024], portfile[128], logfile[128], path[128];
	FILE *f;
	int i;

	snprintf(script, sizeof script, "%s/tests/tools/httpd.py", top ? top : ".");
	if (access(script, R_OK) != 0 || system("python3 -c '' 2>/dev/null") != 0)
		return false;
	snprintf(root, sizeof root, "/tmp/dsc-test-curl.XXXXXX");
	if (!mkdtemp(root))
		return false;
	atexit(stop_server);
	file_data = tu_pattern(file_len, TU_RANDOM, 42);
	snprintf(path, sizeof path, "%s/file.bin", root);
	f = fopen(path, "wb");
	if (!f || fwrite(file_data, 1, file_len, f) != file_len || fclose(f) != 0)
		return false;
	snprintf(portfile, sizeof portfile, "%s/port", root);
	snprintf(logfile, sizeof logfile, "%s/log", root);
	server_pid = fork();
	if (server_pid < 0)
		return false;
	if (server_pid == 0) {
		execlp("python3", "python3", script, "--root", root, "--port-file", portfile,
		       "--log", logfile, (char *)NULL);
		_exit(127);
	}
	for (i = 0; i < 100; i++) {
		f = fopen(portfile, "r");
		if (f) {
			int ok = fscanf(f, "%d", &port) == 1;
			fclose(f);
			if (ok)
				return true;
		}
		usleep(100000);
	}
	return false;
}

static void url_of(char *buf, size_t size, const char *path)
{
	snprintf(buf, size, "http://127.0.0.1:%d%s", port, path);
}

static void fast_opts(struct dsc_url_opts *o)
{
	dsc_url_opts_init(o);
	o->retry_delay_ms = 20;
	o->idle_timeout = 2;
}

/* Read all of `url` with reads of `step` bytes; compare with the file. */
static dsc_err fetch(const char *path, const struct dsc_url_opts *o, size_t step, uint64_t *total,
		     unsigned *retries, struct dsc_error *e)
{
	char url[512];
	dsc_stream *s = NULL;
	uint8_t *got = tu_xmalloc(file_len + 1);
	size_t have = 0, n;
	dsc_err rc;

	url_of(url, sizeof url, path);
	rc = dsc_stream_open_url(url, o, &s, e);
	if (rc != DSC_OK)
		goto out;
	if (total)
		*total = dsc_stream_total(s);
	for (;;) {
		size_t want = DSC_MIN(step, file_len + 1 - have);
		if (want == 0) {
			tu_fail(__FILE__, __LINE__, "%s: more bytes than the file has", path);
			break;
		}
		rc = dsc_read_full(s, got + have, want, &n, e);
		if (rc != DSC_OK)
			goto out;
		have += n;
		if (n < want)
			break;
	}
	if (have != file_len || memcmp(got, file_data, file_len) != 0)
		tu_fail(__FILE__, __LINE__, "%s: %zu bytes differ from the %zu-byte file", path,
			have, file_len);
	if (retries)
		*retries = dsc_stream_url_retries(s);
out:
	dsc_stream_close(s);
	free(got);
	return rc;
}

static void test_looks_like_url(void)
{
	struct dsc_url_opts o;

	ASSERT(dsc_looks_like_url("http://x"));
	ASSERT(dsc_looks_like_url("HTTPS://x/y"));
	ASSERT(dsc_looks_like_url("ftp://x"));
	ASSERT(dsc_looks_like_url("file:///etc/passwd"));
	ASSERT(dsc_looks_like_url("svn+ssh://x"));
	ASSERT(!dsc_looks_like_url("disk.raw"));
	ASSERT(!dsc_looks_like_url("./http://x"));
	ASSERT(!dsc_looks_like_url("-"));
	ASSERT(!dsc_looks_like_url("c:/x"));
	ASSERT(!dsc_looks_like_url("1http://x"));
	ASSERT(!dsc_looks_like_url(NULL));
	dsc_url_opts_init(&o);
	ASSERT(o.retries == 5 && o.idle_timeout == 60 && o.max_redirects == 10);
	ASSERT(!o.use_env_proxy && !o.insecure && o.policy == NULL);
}

static void test_refused_before_network(void)
{
	static const char *const bad[] = {
		"file:///etc/passwd",
		"ftp://127.0.0.1/x",
		"gopher://127.0.0.1/",
		"dict://x/",
		"http://",
		"not a url",
		"",
	};
	const char *hdr_bad[] = {"NoColon", NULL};
	const char *hdr_crlf[] = {"X-A: 1\r\nX-B: 2", NULL};
	struct dsc_url_opts o;
	dsc_stream *s = NULL;
	size_t i;

	for (i = 0; i < sizeof bad / sizeof *bad; i++) {
		struct dsc_error e = {0};
		dsc_err rc = dsc_stream_open_url(bad[i], NULL, &s, &e);
		if (rc != DSC_ERR_INVAL)
			tu_fail(__FILE__, __LINE__, "'%s': %s, want INVAL (%s)", bad[i],
				dsc_err_name(rc), e.message);
		ASSERT(s == NULL);
	}
	{
		struct dsc_error e = {0};
		ASSERT_ERR(dsc_stream_open_url("ftp://h/x", NULL, &s, &e), DSC_ERR_INVAL);
		ASSERT(strstr(e.message, "ftp://h/x: unsupported URL scheme 'ftp'") == e.message);
	}
	dsc_url_opts_init(&o);
	o.headers = hdr_bad;
	ASSERT_ERR(dsc_stream_open_url("http://127.0.0.1:9/", &o, &s, NULL), DSC_ERR_INVAL);
	o.headers = hdr_crlf;
	ASSERT_ERR(dsc_stream_open_url("http://127.0.0.1:9/", &o, &s, NULL), DSC_ERR_INVAL);
	ASSERT_ERR(dsc_stream_open_url(NULL, NULL, &s, NULL), DSC_ERR_INVAL);
}

static void test_whole_file(void)
{
	struct dsc_url_opts o;
	struct dsc_error e = {0};
	uint64_t total = 0;
	unsigned retries = 9;

	fast_opts(&o);
	ASSERT_OK(fetch("/f/file.bin", &o, 65536, &total, &retries, &e), &e);
	ASSERT_EQ_U64(total, file_len);
	ASSERT(retries == 0);
	/* 1-byte reads over the smallest buffer: pause and continue all the
	 * way through. */
	o.buffer_size = 1;
	ASSERT_OK(fetch("/f/file.bin", &o, 1, &total, NULL, &e), &e);
	/* No Content-Length: size unknown. */
	ASSERT_OK(fetch("/f/file.bin?chunked=1", &o, 4096, &total, NULL, &e), &e);
	ASSERT_EQ_U64(total, UINT64_MAX);
}

static void test_resume(void)
{
	struct dsc_url_opts o;
	struct dsc_error e = {0};
	unsigned retries = 0;

	fast_opts(&o);
	o.buffer_size = 65536;
	ASSERT_OK(fetch("/f/file.bin?cut=300000&times=4", &o, 1000, NULL, &retries, &e), &e);
	ASSERT(retries == 4);
	ASSERT_OK(fetch("/f/file.bin?cut=300000&rst=1&times=2", &o, 7, NULL, &retries, &e), &e);
	ASSERT(retries == 2);
	/* Cut before a single body byte arrived: the retry is a plain GET. */
	ASSERT_OK(fetch("/f/file.bin?cut=0&times=1", &o, 4096, NULL, &retries, &e), &e);
	ASSERT(retries == 1);
	/* A chunked body cut just before its last chunk: every byte had
	 * arrived; the resume's 416 ("bytes *" then "/SIZE") ends it. */
	ASSERT_OK(fetch("/f/file.bin?chunked=1&noend=1&times=1", &o, 4096, NULL, &retries, &e), &e);
	ASSERT(retries == 1);
	/* 5xx, then the file. */
	ASSERT_OK(fetch("/f/file.bin?fail=502&times=2", &o, 4096, NULL, &retries, &e), &e);
	ASSERT(retries == 2);
	/* A stall: the idle timeout ends the try, the next resumes. */
	o.idle_timeout = 1;
	ASSERT_OK(fetch("/f/file.bin?stall=1000000&times=1&hold=20", &o, 4096, NULL, &retries, &e),
		  &e);
	ASSERT(retries == 1);
}

/* A server with neither ETag nor Last-Modified (issue 12): refused at the
 * first cut by default; with resume_without_validator resumed with Range
 * when the Content-Range total matches the first length. */
static void test_resume_without_validator(void)
{
	static const struct {
		const char *path, *want;
	} refused[] = {
		/* The length changed: the total says so. */
		{"/f/file.bin?novalidator=1&cut=300000&times=1&grow=1000",
		 "resource changed during the transfer (size 2097152 became 2098152)"},
		/* No total to check in the Content-Range. */
		{"/f/file.bin?novalidator=1&cut=300000&times=1&startotal=1",
		 "cannot resume at byte 300000: no ETag or Last-Modified, and the Content-Range "
		 "does not state the total"},
		/* The whole body again: nothing shows it is the same one. */
		{"/f/file.bin?novalidator=1&cut=300000&times=1&noranges=1",
		 "cannot resume at byte 300000: the server ignored Range (HTTP 200)"},
		/* No length in the first response: nothing to compare with. */
		{"/f/file.bin?novalidator=1&cut=300000&times=1&chunked=1",
		 "cannot resume: the server sent no ETag, Last-Modified or Content-Length"},
	};
	struct dsc_url_opts o;
	unsigned retries = 0;
	size_t i;

	fast_opts(&o);
	ASSERT(!o.resume_without_validator);
	{
		struct dsc_error e = {0};
		ASSERT_ERR(fetch("/f/file.bin?novalidator=1&cut=300000&times=1", &o, 4096, NULL,
				 NULL, &e),
			   DSC_ERR_REMOTE);
		ASSERT(strstr(e.message, "cannot resume: the server sent no ETag or "
					 "Last-Modified") != NULL);
	}
	o.resume_without_validator = true;
	{
		struct dsc_error e = {0};
		ASSERT_OK(fetch("/f/file.bin?novalidator=1&cut=300000&times=3", &o, 1000, NULL,
				&retries, &e),
			  &e);
		ASSERT(retries == 3);
		/* Servers with validators are resumed as before. */
		ASSERT_OK(fetch("/f/file.bin?cut=300000&times=1", &o, 1000, NULL, &retries, &e),
			  &e);
		ASSERT(retries == 1);
		/* A cut before the first byte: a plain GET again. */
		ASSERT_OK(fetch("/f/file.bin?novalidator=1&cut=0&times=1", &o, 4096, NULL, &retries,
				&e),
			  &e);
		ASSERT(retries == 1);
	}
	for (i = 0; i < sizeof refused / sizeof *refused; i++) {
		struct dsc_error e = {0};
		dsc_err rc = fetch(refused[i].path, &o, 4096, NULL, NULL, &e);
		if (rc != DSC_ERR_REMOTE || !strstr(e.message, refused[i].want))
			tu_fail(__FILE__, __LINE__, "%s: %s (%s), want REMOTE with \"%s\"",
				refused[i].path, dsc_err_name(rc), e.message, refused[i].want);
	}
}

/* Open `path` with `o`; NULL (and a test failure) when that fails. */
static dsc_stream *open_path(const char *path, const struct dsc_url_opts *o)
{
	struct dsc_error e = {0};
	char url[512];
	dsc_stream *s = NULL;

	url_of(url, sizeof url, path);
	if (dsc_stream_open_url(url, o, &s, &e) != DSC_OK)
		tu_fail(__FILE__, __LINE__, "%s: %s", path, e.message);
	return s;
}

/* Read len bytes at the stream's position; they must be the file's. */
static void read_at(dsc_stream *s, uint64_t off, size_t len, int line)
{
	struct dsc_error e = {0};
	uint8_t *got = tu_xmalloc(len ? len : 1);
	size_t n = 0;
	dsc_err rc;

	if (dsc_stream_tell(s) != off)
		tu_fail(__FILE__, line, "at byte %llu, want %llu",
			(unsigned long long)dsc_stream_tell(s), (unsigned long long)off);
	rc = dsc_read_full(s, got, len, &n, &e);
	if (rc != DSC_OK)
		tu_fail(__FILE__, line, "read at %llu: %s", (unsigned long long)off, e.message);
	else if (n != DSC_MIN(len, file_len - off) || memcmp(got, file_data + off, n) != 0)
		tu_fail(__FILE__, line, "the %zu bytes read at %llu are not the file's", n,
			(unsigned long long)off);
	free(got);
}

/* The server's log has a line that contains `needle`. */
static bool log_has(const char *needle)
{
	char path[128], line[1024];
	bool found = false;
	FILE *f;

	snprintf(path, sizeof path, "%s/log", root);
	f = fopen(path, "r");
	while (f && !found && fgets(line, sizeof line, f))
		found = strstr(line, needle) != NULL;
	if (f)
		fclose(f);
	return found;
}

/* Seeks only when the first response shows that ranges work. */
static void test_seek_caps(void)
{
	static const struct {
		const char *path;
		bool seek, without_validator;
	} cases[] = {
		{"/f/file.bin?caps=1", true, false},
		{"/f/file.bin?caps=2&lmonly=1", true, false},
		{"/f/file.bin?caps=3&weak=1", true, false}, /* Last-Modified remains */
		{"/f/file.bin?caps=4&noaccept=1", false, false},
		{"/f/file.bin?caps=5&noranges=1", false, false},
		{"/f/file.bin?caps=6&chunked=1", false, false}, /* no size */
		{"/f/file.bin?caps=7&novalidator=1", false, false},
		{"/f/file.bin?caps=8&novalidator=1", true, true},
		{"/f/file.bin?caps=9&novalidator=1&chunked=1", false, true},
	};
	struct dsc_url_opts o;
	size_t i;

	for (i = 0; i < sizeof cases / sizeof *cases; i++) {
		struct dsc_error e = {0};
		dsc_stream *s;
		bool seeks;

		fast_opts(&o);
		o.resume_without_validator = cases[i].without_validator;
		s = open_path(cases[i].path, &o);
		if (!s)
			continue;
		seeks = (dsc_stream_caps(s) & DSC_STREAM_SEEK) != 0;
		if (seeks != cases[i].seek || dsc_stream_can_seek(s) != cases[i].seek)
			tu_fail(__FILE__, __LINE__, "%s: seek %d, want %d", cases[i].path, seeks,
				cases[i].seek);
		if (!cases[i].seek)
			ASSERT_ERR(dsc_stream_seek(s, 10, &e), DSC_ERR_UNSUPPORTED);
		ASSERT(dsc_stream_url_requests(s) == 1);
		dsc_stream_close(s);
	}
}

static void test_seek(void)
{
	struct dsc_url_opts o;
	struct dsc_error e = {0};
	uint64_t off;
	dsc_stream *s, *m = NULL;
	uint8_t head[4096];
	unsigned i;

	fast_opts(&o);
	o.buffer_size = 65536;
	/* A sequential read is one request, also with seeks to where it is. */
	s = open_path("/f/file.bin?seq=1", &o);
	REQUIRE(s);
	ASSERT_OK(dsc_stream_seek(s, 0, &e), &e);
	read_at(s, 0, 1000, __LINE__);
	ASSERT_OK(dsc_stream_seek(s, 1000, &e), &e);
	read_at(s, 1000, file_len - 1000, __LINE__);
	ASSERT(dsc_stream_url_requests(s) == 1);
	ASSERT_EQ_U64(dsc_stream_bytes(s), file_len);
	dsc_stream_close(s);

	s = open_path("/f/file.bin?seek=1", &o);
	REQUIRE(s);
	read_at(s, 0, 100000, __LINE__);
	/* Forward by less than the window: read on, no request. */
	ASSERT_OK(dsc_stream_seek(s, 300000, &e), &e);
	read_at(s, 300000, 5000, __LINE__);
	ASSERT(dsc_stream_url_requests(s) == 1);
	/* Far forward, backward, back to 0: one ranged request each. */
	ASSERT_OK(dsc_stream_seek(s, 1500000, &e), &e);
	read_at(s, 1500000, 70000, __LINE__);
	ASSERT(dsc_stream_url_requests(s) == 2);
	ASSERT(log_has("seek=1 range=bytes=1500000- if-range=\""));
	ASSERT_OK(dsc_stream_seek(s, 1000, &e), &e);
	read_at(s, 1000, 200000, __LINE__);
	ASSERT_OK(dsc_stream_seek(s, 0, &e), &e);
	read_at(s, 0, 10, __LINE__);
	ASSERT(dsc_stream_url_requests(s) == 4);
	/* Seeks that no read follows cost nothing. */
	ASSERT_OK(dsc_stream_seek(s, 900000, &e), &e);
	ASSERT_OK(dsc_stream_seek(s, 100, &e), &e);
	ASSERT_OK(dsc_stream_seek(s, 1800000, &e), &e);
	read_at(s, 1800000, file_len - 1800000, __LINE__);
	ASSERT(dsc_stream_url_requests(s) == 5);
	ASSERT(dsc_stream_url_retries(s) == 0);
	dsc_stream_close(s);

	/* N far seeks: 1 + N requests. */
	s = open_path("/f/file.bin?seek=2", &o);
	REQUIRE(s);
	for (i = 0; i < 8; i++) {
		off = file_len - (uint64_t)(i + 1) * 250000;
		ASSERT_OK(dsc_stream_seek(s, off, &e), &e);
		read_at(s, off, 1000, __LINE__);
	}
	ASSERT(dsc_stream_url_requests(s) == 9);
	/* To the end: end of stream without a request; past it: an error
	 * naming the URL and the offset. */
	ASSERT_OK(dsc_stream_seek(s, file_len, &e), &e);
	read_at(s, file_len, 100, __LINE__);
	ASSERT(dsc_stream_url_requests(s) == 9);
	ASSERT_ERR(dsc_stream_seek(s, file_len + 1, &e), DSC_ERR_INVAL);
	ASSERT(strstr(e.message, "/f/file.bin: cannot seek to byte 2097153: the resource has "
				 "2097152 bytes") != NULL);
	ASSERT(strstr(e.message, "seek=2") == NULL);
	dsc_stream_close(s);

	/* dsc_stream_skip(): a small skip reads on, a big one is a request. */
	memset(&e, 0, sizeof e);
	s = open_path("/f/file.bin?skip=1", &o);
	REQUIRE(s);
	read_at(s, 0, 10, __LINE__);
	ASSERT_OK(dsc_stream_skip(s, 100000, NULL, &e), &e);
	read_at(s, 100010, 10, __LINE__);
	ASSERT(dsc_stream_url_requests(s) == 1);
	ASSERT_OK(dsc_stream_skip(s, 1000000, NULL, &e), &e);
	read_at(s, 1100020, 10, __LINE__);
	ASSERT(dsc_stream_url_requests(s) == 2);
	dsc_stream_close(s);

	/* Within bytes pushed back (format detection): no request. */
	s = open_path("/f/file.bin?unread=1", &o);
	REQUIRE(s);
	REQUIRE_OK(dsc_read_full(s, head, sizeof head, NULL, &e), &e);
	REQUIRE_OK(dsc_stream_unread(s, head, sizeof head, &e), &e);
	ASSERT_OK(dsc_stream_seek(s, 100, &e), &e);
	read_at(s, 100, 5000, __LINE__);
	ASSERT(dsc_stream_url_requests(s) == 1);
	dsc_stream_close(s);

	/* A seek's request cut like any other: resumed. The first two requests
	 * of this URL are cut after 100000 bytes. */
	s = open_path("/f/file.bin?cut=100000&times=2", &o);
	REQUIRE(s);
	ASSERT_OK(dsc_stream_seek(s, 1000000, &e), &e);
	read_at(s, 1000000, 300000, __LINE__);
	ASSERT(dsc_stream_url_requests(s) == 3);
	ASSERT(dsc_stream_url_retries(s) == 1);
	ASSERT(log_has("cut=100000&times=2 range=bytes=1100000- if-range=\""));
	dsc_stream_close(s);

	/* Without a validator, when the caller checks the bytes: Range alone. */
	o.resume_without_validator = true;
	s = open_path("/f/file.bin?novalidator=1&seek=3", &o);
	REQUIRE(s);
	ASSERT_OK(dsc_stream_seek(s, 777777, &e), &e);
	read_at(s, 777777, 1000, __LINE__);
	ASSERT(log_has("novalidator=1&seek=3 range=bytes=777777- -> 206"));
	dsc_stream_close(s);

	ASSERT(dsc_stream_url_requests(NULL) == 0);
	REQUIRE_OK(dsc_stream_open_mem(head, sizeof head, "mem", &m, &e), &e);
	ASSERT(dsc_stream_url_requests(m) == 0);
	dsc_stream_close(m);
}

/* After a seek, a 200 is never read from byte 0. */
static void test_seek_refused(void)
{
	static const struct {
		const char *path, *want;
	} cases[] = {
		{"/f/file.bin?ignorerange=1",
		 "cannot seek: the server ignored Range (HTTP 200 to a request from byte 1500000)"},
		{"/f/file.bin?change=1&seek=4", "the resource changed during the transfer (ETag "},
	};
	struct dsc_url_opts o;
	size_t i, n;

	fast_opts(&o);
	o.buffer_size = 65536;
	for (i = 0; i < sizeof cases / sizeof *cases; i++) {
		struct dsc_error e = {0};
		uint8_t buf[1000];
		dsc_stream *s = open_path(cases[i].path, &o);

		if (!s)
			continue;
		ASSERT(dsc_stream_can_seek(s));
		ASSERT_OK(dsc_stream_seek(s, 1500000, &e), &e);
		ASSERT_ERR(dsc_read_full(s, buf, sizeof buf, &n, &e), DSC_ERR_REMOTE);
		if (!strstr(e.message, cases[i].want))
			tu_fail(__FILE__, __LINE__, "%s: \"%s\", want \"%s\"", cases[i].path,
				e.message, cases[i].want);
		ASSERT(e.http_status == 200);
		/* Not retried: the answer will not change. */
		ASSERT(dsc_stream_url_requests(s) == 2);
		ASSERT_ERR(dsc_stream_seek(s, 0, NULL), DSC_ERR_REMOTE);
		dsc_stream_close(s);
	}
}

static void test_failures(void)
{
	struct dsc_url_opts o;
	char url[512];
	dsc_stream *s = NULL;

	fast_opts(&o);
	{
		struct dsc_error e = {0};
		ASSERT_ERR(fetch("/f/missing.bin", &o, 4096, NULL, NULL, &e), DSC_ERR_REMOTE);
		ASSERT(e.http_status == 404);
		ASSERT(e.sys_errno != ETIMEDOUT);
		url_of(url, sizeof url, "/f/missing.bin: HTTP 404 Not Found");
		ASSERT(strcmp(e.message, url) == 0);
	}
	{
		/* A timeout says so in sys_errno (dsc-server answers 504 by
		 * it), also after the retries ran out. */
		struct dsc_error e = {0};
		o.retries = 0;
		o.idle_timeout = 1;
		ASSERT_ERR(fetch("/f/file.bin?stall=0&hold=30", &o, 4096, NULL, NULL, &e),
			   DSC_ERR_REMOTE);
		ASSERT(e.sys_errno == ETIMEDOUT);
		ASSERT(e.http_status == 0);
		ASSERT(strstr(e.message, "idle timeout") != NULL);
		o.idle_timeout = 2;
	}
	{
		struct dsc_error e = {0};
		o.retries = 2;
		ASSERT_ERR(fetch("/f/file.bin?fail=503", &o, 4096, NULL, NULL, &e), DSC_ERR_REMOTE);
		ASSERT(e.http_status == 503);
		ASSERT(strstr(e.message,
			      "HTTP 503 Service Unavailable; too many retries (3 tries") != NULL);
	}
	{
		/* Broken after the first response: the error comes from a read,
		 * and stays. (No Accept-Ranges: the skip reads.) */
		struct dsc_error e = {0};
		uint8_t buf[4096];
		size_t n;
		o.retries = 1;
		url_of(url, sizeof url, "/f/file.bin?change=1&cut=100000&times=1&noaccept=1");
		REQUIRE_OK(dsc_stream_open_url(url, &o, &s, &e), &e);
		ASSERT_EQ_U64(dsc_stream_total(s), file_len);
		ASSERT_ERR(dsc_stream_skip(s, file_len, NULL, &e), DSC_ERR_REMOTE);
		ASSERT(strstr(e.message, "resource changed") != NULL);
		ASSERT_ERR(dsc_read_full(s, buf, sizeof buf, &n, NULL), DSC_ERR_REMOTE);
		dsc_stream_close(s);
	}
	{
		struct dsc_error e = {0};
		ASSERT_ERR(fetch("/loop/a", &o, 4096, NULL, NULL, &e), DSC_ERR_REMOTE);
		ASSERT(strstr(e.message, "redirect loop") != NULL);
	}
	{
		struct dsc_error e = {0};
		o.max_redirects = 2;
		ASSERT_ERR(fetch("/redirect/3/file.bin", &o, 4096, NULL, NULL, &e), DSC_ERR_REMOTE);
		ASSERT(strstr(e.message, "too many redirects (more than 2)") != NULL);
		o.max_redirects = 3;
		ASSERT_OK(fetch("/redirect/3/file.bin", &o, 4096, NULL, NULL, &e), &e);
	}
	{
		/* Secrets in the URL stay out of messages. */
		struct dsc_error e = {0};
		snprintf(url, sizeof url,
			 "http://user:pa55word@127.0.0.1:%d/f/missing.bin?sig=T0KEN", port);
		ASSERT_ERR(dsc_stream_open_url(url, &o, &s, &e), DSC_ERR_REMOTE);
		ASSERT(strstr(e.message, "pa55word") == NULL && strstr(e.message, "T0KEN") == NULL);
		ASSERT(strstr(e.message, "/f/missing.bin: HTTP 404") != NULL);
	}
}

static void test_policy(void)
{
	struct dsc_url_opts o;
	struct dsc_error e = {0};
	dsc_netpolicy *p = NULL;
	char path[256];

	REQUIRE_OK(dsc_netpolicy_new(&p, &e), &e);
	fast_opts(&o);
	o.policy = p;
	/* Loopback is refused by default, however it is spelled. */
	ASSERT_ERR(fetch("/f/file.bin", &o, 4096, NULL, NULL, &e), DSC_ERR_PERM);
	ASSERT(strstr(e.message, "address 127.0.0.1 is not allowed by the address policy") != NULL);
	{
		char url[128];
		dsc_stream *s = NULL;
		struct dsc_error e2 = {0};
		snprintf(url, sizeof url, "http://2130706433:%d/f/file.bin", port);
		ASSERT_ERR(dsc_stream_open_url(url, &o, &s, &e2), DSC_ERR_PERM);
		snprintf(url, sizeof url, "http://0x7f.1:%d/f/file.bin", port);
		ASSERT_ERR(dsc_stream_open_url(url, &o, &s, NULL), DSC_ERR_PERM);
	}
	/* Allowed explicitly: fine; a redirect to another loopback address
	 * that the rules do not allow is refused at its connect. */
	memset(&e, 0, sizeof e);
	ASSERT_OK(dsc_netpolicy_add(p, "127.0.0.1", true, &e), &e);
	ASSERT_OK(fetch("/f/file.bin", &o, 4096, NULL, NULL, &e), &e);
	snprintf(path, sizeof path, "/to?url=http://127.0.0.2:%d/f/file.bin", port);
	ASSERT_ERR(fetch(path, &o, 4096, NULL, NULL, &e), DSC_ERR_PERM);
	ASSERT(strstr(e.message, "address 127.0.0.2 is not allowed") != NULL);
	memset(&e, 0, sizeof e);
	snprintf(path, sizeof path, "/to?url=http://[::1]:%d/f/file.bin", port);
	ASSERT_ERR(fetch(path, &o, 4096, NULL, NULL, &e), DSC_ERR_PERM);
	dsc_netpolicy_free(p);
}

/* A port nobody listens on: bound, then released. */
static int dead_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t len = sizeof a;
	int fd = socket(AF_INET, SOCK_STREAM, 0), p = 0;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &len) == 0)
		p = ntohs(a.sin_port);
	if (fd >= 0)
		close(fd);
	return p;
}

static void test_env_proxy(void)
{
	struct dsc_url_opts o;
	struct dsc_error e = {0};
	char proxy[64];
	int p = dead_port();

	REQUIRE(p > 0);
	snprintf(proxy, sizeof proxy, "http://127.0.0.1:%d", p);
	setenv("http_proxy", proxy, 1);
	unsetenv("no_proxy");
	unsetenv("NO_PROXY");
	fast_opts(&o);
	/* Ignored by default: the policy must see the real peer. */
	ASSERT_OK(fetch("/f/file.bin", &o, 65536, NULL, NULL, &e), &e);
	/* Used when asked: the dead proxy refuses. */
	o.use_env_proxy = true;
	ASSERT_ERR(fetch("/f/file.bin", &o, 65536, NULL, NULL, &e), DSC_ERR_REMOTE);
	ASSERT(strstr(e.message, "Connection refused") != NULL);
	unsetenv("http_proxy");
}

static void test_connection_refused(void)
{
	struct dsc_error e = {0};
	char url[128];
	dsc_stream *s = NULL;
	int p = dead_port();

	REQUIRE(p > 0);
	snprintf(url, sizeof url, "http://127.0.0.1:%d/x.vmdk", p);
	ASSERT_ERR(dsc_stream_open_url(url, NULL, &s, &e), DSC_ERR_REMOTE);
	ASSERT(strstr(e.message, "x.vmdk: cannot connect: Connection refused") != NULL);
	ASSERT(e.sys_errno == ECONNREFUSED);
	ASSERT(e.http_status == 0);
}

static int cancel_calls;
static bool cancel_after_two(void *user) { return ++cancel_calls > 2; }

static void test_cancel(void)
{
	struct dsc_url_opts o;
	struct dsc_error e = {0};
	time_t t0 = time(NULL);

	fast_opts(&o);
	o.idle_timeout = 0;
	o.cancel = cancel_after_two;
	ASSERT_ERR(fetch("/f/file.bin?stall=0&hold=30", &o, 4096, NULL, NULL, &e),
		   DSC_ERR_CANCELLED);
	ASSERT(time(NULL) - t0 < 10);
	ASSERT(strstr(e.message, "cancelled") != NULL);
}

int main(void)
{
	TU_RUN(test_looks_like_url);
	TU_RUN(test_refused_before_network);
	if (!start_server()) {
		tu_skip("cannot start tests/tools/httpd.py (python3, top_srcdir)");
		return tu_exit();
	}
	TU_RUN(test_whole_file);
	TU_RUN(test_resume);
	TU_RUN(test_resume_without_validator);
	TU_RUN(test_seek_caps);
	TU_RUN(test_seek);
	TU_RUN(test_seek_refused);
	TU_RUN(test_failures);
	TU_RUN(test_policy);
	TU_RUN(test_cancel);
	TU_RUN(test_env_proxy);
	TU_RUN(test_connection_refused);
	stop_server();
	return tu_exit();
}

#else

int main(void)
{
	struct dsc_error e = {0};
	dsc_stream *s = NULL;

	ASSERT_ERR(dsc_stream_open_url("http://127.0.0.1/", NULL, &s, &e), DSC_ERR_UNSUPPORTED);
	tu_skip("built without libcurl");
	return tu_exit();
}

#endif
