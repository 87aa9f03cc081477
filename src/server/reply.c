/* reply.c - response headers, JSON bodies and the one dsc_err -> HTTP map.
 *
 * Every error a handler meets becomes `{"error": "<sentence>", "code":
 * "<NAME>"}` with a status chosen here, in one switch with no default so
 * that -Wswitch flags a dsc_err added later and left out. The sentence is
 * the library's message (it names the file or URL and the place).
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

/* The HTTP status for a library error. `client_side`: the failure was in
 * reading the request body or writing the response, i.e. the client's
 * connection, not our disk. Such requests are logged as 499 (nginx's
 * "client closed request"); nobody is left to read the reply. */
int srv_http_status(dsc_err code, const struct dsc_error *e, bool client_side)
{
	if (client_side)
		return 499;
	switch (code) {
	case DSC_OK: return 200;
	case DSC_ERR_NOMEM: return 503;
	case DSC_ERR_INVAL: return 400;
	case DSC_ERR_IO: return 500;
	case DSC_ERR_FORMAT:
	case DSC_ERR_TRUNCATED: return 422;
	case DSC_ERR_UNSUPPORTED: return 415;
	case DSC_ERR_LIMIT: return 413;
	case DSC_ERR_REMOTE:
		if (e != NULL &&
		    (e->sys_errno == ETIMEDOUT || e->http_status == 504 || e->http_status == 408 ||
		     strstr(e->message, "timed out") || strstr(e->message, "timeout")))
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
	n = snprintf(head, sizeof(head),
		     "Status: 500 %s\r\nContent-Type: application/json\r\n"
		     "Cache-Control: no-store\r\nContent-Length: %zu\r\n\r\n%s",
		     reason(500), sizeof(overflow) - 1, overflow);
	put(rq, head, (size_t)n);
	rq->bytes_out += sizeof(overflow) - 1;
	rq->status = 500;
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

static void reply_json_ex(struct srv_request *rq, int status, json_t *obj, const char *allow)
{
	char *text = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
	char extra[512];
	size_t len;

	json_decref(obj);
	if (text == NULL) {
		/* Out of memory while formatting: still answer something. */
		text = strdup("{\"error\":\"out of memory\",\"code\":\"NOMEM\"}");
		status = 503;
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
static void send_error(struct srv_request *rq, int status, const char *code, const char *msg,
		       const char *allow)
{
	if (rq->reply_broken) /* a complete 500 went out already */
		return;
	snprintf(rq->error, sizeof(rq->error), "%s", msg);
	if (rq->headers_sent) {
		rq->abort_conn = true;
		rq->status = status;
		return;
	}
	reply_json_ex(rq, status, json_pack("{s:s, s:s}", "error", msg, "code", code), allow);
}

void reply_method_not_allowed(struct srv_request *rq, const char *allow)
{
	char msg[256];

	snprintf(msg, sizeof(msg), "%.100s: method %.20s is not allowed (use %.60s)", rq->path,
		 rq->method, allow);
	send_error(rq, 405, "METHOD", msg, allow);
}

void reply_error(struct srv_request *rq, int status, const char *code, const char *fmt, ...)
{
	char msg[DSC_ERROR_TEXT];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	send_error(rq, status, code, msg, NULL);
}

void reply_dsc_error(struct srv_request *rq, const struct dsc_error *e, bool client_side)
{
	int status = srv_http_status(e->code, e, client_side);
	const char *code = client_side ? "CLIENT" : dsc_err_name(e->code);

	send_error(rq, status, code, e->message[0] ? e->message : dsc_strerror(e->code), NULL);
}
