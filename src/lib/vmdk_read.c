/* vmdk_read.c - forward-only reader for VMDK streamOptimized images.
 *
 * The reader never seeks: it reads the header and descriptor, skips to
 * overHead and then walks the markers (facts §2, §3) one sector at a time,
 * inflating each grain into a one-grain buffer. Tables, directories and the
 * footer are skipped or checked, never needed, which is what lets the same
 * code read VMware's layout (tables after the grains), qemu's (tables in
 * the header area, no footer) and open-vmdk's (facts §5).
 *
 * Every number taken from the input is checked before it is used: grain
 * LBAs against the capacity and the grain size, compressed sizes against
 * 2 x grain, inflated sizes against exactly one grain.
 */
#include "vmdk.h"

#include <inttypes.h>
#include <zlib.h>

struct vmdk_reader {
	struct vmdk_header h;
	uint64_t cap_sectors;  /* header capacity, the bound for LBAs */
	size_t grain_bytes;
	uint8_t *cbuf;         /* marker sector + compressed grain */
	size_t cbuf_size;
	uint8_t *gbuf;         /* one inflated grain */
	z_stream zs;
	bool zs_ready;
	bool gd_at_end;
	bool footer_seen;
	bool done;
	bool have_last;
	uint64_t last_lba;
};

static const char *rname(dsc_reader *r) { return dsc_stream_name(r->in); }

static dsc_err read_sectors(dsc_reader *r, void *buf, size_t len, const char *what,
			    struct dsc_error *e)
{
	uint64_t at = dsc_stream_tell(r->in);
	size_t got;
	dsc_err rc;

	rc = dsc_read_full(r->in, buf, len, &got, e);
	if (rc != DSC_OK)
		return rc;
	if (got < len)
		return dsc_error_set(e, DSC_ERR_TRUNCATED, 0,
				     "%s: truncated: input ends at byte %llu inside %s at byte %llu",
				     rname(r), (unsigned long long)(at + got), what,
				     (unsigned long long)at);
	return DSC_OK;
}

static dsc_err skip_sectors(dsc_reader *r, uint64_t sectors, const char *what,
			    struct dsc_error *e)
{
	uint64_t at = dsc_stream_tell(r->in), got;
	dsc_err rc;

	rc = dsc_stream_skip(r->in, sectors * VMDK_SECTOR, &got, e);
	if (rc != DSC_OK)
		return rc;
	if (got < sectors * VMDK_SECTOR)
		return dsc_error_set(e, DSC_ERR_TRUNCATED, 0,
				     "%s: truncated: input ends at byte %llu inside %s at byte %llu",
				     rname(r), (unsigned long long)(at + got), what,
				     (unsigned long long)at);
	return DSC_OK;
}

/* Inflate one grain (facts §2: a zlib stream, one grain when inflated;
 * the last grain may stop at the capacity). */
static dsc_err inflate_grain(dsc_reader *r, struct vmdk_reader *vr, uint64_t at, uint64_t lba,
			     const uint8_t *src, uint32_t size, size_t *out_len, struct dsc_error *e)
{
	uint8_t extra;
	int zr;

	if (inflateReset(&vr->zs) != Z_OK)
		return dsc_error_set(e, DSC_ERR_NOMEM, 0, "%s: zlib reset failed", rname(r));
	vr->zs.next_in = (Bytef *)src;
	vr->zs.avail_in = size;
	vr->zs.next_out = vr->gbuf;
	vr->zs.avail_out = (uInt)vr->grain_bytes;
	zr = inflate(&vr->zs, Z_FINISH);
	if (zr == Z_BUF_ERROR && vr->zs.avail_out == 0) {
		/* Output full: see whether the stream wanted to go on. */
		vr->zs.next_out = &extra;
		vr->zs.avail_out = 1;
		zr = inflate(&vr->zs, Z_FINISH);
		if (zr != Z_STREAM_END || vr->zs.avail_out == 0)
			return dsc_error_set(e, DSC_ERR_FORMAT, 0,
					     "%s: grain marker at byte %llu (LBA %" PRIu64 "): data "
					     "inflates to more than one grain of %zu bytes",
					     rname(r), (unsigned long long)at, lba, vr->grain_bytes);
		vr->zs.avail_out = 0;
	} else if (zr != Z_STREAM_END) {
		return dsc_error_set(e, DSC_ERR_FORMAT, 0,
				     "%s: grain marker at byte %llu (LBA %" PRIu64 "): corrupt "
				     "compressed data (%s)",
				     rname(r), (unsigned long long)at, lba,
				     zr == Z_BUF_ERROR ? "stream cut short"
						       : vr->zs.msg ? vr->zs.msg : "zlib error");
	}
	*out_len = vr->grain_bytes - vr->zs.avail_out;
	return DSC_OK;
}

