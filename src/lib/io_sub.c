/* io_sub.c - a bounded read stream: the next N bytes of another stream.
 *
 * The shape wrappers need (a tar member, a part of a body): the sub-stream
 * starts where `inner` is when it is opened and ends `length` bytes later.
 * Reads never pass that end; `inner` ending before it is DSC_ERR_TRUNCATED,
 * so a cut archive is never mistaken for a short member. It seeks within
 * its bytes when `inner` can seek. Queries do not go on to `inner`: its
 * answers (a memory buffer, a digest) would be about all of it.
 */
#include "internal.h"

struct sub_ctx {
	dsc_stream *inner;
	uint64_t base; /* inner's offset of the first byte */
	uint64_t length;
	uint64_t pos; /* bytes into the sub-stream */
	bool own;
};

static dsc_err sub_read(void *ctx, void *buf, size_t len, size_t *nread, struct dsc_error *e)
{
	struct sub_ctx *c = ctx;
	size_t want = (size_t)DSC_MIN((uint64_t)len, c->length - c->pos), got;
	dsc_err rc;

	*nread = 0;
	if (want == 0)
		return DSC_OK;
	rc = dsc_read_full(c->inner, buf, want, &got, e);
	if (rc != DSC_OK)
		return rc;
	if (got == 0)
		return dsc_error_set(e, DSC_ERR_TRUNCATED, 0,
				     "%s: truncated: ends %llu bytes into a part of %llu bytes",
				     dsc_stream_name(c->inner), (unsigned long long)c->pos,
				     (unsigned long long)c->length);
	c->pos += got;
	*nread = got;
	return DSC_OK;
}

static dsc_err sub_seek(void *ctx, uint64_t off, struct dsc_error *e)
{
	struct sub_ctx *c = ctx;
	dsc_err rc;

	if (off > c->length)
		return dsc_error_set(e, DSC_ERR_INVAL, 0, "%s: seek to %llu past the part's end",
				     dsc_stream_name(c->inner), (unsigned long long)off);
	rc = dsc_stream_seek(c->inner, c->base + off, e);
	if (rc == DSC_OK)
		c->pos = off;
	return rc;
}

static void sub_close(void *ctx)
{
	struct sub_ctx *c = ctx;

	if (c->own)
		dsc_stream_close(c->inner);
	free(c);
}

static const struct dsc_stream_ops sub_ops = {
	.name = "sub",
	.read = sub_read,
	.close = sub_close,
};

static const struct dsc_stream_ops sub_seek_ops = {
	.name = "sub",
	.read = sub_read,
	.seek = sub_seek,
	.close = sub_close,
};

dsc_err dsc_stream_open_sub(dsc_stream *inner, uint64_t length, unsigned flags, dsc_stream **out,
			    struct dsc_error *e)
{
	struct sub_ctx *c;
	dsc_err rc;

	*out = NULL;
	if (!inner)
		return dsc_error_set(e, DSC_ERR_INVAL, 0, "sub-stream: no stream to read");
	c = calloc(1, sizeof *c);
	if (!c)
		return dsc_error_set(e, DSC_ERR_NOMEM, ENOMEM, "%s: out of memory",
				     dsc_stream_name(inner));
	c->inner = inner;
	c->base = dsc_stream_tell(inner);
	c->length = length;
	/* Not a query wrapper: what `inner` would answer (its memory buffer,
	 * its digest) is about all of it, not about this part. */
	rc = dsc_stream_new(dsc_stream_can_seek(inner) ? &sub_seek_ops : &sub_ops, c,
			    dsc_stream_name(inner), out, e);
	if (rc != DSC_OK) {
		free(c);
		return rc;
	}
	c->own = flags & DSC_SUB_OWN;
	dsc_stream_set_total(*out, length);
	return DSC_OK;
}
