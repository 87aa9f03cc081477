/* io_mem.c - memory stream backends: a read-only view of caller memory and
 * a growing, seekable output buffer.
 *
 * Used by tests (and fuzz harnesses) to run every reader and writer without
 * touching the file system. Both are seekable; the read view also reports
 * its size as the stream total.
 */
#include "internal.h"

struct mem_ctx {
	const uint8_t *rdata; /* read view */
	uint8_t *wdata;       /* growing buffer */
	size_t len;           /* bytes of content */
	size_t cap;           /* allocated (growing buffer) */
	size_t pos;
};

static dsc_err mem_read(void *ctx, void *buf, size_t len, size_t *nread, struct dsc_error *e)
{
	struct mem_ctx *m = ctx;
	const uint8_t *src = m->rdata ? m->rdata : m->wdata;
	size_t n = m->pos < m->len ? DSC_MIN(len, m->len - m->pos) : 0;

	if (n)
		memcpy(buf, src + m->pos, n);
	m->pos += n;
	*nread = n;
	return DSC_OK;
}

/* Grow the buffer to hold at least `need` bytes, zero-filling new space. */
static dsc_err mem_reserve(struct mem_ctx *m, size_t need, struct dsc_error *e)
{
	size_t ncap;
	uint8_t *p;

	if (need <= m->cap)
		return DSC_OK;
	ncap = m->cap ? m->cap : 65536;
	while (ncap < need) {
		if (ncap > SIZE_MAX / 2)
			return dsc_error_set(e, DSC_ERR_NOMEM, ENOMEM, "memory buffer: too large");
		ncap *= 2;
	}
	p = realloc(m->wdata, ncap);
	if (!p)
		return dsc_error_set(e, DSC_ERR_NOMEM, ENOMEM, "memory buffer: out of memory");
	memset(p + m->cap, 0, ncap - m->cap);
	m->wdata = p;
	m->cap = ncap;
	return DSC_OK;
}

static dsc_err mem_write(void *ctx, const void *buf, size_t len, size_t *nwritten,
			 struct dsc_error *e)
{
	struct mem_ctx *m = ctx;
	dsc_err rc;

	if (m->rdata)
		return dsc_error_set(e, DSC_ERR_INVAL, 0, "memory view is read-only");
	if (len > SIZE_MAX - m->pos)
		return dsc_error_set(e, DSC_ERR_NOMEM, ENOMEM, "memory buffer: too large");
	rc = mem_reserve(m, m->pos + len, e);
	if (rc != DSC_OK)
		return rc;
	memcpy(m->wdata + m->pos, buf, len);
	m->pos += len;
	if (m->pos > m->len)
		m->len = m->pos;
	*nwritten = len;
	return DSC_OK;
}

static dsc_err mem_seek(void *ctx, uint64_t off, struct dsc_error *e)
{
	struct mem_ctx *m = ctx;

	if (off > SIZE_MAX)
		return dsc_error_set(e, DSC_ERR_INVAL, 0, "memory buffer: seek out of range");
	m->pos = (size_t)off;
	return DSC_OK;
}

static dsc_err mem_set_size(void *ctx, uint64_t size, bool allocate, struct dsc_error *e)
{
	struct mem_ctx *m = ctx;
	dsc_err rc;

	if (m->rdata || size > SIZE_MAX)
		return dsc_error_set(e, DSC_ERR_INVAL, 0, "memory buffer: cannot resize");
	rc = mem_reserve(m, (size_t)size, e);
	if (rc != DSC_OK)
		return rc;
	if (size < m->len)
		memset(m->wdata + size, 0, m->len - (size_t)size);
	m->len = (size_t)size;
	return DSC_OK;
}

static void mem_close(void *ctx)
{
	struct mem_ctx *m = ctx;

	free(m->wdata);
	free(m);
}

static const void *mem_query(void *ctx, int what) { return what == DSCP_Q_MEM ? ctx : NULL; }

static const struct dsc_stream_ops mem_view_ops = {
	.name = "mem",
	.read = mem_read,
	.seek = mem_seek,
	.close = mem_close,
	.query = mem_query,
};

static const struct dsc_stream_ops mem_buf_ops = {
	.name = "membuf",
	.read = mem_read,
	.write = mem_write,
	.seek = mem_seek,
	.set_size = mem_set_size,
	.close = mem_close,
	.query = mem_query,
};

dsc_err dsc_stream_open_mem(const void *buf, size_t len, const char *name, dsc_stream **out,
			    struct dsc_error *e)
{
	static const uint8_t empty[1];
	struct mem_ctx *m = calloc(1, sizeof *m);
	dsc_err rc;

	*out = NULL;
	if (!m)
		return dsc_error_set(e, DSC_ERR_NOMEM, ENOMEM, "%s: out of memory",
				     name ? name : "mem");
	m->rdata = buf ? buf : empty;
	m->len = buf ? len : 0;
	rc = dsc_stream_new(&mem_view_ops, m, name ? name : "memory", out, e);
	if (rc != DSC_OK) {
		free(m);
		return rc;
	}
	dsc_stream_set_total(*out, m->len);
	return DSC_OK;
}

dsc_err dsc_stream_new_membuf(const char *name, dsc_stream **out, struct dsc_error *e)
{
	struct mem_ctx *m = calloc(1, sizeof *m);
	dsc_err rc;

	*out = NULL;
	if (!m)
		return dsc_error_set(e, DSC_ERR_NOMEM, ENOMEM, "%s: out of memory",
				     name ? name : "membuf");
	rc = dsc_stream_new(&mem_buf_ops, m, name ? name : "memory", out, e);
	if (rc != DSC_OK)
		free(m);
	return rc;
}

void dsc_stream_mem_buffer(dsc_stream *s, const uint8_t **data, size_t *len)
{
	const struct mem_ctx *m = dscp_stream_query(s, DSCP_Q_MEM);

	if (!m) {
		*data = NULL;
		*len = 0;
		return;
	}
	*data = m->rdata ? m->rdata : m->wdata;
	*len = m->len;
}
