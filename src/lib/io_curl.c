/* io_curl.c - http(s) input streams: libcurl's multi interface behind a
 * bounded buffer, with resume.
 *
 * A URL stream is a read-only dsc_stream. Its context owns one multi handle
 * and, during a try, one easy handle whose write callback appends to a
 * fixed buffer. When a chunk does not fit, the callback pauses the
 * transfer (CURL_WRITEFUNC_PAUSE); read() unpauses it once the buffer is
 * half empty. So memory is the buffer plus libcurl's own, whatever the
 * network speed, and the network waits for the disk rather than the
 * reverse.
 *
 * A "try" is one request, including the redirects libcurl follows. When a
 * try breaks off (reset, idle timeout, short body, 5xx...), the next try
 * asks for the first byte not yet buffered with Range and If-Range (the
 * first response's strong ETag, else its Last-Modified), and its answer is
 * checked before a byte is used: a 206 must start at that byte and agree on
 * the total; a 200 is used only when its validator is unchanged (its first
 * bytes are then dropped). Anything else means the resource changed, which
 * fails the stream: mixing two versions of an image would be silent
 * corruption. A server that sends neither ETag nor Last-Modified gives
 * nothing to check, so such a stream is not resumed, unless the caller
 * verifies the bytes itself (resume_without_validator, e.g. a SHA-256):
 * then it resumes with Range alone, when the 206's Content-Range total
 * equals the first response's length. Tries that bring no new byte count
 * against `retries`, with a doubling backoff.
 *
 * A stream whose first response shows that ranges can be served (Accept-
 * Ranges: bytes, a Content-Length, and a validator, or none with
 * resume_without_validator) also seeks: a seek forward by less than
 * URL_SEEK_WINDOW beyond what is buffered reads on and drops the bytes;
 * any other seek ends the try, and the next read starts a new one at the
 * offset, which is a resume like any other (Range + If-Range, the same
 * checks, retries, policy and headers), except that a 200 answer is then
 * refused instead of read from byte 0. Other streams have no seek op.
 *
 * Requests are restricted to http and https (also for redirects), do not
 * use an environment proxy unless asked, and every socket passes the
 * caller's address policy in the open-socket callback, which libcurl calls
 * after name resolution for each connection, so no spelling of a host
 * name or redirect can reach an address the policy refuses.
 */
#include "internal.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <strings.h>

bool dsc_looks_like_url(const char *s)
{
	const char *p = s;

	if (!s || !isalpha((unsigned char)*p))
		return false;
	while (isalnum((unsigned char)*p) || *p == '+' || *p == '-' || *p == '.')
		p++;
	return strncmp(p, "://", 3) == 0;
}

void dsc_url_opts_init(struct dsc_url_opts *o)
{
	memset(o, 0, sizeof *o);
	o->retries = 5;
	o->idle_timeout = 60;
	o->connect_timeout = 30;
	o->max_redirects = 10;
	o->retry_delay_ms = 1000;
	o->buffer_size = 1u << 20;
}

#if HAVE_CURL

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>

#include <curl/curl.h>

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Named limits. */
#define URL_MIN_BUFFER 65536u /* > CURL_MAX_WRITE_SIZE, one chunk fits */
#define URL_MAX_BUFFER (256u << 20)
#define URL_MAX_DELAY_MS 30000u /* backoff cap */
#define URL_MAX_REDIRECTS 50u
#define URL_MAX_HEADERS 64u /* caller's extra headers */
#define URL_MAX_HEADER_LEN 8192u
#define URL_VALIDATOR_MAX 256u /* longest ETag / Last-Modified kept */
#define URL_TEXT_MAX 400u
/* A seek forward by at most this many bytes past the buffer reads on: a
 * new request costs a round trip or more, about what 256 KiB take on a
 * fast link. */
#define URL_SEEK_WINDOW (256u << 10)

/* What ended a try, kept until it is reported or retried. */
struct failure {
	dsc_err code;
	int sys_errno;
	int http_status;
	bool retryable;
	char text[URL_TEXT_MAX];
};

struct curl_src {
	char *url;  /* as given: what every try requests */
	char *name; /* for messages: no credentials, no query */
	struct dsc_url_opts o;
	char *cacert;
	char *user_agent;
	char **headers;
	size_t nheaders;

	CURLM *multi;
	CURL *easy;                     /* the current try; NULL between */
	struct curl_slist *req_headers; /* the current try's header list */
	char errbuf[CURL_ERROR_SIZE];

	uint8_t *buf; /* bytes [head, tail) wait for the reader */
	size_t cap, head, tail;
	bool paused;
	bool eof;
	uint64_t last_activity_ms; /* when the current try last moved */

	dsc_err failed; /* sticky: every later read repeats it */
	struct dsc_error err;

	uint64_t received;                /* bytes of the resource buffered so far */
	uint64_t total;                   /* from the first response; UINT64_MAX unknown */
	bool started;                     /* a first response was accepted */
	char etag[URL_VALIDATOR_MAX];     /* strong ETag of the first response */
	char modified[URL_VALIDATOR_MAX]; /* its Last-Modified */
	unsigned failures;                /* failed tries since the last byte */
	unsigned retries_done;
	unsigned requests; /* tries started: first, retries, seeks */
	bool ranges;       /* the first response: Accept-Ranges: bytes */
	bool sought;       /* a seek started a ranged try */
	bool pending;      /* a seek ended the try: the next read starts one */

	/* The current try. */
	uint64_t try_start; /* first byte asked for */
	uint64_t skip;      /* bytes to drop: the server ignored Range */
	bool accepted;      /* its final response was accepted */
	bool at_end;        /* a 416 said we already had every byte */
	int status;
	char reason[96];
	uint64_t r_length; /* Content-Length, UINT64_MAX if none */
	bool r_has_range;
	uint64_t r_range_start, r_range_total; /* total UINT64_MAX for '*' */
	bool r_location;
	bool r_ranges; /* Accept-Ranges lists "bytes" */
	char r_etag[URL_VALIDATOR_MAX];
	char r_modified[URL_VALIDATOR_MAX];
	char **hops; /* URLs that answered with a redirect in this try */
	size_t nhops;
	bool cb_failed;
	struct failure cb;                 /* set by a callback that stopped the try */
	char denied[INET6_ADDRSTRLEN + 8]; /* last address the policy refused */
};

