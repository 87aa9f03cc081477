/* blockmap.c - what the block-map formats (VHD, VDI) share: where a
 * reader is in its input, and how a writer gathers a block.
 *
 * Reader: offsets are the image's own (byte 0 is where the reader started); the
 * input is seeked where it can be (a file of known size), else skipped
 * forward, and going back on a forward-only input is DSC_ERR_SEEK naming
 * the format, so the message tells the user to give a seekable input. A
 * short read or skip is DSC_ERR_TRUNCATED with the byte the input ended at.
 *
 * Writer: extents arrive in ascending order and are copied into one block
 * buffer; when data for the next block comes, the writer's flush writes
 * (or, all zeros, skips) the one held, so memory is one block whatever the
 * disk, and a hole never costs a block.
 */
#include "internal.h"

#include <inttypes.h>

void dscp_rpos_init(struct dscp_rpos *p, dsc_stream *in, const char *fmt)
{
	uint64_t total = dsc_stream_total(in);

	p->in = in;
	p->fmt = fmt;
	p->base = dsc_stream_tell(in);
	p->pos = 0;
	p->seekable = dscp_detect_sees_tail(in) && total != UINT64_MAX && total >= p->base;
	p->file_len = p->seekable ? total - p->base : 0;
}

dsc_err dscp_rpos_go(struct dscp_rpos *p, uint64_t to, struct dsc_error *e)
{
	uint64_t skipped;
	dsc_err rc;

	if (p->seekable) {
		rc = dsc_stream_seek(p->in, p->base + to, e);
		if (rc == DSC_OK)
			p->pos = to;
		return rc;
	}
	if (to < p->pos)
		return dsc_error_set(e, DSC_ERR_SEEK, 0,
				     "%s: needs a seekable input: the %s data at byte %" PRIu64
				     " comes before byte %" PRIu64 ", already read",
				     dsc_stream_name(p->in), p->fmt, to, p->pos);
	rc = dsc_stream_skip(p->in, to - p->pos, &skipped, e);
	if (rc != DSC_OK)
		return rc;
	p->pos += skipped;
	if (p->pos < to)
		return dsc_error_set(e, DSC_ERR_TRUNCATED, 0,
				     "%s: truncated: input ends at byte %" PRIu64
				     ", before byte %" PRIu64,
				     dsc_stream_name(p->in), p->pos, to);
	return DSC_OK;
}

dsc_err dscp_rpos_read(struct dscp_rpos *p, uint64_t at, void *buf, size_t len, const char *what,
		       struct dsc_error *e)
{
	size_t got;
	dsc_err rc = dscp_rpos_go(p, at, e);

	if (rc == DSC_OK)
		rc = dsc_read_full(p->in, buf, len, &got, e);
	if (rc != DSC_OK)
		return rc;
	p->pos += got;
	if (got < len)
		return dsc_error_set(e, DSC_ERR_TRUNCATED, 0,
				     "%s: truncated: input ends at byte %" PRIu64
				     ", inside the %s at byte %" PRIu64,
				     dsc_stream_name(p->in), p->pos, what, at);
	return DSC_OK;
}

dsc_err dscp_gather(dsc_writer *w, struct dscp_gather *g, const struct dsc_extent *ext,
		    struct dsc_error *e)
{
	uint64_t off = ext->offset;
	size_t done = 0;
	dsc_err rc;

	while (done < ext->length) {
		uint64_t b = off / g->size;
		size_t n = (size_t)DSC_MIN((uint64_t)(ext->length - done), (b + 1) * g->size - off);

		if (b != g->cur) {
			if (g->cur != DSCP_NO_BLOCK && b < g->cur)
				return dsc_error_set(e, DSC_ERR_UNSUPPORTED, 0,
						     "%s: data for byte %" PRIu64
						     " arrives after byte %" PRIu64
						     ": the %s writer needs the input in ascending "
						     "order",
						     dsc_stream_name(w->out), off, g->cur * g->size,
						     g->fmt);
			rc = g->flush(w, e);
			if (rc != DSC_OK)
				return rc;
			memset(g->blk, 0, g->size);
			g->cur = b;
		}
		memcpy(g->blk + (off - b * g->size), ext->data + done, n);
		done += n;
		off += n;
	}
	return DSC_OK;
}
