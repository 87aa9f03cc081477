/* reply.c - response headers, JSON bodies and the one error -> HTTP map.
 *
 * Every error a handler meets becomes `{"error": "<sentence>", "code":
 * "<NAME>"}` with a status and code chosen here, in error_status(), and
 * nowhere else: handlers pass a dsc_err (reply_err, reply_dsc_error), never
 * a status. The two replies the library has no code for, 405 METHOD and
 * 499 CLIENT, are faults of their own in the same map. The sentence is the
 * library's message (it names the file or URL and the place) or the
 * handler's.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "server.h"

static const char *reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 201: return "Created";
	case 400: return "Bad Request";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 409: return "Conflict";
	case 411: return "Length Required";
	case 413: return "Content Too Large";
	case 415: return "Unsupported Media Type";
	case 422: return "Unprocessable Content";
	case 499: return "Client Closed Request";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	case 507: return "Insufficient Storage";
	}
	return "Unknown";
}

/* The one map from what went wrong to the reply's status and code: every
 * error reply of the server is chosen here (reply_err, reply_dsc_error,
 * reply_method_not_allowed). No default in the dsc_err switch, so that
 * -Wswitch flags a code added to the library and left out here. */
static int error_status(enum srv_fault fault, const struct dsc_error *e, const char **code)
{
	switch (fault) {
	case SRV_FAULT_METHOD: *code = "METHOD"; return 405;
	case SRV_FAULT_CLIENT:
		/* The client's connection failed (reading the body, writing
		 * the reply), not our disk: logged as 499, nginx's "client
		 * closed request"; nobody is left to read the reply. */
		*code = "CLIENT";
		return 499;
	case SRV_FAULT_LIB: break;
	}
	*code = dsc_err_name(e->code);
	switch (e->code) {
	case DSC_OK: return 200;
	case DSC_ERR_NOMEM: return 503;
	case DSC_ERR_INVAL: return 400;
	case DSC_ERR_IO: return 500;
	case DSC_ERR_FORMAT:
	case DSC_ERR_TRUNCATED:
	case DSC_ERR_INTEGRITY:
	case DSC_ERR_SEEK: return 422;
	case DSC_ERR_UNSUPPORTED: return 415;
	case DSC_ERR_LIMIT: return 413;
	case DSC_ERR_REMOTE:
		/* A timeout is known by its errno (io_curl.c sets ETIMEDOUT for
		 * its idle clock and libcurl's timeouts) or the upstream's own
		 * timeout status, never by the message: that names the URL,
		 * which may say "timeout" itself. */
		if (e->sys_errno == ETIMEDOUT || e->http_status == 504 || e->http_status == 408)
			return 504;
		return 502;
	case DSC_ERR_CANCELLED: return 503;
	case DSC_ERR_EXISTS: return 409;
	case DSC_ERR_NOSPACE: return 507;
	case DSC_ERR_NOTFOUND: return 404;
	case DSC_ERR_PERM: return 403;
	}
	return 500;
}

/* The status of a bare library code (no detail), e.g. for NOMEM. */
static int code_status(dsc_err code)
{
	struct dsc_error e = {.code = code};
	const char *name;

	return error_status(SRV_FAULT_LIB, &e, &name);
}

/* Make `in` valid UTF-8 for JSON: each byte that is not part of a valid
 * sequence becomes the text \xNN. `cut`: in was truncated, so an incomplete
 * sequence at its very end is dropped rather than escaped. */
static void sanitize(const char *in, bool cut, char *out, size_t outsz)
{
	static const char hexd[] = "0123456789abcdef";
	const unsigned char *u = (const unsigned char *)in;
	size_t len = strlen(in), i = 0, o = 0, k;

	if (cut) {
		/* Back over a trailing partial sequence (at most 3 bytes). */
		size_t j = len;

		while (j > 0 && len - j < 3 && (u[j - 1] & 0xc0) == 0x80)
			j--;
		if (j > 0 && u[j - 1] >= 0xc0 && utf8_seq(u + j - 1, len - j + 1) == 0)
			len = j - 1;
	}
	while (i < len && o + 5 < outsz) {
		k = utf8_seq(u + i, len - i);
		if (k == 0) {
			out[o++] = '\\';
			out[o++] = 'x';
			out[o++] = hexd[u[i] >> 4];
			out[o++] = hexd[u[i] & 15];
			i++;
			continue;
		}
		if (o + k >= outsz)
			break;
		memcpy(out + o, in + i, k);
		o += k;
		i += k;
	}
	out[o] = '\0';
}

static void put(struct srv_request *rq, const char *s, size_t n)
{
	if (rq->reply_broken)
		return;
	if (FCGX_PutStr(s, (int)n, rq->fcgx->out) < 0)
		rq->client_gone = true;
}