static dsc_err record(struct curl_src *c, const struct failure *f)
{
	if (c->failed == DSC_OK) {
		dsc_error_set(&c->err, f->code, f->sys_errno, "%s: %s", c->name, f->text);
		c->err.http_status = f->http_status;
		c->failed = f->code;
	}
	return c->failed;
}

static dsc_err report(const struct curl_src *c, struct dsc_error *e)
{
	if (e && e->code == DSC_OK)
		*e = c->err;
	return c->failed;
}

static void failure_set(struct failure *f, dsc_err code, bool retryable, int http_status,
			int sys_errno, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

static void failure_set(struct failure *f, dsc_err code, bool retryable, int http_status,
			int sys_errno, const char *fmt, ...)
{
	va_list ap;

	f->code = code;
	f->retryable = retryable;
	f->http_status = http_status;
	f->sys_errno = sys_errno;
	va_start(ap, fmt);
	vsnprintf(f->text, sizeof f->text, fmt, ap);
	va_end(ap);
}

/* Stop the current try from inside a callback. */
#define CB_FAIL(c, ...)                                     \
	do {                                                \
		if (!(c)->cb_failed) {                      \
			(c)->cb_failed = true;              \
			failure_set(&(c)->cb, __VA_ARGS__); \
		}                                           \
	} while (0)

/* The URL without user:password, query or fragment, for messages (query
 * strings often carry signatures or tokens). */
static char *redact(const char *url)
{
	CURLU *u = curl_url();
	char *s = NULL, *out = NULL;

	if (u && curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME) == CURLUE_OK &&
	    curl_url_set(u, CURLUPART_USER, NULL, 0) == CURLUE_OK &&
	    curl_url_set(u, CURLUPART_PASSWORD, NULL, 0) == CURLUE_OK &&
	    curl_url_set(u, CURLUPART_OPTIONS, NULL, 0) == CURLUE_OK &&
	    curl_url_set(u, CURLUPART_QUERY, NULL, 0) == CURLUE_OK &&
	    curl_url_set(u, CURLUPART_FRAGMENT, NULL, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_URL, &s, 0) == CURLUE_OK)
		out = strdup(s);
	if (!out) {
		/* Unparsable: keep the scheme and what follows the last '@'
		 * of the authority, drop query and fragment. */
		const char *auth = strstr(url, "://"), *at, *p;
		size_t end;
		auth = auth ? auth + 3 : url;
		end = strcspn(auth, "/?#");
		at = NULL;
		for (p = auth; p < auth + end; p++)
			if (*p == '@')
				at = p;
		if (at) {
			size_t lead = (size_t)(auth - url);
			size_t rest = strcspn(at + 1, "?#");
			out = malloc(lead + rest + 1);
			if (out) {
				memcpy(out, url, lead);
				memcpy(out + lead, at + 1, rest);
				out[lead + rest] = '\0';
			}
		} else {
			out = strndup(url, strcspn(url, "?#"));
		}
	}
	curl_free(s);
	curl_url_cleanup(u);
	return out;
}

/* Standard reason phrases, for HTTP/2 and servers that send none. */
static const char *reason_phrase(int status)
{
	switch (status) {
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 410: return "Gone";
	case 412: return "Precondition Failed";
	case 416: return "Range Not Satisfiable";
	case 429: return "Too Many Requests";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	}
	return "";
}

static void copy_value(char *dst, size_t cap, const char *v, size_t len)
{
	if (len >= cap)
		len = cap - 1; /* an over-long validator will simply not match */
	memcpy(dst, v, len);
	dst[len] = '\0';
}

