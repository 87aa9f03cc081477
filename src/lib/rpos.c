/* rpos.c - where a reader is in its input: one copy of the positioning
 * that the block-map readers (VHD, VDI) share.
 *
 * Offsets are the image's own (byte 0 is where the reader started); the
 * input is seeked where it can be (a file of known size), else skipped
 * forward, and going back on a forward-only input is DSC_ERR_SEEK naming
 * the format, so the message tells the user to give a seekable input. A
 * short read or skip is DSC_ERR_TRUNCATED with the byte the input ended at.
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