bool reply_headers(struct srv_request *rq, int status, const char *ctype, const char *extra)
{
	static const char overflow[] =
		"{\"error\":\"internal error: the response headers are too long\","
		"\"code\":\"IO\"}\n";
	char head[SRV_EXTRA_MAX + 256];
	int n;

	if (rq->headers_sent)
		return !rq->reply_broken;
	rq->headers_sent = true;
	rq->status = status;
	n = snprintf(head, sizeof(head),
		     "Status: %d %s\r\nContent-Type: %s\r\n"
		     "Cache-Control: no-store\r\n%s\r\n",
		     status, reason(status), ctype ? ctype : "application/octet-stream",
		     extra ? extra : "");
	if (n >= 0 && (size_t)n < sizeof(head)) {
		put(rq, head, (size_t)n);
		return true;
	}
	/* Never send a header block cut short (the body would be read as
	 * headers): a complete 500 instead, and nothing after it. */
	status = code_status(DSC_ERR_IO);
	n = snprintf(head, sizeof(head),
		     "Status: %d %s\r\nContent-Type: application/json\r\n"
		     "Cache-Control: no-store\r\nContent-Length: %zu\r\n\r\n%s",
		     status, reason(status), sizeof(overflow) - 1, overflow);
	put(rq, head, (size_t)n);
	rq->bytes_out += sizeof(overflow) - 1;
	rq->status = status;
	rq->reply_broken = true;
	snprintf(rq->error, sizeof(rq->error), "response headers too long (status %d)", status);
	return false;
}

bool reply_defer_headers(struct srv_request *rq, int status, const char *ctype, const char *extra)
{
	int a, b;

	rq->pending_status = status;
	a = snprintf(rq->pending_ctype, sizeof(rq->pending_ctype), "%s",
		     ctype ? ctype : "application/octet-stream");
	b = snprintf(rq->pending_extra, sizeof(rq->pending_extra), "%s", extra ? extra : "");
	if (a < 0 || (size_t)a >= sizeof(rq->pending_ctype) || b < 0 ||
	    (size_t)b >= sizeof(rq->pending_extra)) {
		rq->pending_status = 0;
		rq->pending_ctype[0] = '\0';
		rq->pending_extra[0] = '\0';
		return false;
	}
	return true;
}

bool reply_flush_pending(struct srv_request *rq)
{
	return reply_headers(rq, rq->pending_status ? rq->pending_status : 200,
			     rq->pending_ctype[0] ? rq->pending_ctype : NULL, rq->pending_extra);
}

double srv_json_seconds(double s) { return s > 0 ? (double)(uint64_t)(s * 1e6 + 0.5) / 1e6 : 0; }

static void reply_json_ex(struct srv_request *rq, int status, json_t *obj, const char *allow)
{
	/* 15 significant digits (DBL_DIG): a value rounded by
	 * srv_json_seconds() prints its decimals and no binary noise. */
	char *text = obj ? json_dumps(obj, JSON_COMPACT | JSON_REAL_PRECISION(15)) : NULL;
	char extra[512];
	size_t len;

	json_decref(obj);
	if (text == NULL) {
		/* Out of memory while formatting: still answer something. */
		text = strdup("{\"error\":\"out of memory\",\"code\":\"NOMEM\"}");
		status = code_status(DSC_ERR_NOMEM);
		if (text == NULL)
			return;
	}
	len = strlen(text);
	snprintf(extra, sizeof(extra), "%s%s%sContent-Length: %zu\r\n", allow ? "Allow: " : "",
		 allow ? allow : "", allow ? "\r\n" : "", len + 1);
	if (!reply_headers(rq, status, "application/json", extra)) {
		free(text);
		return;
	}
	put(rq, text, len);
	put(rq, "\n", 1);
	rq->bytes_out += len + 1;
	free(text);
}

void reply_json(struct srv_request *rq, int status, json_t *obj)
{
	reply_json_ex(rq, status, obj, NULL);
}

/* Send an error reply; when the headers are already out (an export broke
 * off mid-stream) the connection is aborted instead, so the client sees a
 * failed transfer rather than a short file. */
static void send_error(struct srv_request *rq, enum srv_fault fault, const struct dsc_error *e,
		       const char *allow)
{
	/* Client text (paths, parameter names) may be any bytes; JSON
	 * strings must be UTF-8 or jansson refuses them. */
	char msg[4 * DSC_ERROR_TEXT + 1];
	const char *raw = e->message[0] ? e->message : dsc_strerror(e->code), *code;
	int status = error_status(fault, e, &code);

	if (rq->reply_broken) /* a complete 500 went out already */
		return;
	/* A message that filled the buffer was cut: an incomplete UTF-8
	 * sequence at its end is dropped rather than escaped. */
	sanitize(raw, strlen(e->message) + 1 >= sizeof(e->message), msg, sizeof(msg));
	/* The log line escapes what it prints; a cut here is harmless. */
	strncpy(rq->error, msg, sizeof(rq->error) - 1);
	rq->error[sizeof(rq->error) - 1] = '\0';
	if (rq->headers_sent) {
		rq->abort_conn = true;
		rq->status = status;
		return;
	}
	reply_json_ex(rq, status, json_pack("{s:s, s:s}", "error", msg, "code", code), allow);
}

void reply_method_not_allowed(struct srv_request *rq, const char *allow)
{
	struct dsc_error e = {0};
	char path[112], method[32];

	dsc_error_set(&e, DSC_ERR_INVAL, 0, "%s: method %s is not allowed (use %.60s)",
		      utf8_clip(path, sizeof(path), rq->path, 100),
		      utf8_clip(method, sizeof(method), rq->method, 20), allow);
	send_error(rq, SRV_FAULT_METHOD, &e, allow);
}

void reply_err(struct srv_request *rq, dsc_err code, const char *fmt, ...)
{
	struct dsc_error e = {.code = code};
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(e.message, sizeof(e.message), fmt, ap);
	va_end(ap);
	send_error(rq, SRV_FAULT_LIB, &e, NULL);
}

void reply_dsc_error(struct srv_request *rq, const struct dsc_error *e, bool client_side)
{
	send_error(rq, client_side ? SRV_FAULT_CLIENT : SRV_FAULT_LIB, e, NULL);
}