static bool parse_u64(const char *s, size_t len, uint64_t *out)
{
	uint64_t v = 0;
	size_t i;

	if (len == 0 || len > 20)
		return false;
	for (i = 0; i < len; i++) {
		if (!isdigit((unsigned char)s[i]))
			return false;
		if (v > (UINT64_MAX - (uint64_t)(s[i] - '0')) / 10)
			return false;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	*out = v;
	return true;
}

/* "bytes START-END/TOTAL", TOTAL may be "*" (unknown). */
static bool parse_content_range(struct curl_src *c, const char *v, size_t len)
{
	const char *dash, *slash, *end = v + len;
	uint64_t last;

	if (len < 6 || strncasecmp(v, "bytes ", 6) != 0)
		return false;
	v += 6;
	if (end - v > 2 && v[0] == '*' && v[1] == '/') {
		/* An unsatisfied range ("bytes *" then "/SIZE"): a size only. */
		c->r_range_start = UINT64_MAX;
		return parse_u64(v + 2, (size_t)(end - v - 2), &c->r_range_total);
	}
	dash = memchr(v, '-', (size_t)(end - v));
	slash = memchr(v, '/', (size_t)(end - v));
	if (!dash || !slash || slash < dash)
		return false;
	if (!parse_u64(v, (size_t)(dash - v), &c->r_range_start) ||
	    !parse_u64(dash + 1, (size_t)(slash - dash - 1), &last) || last < c->r_range_start)
		return false;
	if (end - slash == 2 && slash[1] == '*')
		c->r_range_total = UINT64_MAX;
	else if (!parse_u64(slash + 1, (size_t)(end - slash - 1), &c->r_range_total) ||
		 last >= c->r_range_total)
		return false;
	return true;
}

static void new_response(struct curl_src *c, const char *line, size_t len)
{
	const char *p = memchr(line, ' ', len), *end = line + len;
	int status = 0;

	c->status = 0;
	c->reason[0] = '\0';
	c->r_length = UINT64_MAX;
	c->r_has_range = false;
	c->r_location = false;
	c->r_ranges = false;
	c->r_etag[0] = c->r_modified[0] = '\0';
	if (!p)
		return;
	p++;
	while (p < end && isdigit((unsigned char)*p) && status < 1000)
		status = status * 10 + (*p++ - '0');
	c->status = status;
	while (p < end && *p == ' ')
		p++;
	copy_value(c->reason, sizeof c->reason, p, (size_t)(end - p));
	if (!c->reason[0])
		snprintf(c->reason, sizeof c->reason, "%s", reason_phrase(status));
}

static bool has_validator(const struct curl_src *c) { return c->etag[0] || c->modified[0]; }

static bool validators_match(const struct curl_src *c)
{
	if (c->etag[0])
		return strcmp(c->etag, c->r_etag) == 0;
	if (c->modified[0])
		return strcmp(c->modified, c->r_modified) == 0;
	return false;
}

/* Describe how the resource changed, for the error message. */
static void changed(struct curl_src *c, const char *detail)
{
	CB_FAIL(c, DSC_ERR_REMOTE, false, c->status, 0,
		"the resource changed during the transfer (%s); cannot resume at byte %llu", detail,
		(unsigned long long)c->try_start);
}

/* A 2xx final response: decide whether its body continues ours. */
static bool accept_response(struct curl_src *c)
{
	char what[URL_TEXT_MAX];

	if (!c->started) {
		if (c->status == 206) {
			CB_FAIL(c, DSC_ERR_REMOTE, false, 206, 0,
				"HTTP 206 answer to a request without Range");
			return false;
		}
		if (strncmp(c->r_etag, "W/", 2) != 0)
			snprintf(c->etag, sizeof c->etag, "%s", c->r_etag);
		snprintf(c->modified, sizeof c->modified, "%s", c->r_modified);
		if (c->status != 204)
			c->total = c->r_length;
		else
			c->total = 0;
		c->ranges = c->status == 200 && c->r_ranges;
		c->started = true;
		c->accepted = true;
		return true;
	}
	if (c->status == 206) {
		if (c->try_start == 0 || !c->r_has_range) {
			CB_FAIL(c, DSC_ERR_REMOTE, false, 206, 0,
				"HTTP 206 without a usable Content-Range");
			return false;
		}
		if (c->r_range_start != c->try_start) {
			CB_FAIL(c, DSC_ERR_REMOTE, false, 206, 0,
				"asked to resume at byte %llu, the server sent bytes from %llu",
				(unsigned long long)c->try_start,
				(unsigned long long)c->r_range_start);
			return false;
		}
		/* Without a validator the total is all there is to check
		 * (the caller verifies the bytes): it must be stated. */
		if (!has_validator(c) && c->r_range_total == UINT64_MAX) {
			CB_FAIL(c, DSC_ERR_REMOTE, false, 206, 0,
				"cannot resume at byte %llu: no ETag or Last-Modified, and the "
				"Content-Range does not state the total to check",
				(unsigned long long)c->try_start);
			return false;
		}
		if (c->total != UINT64_MAX && c->r_range_total != UINT64_MAX &&
		    c->r_range_total != c->total) {
			snprintf(what, sizeof what, "size %llu became %llu",
				 (unsigned long long)c->total,
				 (unsigned long long)c->r_range_total);
			changed(c, what);
			return false;
		}
		if ((c->etag[0] && c->r_etag[0] && strcmp(c->etag, c->r_etag) != 0) ||
		    (!c->etag[0] && c->modified[0] && c->r_modified[0] &&
		     strcmp(c->modified, c->r_modified) != 0)) {
			snprintf(what, sizeof what, "ETag/Last-Modified %.100s became %.100s",
				 c->etag[0] ? c->etag : c->modified,
				 c->etag[0] ? c->r_etag : c->r_modified);
			changed(c, what);
			return false;
		}
		c->accepted = true;
		return true;
	}
	if (c->status == 200) {
		/* The whole resource again: usable only if it is the same one
		 * (If-Range failed, or the server ignores Range). */
		if (c->try_start > 0 && !has_validator(c)) {
			CB_FAIL(c, DSC_ERR_REMOTE, false, 200, 0,
				"cannot resume at byte %llu: the server ignored Range (HTTP 200) "
				"and sent no ETag or Last-Modified",
				(unsigned long long)c->try_start);
			return false;
		}
		if (c->try_start > 0 || has_validator(c)) {
			if (!validators_match(c)) {
				snprintf(what, sizeof what, "%s %.100s became %.100s",
					 c->etag[0] ? "ETag" : "Last-Modified",
					 c->etag[0] ? c->etag : c->modified,
					 c->etag[0] ? (c->r_etag[0] ? c->r_etag : "none") :
						      (c->r_modified[0] ? c->r_modified : "none"));
				changed(c, what);
				return false;
			}
		}
		if (c->total != UINT64_MAX && c->r_length != UINT64_MAX &&
		    c->r_length != c->total) {
			snprintf(what, sizeof what, "size %llu became %llu",
				 (unsigned long long)c->total, (unsigned long long)c->r_length);
			changed(c, what);
			return false;
		}
		/* After a seek, dropping the bytes before it would read the
		 * whole resource again for every seek. */
		if (c->try_start > 0 && c->sought) {
			CB_FAIL(c, DSC_ERR_REMOTE, false, 200, 0,
				"cannot seek: the server ignored Range (HTTP 200 to a request "
				"from byte %llu)",
				(unsigned long long)c->try_start);
			return false;
		}
		c->skip = c->try_start;
		c->accepted = true;
		return true;
	}
	CB_FAIL(c, DSC_ERR_REMOTE, false, c->status, 0, "unexpected HTTP %d %s when resuming",
		c->status, c->reason);
	return false;
}

/* The blank line after a response's headers. */
static bool end_of_headers(struct curl_src *c)
{
	char *eff = NULL, *shown;
	size_t i;

	if (c->status >= 100 && c->status < 200)
		return true; /* interim response; the real one follows */
	if (c->status >= 300 && c->status < 400 && c->r_location) {
		/* libcurl follows it; a URL met twice in one try is a loop. */
		curl_easy_getinfo(c->easy, CURLINFO_EFFECTIVE_URL, &eff);
		if (!eff)
			return true;
		for (i = 0; i < c->nhops; i++) {
			if (strcmp(c->hops[i], eff) == 0) {
				shown = redact(eff);
				CB_FAIL(c, DSC_ERR_REMOTE, false, c->status, 0,
					"redirect loop: %s redirects back to itself after %zu hops",
					shown ? shown : "a URL", c->nhops - i);
				free(shown);
				return false;
			}
		}
		if (c->nhops <= c->o.max_redirects) {
			char *dup = strdup(eff);
			if (!dup) {
				CB_FAIL(c, DSC_ERR_NOMEM, false, 0, ENOMEM, "out of memory");
				return false;
			}
			c->hops[c->nhops++] = dup;
		}
		return true;
	}
	if (c->status >= 200 && c->status < 300)
		return accept_response(c);
	if (c->status == 416 && c->started && c->try_start > 0 && c->r_has_range &&
	    c->r_range_start == UINT64_MAX && c->r_range_total == c->try_start &&
	    (c->total == UINT64_MAX || c->total == c->try_start)) {
		/* The try that broke had delivered every byte (a chunked body
		 * cut before its last chunk): nothing is left to fetch. */
		c->at_end = true;
		return false;
	}
	CB_FAIL(c, DSC_ERR_REMOTE, c->status >= 500 || c->status == 408 || c->status == 429,
		c->status, 0, "HTTP %d%s%s", c->status, c->reason[0] ? " " : "", c->reason);
	return false;
}

/* Whether a comma-separated header value lists `token`. */
static bool has_token(const char *v, size_t len, const char *token)
{
	size_t tlen = strlen(token), i = 0, j;

	while (i < len) {
		while (i < len && (v[i] == ',' || v[i] == ' ' || v[i] == '\t'))
			i++;
		j = i;
		while (j < len && v[j] != ',' && v[j] != ' ' && v[j] != '\t')
			j++;
		if (j - i == tlen && strncasecmp(v + i, token, tlen) == 0)
			return true;
		i = j;
	}
	return false;
}

static size_t on_header(char *line, size_t size, size_t nmemb, void *user)
{
	struct curl_src *c = user;
	size_t len = size * nmemb, n = len, nlen;
	const char *v, *end;

	if (c->accepted)
		return len; /* trailers of a response already accepted */
	c->last_activity_ms = now_ms();
	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		n--;
	if (n >= 5 && memcmp(line, "HTTP/", 5) == 0) {
		new_response(c, line, n);
		return len;
	}
	if (n == 0)
		return end_of_headers(c) ? len : 0;
	v = memchr(line, ':', n);
	if (!v)
		return len;
	nlen = (size_t)(v - line);
	end = line + n;
	v++;
	while (v < end && (*v == ' ' || *v == '\t'))
		v++;
	while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
#define IS(h) (nlen == sizeof(h) - 1 && strncasecmp(line, h, nlen) == 0)
	if (IS("ETag"))
		copy_value(c->r_etag, sizeof c->r_etag, v, (size_t)(end - v));
	else if (IS("Last-Modified"))
		copy_value(c->r_modified, sizeof c->r_modified, v, (size_t)(end - v));
	else if (IS("Content-Length")) {
		if (!parse_u64(v, (size_t)(end - v), &c->r_length))
			c->r_length = UINT64_MAX;
	} else if (IS("Content-Range"))
		c->r_has_range = parse_content_range(c, v, (size_t)(end - v));
	else if (IS("Location"))
		c->r_location = end > v;
	else if (IS("Accept-Ranges"))
		c->r_ranges = has_token(v, (size_t)(end - v), "bytes");
#undef IS
	return len;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *user)
{
	struct curl_src *c = user;
	size_t len = size * nmemb, drop, keep, held;
	uint8_t *grown;

	c->last_activity_ms = now_ms();
	if (!c->accepted)
		return len; /* body of a redirect we follow */
	drop = (size_t)DSC_MIN(c->skip, (uint64_t)len);
	keep = len - drop;
	if (c->total != UINT64_MAX && keep > c->total - c->received) {
		CB_FAIL(c, DSC_ERR_REMOTE, false, c->status, 0,
			"the server sent more than the %llu bytes it announced",
			(unsigned long long)c->total);
		return 0;
	}
	held = c->tail - c->head;
	if (keep > c->cap - held) {
		if (held > 0) {
			/* Full: libcurl keeps this chunk and hands it over again
			 * once read() unpauses us. */
			c->paused = true;
			return CURL_WRITEFUNC_PAUSE;
		}
		/* An empty buffer smaller than one chunk: grow it once. */
		grown = realloc(c->buf, keep);
		if (!grown) {
			CB_FAIL(c, DSC_ERR_NOMEM, false, 0, ENOMEM, "out of memory");
			return 0;
		}
		c->buf = grown;
		c->cap = keep;
		c->head = c->tail = 0;
	}
	if (keep > c->cap - c->tail) {
		memmove(c->buf, c->buf + c->head, held);
		c->head = 0;
		c->tail = held;
	}
	memcpy(c->buf + c->tail, data + drop, keep);
	c->tail += keep;
	c->received += keep;
	c->skip -= drop;
	return len;
}

static curl_socket_t on_open_socket(void *user, curlsocktype purpose, struct curl_sockaddr *a)
{
	struct curl_src *c = user;
	const void *ip = NULL;

	if (purpose != CURLSOCKTYPE_IPCXN || !dsc_netpolicy_allows(c->o.policy, &a->addr)) {
		if (a->family == AF_INET)
			ip = &((const struct sockaddr_in *)(const void *)&a->addr)->sin_addr;
		else if (a->family == AF_INET6)
			ip = &((const struct sockaddr_in6 *)(const void *)&a->addr)->sin6_addr;
		if (!ip || !inet_ntop(a->family, ip, c->denied, sizeof c->denied))
			snprintf(c->denied, sizeof c->denied, "(family %d)", a->family);
		return CURL_SOCKET_BAD;
	}
	return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

static void end_try(struct curl_src *c)
{
	size_t i;

	if (c->easy) {
		curl_multi_remove_handle(c->multi, c->easy);
		curl_easy_cleanup(c->easy);
		c->easy = NULL;
	}
	curl_slist_free_all(c->req_headers);
	c->req_headers = NULL;
	for (i = 0; i < c->nhops; i++)
		free(c->hops[i]);
	c->nhops = 0;
	c->paused = false;
}

static dsc_err start_try(struct curl_src *c)
{
	struct failure f;
	char range[48], *ifrange = NULL;
	struct curl_slist *l;
	CURLcode rc = CURLE_OK;
	size_t i;

	c->requests++;
	c->try_start = c->received;
	c->skip = 0;
	c->accepted = false;
	c->at_end = false;
	c->cb_failed = false;
	c->status = 0;
	c->denied[0] = '\0';
	c->errbuf[0] = '\0';
	c->last_activity_ms = now_ms();
	c->easy = curl_easy_init();
	if (!c->easy)
		goto nomem;
	for (i = 0; i < c->nheaders; i++) {
		l = curl_slist_append(c->req_headers, c->headers[i]);
		if (!l)
			goto nomem;
		c->req_headers = l;
	}
	if (c->try_start > 0 && has_validator(c)) {
		size_t n = strlen("If-Range: ") + strlen(c->etag[0] ? c->etag : c->modified) + 1;
		ifrange = malloc(n);
		if (!ifrange)
			goto nomem;
		snprintf(ifrange, n, "If-Range: %s", c->etag[0] ? c->etag : c->modified);
		l = curl_slist_append(c->req_headers, ifrange);
		free(ifrange);
		if (!l)
			goto nomem;
		c->req_headers = l;
	}
#define SET(opt, val)                                             \
	do {                                                      \
		if (rc == CURLE_OK)                               \
			rc = curl_easy_setopt(c->easy, opt, val); \
	} while (0)
	SET(CURLOPT_URL, c->url);
	SET(CURLOPT_PROTOCOLS_STR, "http,https");
	SET(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	SET(CURLOPT_FOLLOWLOCATION, 1L);
	SET(CURLOPT_MAXREDIRS, (long)c->o.max_redirects);
	SET(CURLOPT_NOSIGNAL, 1L);
	SET(CURLOPT_ERRORBUFFER, c->errbuf);
	SET(CURLOPT_WRITEFUNCTION, on_body);
	SET(CURLOPT_WRITEDATA, c);
	SET(CURLOPT_HEADERFUNCTION, on_header);
	SET(CURLOPT_HEADERDATA, c);
	SET(CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L);
	SET(CURLOPT_USERAGENT, c->user_agent);
	SET(CURLOPT_TCP_KEEPALIVE, 1L);
	if (c->req_headers)
		SET(CURLOPT_HTTPHEADER, c->req_headers);
	if (!c->o.use_env_proxy)
		SET(CURLOPT_PROXY, "");
	if (c->o.connect_timeout)
		SET(CURLOPT_CONNECTTIMEOUT, (long)c->o.connect_timeout);
	if (c->cacert)
		SET(CURLOPT_CAINFO, c->cacert);
	if (c->o.insecure) {
		SET(CURLOPT_SSL_VERIFYPEER, 0L);
		SET(CURLOPT_SSL_VERIFYHOST, 0L);
	}
	if (c->o.policy) {
		SET(CURLOPT_OPENSOCKETFUNCTION, on_open_socket);
		SET(CURLOPT_OPENSOCKETDATA, c);
	}
	if (c->try_start > 0) {
		snprintf(range, sizeof range, "%llu-", (unsigned long long)c->try_start);
		SET(CURLOPT_RANGE, range);
	}
#undef SET
	if (rc != CURLE_OK) {
		failure_set(&f, DSC_ERR_UNSUPPORTED, false, 0, 0, "libcurl refused an option: %s",
			    curl_easy_strerror(rc));
		end_try(c);
		return record(c, &f);
	}
	if (curl_multi_add_handle(c->multi, c->easy) != CURLM_OK) {
		failure_set(&f, DSC_ERR_NOMEM, false, 0, 0, "cannot start the transfer");
		curl_easy_cleanup(c->easy);
		c->easy = NULL;
		end_try(c);
		return record(c, &f);
	}
	return DSC_OK;
nomem:
	end_try(c);
	failure_set(&f, DSC_ERR_NOMEM, false, 0, ENOMEM, "out of memory");
	return record(c, &f);
}

static bool cancelled(struct curl_src *c)
{
	struct failure f;

	if (!c->o.cancel || !c->o.cancel(c->o.cancel_user))
		return false;
	failure_set(&f, DSC_ERR_CANCELLED, false, 0, 0, "transfer cancelled");
	record(c, &f);
	return true;
}

/* Turn the libcurl result of a try into a failure description. */
static void classify(struct curl_src *c, CURLcode rc, long os_errno, struct failure *f)
{
	const char *eb = c->errbuf[0] ? c->errbuf : curl_easy_strerror(rc);
	int en = (int)os_errno;

	switch (rc) {
	case CURLE_COULDNT_RESOLVE_HOST:
		failure_set(f, DSC_ERR_REMOTE, c->started, 0, 0, "cannot resolve host: %s", eb);
		break;
	case CURLE_COULDNT_CONNECT:
		if (c->denied[0]) {
			failure_set(f, DSC_ERR_PERM, false, 0, 0,
				    "address %s is not allowed by the address policy", c->denied);
		} else if (en) {
			failure_set(f, DSC_ERR_REMOTE, c->started, 0, en, "cannot connect: %s (%s)",
				    strerror(en), eb);
		} else {
			failure_set(f, DSC_ERR_REMOTE, c->started, 0, 0, "cannot connect: %s", eb);
		}
		break;
	case CURLE_OPERATION_TIMEDOUT:
		failure_set(f, DSC_ERR_REMOTE, c->started, 0, ETIMEDOUT, "timed out: %s", eb);
		break;
	case CURLE_PARTIAL_FILE:
		failure_set(f, DSC_ERR_REMOTE, true, 0, 0,
			    "connection closed early at byte %llu: %s",
			    (unsigned long long)c->received, eb);
		break;
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
	case CURLE_HTTP3:
		failure_set(f, DSC_ERR_REMOTE, true, 0, en,
			    "transfer broke off at byte %llu: %s%s%s",
			    (unsigned long long)c->received, eb, en ? ": " : "",
			    en ? strerror(en) : "");
		break;
	case CURLE_PEER_FAILED_VERIFICATION:
		failure_set(f, DSC_ERR_REMOTE, false, 0, 0,
			    "TLS certificate verification failed: %s", eb);
		break;
	case CURLE_SSL_CACERT_BADFILE:
		failure_set(f, DSC_ERR_INVAL, false, 0, 0, "cannot use the CA file %s: %s",
			    c->cacert ? c->cacert : "(system)", eb);
		break;
	case CURLE_SSL_CONNECT_ERROR:
		failure_set(f, DSC_ERR_REMOTE, c->started, 0, 0, "TLS handshake failed: %s", eb);
		break;
	case CURLE_TOO_MANY_REDIRECTS:
		failure_set(f, DSC_ERR_REMOTE, false, 0, 0, "too many redirects (more than %u)",
			    c->o.max_redirects);
		break;
	case CURLE_UNSUPPORTED_PROTOCOL:
		failure_set(f, DSC_ERR_REMOTE, false, 0, 0,
			    "refused a redirect: only http and https are allowed (%s)", eb);
		break;
	case CURLE_URL_MALFORMAT:
		failure_set(f, DSC_ERR_INVAL, false, 0, 0, "malformed URL: %s", eb);
		break;
	case CURLE_OUT_OF_MEMORY:
		failure_set(f, DSC_ERR_NOMEM, false, 0, ENOMEM, "out of memory");
		break;
	default: failure_set(f, DSC_ERR_REMOTE, false, 0, 0, "transfer failed: %s", eb); break;
	}
}

static void backoff(struct curl_src *c)
{
	unsigned shift = DSC_MIN(c->failures - 1, 15u);
	uint64_t ms = (uint64_t)c->o.retry_delay_ms << shift;
	struct timespec ts;

	if (ms > URL_MAX_DELAY_MS)
		ms = URL_MAX_DELAY_MS;
	while (ms > 0 && !cancelled(c)) {
		uint64_t step = DSC_MIN(ms, (uint64_t)200);
		ts.tv_sec = 0;
		ts.tv_nsec = (long)(step * 1000000);
		nanosleep(&ts, NULL);
		ms -= step;
	}
}

/* The current try is over (`forced`: we ended it): finish the stream,
 * retry, or fail. */
static dsc_err try_done(struct curl_src *c, CURLcode rc, const struct failure *forced)
{
	struct failure f;
	long os_errno = 0;
	bool progress = c->received > c->try_start;

	curl_easy_getinfo(c->easy, CURLINFO_OS_ERRNO, &os_errno);
	if (c->at_end && !c->cb_failed) {
		end_try(c);
		c->eof = true;
		return DSC_OK;
	}
	if (forced) {
		f = *forced;
	} else if (c->cb_failed) {
		f = c->cb;
	} else if (rc == CURLE_OK && !c->accepted) {
		failure_set(&f, DSC_ERR_REMOTE, false, c->status, 0, "no usable response (HTTP %d)",
			    c->status);
	} else if (rc == CURLE_OK && c->total != UINT64_MAX && c->received < c->total) {
		failure_set(&f, DSC_ERR_REMOTE, true, 0, 0, "response ended at byte %llu of %llu",
			    (unsigned long long)c->received, (unsigned long long)c->total);
	} else if (rc == CURLE_OK && c->skip > 0) {
		failure_set(&f, DSC_ERR_REMOTE, true, 0, 0, "response ended before byte %llu",
			    (unsigned long long)c->try_start);
	} else if (rc == CURLE_OK) {
		end_try(c);
		c->eof = true;
		return DSC_OK;
	} else {
		classify(c, rc, os_errno, &f);
	}
	end_try(c);
	if (!f.retryable)
		return record(c, &f);
	if (c->total != UINT64_MAX && c->received == c->total && c->skip == 0) {
		/* Broken after the last byte: nothing to resume. */
		c->eof = true;
		return DSC_OK;
	}
	if (progress)
		c->failures = 0;
	c->failures++;
	if (c->failures > c->o.retries) {
		size_t n = strlen(f.text);
		snprintf(f.text + n, sizeof f.text - n,
			 "; too many retries (%u tries without progress)", c->failures);
		return record(c, &f);
	}
	/* Nothing proves that a resumed body continues the same resource:
	 * refuse, unless the caller checks the bytes and the length is known
	 * (the resumed Content-Range's total must match it). */
	if (c->received > 0 && !has_validator(c) &&
	    (!c->o.resume_without_validator || c->total == UINT64_MAX)) {
		size_t n = strlen(f.text);
		f.code = DSC_ERR_REMOTE;
		snprintf(f.text + n, sizeof f.text - n,
			 c->o.resume_without_validator ?
				 "; cannot resume: the server sent no ETag, Last-Modified or "
				 "Content-Length" :
				 "; cannot resume: the server sent no ETag or Last-Modified");
		return record(c, &f);
	}
	backoff(c);
	if (c->failed)
		return c->failed;
	c->retries_done++;
	return start_try(c);
}

/* Let libcurl work until data arrives, the try ends or about a second
 * passes. */
static dsc_err pump(struct curl_src *c)
{
	struct failure f;
	CURLMcode mc;
	CURLMsg *msg;
	int running = 0, left = 0;

	mc = curl_multi_perform(c->multi, &running);
	if (mc != CURLM_OK) {
		failure_set(&f, DSC_ERR_REMOTE, false, 0, 0, "libcurl: %s",
			    curl_multi_strerror(mc));
		return record(c, &f);
	}
	while ((msg = curl_multi_info_read(c->multi, &left)) != NULL) {
		if (msg->msg == CURLMSG_DONE && msg->easy_handle == c->easy)
			return try_done(c, msg->data.result, NULL);
	}
	if (c->tail > c->head || c->paused)
		return DSC_OK;
	mc = curl_multi_poll(c->multi, NULL, 0, 500, NULL);
	if (mc != CURLM_OK) {
		failure_set(&f, DSC_ERR_REMOTE, false, 0, 0, "libcurl: %s",
			    curl_multi_strerror(mc));
		return record(c, &f);
	}
	if (cancelled(c))
		return c->failed;
	/* Our own idle clock rather than CURLOPT_LOW_SPEED_*: libcurl's speed
	 * average lags a sudden stall by seconds, and time spent paused
	 * because the reader is slow must not count. */
	if (c->o.idle_timeout && c->easy &&
	    now_ms() - c->last_activity_ms >= (uint64_t)c->o.idle_timeout * 1000u) {
		failure_set(&f, DSC_ERR_REMOTE, true, 0, ETIMEDOUT,
			    "no data for %u seconds (idle timeout) at byte %llu", c->o.idle_timeout,
			    (unsigned long long)c->received);
		return try_done(c, CURLE_OK, &f);
	}
	return DSC_OK;
}

/* Continue a transfer paused because the buffer was full. */
static void unpause(struct curl_src *c)
{
	struct failure f;

	c->paused = false;
	c->last_activity_ms = now_ms();
	if (curl_easy_pause(c->easy, CURLPAUSE_CONT) != CURLE_OK) {
		failure_set(&f, DSC_ERR_REMOTE, false, 0, 0, "cannot resume the paused transfer");
		record(c, &f);
	}
}

/* Run the transfer until the buffer holds a byte, the resource ended or
 * the stream failed. */
static void wait_data(struct curl_src *c)
{
	while (c->tail == c->head && !c->eof && !c->failed) {
		if (c->pending) {
			c->pending = false;
			start_try(c);
		} else if (c->paused) {
			unpause(c);
		} else {
			pump(c);
		}
	}
}

/* The reader took n buffered bytes. */
static void consume(struct curl_src *c, size_t n)
{
	c->head += n;
	if (c->head == c->tail)
		c->head = c->tail = 0;
	/* Continue once half the buffer is free: fewer pause cycles. */
	if (c->paused && c->easy && c->tail - c->head <= c->cap / 2)
		unpause(c);
}

static dsc_err url_read(void *ctx, void *out, size_t len, size_t *nread, struct dsc_error *e)
{
	struct curl_src *c = ctx;
	size_t n;

	*nread = 0;
	wait_data(c);
	if (c->tail > c->head) {
		n = DSC_MIN(len, c->tail - c->head);
		memcpy(out, c->buf + c->head, n);
		consume(c, n);
		*nread = n;
		return DSC_OK;
	}
	if (c->eof)
		return DSC_OK;
	return report(c, e);
}

/* Only in curl_seek_ops: the first response showed that ranges work. */
static dsc_err url_seek(void *ctx, uint64_t off, struct dsc_error *e)
{
	struct curl_src *c = ctx;
	uint64_t held = c->tail - c->head, here = c->received - held, gap;
	struct failure f;
	size_t n;

	if (c->failed)
		return report(c, e);
	if (off > c->total)
		return dsc_error_set(e, DSC_ERR_INVAL, 0,
				     "%s: cannot seek to byte %llu: the resource has %llu bytes",
				     c->name, (unsigned long long)off,
				     (unsigned long long)c->total);
	if (off == here)
		return DSC_OK;
	gap = off - here;
	if (!c->pending && off > here && gap - DSC_MIN(gap, held) <= URL_SEEK_WINDOW) {
		while (gap > 0) {
			wait_data(c);
			if (c->failed)
				return report(c, e);
			if (c->tail == c->head) {
				failure_set(&f, DSC_ERR_REMOTE, false, 0, 0,
					    "the response ended at byte %llu, before byte %llu",
					    (unsigned long long)c->received,
					    (unsigned long long)off);
				record(c, &f);
				return report(c, e);
			}
			n = (size_t)DSC_MIN(gap, (uint64_t)(c->tail - c->head));
			consume(c, n);
			gap -= n;
		}
		return DSC_OK;
	}
	/* Start over at `off`, but only when a read needs it: a seek that
	 * another seek follows costs no request. */
	end_try(c);
	c->head = c->tail = 0;
	c->received = off;
	c->failures = 0;
	c->sought = true;
	c->eof = off == c->total;
	c->pending = !c->eof;
	return DSC_OK;
}

static void url_free(struct curl_src *c)
{
	size_t i;

	if (!c)
		return;
	end_try(c);
	if (c->multi)
		curl_multi_cleanup(c->multi);
	for (i = 0; i < c->nheaders; i++)
		free(c->headers[i]);
	free(c->headers);
	free(c->hops);
	free(c->buf);
	free(c->cacert);
	free(c->user_agent);
	free(c->name);
	free(c->url);
	free(c);
}

static void url_close(void *ctx) { url_free(ctx); }

static const void *url_query(void *ctx, int what) { return what == DSCP_Q_URL ? ctx : NULL; }

static const struct dsc_stream_ops curl_ops = {
	.name = "curl",
	.read = url_read,
	.close = url_close,
	.query = url_query,
};

static const struct dsc_stream_ops curl_seek_ops = {
	.name = "curl",
	.read = url_read,
	.seek = url_seek,
	.close = url_close,
	.query = url_query,
};

/* Whether the first response allows seeks: ranges, a size to check them
 * against, and a validator for If-Range (or a caller who checks the bytes,
 * as for resume). */
static bool serves_ranges(const struct curl_src *c)
{
	return c->ranges && c->total != UINT64_MAX &&
	       (has_validator(c) || c->o.resume_without_validator);
}

bool dscp_url_seeks_to_tail(const dsc_stream *s)
{
	const struct curl_src *c = dscp_stream_query(s, DSCP_Q_URL);

	return c && c->o.seek_to_tail;
}

unsigned dsc_stream_url_retries(const dsc_stream *s)
{
	const struct curl_src *c = s ? dscp_stream_query(s, DSCP_Q_URL) : NULL;

	return c ? c->retries_done : 0;
}

unsigned dsc_stream_url_requests(const dsc_stream *s)
{
	const struct curl_src *c = s ? dscp_stream_query(s, DSCP_Q_URL) : NULL;

	return c ? c->requests : 0;
}

/* Check the scheme before libcurl sees the URL, for a clear message. */
static dsc_err check_url(const char *url, const char *shown, struct dsc_error *e)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL;
	CURLUcode uc;
	dsc_err rc = DSC_OK;

	if (!u)
		return dsc_error_set(e, DSC_ERR_NOMEM, ENOMEM, "%s: out of memory", shown);
	uc = curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME);
	if (uc != CURLUE_OK) {
		rc = dsc_error_set(e, DSC_ERR_INVAL, 0, "%s: malformed URL: %s", shown,
				   curl_url_strerror(uc));
		goto out;
	}
	if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK || !scheme ||
	    (strcasecmp(scheme, "http") != 0 && strcasecmp(scheme, "https") != 0)) {
		rc = dsc_error_set(
			e, DSC_ERR_INVAL, 0,
			"%s: unsupported URL scheme '%s': only http and https are allowed", shown,
			scheme ? scheme : "");
		goto out;
	}
	if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || !host || !*host)
		rc = dsc_error_set(e, DSC_ERR_INVAL, 0, "%s: malformed URL: no host", shown);
