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
#include "codec.h"
#include "pool.h"

#include <inttypes.h>
#include <stdio.h>
#include <sys/random.h>
#include <time.h>

struct vmdk_writer {
	struct vmdk_header h;
	bool capacity_known;
	size_t grain_bytes;
	uint64_t grain_sectors;
	char extent_name[256];
	uint32_t cid;
	char long_cid[33];

	struct dscp_pool *pool; /* grains being compressed, in order */
	struct dscp_slot *cur;  /* the slot gathering the current grain */
	uint64_t cur_grain;     /* its index, UINT64_MAX when none */
	bool dirty;
	size_t out_cap; /* a slot's output: marker + worst case */

	uint32_t gt[VMDK_GTES_PER_GT];
	uint64_t gt_range; /* which 32 MiB range gt describes */
	bool gt_used;
	uint32_t *gd; /* one entry per range */
	size_t gd_len, gd_cap;
	uint64_t base;      /* stream offset of the header */
	char adapter[16];   /* -o adapter_type */
	unsigned hwversion; /* -o hwversion */
	/* -o subformat=monolithicSparse: vmdk_sparse_write.c does the work. */
	struct vmdk_sparse_writer *sparse;
};

static const char *wname(dsc_writer *w) { return dsc_stream_name(w->out); }

static uint64_t out_sector(dsc_writer *w)
{
	return (dsc_stream_tell(w->out) - ((struct vmdk_writer *)w->impl)->base) / VMDK_SECTOR;
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
			return dsc_error_set(e, DSC_ERR_NOMEM, ENOMEM, "%s: out of memory",
					     wname(w));
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
	if (at + 1 > UINT32_MAX)
		return dsc_error_set(e, DSC_ERR_LIMIT, 0,
				     "%s: output exceeds the 2 TiB a grain directory can address",
				     wname(w));
	rc = write_meta(w, VMDK_MARKER_GT, table, sizeof table / VMDK_SECTOR, e);
	if (rc != DSC_OK)
		return rc;
	/* The directory points at the table itself, one past its marker. */
	vw->gd[vw->gt_range] = (uint32_t)(at + 1);
	memset(vw->gt, 0, sizeof vw->gt);
	vw->gt_used = false;
	return DSC_OK;
}

/* Worker thread: compress one grain into a complete marker + data +
 * padding (facts §2). result = bytes to write, 0 on failure. */
static void compress_job(void *ctx, struct dscp_slot *s)
{
	size_t clen, padded;

	clen = dscp_deflate(ctx, s->in, s->in_len, s->out + 12, s->out_cap - 12);
	if (clen == 0 || clen > UINT32_MAX) {
		s->result = 0;
		return;
	}
	dscp_put64(s->out, s->tag);
	dscp_put32(s->out + 8, (uint32_t)clen);
	padded = (12 + clen + VMDK_SECTOR - 1) / VMDK_SECTOR * VMDK_SECTOR;
	memset(s->out + 12 + clen, 0, padded - 12 - clen);
	s->result = (int)padded;
}

static void *deflater_new(void *arg) { return dscp_deflater_new(*(int *)arg); }

static void deflater_free(void *ctx) { dscp_deflater_free(ctx); }

/* Write the oldest compressed grain, with its range's table first when
 * it starts a new 32 MiB range. */
static dsc_err write_oldest(dsc_writer *w, struct vmdk_writer *vw, struct dsc_error *e)
{
	struct dscp_slot *s = dscp_pool_collect(vw->pool);
	uint64_t grain = s->tag / vw->grain_sectors, range = grain / VMDK_GTES_PER_GT, at;
	dsc_err rc;

	if (s->result <= 0) {
		rc = dsc_error_set(e, DSC_ERR_IO, 0,
				   "%s: compression of the grain at LBA %llu failed", wname(w),
				   (unsigned long long)s->tag);
		goto out;
	}
	if (vw->gt_used && range != vw->gt_range) {
		rc = flush_gt(w, vw, e);
		if (rc != DSC_OK)
			goto out;
	}
	vw->gt_range = range;
	at = out_sector(w);
	if (at > UINT32_MAX) {
		rc = dsc_error_set(e, DSC_ERR_LIMIT, 0,
				   "%s: output exceeds the 2 TiB a grain table can address",
				   wname(w));
		goto out;
	}
	rc = dsc_write_all(w->out, s->out, (size_t)s->result, e);
	if (rc != DSC_OK)
		goto out;
	vw->gt[grain % VMDK_GTES_PER_GT] = (uint32_t)at;
	vw->gt_used = true;
out:
	dscp_pool_release(vw->pool);
	return rc;
}

