/* vmdk_write.c - VMDK streamOptimized writer that never seeks.
 *
 * Produces exactly the layout of facts §3: header (gdOffset = GD_AT_END)
 * and descriptor, padding to overHead, compressed grains in ascending LBA
 * order, a grain table after each non-empty 32 MiB range, then the grain
 * directory, the footer and the end-of-stream marker.
 *
 * Extents arrive in ascending order; bytes are gathered into a one-grain
 * buffer and each grain is compressed when the input moves past it. An
 * all-zero grain is not written. Memory is one grain, its compressed form,
 * one table and the directory (4 bytes per 32 MiB of capacity).
 *
 * When the capacity is unknown at open (a raw pipe), the header and
 * descriptor are written with the largest capacity's digits and patched at
 * finish, which needs a seekable output; to a pipe that case is refused up
 * front.
 */
#include "vmdk.h"

#include <inttypes.h>
#include <stdio.h>
#include <sys/random.h>
#include <time.h>
#include <zlib.h>

struct vmdk_writer {
	struct vmdk_header h;
	bool capacity_known;
	size_t grain_bytes;
	uint64_t grain_sectors;
	char extent_name[256];
	uint32_t cid;
	char long_cid[33];

	uint8_t *gbuf;       /* the grain being gathered */
	uint64_t cur_grain;  /* its index, UINT64_MAX when none */
	bool dirty;
	uint8_t *cbuf;       /* marker + compressed grain + padding */
	size_t cbuf_size;
	z_stream zs;
	bool zs_ready;

	uint32_t gt[VMDK_GTES_PER_GT];
	uint64_t gt_range;   /* which 32 MiB range gt describes */
	bool gt_used;
	uint32_t *gd;        /* one entry per range */
	size_t gd_len, gd_cap;
};

static const char *wname(dsc_writer *w) { return dsc_stream_name(w->out); }

static uint64_t out_sector(dsc_writer *w)
{
	return dsc_stream_tell(w->out) / VMDK_SECTOR;
}

static dsc_err gd_grow(dsc_writer *w, struct vmdk_writer *vw, size_t len, struct dsc_error *e)
{
	size_t ncap;
	uint32_t *p;

	if (len <= vw->gd_len)
		return DSC_OK;
	if (len > vw->gd_cap) {
		ncap = vw->gd_cap ? vw->gd_cap : 64;
		while (ncap < len)
			ncap *= 2;
		p = realloc(vw->gd, ncap * sizeof *p);
		if (!p)
			return dsc_error_set(e, DSC_ERR_NOMEM, ENOMEM, "%s: out of memory", wname(w));
		vw->gd = p;
		vw->gd_cap = ncap;
	}
	memset(vw->gd + vw->gd_len, 0, (len - vw->gd_len) * sizeof *vw->gd);
	vw->gd_len = len;
	return DSC_OK;
}

/* Write a metadata marker and its sectors (facts §2). */
static dsc_err write_meta(dsc_writer *w, uint32_t type, const void *data, uint64_t sectors,
			  struct dsc_error *e)
{
	uint8_t marker[VMDK_SECTOR];
	dsc_err rc;

	dscp_vmdk_meta_marker_encode(sectors, type, marker);
	rc = dsc_write_all(w->out, marker, sizeof marker, e);
	if (rc == DSC_OK && sectors)
		rc = dsc_write_all(w->out, data, sectors * VMDK_SECTOR, e);
	return rc;
}

static dsc_err flush_gt(dsc_writer *w, struct vmdk_writer *vw, struct dsc_error *e)
{
	uint8_t table[VMDK_GTES_PER_GT * 4];
	uint64_t at;
	size_t i;
	dsc_err rc;

	if (!vw->gt_used)
		return DSC_OK;
	rc = gd_grow(w, vw, (size_t)vw->gt_range + 1, e);
	if (rc != DSC_OK)
		return rc;
	for (i = 0; i < VMDK_GTES_PER_GT; i++)
		dscp_put32(table + 4 * i, vw->gt[i]);
	at = out_sector(w);
	rc = write_meta(w, VMDK_MARKER_GT, table, sizeof table / VMDK_SECTOR, e);
	if (rc != DSC_OK)
		return rc;
	/* The directory points at the table itself, one past its marker. */
	vw->gd[vw->gt_range] = (uint32_t)(at + 1);
	memset(vw->gt, 0, sizeof vw->gt);
	vw->gt_used = false;
	return DSC_OK;
}