out:
	curl_free(scheme);
	curl_free(host);
	curl_url_cleanup(u);
	return rc;
}

static bool header_ok(const char *h)
{
	const char *colon = strchr(h, ':');

	return colon && colon > h && strlen(h) <= URL_MAX_HEADER_LEN && !strpbrk(h, "\r\n");
}

dsc_err dsc_stream_open_url(const char *url, const struct dsc_url_opts *o, dsc_stream **out,
			    struct dsc_error *e)
{
	struct curl_src *c = NULL;
	char shown[200], *r;
	dsc_err rc;
	size_t n;

	*out = NULL;
	if (!url)
		return dsc_error_set(e, DSC_ERR_INVAL, 0, "URL source: no URL given");
	r = redact(url);
	snprintf(shown, sizeof shown, "%s", r ? r : "URL source");
	free(r);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return dsc_error_set(e, DSC_ERR_UNSUPPORTED, 0, "%s: libcurl cannot start", shown);
	rc = check_url(url, shown, e);
	if (rc != DSC_OK)
		return rc;
	c = calloc(1, sizeof *c);
	if (!c)
		goto nomem;
	if (o)
		c->o = *o;
	else
		dsc_url_opts_init(&c->o);
	c->o.headers = NULL;
	c->o.cacert = NULL;
	c->o.user_agent = NULL;
	c->total = UINT64_MAX;
	c->url = strdup(url);
	c->name = redact(url);
	if (!c->url || !c->name)
		goto nomem;
	if (c->o.max_redirects > URL_MAX_REDIRECTS)
		c->o.max_redirects = URL_MAX_REDIRECTS;
	c->hops = calloc(c->o.max_redirects + 1, sizeof *c->hops);
	c->cap = DSC_MAX(c->o.buffer_size ? c->o.buffer_size : (size_t)(1u << 20),
			 (size_t)URL_MIN_BUFFER);
	c->cap = DSC_MIN(c->cap, (size_t)URL_MAX_BUFFER);
	c->buf = malloc(c->cap);
	if (!c->hops || !c->buf)
		goto nomem;
	if (o && o->cacert && !(c->cacert = strdup(o->cacert)))
		goto nomem;
	if (o && o->user_agent)
		c->user_agent = strdup(o->user_agent);
	else if ((c->user_agent = malloc(32)) != NULL)
		snprintf(c->user_agent, 32, "dsc/%s", dsc_version());
	if (!c->user_agent)
		goto nomem;
	for (n = 0; o && o->headers && o->headers[n]; n++) {
		if (n >= URL_MAX_HEADERS) {
			rc = dsc_error_set(e, DSC_ERR_LIMIT, 0, "%s: more than %u extra headers",
					   c->name, URL_MAX_HEADERS);
			goto fail;
		}
		if (!header_ok(o->headers[n])) {
			rc = dsc_error_set(e, DSC_ERR_INVAL, 0,
					   "%s: bad header '%.60s': want 'Name: value' on one line",
					   c->name, o->headers[n]);
			goto fail;
		}
	}
	if (n) {
		c->headers = calloc(n, sizeof *c->headers);
		if (!c->headers)
			goto nomem;
		for (c->nheaders = 0; c->nheaders < n; c->nheaders++) {
			c->headers[c->nheaders] = strdup(o->headers[c->nheaders]);
			if (!c->headers[c->nheaders])
				goto nomem;
		}
	}
	c->multi = curl_multi_init();
	if (!c->multi)
		goto nomem;
	/* Run the first try until its response is accepted (or everything
	 * failed), so errors surface here and the size is known. */
	if (start_try(c) == DSC_OK) {
		while (!c->started && !c->failed)
			pump(c);
	}
	if (c->failed) {
		rc = report(c, e);
		goto fail;
	}
	rc = dsc_stream_new(serves_ranges(c) ? &curl_seek_ops : &curl_ops, c, c->name, out, e);
	if (rc != DSC_OK)
		goto fail;
	dsc_stream_set_total(*out, c->total);
	return DSC_OK;
nomem:
	rc = dsc_error_set(e, DSC_ERR_NOMEM, ENOMEM, "%s: out of memory", shown);
fail:
	url_free(c);
	return rc;
}

#else /* !HAVE_CURL */

dsc_err dsc_stream_open_url(const char *url, const struct dsc_url_opts *o, dsc_stream **out,
			    struct dsc_error *e)
{
	*out = NULL;
	return dsc_error_set(e, DSC_ERR_UNSUPPORTED, 0,
			     "%.*s: URL sources are not available (built without libcurl)",
			     (int)strcspn(url ? url : "", "?#@"), url ? url : "");
}

unsigned dsc_stream_url_retries(const dsc_stream *s) { return 0; }
unsigned dsc_stream_url_requests(const dsc_stream *s) { return 0; }
bool dscp_url_seeks_to_tail(const dsc_stream *s) { return false; }

#endif