static dsc_err vmdk_next(dsc_reader *r, struct dsc_extent *ext, struct dsc_error *e)
{
	struct vmdk_reader *vr = r->impl;
	struct vmdk_marker m;
	uint64_t at, off;
	size_t need, len = 0;
	dsc_err rc;
	size_t got;

	memset(ext, 0, sizeof *ext);
	while (!vr->done) {
		at = dsc_stream_tell(r->in);
		rc = dsc_read_full(r->in, vr->cbuf, VMDK_SECTOR, &got, e);
		if (rc != DSC_OK)
			return rc;
		if (got == 0) {
			/* qemu's layout ends after the last grain (facts §5); a
			 * stream announcing GD_AT_END must carry footer + EOS. */
			if (vr->gd_at_end)
				return dsc_error_set(e, DSC_ERR_TRUNCATED, 0,
						     "%s: truncated: stream ends at byte %llu "
						     "without footer and end-of-stream marker",
						     rname(r), (unsigned long long)at);
			vr->done = true;
			break;
		}
		if (got < VMDK_SECTOR)
			return dsc_error_set(e, DSC_ERR_TRUNCATED, 0,
					     "%s: truncated: input ends at byte %llu inside the "
					     "marker at byte %llu",
					     rname(r), (unsigned long long)(at + got),
					     (unsigned long long)at);
		dscp_vmdk_marker_decode(vr->cbuf, &m);
		if (m.size == 0) {
			switch (m.type) {
			case VMDK_MARKER_EOS:
				if (vr->gd_at_end && !vr->footer_seen)
					return dsc_error_set(e, DSC_ERR_FORMAT, 0,
							     "%s: end-of-stream marker at byte %llu "
							     "comes without a footer",
							     rname(r), (unsigned long long)at);
				vr->done = true;
				continue;
			case VMDK_MARKER_GT:
			case VMDK_MARKER_GD:
				if (m.val > VMDK_MAX_CAPACITY_SECTORS / VMDK_GTES_PER_GT + 8)
					return dsc_error_set(e, DSC_ERR_FORMAT, 0,
							     "%s: metadata marker at byte %llu: "
							     "%" PRIu64 " sectors is too large",
							     rname(r), (unsigned long long)at, m.val);
				rc = skip_sectors(r, m.val, m.type == VMDK_MARKER_GT
							    ? "a grain table" : "the grain directory", e);
				if (rc != DSC_OK)
					return rc;
				continue;
			case VMDK_MARKER_FOOTER:
				if (m.val != 1)
					return dsc_error_set(e, DSC_ERR_FORMAT, 0,
							     "%s: footer marker at byte %llu: size "
							     "%" PRIu64 " sectors, expected 1",
							     rname(r), (unsigned long long)at, m.val);
				rc = read_sectors(r, vr->cbuf, VMDK_SECTOR, "the footer", e);
				if (rc != DSC_OK)
					return rc;
				if (dscp_le32(vr->cbuf) != VMDK_MAGIC)
					return dsc_error_set(e, DSC_ERR_FORMAT, 0,
							     "%s: footer at byte %llu has no VMDK magic",
							     rname(r), (unsigned long long)(at + VMDK_SECTOR));
				vr->footer_seen = true;
				continue;
			default:
				/* Other metadata (type 4 in vSphere exports): only
				 * the marker sector, as VirtualBox reads it. */
				continue;
			}
		}
		/* A grain marker: LBA, compressed size, data (facts §2). */
		if (m.val % vr->h.grain_size)
			return dsc_error_set(e, DSC_ERR_FORMAT, 0,
					     "%s: grain marker at byte %llu: LBA %" PRIu64
					     " is not a multiple of the grain size (%" PRIu64 " sectors)",
					     rname(r), (unsigned long long)at, m.val, vr->h.grain_size);
		if (m.val >= vr->cap_sectors)
			return dsc_error_set(e, DSC_ERR_FORMAT, 0,
					     "%s: grain marker at byte %llu: LBA %" PRIu64
					     " is beyond the capacity of %" PRIu64 " sectors",
					     rname(r), (unsigned long long)at, m.val, vr->cap_sectors);
		if (m.size > 2 * vr->grain_bytes)
			return dsc_error_set(e, DSC_ERR_FORMAT, 0,
					     "%s: grain marker at byte %llu: compressed size %" PRIu32
					     " exceeds 2 x grain (%zu bytes)",
					     rname(r), (unsigned long long)at, m.size,
					     2 * vr->grain_bytes);
		if (vr->have_last && m.val == vr->last_lba)
			return dsc_error_set(e, DSC_ERR_FORMAT, 0,
					     "%s: grain marker at byte %llu: LBA %" PRIu64
					     " appears twice", rname(r), (unsigned long long)at, m.val);
		need = ((12 + (size_t)m.size + VMDK_SECTOR - 1) / VMDK_SECTOR) * VMDK_SECTOR;
		if (need > VMDK_SECTOR) {
			rc = read_sectors(r, vr->cbuf + VMDK_SECTOR, need - VMDK_SECTOR, "a grain", e);
			if (rc != DSC_OK)
				return rc;
		}
		rc = inflate_grain(r, vr, at, m.val, vr->cbuf + 12, m.size, &len, e);
		if (rc != DSC_OK)
			return rc;
		off = m.val * VMDK_SECTOR;
		if (len < vr->grain_bytes && off + len < r->capacity)
			return dsc_error_set(e, DSC_ERR_FORMAT, 0,
					     "%s: grain marker at byte %llu (LBA %" PRIu64 "): data "
					     "inflates to %zu bytes, not one grain of %zu",
					     rname(r), (unsigned long long)at, m.val, len,
					     vr->grain_bytes);
		vr->have_last = true;
		vr->last_lba = m.val;
		if (off >= r->capacity)
			continue; /* wholly in the rounding past the exact size */
		len = (size_t)DSC_MIN((uint64_t)len, r->capacity - off);
		if (dscp_is_zero(vr->gbuf, len))
			continue;
		ext->offset = off;
		ext->length = len;
		ext->data = vr->gbuf;
		return DSC_OK;
	}
	return DSC_OK;
}