static dsc_err flush_grain(dsc_writer *w, struct vmdk_writer *vw, struct dsc_error *e)
{
	uint64_t range, lba, at;
	size_t padded, clen;
	dsc_err rc;
	int zr;

	if (!vw->dirty)
		return DSC_OK;
	vw->dirty = false;
	if (dscp_is_zero(vw->gbuf, vw->grain_bytes))
		return DSC_OK; /* zero grains are simply absent (facts §2) */
	range = vw->cur_grain / VMDK_GTES_PER_GT;
	if (vw->gt_used && range != vw->gt_range) {
		rc = flush_gt(w, vw, e);
		if (rc != DSC_OK)
			return rc;
	}
	vw->gt_range = range;

	if (deflateReset(&vw->zs) != Z_OK)
		return dsc_error_set(e, DSC_ERR_NOMEM, 0, "%s: zlib reset failed", wname(w));
	vw->zs.next_in = vw->gbuf;
	vw->zs.avail_in = (uInt)vw->grain_bytes;
	vw->zs.next_out = vw->cbuf + 12;
	vw->zs.avail_out = (uInt)(vw->cbuf_size - 12);
	zr = deflate(&vw->zs, Z_FINISH);
	if (zr != Z_STREAM_END)
		return dsc_error_set(e, DSC_ERR_IO, 0, "%s: compression failed (zlib %d)", wname(w),
				     zr);
	clen = vw->cbuf_size - 12 - vw->zs.avail_out;
	lba = vw->cur_grain * vw->grain_sectors;
	dscp_put64(vw->cbuf, lba);
	dscp_put32(vw->cbuf + 8, (uint32_t)clen);
	padded = (12 + clen + VMDK_SECTOR - 1) / VMDK_SECTOR * VMDK_SECTOR;
	memset(vw->cbuf + 12 + clen, 0, padded - 12 - clen);
	at = out_sector(w);
	if (at > UINT32_MAX)
		return dsc_error_set(e, DSC_ERR_LIMIT, 0,
				     "%s: output exceeds the 2 TiB a grain table can address",
				     wname(w));
	rc = dsc_write_all(w->out, vw->cbuf, padded, e);
	if (rc != DSC_OK)
		return rc;
	vw->gt[vw->cur_grain % VMDK_GTES_PER_GT] = (uint32_t)at;
	vw->gt_used = true;
	return DSC_OK;
}

static dsc_err vmdk_put(dsc_writer *w, const struct dsc_extent *ext, struct dsc_error *e)
{
	struct vmdk_writer *vw = w->impl;
	uint64_t off = ext->offset, g;
	const uint8_t *p = ext->data;
	size_t left = ext->length, in, n;
	dsc_err rc;

	if (vw->capacity_known && (off > vw->h.capacity * VMDK_SECTOR ||
				   left > vw->h.capacity * VMDK_SECTOR - off))
		return dsc_error_set(e, DSC_ERR_INVAL, 0, "%s: data at byte %llu is past the capacity",
				     wname(w), (unsigned long long)off);
	while (left > 0) {
		g = off / vw->grain_bytes;
		if (g != vw->cur_grain) {
			if (vw->cur_grain != UINT64_MAX && g < vw->cur_grain)
				return dsc_error_set(e, DSC_ERR_UNSUPPORTED, 0,
						     "%s: data for byte %llu arrives after byte "
						     "%llu: a VMDK stream needs the input's "
						     "grains in ascending order",
						     wname(w), (unsigned long long)off,
						     (unsigned long long)(vw->cur_grain *
									  vw->grain_bytes));
			rc = flush_grain(w, vw, e);
			if (rc != DSC_OK)
				return rc;
			memset(vw->gbuf, 0, vw->grain_bytes);
			vw->cur_grain = g;
		}
		in = (size_t)(off % vw->grain_bytes);
		n = DSC_MIN(left, vw->grain_bytes - in);
		memcpy(vw->gbuf + in, p, n);
		vw->dirty = true;
		p += n;
		off += n;
		left -= n;
	}
	return DSC_OK;
}