/* Hand the gathered grain to the pool (zero grains are simply absent,
 * facts §2) and take the next free slot, writing out finished grains to
 * make room. */
static dsc_err flush_grain(dsc_writer *w, struct vmdk_writer *vw, struct dsc_error *e)
{
	dsc_err rc;

	if (vw->cur && vw->dirty && !dscp_is_zero(vw->cur->in, vw->grain_bytes)) {
		vw->cur->tag = vw->cur_grain * vw->grain_sectors;
		vw->cur->in_len = vw->grain_bytes;
		dscp_pool_submit(vw->pool);
		vw->cur = NULL;
	}
	vw->dirty = false;
	while (!vw->cur) {
		vw->cur = dscp_pool_head(vw->pool);
		if (vw->cur)
			break;
		rc = write_oldest(w, vw, e);
		if (rc != DSC_OK)
			return rc;
	}
	return DSC_OK;
}

/* Write every grain still in the pool. */
static dsc_err drain(dsc_writer *w, struct vmdk_writer *vw, struct dsc_error *e)
{
	dsc_err rc = DSC_OK;

	while (rc == DSC_OK && dscp_pool_pending(vw->pool))
		rc = write_oldest(w, vw, e);
	return rc;
}

static dsc_err vmdk_put(dsc_writer *w, const struct dsc_extent *ext, struct dsc_error *e)
{
	struct vmdk_writer *vw = w->impl;
	uint64_t off = ext->offset, g;
	const uint8_t *p = ext->data;
	size_t left = ext->length, in, n;
	dsc_err rc;

	if (vw->capacity_known &&
	    (off > vw->h.capacity * VMDK_SECTOR || left > vw->h.capacity * VMDK_SECTOR - off))
		return dsc_error_set(e, DSC_ERR_INVAL, 0,
				     "%s: data at byte %llu is past the capacity", wname(w),
				     (unsigned long long)off);
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
			memset(vw->cur->in, 0, vw->grain_bytes);
			vw->cur_grain = g;
		}
		in = (size_t)(off % vw->grain_bytes);
		n = DSC_MIN(left, vw->grain_bytes - in);
		memcpy(vw->cur->in + in, p, n);
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
			     "one sector",
			     wname(w));
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
	if (!dscp_vmdk_descriptor_build_ddb((char *)buf + vw->h.desc_offset * VMDK_SECTOR,
					    (size_t)vw->h.desc_size * VMDK_SECTOR, vw->h.capacity,
					    vw->extent_name, vw->cid, vw->long_cid, vw->adapter,
					    vw->hwversion)) {
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
				     "(%llu bytes, announced %llu)",
				     wname(w), (unsigned long long)capacity,
				     (unsigned long long)(vw->h.capacity * VMDK_SECTOR));
	vw->h.capacity = cap_sectors;
	rc = flush_grain(w, vw, e);
	if (rc == DSC_OK)
		rc = drain(w, vw, e);
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
	/* The file's size, whether or not the header is written twice. */
	end = dsc_stream_tell(w->out);
	w->file_size = end - vw->base;
	w->image_size = cap_sectors * VMDK_SECTOR;

	if (!vw->capacity_known) {
		rc = dsc_stream_seek(w->out, vw->base, e);
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

	dscp_pool_free(vw->pool);
	free(vw->gd);
}

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
	int level = o->level;
	unsigned threads;

	if (dscp_level_resolve(level) < 0)
		return dsc_error_set(e, DSC_ERR_INVAL, 0, "%s: compression level %d (1 to %d)",
				     wname(w), level, DSCP_LEVEL_MAX);
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
	vw->base = dsc_stream_tell(w->out);

	vw->grain_sectors = VMDK_GRAIN_SECTORS;
	vw->grain_bytes = VMDK_GRAIN_SECTORS * VMDK_SECTOR;
	vw->h.version = VMDK_WRITE_VERSION;
	vw->h.flags = VMDK_WRITE_FLAGS;
	vw->h.capacity = vw->capacity_known ? (o->capacity + VMDK_SECTOR - 1) / VMDK_SECTOR :
					      VMDK_MAX_CAPACITY_SECTORS;
	vw->h.grain_size = VMDK_GRAIN_SECTORS;
	vw->h.desc_offset = 1;
	/* Size the descriptor for the widest capacity, so the unknown-size
	 * patch at finish never changes its length. */
	snprintf(vw->adapter, sizeof vw->adapter, "%s", dscp_writer_option(w, "adapter_type"));
	vw->hwversion = (unsigned)dscp_writer_option_uint(w, "hwversion");
	if (!strcasecmp(dscp_writer_option(w, "subformat"), "monolithicSparse"))
		return dscp_vmdk_sparse_wopen(w, &vw->sparse, vw->extent_name, vw->cid,
					      vw->long_cid, vw->adapter, vw->hwversion, e);
	if (dscp_writer_option_uint(w, "zeroed_grain"))
		return dsc_error_set(e, DSC_ERR_INVAL, 0,
				     "%s: -o zeroed_grain=on is for subformat=monolithicSparse",
				     wname(w));
	dlen = dscp_vmdk_descriptor_build_ddb(probe, sizeof probe, VMDK_MAX_CAPACITY_SECTORS,
					      vw->extent_name, vw->cid, vw->long_cid, vw->adapter,
					      vw->hwversion);
	vw->h.desc_size = (dlen + VMDK_SECTOR) / VMDK_SECTOR; /* keeps a NUL */
	vw->h.gtes_per_gt = VMDK_GTES_PER_GT;
	vw->h.rgd_offset = 0;
	vw->h.gd_offset = VMDK_GD_AT_END;
	vw->h.overhead = VMDK_OVERHEAD_SECTORS;
	vw->h.compress = VMDK_COMPRESS_DEFLATE;

	vw->cur_grain = UINT64_MAX;
	vw->out_cap = (12 + dscp_deflate_bound(vw->grain_bytes) + VMDK_SECTOR - 1) / VMDK_SECTOR *
		      VMDK_SECTOR;
	threads = o->threads ? o->threads : dscp_cpu_count();
	/* One thread: compress in the caller, no worker. More: the workers
	 * compress while the caller reads and writes. */
	if (dscp_pool_new(threads > 1 ? threads : 0, threads > 1 ? 4 * (size_t)threads : 1,
			  vw->grain_bytes, vw->out_cap, compress_job, deflater_new, deflater_free,
			  &level, &vw->pool) != DSC_OK)
		return dsc_error_set(e, DSC_ERR_NOMEM, ENOMEM, "%s: cannot start compression",
				     wname(w));
	return write_head(w, vw, e);
}