static void vmdk_reader_close(dsc_reader *r)
{
	struct vmdk_reader *vr = r->impl;

	if (!vr)
		return;
	if (vr->zs_ready)
		inflateEnd(&vr->zs);
	free(vr->cbuf);
	free(vr->gbuf);
	free(vr);
}

static const struct dscp_reader_ops vmdk_reader_ops = {
	.next = vmdk_next,
	.close = vmdk_reader_close,
};

static dsc_err vmdk_open_impl(dsc_reader *r, struct vmdk_reader *vr, struct dsc_error *e)
{
	struct vmdk_header *h = &vr->h;
	struct vmdk_descriptor d;
	uint8_t hdr[VMDK_SECTOR];
	uint64_t grain_cap;
	char *text;
	size_t got;
	dsc_err rc;

	rc = dsc_read_full(r->in, hdr, sizeof hdr, &got, e);
	if (rc != DSC_OK)
		return rc;
	if (got < 4 || dscp_le32(hdr) != VMDK_MAGIC)
		return dsc_error_set(e, DSC_ERR_FORMAT, 0, "%s: not a VMDK sparse extent (bad magic)",
				     rname(r));
	if (got < sizeof hdr)
		return dsc_error_set(e, DSC_ERR_TRUNCATED, 0,
				     "%s: truncated: input ends at byte %zu inside the header",
				     rname(r), got);
	dscp_vmdk_header_decode(hdr, h);
	rc = dscp_vmdk_header_validate(h, rname(r), e);
	if (rc != DSC_OK)
		return rc;
	if ((h->flags & (VMDK_FLAG_COMPRESSED | VMDK_FLAG_MARKERS)) !=
	    (VMDK_FLAG_COMPRESSED | VMDK_FLAG_MARKERS))
		return dsc_error_set(e, DSC_ERR_UNSUPPORTED, 0,
				     "%s: not a streamOptimized VMDK (no compressed grains with "
				     "markers; monolithicSparse input is not supported)",
				     rname(r));
	if (h->overhead < h->desc_offset + h->desc_size || h->overhead > VMDK_MAX_CAPACITY_SECTORS)
		return dsc_error_set(e, DSC_ERR_FORMAT, 0,
				     "%s: overHead of %" PRIu64 " sectors does not hold the header "
				     "and descriptor", rname(r), h->overhead);
	vr->gd_at_end = h->gd_offset == VMDK_GD_AT_END;
	vr->cap_sectors = h->capacity;
	vr->grain_bytes = (size_t)h->grain_size * VMDK_SECTOR;
	r->capacity = h->capacity * VMDK_SECTOR;

	if (h->desc_size) {
		rc = skip_sectors(r, h->desc_offset - 1, "the header area", e);
		if (rc != DSC_OK)
			return rc;
		text = malloc(h->desc_size * VMDK_SECTOR);
		if (!text)
			return dsc_error_set(e, DSC_ERR_NOMEM, ENOMEM, "%s: out of memory", rname(r));
		rc = read_sectors(r, text, h->desc_size * VMDK_SECTOR, "the descriptor", e);
		if (rc == DSC_OK)
			rc = dscp_vmdk_descriptor_parse(text, h->desc_size * VMDK_SECTOR, rname(r),
							&d, e);
		free(text);
		if (rc != DSC_OK)
			return rc;
		if (strcasecmp(d.create_type, "streamOptimized"))
			return dsc_error_set(e, DSC_ERR_UNSUPPORTED, 0,
					     "%s: createType \"%s\" is not supported (only "
					     "streamOptimized)", rname(r), d.create_type);
		/* VirtualBox rounds the header capacity up to a grain and
		 * keeps the exact size in the extent line (facts §5). */
		if (d.extent_sectors && d.extent_sectors < h->capacity &&
		    h->capacity - d.extent_sectors < h->grain_size)
			r->capacity = d.extent_sectors * VMDK_SECTOR;
	}
	rc = skip_sectors(r, h->overhead - dsc_stream_tell(r->in) / VMDK_SECTOR,
			  "the header area", e);
	if (rc != DSC_OK)
		return rc;

	grain_cap = 2 * (uint64_t)vr->grain_bytes;
	vr->cbuf_size = (size_t)(((12 + grain_cap + VMDK_SECTOR - 1) / VMDK_SECTOR) * VMDK_SECTOR);
	vr->cbuf = malloc(vr->cbuf_size);
	vr->gbuf = malloc(vr->grain_bytes);
	if (!vr->cbuf || !vr->gbuf)
		return dsc_error_set(e, DSC_ERR_NOMEM, ENOMEM, "%s: out of memory", rname(r));
	if (inflateInit(&vr->zs) != Z_OK)
		return dsc_error_set(e, DSC_ERR_NOMEM, ENOMEM, "%s: cannot start zlib", rname(r));
	vr->zs_ready = true;
	return DSC_OK;
}

dsc_err dscp_vmdk_reader_open(dsc_stream *in, dsc_reader **out, struct dsc_error *e)
{
	struct vmdk_reader *vr;
	dsc_reader *r;
	dsc_err rc;

	*out = NULL;
	r = calloc(1, sizeof *r);
	vr = calloc(1, sizeof *vr);
	if (!r || !vr) {
		free(r);
		free(vr);
		return dsc_error_set(e, DSC_ERR_NOMEM, ENOMEM, "%s: out of memory",
				     dsc_stream_name(in));
	}
	r->ops = &vmdk_reader_ops;
	r->in = in;
	r->format = DSC_FORMAT_VMDK;
	r->impl = vr;
	rc = vmdk_open_impl(r, vr, e);
	if (rc != DSC_OK) {
		vmdk_reader_close(r);
		free(r);
		return rc;
	}
	*out = r;
	return DSC_OK;
}