/* qemu and libvmdk both refuse a VMDK of zero sectors, so none is made. */
static dsc_err empty_image(dsc_writer *w, struct dsc_error *e)
{
	return dsc_error_set(e, DSC_ERR_UNSUPPORTED, 0,
			     "%s: the source image is empty (0 bytes); a VMDK needs at least "
			     "one sector", wname(w));
}

/* Header + descriptor + padding up to overHead (facts §3 step 1). */
static dsc_err write_head(dsc_writer *w, struct vmdk_writer *vw, struct dsc_error *e)
{
	size_t area = (size_t)vw->h.overhead * VMDK_SECTOR;
	uint8_t *buf = calloc(1, area);
	dsc_err rc;

	if (!buf)
		return dsc_error_set(e, DSC_ERR_NOMEM, ENOMEM, "%s: out of memory", wname(w));
	dscp_vmdk_header_encode(&vw->h, buf);
	if (!dscp_vmdk_descriptor_build((char *)buf + vw->h.desc_offset * VMDK_SECTOR,
					(size_t)vw->h.desc_size * VMDK_SECTOR, vw->h.capacity,
					vw->extent_name, vw->cid, vw->long_cid)) {
		free(buf);
		return dsc_error_set(e, DSC_ERR_INVAL, 0, "%s: descriptor does not fit", wname(w));
	}
	rc = dsc_write_all(w->out, buf, area, e);
	free(buf);
	return rc;
}

static dsc_err vmdk_finish(dsc_writer *w, uint64_t capacity, struct dsc_error *e)
{
	struct vmdk_writer *vw = w->impl;
	uint64_t cap_sectors = (capacity + VMDK_SECTOR - 1) / VMDK_SECTOR;
	uint64_t range_bytes = (uint64_t)vw->grain_bytes * VMDK_GTES_PER_GT;
	uint64_t gd_at, end;
	uint8_t sector[VMDK_SECTOR];
	uint8_t *gd = NULL;
	size_t entries, gd_sectors, i;
	struct vmdk_header footer;
	dsc_err rc;

	if (cap_sectors > VMDK_MAX_CAPACITY_SECTORS)
		return dsc_error_set(e, DSC_ERR_LIMIT, 0, "%s: capacity of %llu bytes is too large",
				     wname(w), (unsigned long long)capacity);
	if (cap_sectors == 0)
		return empty_image(w, e);
	if (vw->cur_grain != UINT64_MAX && vw->dirty &&
	    vw->cur_grain * vw->grain_bytes >= cap_sectors * VMDK_SECTOR)
		return dsc_error_set(e, DSC_ERR_INVAL, 0, "%s: data past the capacity", wname(w));
	if (vw->capacity_known && cap_sectors != vw->h.capacity)
		return dsc_error_set(e, DSC_ERR_INVAL, 0,
				     "%s: the source's size changed during the conversion "
				     "(%llu bytes, announced %llu)", wname(w),
				     (unsigned long long)capacity,
				     (unsigned long long)(vw->h.capacity * VMDK_SECTOR));
	vw->h.capacity = cap_sectors;
	rc = flush_grain(w, vw, e);
	if (rc == DSC_OK)
		rc = flush_gt(w, vw, e);
	if (rc != DSC_OK)
		return rc;

	/* Grain directory: one entry per 32 MiB range (facts §3 step 4). */
	entries = (size_t)((capacity + range_bytes - 1) / range_bytes);
	if (entries == 0)
		entries = 1;
	rc = gd_grow(w, vw, entries, e);
	if (rc != DSC_OK)
		return rc;
	gd_sectors = (entries * 4 + VMDK_SECTOR - 1) / VMDK_SECTOR;
	gd = calloc(gd_sectors, VMDK_SECTOR);
	if (!gd)
		return dsc_error_set(e, DSC_ERR_NOMEM, ENOMEM, "%s: out of memory", wname(w));
	for (i = 0; i < entries; i++)
		dscp_put32(gd + 4 * i, vw->gd[i]);
	gd_at = out_sector(w) + 1;
	rc = write_meta(w, VMDK_MARKER_GD, gd, gd_sectors, e);
	free(gd);
	if (rc != DSC_OK)
		return rc;

	/* Footer: the header again, now pointing at the directory (§3.5). */
	footer = vw->h;
	footer.gd_offset = gd_at;
	dscp_vmdk_header_encode(&footer, sector);
	rc = write_meta(w, VMDK_MARKER_FOOTER, sector, 1, e);
	if (rc != DSC_OK)
		return rc;
	/* End-of-stream: an all-zero marker, the last sector (§3.6). */
	memset(sector, 0, sizeof sector);
	rc = dsc_write_all(w->out, sector, sizeof sector, e);
	if (rc != DSC_OK)
		return rc;

	if (!vw->capacity_known) {
		end = dsc_stream_tell(w->out);
		rc = dsc_stream_seek(w->out, 0, e);
		if (rc == DSC_OK)
			rc = write_head(w, vw, e);
		if (rc == DSC_OK)
			rc = dsc_stream_seek(w->out, end, e);
		if (rc != DSC_OK)
			return rc;
	}
	return dsc_stream_finish(w->out, e);
}