static dsc_err vmdk_writer_open(dsc_writer *w, struct dsc_error *e)
{
	return vmdk_writer_init(w, w->impl, e);
}

static dsc_err vmdk_wput(dsc_writer *w, const struct dsc_extent *ext, struct dsc_error *e)
{
	struct vmdk_writer *vw = w->impl;

	if (vw->sparse)
		return dscp_vmdk_sparse_put(w, vw->sparse, ext, e);
	return vmdk_put(w, ext, e);
}

static dsc_err vmdk_wfinish(dsc_writer *w, uint64_t capacity, struct dsc_error *e)
{
	struct vmdk_writer *vw = w->impl;

	if (vw->sparse)
		return dscp_vmdk_sparse_finish(w, vw->sparse, capacity, e);
	return vmdk_finish(w, capacity, e);
}

static void vmdk_wclose(dsc_writer *w)
{
	struct vmdk_writer *vw = w->impl;

	dscp_vmdk_sparse_wfree(vw->sparse);
	vw->sparse = NULL;
	vmdk_writer_close(w);
}

/* Only monolithicSparse to a pipe asks for a plan. */
static dsc_err vmdk_wplan(dsc_writer *w, const struct dsc_extent *ext, struct dsc_error *e)
{
	struct vmdk_writer *vw = w->impl;

	return dscp_vmdk_sparse_plan(w, vw->sparse, ext, e);
}

static dsc_err vmdk_wplan_done(dsc_writer *w, uint64_t capacity, uint64_t *file_size,
			       struct dsc_error *e)
{
	struct vmdk_writer *vw = w->impl;

	return dscp_vmdk_sparse_plan_done(w, vw->sparse, capacity, file_size, e);
}

const struct dscp_writer_class dscp_vmdk_writer = {
	.size = sizeof(struct vmdk_writer),
	.open = vmdk_writer_open,
	.put = vmdk_wput,
	.finish = vmdk_wfinish,
	.close = vmdk_wclose,
	.plan = vmdk_wplan,
	.plan_done = vmdk_wplan_done,
};
