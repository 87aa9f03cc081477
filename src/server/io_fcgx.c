/* io_fcgx.c - a FastCGI request body and response body as dsc_streams.
 *
 * libdsc reads and writes through the public ops table, so it never sees
 * libfcgi. The body stream enforces CONTENT_LENGTH when the web server sends
 * one (nginx streams chunked uploads without it) and turns libfcgi's
 * "client went away" (-3 at end of stdin) into an error instead of a clean
 * end, so a broken upload can never look like a short image. The reply
 * stream sends the response headers only when the first byte is written:
 * a conversion that fails before producing output still gets a real error
 * reply rather than a broken 200.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server.h"

static dsc_err body_read(void *vctx, void *buf, size_t len, size_t *nread, struct dsc_error *e)
{
	struct body_ctx *c = vctx;
	size_t want = len;
	int n;

	*nread = 0;
	if (c->eof || len == 0)
		return DSC_OK;
	if (want > INT_MAX / 2)
		want = INT_MAX / 2;
	if (c->length != UINT64_MAX && want > c->length - c->got)
		want = (size_t)(c->length - c->got);
	if (want == 0) {
		c->eof = true;
		return DSC_OK;
	}
	n = FCGX_GetStr(buf, (int)want, c->rq->fcgx->in);
	if (n > 0) {
		c->got += (uint64_t)n;
		c->rq->bytes_in += (uint64_t)n;
		*nread = (size_t)n;
		return DSC_OK;
	}
	if (FCGX_GetError(c->rq->fcgx->in) != 0) {
		c->failed = true;
		c->rq->client_gone = true;
		return dsc_error_set(e, DSC_ERR_IO, ECONNRESET,
				     "request body: the client went away after "
				     "%llu bytes",
				     (unsigned long long)c->got);
	}
	if (c->length != UINT64_MAX && c->got < c->length) {
		c->failed = true;
		return dsc_error_set(e, DSC_ERR_IO, 0,
				     "request body: ended after %llu of %llu "
				     "bytes announced by Content-Length",
				     (unsigned long long)c->got, (unsigned long long)c->length);
	}
	c->eof = true;
	return DSC_OK;
}

/* The stream does not own the context (it lives in the handler's frame). */
static void body_close(void *vctx) { (void)vctx; }

static const struct dsc_stream_ops body_ops = {
	.name = "fcgi-stdin",
	.read = body_read,
	.close = body_close,
};

dsc_err fcgx_body_stream(struct srv_request *rq, struct body_ctx *c, dsc_stream **out,
			 struct dsc_error *e)
{
	const char *cl = FCGX_GetParam("CONTENT_LENGTH", rq->fcgx->envp);
	dsc_err rc;

	memset(c, 0, sizeof(*c));
	c->rq = rq;
	c->length = UINT64_MAX;
	if (cl != NULL && *cl != '\0') {
		char *end;
		unsigned long long v;

		errno = 0;
		v = strtoull(cl, &end, 10);
		if (errno != 0 || *end != '\0' || cl[0] == '-' || cl[0] == '+' || cl[0] == ' ')
			return dsc_error_set(e, DSC_ERR_INVAL, 0,
					     "request: bad CONTENT_LENGTH '%.40s'", cl);
		c->length = v;
	}
	rc = dsc_stream_new(&body_ops, c, "request body", out, e);
	if (rc == DSC_OK && c->length != UINT64_MAX)
		dsc_stream_set_total(*out, c->length);
	return rc;
}

/* ---- response --------------------------------------------------------- */

static dsc_err reply_write(void *vctx, const void *buf, size_t len, size_t *nwritten,
			   struct dsc_error *e)
{
	struct srv_request *rq = vctx;
	int n, chunk = len > (1u << 30) ? (1 << 30) : (int)len;

	*nwritten = 0;
	if (!reply_flush_pending(rq))
		return dsc_error_set(e, DSC_ERR_IO, 0, "response: the headers are too long");
	n = FCGX_PutStr(buf, chunk, rq->fcgx->out);
	if (n < 0 || (n == 0 && chunk > 0)) {
		int err = FCGX_GetError(rq->fcgx->out);

		rq->client_gone = true;
		return dsc_error_set(e, DSC_ERR_IO, err > 0 ? err : 0,
				     "response: writing to the client failed "
				     "after %llu bytes: %s",
				     (unsigned long long)rq->bytes_out,
				     err > 0 ? strerror(err) : "connection lost");
	}
	rq->bytes_out += (uint64_t)n;
	*nwritten = (size_t)n;
	return DSC_OK;
}

static void reply_close(void *vctx) { (void)vctx; }

static const struct dsc_stream_ops reply_ops = {
	.name = "fcgi-stdout",
	.write = reply_write,
	.close = reply_close,
};

/* The caller prepares the headers with reply_defer_headers() first. */
dsc_err fcgx_reply_stream(struct srv_request *rq, dsc_stream **out, struct dsc_error *e)
{
	return dsc_stream_new(&reply_ops, rq, "response", out, e);
}