static void vmdk_writer_close(dsc_writer *w)
{
	struct vmdk_writer *vw = w->impl;

	if (!vw)
		return;
	if (vw->zs_ready)
		deflateEnd(&vw->zs);
	free(vw->gbuf);
	free(vw->cbuf);
	free(vw->gd);
	free(vw);
}

static const struct dscp_writer_ops vmdk_writer_ops = {
	.put = vmdk_put,
	.finish = vmdk_finish,
	.close = vmdk_writer_close,
};

static void random_ids(struct vmdk_writer *vw)
{
	uint8_t r[20] = {0};
	size_t i;

	if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) {
		/* Not security relevant: only makes two images distinct. */
		uint64_t t = (uint64_t)(uintptr_t)vw ^ (uint64_t)clock();

		for (i = 0; i < sizeof r; i++)
			r[i] ^= (uint8_t)(t >> (8 * (i % 8))) + (uint8_t)i;
	}
	vw->cid = dscp_le32(r);
	for (i = 0; i < 16; i++)
		sprintf(vw->long_cid + 2 * i, "%02x", r[4 + i]);
}

static dsc_err vmdk_writer_init(dsc_writer *w, struct vmdk_writer *vw, struct dsc_error *e)
{
	const struct dsc_writer_opts *o = &w->opts;
	const char *ext_name = o->extent_name ? o->extent_name : dscp_basename(wname(w));
	char probe[4096];
	size_t dlen;
	int level = o->level ? o->level : 6;

	if (level < 1 || level > 9)
		return dsc_error_set(e, DSC_ERR_INVAL, 0, "%s: compression level %d (1 to 9)",
				     wname(w), level);
	if (!*ext_name || strlen(ext_name) >= sizeof vw->extent_name || strchr(ext_name, '"') ||
	    strchr(ext_name, '\n'))
		return dsc_error_set(e, DSC_ERR_INVAL, 0,
				     "%s: \"%s\" cannot be named in a VMDK descriptor", wname(w),
				     ext_name);
	strcpy(vw->extent_name, ext_name);
	vw->capacity_known = o->capacity != DSC_CAPACITY_UNKNOWN;
	if (!vw->capacity_known && !dsc_stream_can_seek(w->out))
		return dsc_error_set(e, DSC_ERR_UNSUPPORTED, 0,
				     "%s: a VMDK stream written to a pipe needs the source size "
				     "in advance, and the source is a raw pipe of unknown size",
				     wname(w));
	if (vw->capacity_known && o->capacity == 0)
		return empty_image(w, e);
	if (vw->capacity_known && o->capacity / VMDK_SECTOR > VMDK_MAX_CAPACITY_SECTORS)
		return dsc_error_set(e, DSC_ERR_LIMIT, 0, "%s: capacity of %llu bytes is too large",
				     wname(w), (unsigned long long)o->capacity);
	random_ids(vw);

	vw->grain_sectors = VMDK_GRAIN_SECTORS;
	vw->grain_bytes = VMDK_GRAIN_SECTORS * VMDK_SECTOR;
	vw->h.version = VMDK_WRITE_VERSION;
	vw->h.flags = VMDK_WRITE_FLAGS;
	vw->h.capacity = vw->capacity_known ? (o->capacity + VMDK_SECTOR - 1) / VMDK_SECTOR
					    : VMDK_MAX_CAPACITY_SECTORS;
	vw->h.grain_size = VMDK_GRAIN_SECTORS;
	vw->h.desc_offset = 1;
	/* Size the descriptor for the widest capacity, so the unknown-size
	 * patch at finish never changes its length. */
	dlen = dscp_vmdk_descriptor_build(probe, sizeof probe, VMDK_MAX_CAPACITY_SECTORS,
					  vw->extent_name, vw->cid, vw->long_cid);
	vw->h.desc_size = (dlen + VMDK_SECTOR) / VMDK_SECTOR; /* keeps a NUL */
	vw->h.gtes_per_gt = VMDK_GTES_PER_GT;
	vw->h.rgd_offset = 0;
	vw->h.gd_offset = VMDK_GD_AT_END;
	vw->h.overhead = VMDK_OVERHEAD_SECTORS;
	vw->h.compress = VMDK_COMPRESS_DEFLATE;

	vw->cur_grain = UINT64_MAX;
	vw->gbuf = calloc(1, vw->grain_bytes);
	vw->cbuf_size = (12 + compressBound((uLong)vw->grain_bytes) + VMDK_SECTOR - 1) /
			VMDK_SECTOR * VMDK_SECTOR;
	vw->cbuf = malloc(vw->cbuf_size);
	if (!vw->gbuf || !vw->cbuf)
		return dsc_error_set(e, DSC_ERR_NOMEM, ENOMEM, "%s: out of memory", wname(w));
	/* zlib format (RFC 1950), not raw deflate: facts §2. */
	if (deflateInit(&vw->zs, level) != Z_OK)
		return dsc_error_set(e, DSC_ERR_NOMEM, ENOMEM, "%s: cannot start zlib", wname(w));
	vw->zs_ready = true;
	return write_head(w, vw, e);
}

dsc_err dscp_vmdk_writer_open(dsc_stream *out, const struct dsc_writer_opts *o, dsc_writer **wp,
			      struct dsc_error *e)
{
	struct vmdk_writer *vw;
	dsc_writer *w;
	dsc_err rc;

	*wp = NULL;
	w = calloc(1, sizeof *w);
	vw = calloc(1, sizeof *vw);
	if (!w || !vw) {
		free(w);
		free(vw);
		return dsc_error_set(e, DSC_ERR_NOMEM, ENOMEM, "%s: out of memory",
				     dsc_stream_name(out));
	}
	w->ops = &vmdk_writer_ops;
	w->out = out;
	w->format = DSC_FORMAT_VMDK;
	w->opts = *o;
	w->impl = vw;
	rc = vmdk_writer_init(w, vw, e);
	if (rc != DSC_OK) {
		vmdk_writer_close(w);
		free(w);
		return rc;
	}
	*wp = w;
	return DSC_OK;
}
