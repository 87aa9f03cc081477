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
#include "codec.h"
#include "pool.h"

#include <inttypes.h>

struct vmdk_reader {
	struct vmdk_header h;
	uint64_t cap_sectors; /* header capacity, the bound for LBAs */
	size_t grain_bytes;
	size_t in_cap; /* a slot's input: the largest grain marker */
	uint8_t sector[VMDK_SECTOR];
	struct dscp_pool *pool; /* grains read ahead and being inflated */
	bool holding;           /* the oldest slot backs the last extent */
	bool gd_at_end;
	bool footer_seen;
	bool done; /* no more markers to read */
	/* Grains seen, to refuse an LBA that comes twice: a bitmap in pages
	 * allocated on first use, so memory follows the data read, not the
	 * capacity. */
	uint8_t **seen;
	size_t seen_pages;
	uint64_t base; /* stream offset of the header */
	/* qemu and open-vmdk keep their tables in the header area (facts
	 * §5): counted there, they tell how many grains must follow, so a
	 * stream cut short is caught although it has no footer. */
	bool scanned; /* the header area has been read */
	bool verify_count;
	uint64_t grains_expected;
	uint64_t grains_seen;
	/* An error met while reading ahead; reported after the grains
	 * before it, so errors come in stream order. */
	dsc_err pending_rc;
	struct dsc_error pending;
	/* A hosted sparse extent (monolithicSparse): read by
	 * vmdk_sparse_read.c instead. */
	struct vmdk_sparse *sparse;
	struct vmdk_desc *desc; /* a descriptor file: vmdk_desc.c */
};

static const char *rname(dsc_reader *r) { return dsc_stream_name(r->in); }

/* Position in the image: the stream may not have started at byte 0. */
static uint64_t rel_tell(dsc_reader *r)
{
	return dsc_stream_tell(r->in) - ((struct vmdk_reader *)r->impl)->base;
}

static dsc_err read_sectors(dsc_reader *r, void *buf, size_t len, const char *what,
			    struct dsc_error *e)
{
	uint64_t at = rel_tell(r);
	size_t got;
	dsc_err rc;

	rc = dsc_read_full(r->in, buf, len, &got, e);
	if (rc != DSC_OK)
		return rc;
	if (got < len)
		return dsc_error_set(
			e, DSC_ERR_TRUNCATED, 0,
			"%s: truncated: input ends at byte %llu inside %s at byte %llu", rname(r),
			(unsigned long long)(at + got), what, (unsigned long long)at);
	return DSC_OK;
}

static dsc_err skip_sectors(dsc_reader *r, uint64_t sectors, const char *what, struct dsc_error *e)
{
	uint64_t at = rel_tell(r), got;
	dsc_err rc;

	rc = dsc_stream_skip(r->in, sectors * VMDK_SECTOR, &got, e);
	if (rc != DSC_OK)
		return rc;
	if (got < sectors * VMDK_SECTOR)
		return dsc_error_set(
			e, DSC_ERR_TRUNCATED, 0,
			"%s: truncated: input ends at byte %llu inside %s at byte %llu", rname(r),
			(unsigned long long)(at + got), what, (unsigned long long)at);
	return DSC_OK;
}

#define SEEN_PAGE_BYTES 16384u
#define SEEN_PAGE_GRAINS (SEEN_PAGE_BYTES * 8u)

/* Mark grain g as seen; false if it was already. */
static bool mark_seen(struct vmdk_reader *vr, uint64_t g, bool *nomem)
{
	size_t page = (size_t)(g / SEEN_PAGE_GRAINS), bit = (size_t)(g % SEEN_PAGE_GRAINS);
	uint8_t *p;

	*nomem = false;
	if (!vr->seen) {
		vr->seen_pages = (size_t)((vr->cap_sectors / vr->h.grain_size + SEEN_PAGE_GRAINS) /
					  SEEN_PAGE_GRAINS);
		vr->seen = calloc(vr->seen_pages, sizeof *vr->seen);
		if (!vr->seen) {
			*nomem = true;
			return false;
		}
	}
	p = vr->seen[page];
	if (!p && !(p = vr->seen[page] = calloc(1, SEEN_PAGE_BYTES))) {
		*nomem = true;
		return false;
	}
	if (p[bit / 8] & (1u << (bit % 8)))
		return false;
	p[bit / 8] |= (uint8_t)(1u << (bit % 8));
	return true;
}

/* Worker thread: inflate one grain (facts §2: a zlib stream). */
static void inflate_job(void *ctx, struct dscp_slot *s)
{
	s->result = (int)dscp_inflate(ctx, s->in, s->in_len, s->out, s->out_cap, &s->out_len);
}

static void *inflater_new(void *arg)
{
	(void)arg;
	return dscp_inflater_new();
}

static void inflater_free(void *ctx) { dscp_inflater_free(ctx); }

/* The stream ended (EOS or end of input): every grain the tables in the
 * header area promised must have come. */
static dsc_err end_of_grains(dsc_reader *r, struct vmdk_reader *vr, uint64_t at,
			     struct dsc_error *e)
{
	if (vr->verify_count && vr->grains_seen < vr->grains_expected)
		return dsc_error_set(e, DSC_ERR_TRUNCATED, 0,
				     "%s: truncated: stream ends at byte %llu after %llu of the "
				     "%llu grains its grain tables list",
				     rname(r), (unsigned long long)at,
				     (unsigned long long)vr->grains_seen,
				     (unsigned long long)vr->grains_expected);
	vr->done = true;
	return DSC_OK;
}

/* A footer marker (val 1) and the footer sector after it, which must
 * carry the VMDK magic. */
static dsc_err read_footer(dsc_reader *r, struct vmdk_reader *vr, const struct vmdk_marker *m,
			   uint64_t at, struct dsc_error *e)
{
	dsc_err rc;

	if (m->val != 1)
		return dsc_error_set(e, DSC_ERR_FORMAT, 0,
				     "%s: footer marker at byte %llu: size %" PRIu64
				     " sectors, expected 1",
				     rname(r), (unsigned long long)at, m->val);
	rc = read_sectors(r, vr->sector, VMDK_SECTOR, "the footer", e);
	if (rc != DSC_OK)
		return rc;
	if (dscp_le32(vr->sector) != VMDK_MAGIC)
		return dsc_error_set(e, DSC_ERR_FORMAT, 0,
				     "%s: footer at byte %llu has no VMDK magic", rname(r),
				     (unsigned long long)(at + VMDK_SECTOR));
	vr->footer_seen = true;
	return DSC_OK;
}

/* A metadata marker (size 0) at byte `at`, in vr->sector: the end of the
 * stream, a table to skip, the footer. */
static dsc_err metadata_marker(dsc_reader *r, struct vmdk_reader *vr, const struct vmdk_marker *m,
			       uint64_t at, struct dsc_error *e)
{
	/* A metadata marker is val, 0, type and 496 zero bytes (facts
	 * §2); anything else is a grain marker whose size was lost. */
	if (!dscp_is_zero(vr->sector + 16, VMDK_SECTOR - 16))
		return dsc_error_set(e, DSC_ERR_FORMAT, 0,
				     "%s: marker at byte %llu: size 0 but not a metadata "
				     "marker (%" PRIu64 " sectors, type %" PRIu32 ")",
				     rname(r), (unsigned long long)at, m->val, m->type);
	switch (m->type) {
	case VMDK_MARKER_EOS:
		if (vr->gd_at_end && !vr->footer_seen)
			return dsc_error_set(e, DSC_ERR_FORMAT, 0,
					     "%s: end-of-stream marker at byte %llu comes "
					     "without a footer",
					     rname(r), (unsigned long long)at);
		return end_of_grains(r, vr, at, e);
	case VMDK_MARKER_GT:
	case VMDK_MARKER_GD:
		if (m->val > VMDK_MAX_CAPACITY_SECTORS / VMDK_GTES_PER_GT + 8)
			return dsc_error_set(e, DSC_ERR_FORMAT, 0,
					     "%s: metadata marker at byte %llu: %" PRIu64
					     " sectors is too large",
					     rname(r), (unsigned long long)at, m->val);
		return skip_sectors(r, m->val,
				    m->type == VMDK_MARKER_GT ? "a grain table" :
								"the grain directory",
				    e);
	case VMDK_MARKER_FOOTER: return read_footer(r, vr, m, at, e);
	case VMDK_MARKER_SKIP:
		/* Type 4 in vSphere exports: only the marker sector, as
		 * VirtualBox reads it. */
		return DSC_OK;
	default:
		return dsc_error_set(e, DSC_ERR_FORMAT, 0,
				     "%s: marker at byte %llu: unknown metadata type %" PRIu32,
				     rname(r), (unsigned long long)at, m->type);
	}
}

/* Is the grain marker at byte `at` one the tables allow: an aligned LBA
 * inside the capacity, a bounded size, never the same grain twice? */
static dsc_err check_grain_marker(dsc_reader *r, struct vmdk_reader *vr,
				  const struct vmdk_marker *m, uint64_t at, struct dsc_error *e)
{
	bool nomem;

	if (m->val % vr->h.grain_size)
		return dsc_error_set(e, DSC_ERR_FORMAT, 0,
				     "%s: grain marker at byte %llu: LBA %" PRIu64
				     " is not a multiple of the grain size (%" PRIu64 " sectors)",
				     rname(r), (unsigned long long)at, m->val, vr->h.grain_size);
	if (m->val >= vr->cap_sectors)
		return dsc_error_set(e, DSC_ERR_FORMAT, 0,
				     "%s: grain marker at byte %llu: LBA %" PRIu64
				     " is beyond the capacity of %" PRIu64 " sectors",
				     rname(r), (unsigned long long)at, m->val, vr->cap_sectors);
	if (m->size > 2 * vr->grain_bytes)
		return dsc_error_set(e, DSC_ERR_FORMAT, 0,
				     "%s: grain marker at byte %llu: compressed size %" PRIu32
				     " exceeds 2 x grain (%zu bytes)",
				     rname(r), (unsigned long long)at, m->size,
				     2 * vr->grain_bytes);
	vr->grains_seen++;
	if (!mark_seen(vr, m->val / vr->h.grain_size, &nomem))
		return nomem ? dsc_error_set(e, DSC_ERR_NOMEM, ENOMEM, "%s: out of memory",
					     rname(r)) :
			       dsc_error_set(e, DSC_ERR_FORMAT, 0,
					     "%s: grain marker at byte %llu: LBA %" PRIu64
					     " appears twice",
					     rname(r), (unsigned long long)at, m->val);
	return DSC_OK;
}

/* A grain marker: LBA, compressed size, data (facts §2). The grain goes
 * into the pool's free slot and is submitted for decompression. */
static dsc_err grain_marker(dsc_reader *r, struct vmdk_reader *vr, const struct vmdk_marker *m,
			    uint64_t at, struct dsc_error *e)
{
	struct dscp_slot *s;
	size_t need;
	dsc_err rc;

	rc = check_grain_marker(r, vr, m, at, e);
	if (rc != DSC_OK)
		return rc;
	s = dscp_pool_head(vr->pool);
	/* The data starts 12 bytes into the marker sector; the rest of its
	 * sectors follow (the caller made sure a slot is free). */
	need = ((12 + (size_t)m->size + VMDK_SECTOR - 1) / VMDK_SECTOR) * VMDK_SECTOR;
	memcpy(s->in, vr->sector + 12, VMDK_SECTOR - 12);
	if (need > VMDK_SECTOR) {
		rc = read_sectors(r, s->in + VMDK_SECTOR - 12, need - VMDK_SECTOR, "a grain", e);
		if (rc != DSC_OK)
			return rc;
	}
	s->in_len = m->size;
	s->tag = m->val;
	s->tag2 = at; /* the marker's byte offset, for messages */
	dscp_pool_submit(vr->pool);
	return DSC_OK;
}

/* Read the next marker and act on it: a grain goes into a free slot and is
 * submitted; metadata is skipped or checked. */
static dsc_err read_marker(dsc_reader *r, struct vmdk_reader *vr, struct dsc_error *e)
{
	struct vmdk_marker m;
	uint64_t at = rel_tell(r);
	size_t got;
	dsc_err rc;

	rc = dsc_read_full(r->in, vr->sector, VMDK_SECTOR, &got, e);
	if (rc != DSC_OK)
		return rc;
	if (got == 0) {
		/* qemu's layout ends after the last grain (facts §5); a stream
		 * announcing GD_AT_END must carry footer + EOS. */
		if (vr->gd_at_end)
			return dsc_error_set(e, DSC_ERR_TRUNCATED, 0,
					     "%s: truncated: stream ends at byte %llu without "
					     "footer and end-of-stream marker",
					     rname(r), (unsigned long long)at);
		return end_of_grains(r, vr, at, e);
	}
	if (got < VMDK_SECTOR)
		return dsc_error_set(e, DSC_ERR_TRUNCATED, 0,
				     "%s: truncated: input ends at byte %llu inside the marker at "
				     "byte %llu",
				     rname(r), (unsigned long long)(at + got),
				     (unsigned long long)at);
	dscp_vmdk_marker_decode(vr->sector, &m);
	if (m.size == 0)
		return metadata_marker(r, vr, &m, at, e);
	return grain_marker(r, vr, &m, at, e);
}

static dsc_err scan_header_area(dsc_reader *r, struct vmdk_reader *vr, struct dsc_error *e);

static dsc_err vmdk_next(dsc_reader *r, struct dsc_extent *ext, struct dsc_error *e)
{
	struct vmdk_reader *vr = r->impl;
	struct dscp_slot *s;
	uint64_t off;
	size_t len;
	dsc_err rc;

	memset(ext, 0, sizeof *ext);
	if (vr->sparse)
		return dscp_vmdk_sparse_next(r, vr->sparse, ext, e);
	if (vr->desc)
		return dscp_vmdk_desc_next(r, vr->desc, ext, e);
	if (!vr->pool) {
		unsigned t = r->threads ? r->threads : dscp_cpu_count();

		if (dscp_pool_new(t > 1 ? t : 0, t > 1 ? 4 * (size_t)t : 1, vr->in_cap,
				  vr->grain_bytes, inflate_job, inflater_new, inflater_free, NULL,
				  &vr->pool) != DSC_OK)
			return dsc_error_set(e, DSC_ERR_NOMEM, ENOMEM,
					     "%s: cannot start decompression", rname(r));
	}
	if (vr->holding) {
		dscp_pool_release(vr->pool);
		vr->holding = false;
	}
	/* The rest of the header area is read on the first call, where the
	 * converter's tick can already run (qemu's tables can be large). */
	if (!vr->scanned) {
		vr->scanned = true;
		rc = scan_header_area(r, vr, e);
		if (rc != DSC_OK)
			return rc;
	}
	for (;;) {
		rc = dscp_reader_tick(r, e);
		if (rc != DSC_OK)
			return rc;
		/* Read ahead while a slot is free. */
		while (!vr->done && vr->pending_rc == DSC_OK && dscp_pool_head(vr->pool)) {
			/* Runs of metadata markers produce no extent: tick here. */
			rc = dscp_reader_tick(r, &vr->pending);
			if (rc == DSC_OK)
				rc = read_marker(r, vr, &vr->pending);
			if (rc != DSC_OK)
				vr->pending_rc = rc;
		}
		s = dscp_pool_collect(vr->pool);
		if (!s) {
			if (vr->pending_rc != DSC_OK) {
				if (e && e->code == DSC_OK)
					*e = vr->pending;
				return vr->pending_rc;
			}
			return DSC_OK; /* end of the image */
		}
		off = s->tag * VMDK_SECTOR;
		len = s->out_len;
		if (s->result != DSCP_INFLATE_OK) {
			rc = dsc_error_set(e, DSC_ERR_FORMAT, 0,
					   "%s: grain marker at byte %" PRIu64 " (LBA %" PRIu64
					   "): %s",
					   rname(r), s->tag2, s->tag,
					   s->result == DSCP_INFLATE_TOO_BIG ?
						   "data inflates to more than one grain" :
						   "corrupt compressed data");
			dscp_pool_release(vr->pool);
			return rc;
		}
		/* Exactly one grain, except a last grain cut at the capacity. */
		if (len < vr->grain_bytes && off + len < r->capacity) {
			rc = dsc_error_set(e, DSC_ERR_FORMAT, 0,
					   "%s: grain marker at byte %" PRIu64 " (LBA %" PRIu64
					   "): data "
					   "inflates to %zu bytes, not one grain of %zu",
					   rname(r), s->tag2, s->tag, len, vr->grain_bytes);
			dscp_pool_release(vr->pool);
			return rc;
		}
		if (off >= r->capacity) {
			/* Wholly in the rounding past the exact size. */
			dscp_pool_release(vr->pool);
			continue;
		}
		len = (size_t)DSC_MIN((uint64_t)len, r->capacity - off);
		if (dscp_is_zero(s->out, len)) {
			dscp_pool_release(vr->pool);
			continue;
		}
		ext->offset = off;
		ext->length = len;
		ext->data = s->out;
		vr->holding = true;
		return DSC_OK;
	}
}

static void vmdk_reader_close(dsc_reader *r)
{
	struct vmdk_reader *vr = r->impl;

	dscp_pool_free(vr->pool);
	dscp_vmdk_sparse_free(vr->sparse);
	dscp_vmdk_desc_free(vr->desc);
	for (size_t i = 0; vr->seen && i < vr->seen_pages; i++)
		free(vr->seen[i]);
	free(vr->seen);
}

#define MAX_GD_ENTRIES (1u << 22) /* 16 MiB of directory: 128 TiB of 64 KiB grains */

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* Read forward from the descriptor to overHead. When the header points at
 * a directory inside that area (qemu, open-vmdk), load it and count the
 * grains its tables list, as the sectors go by; when the layout does not
 * allow that in one pass (tables before the directory, or past
 * overHead), the count is simply not checked. */
static dsc_err scan_header_area(dsc_reader *r, struct vmdk_reader *vr, struct dsc_error *e)
{
	const struct vmdk_header *h = &vr->h;
	uint64_t end = h->overhead, sec, gd_entries = 0, gt_sectors, s, i, k;
	uint8_t *buf = NULL, *gd_bytes = NULL;
	uint32_t *gts = NULL; /* table sectors, sorted */
	size_t ngts = 0, next_gt = 0, nsec;
	uint64_t gd_sectors = 0;
	bool want = !vr->gd_at_end && h->gd_offset > 0 && h->gd_offset < end;
	dsc_err rc = DSC_OK;

	gt_sectors = ((uint64_t)h->gtes_per_gt * 4 + VMDK_SECTOR - 1) / VMDK_SECTOR;
	if (want) {
		uint64_t per_gt = h->grain_size * h->gtes_per_gt;

		gd_entries = (h->capacity + per_gt - 1) / per_gt;
		gd_sectors = (gd_entries * 4 + VMDK_SECTOR - 1) / VMDK_SECTOR;
		want = gd_entries > 0 && gd_entries <= MAX_GD_ENTRIES &&
		       h->gd_offset + gd_sectors <= end &&
		       h->gd_offset * VMDK_SECTOR >= rel_tell(r);
	}
	if (want && !(gd_bytes = calloc(gd_sectors, VMDK_SECTOR)))
		return dsc_error_set(e, DSC_ERR_NOMEM, ENOMEM, "%s: out of memory", rname(r));
	buf = malloc(64 * VMDK_SECTOR);
	if (!buf) {
		rc = dsc_error_set(e, DSC_ERR_NOMEM, ENOMEM, "%s: out of memory", rname(r));
		goto out;
	}
	for (sec = rel_tell(r) / VMDK_SECTOR; sec < end; sec += nsec) {
		nsec = (size_t)DSC_MIN(end - sec, (uint64_t)64);
		rc = dscp_reader_tick(r, e);
		if (rc == DSC_OK)
			rc = read_sectors(r, buf, nsec * VMDK_SECTOR, "the header area", e);
		if (rc != DSC_OK)
			goto out;
		for (k = 0; want && k < nsec; k++) {
			s = sec + k;
			if (s >= h->gd_offset && s < h->gd_offset + gd_sectors) {
				memcpy(gd_bytes + (s - h->gd_offset) * VMDK_SECTOR,
				       buf + k * VMDK_SECTOR, VMDK_SECTOR);
				if (s + 1 < h->gd_offset + gd_sectors)
					continue;
				/* Directory complete: where are its tables? */
				gts = malloc(gd_entries * sizeof *gts);
				if (!gts) {
					rc = dsc_error_set(e, DSC_ERR_NOMEM, ENOMEM,
							   "%s: out of memory", rname(r));
					goto out;
				}
				for (i = 0; i < gd_entries; i++) {
					uint32_t t = dscp_le32(gd_bytes + 4 * i);

					if (t)
						gts[ngts++] = t;
				}
				qsort(gts, ngts, sizeof *gts, cmp_u32);
				/* Every table must still be ahead, inside the area. */
				if (ngts && (gts[0] <= s || gts[ngts - 1] + gt_sectors > end)) {
					want = false;
					vr->verify_count = false;
					break;
				}
				vr->verify_count = true;
				continue;
			}
			if (!vr->verify_count)
				continue;
			while (next_gt < ngts && s >= gts[next_gt] + gt_sectors)
				next_gt++;
			if (next_gt < ngts && s >= gts[next_gt]) {
				/* A table sector: each non-zero entry is a grain
				 * (1 means a zeroed grain when that flag is set). */
				uint64_t first = (s - gts[next_gt]) * (VMDK_SECTOR / 4), j;

				for (j = 0; j < VMDK_SECTOR / 4 && first + j < h->gtes_per_gt;
				     j++) {
					uint32_t v = dscp_le32(buf + k * VMDK_SECTOR + 4 * j);

					if (v > ((h->flags & VMDK_FLAG_ZERO_GTE) ? 1u : 0u))
						vr->grains_expected++;
				}
			}
		}
	}
out:
	free(buf);
	free(gd_bytes);
	free(gts);
	return rc;
}

/* An ESX Server 2 sparse extent (COWD): its header becomes a hosted sparse
 * one (4096 entries per table, no redundant directory, metadata from
 * sector 0 to the end of the 4-sector header) for the monolithicSparse
 * reader. qemu 7.2 reads any version and flags; we take version 1, a
 * granularity that is a power of two up to VMDK_MAX_GRAIN_SECTORS, and a
 * directory that covers the capacity, and refuse a child disk. */
static dsc_err cowd_open(dsc_reader *r, struct vmdk_reader *vr, const uint8_t *hdr, size_t got,
			 struct dsc_error *e)
{
	struct vmdk_header *h = &vr->h;
	uint32_t version, flags, sectors, gran, gd, gd_n;
	uint64_t per_gt, need;

	if (got < VMDK_SECTOR)
		return dsc_error_set(e, DSC_ERR_TRUNCATED, 0,
				     "%s: truncated: input ends at byte %zu inside the COWD header",
				     rname(r), got);
	version = dscp_le32(hdr + 4);
	flags = dscp_le32(hdr + 8);
	sectors = dscp_le32(hdr + 12);
	gran = dscp_le32(hdr + 16);
	gd = dscp_le32(hdr + 20);
	gd_n = dscp_le32(hdr + 24);
	if (version != 1)
		return dsc_error_set(e, DSC_ERR_UNSUPPORTED, 0,
				     "%s: VMDK COWD (ESX Server 2 sparse) version %" PRIu32
				     " is not supported (version 1 is)",
				     rname(r), version);
	if (!(flags & VMDK_COWD_FLAG_ROOT)) {
		char parent[VMDK_COWD_PARENT_LEN + 1];

		memcpy(parent, hdr + VMDK_COWD_PARENT_OFF,
		       DSC_MIN((size_t)VMDK_COWD_PARENT_LEN, VMDK_SECTOR - VMDK_COWD_PARENT_OFF));
		parent[DSC_MIN((size_t)VMDK_COWD_PARENT_LEN, VMDK_SECTOR - VMDK_COWD_PARENT_OFF)] =
			'\0';
		for (char *c = parent; *c; c++)
			if ((unsigned char)*c < 0x20 || (unsigned char)*c > 0x7e)
				*c = '?';
		return dsc_error_set(e, DSC_ERR_UNSUPPORTED, 0,
				     "%s: a VMDK delta (snapshot) disk (COWD child of %s%.64s%s); "
				     "parent chains are not supported: convert the parent-free "
				     "disk, or flatten the chain first",
				     rname(r), parent[0] ? "\"" : "",
				     parent[0] ? parent : "an unnamed parent",
				     parent[0] ? "\"" : "");
	}
	if (sectors == 0)
		return dsc_error_set(e, DSC_ERR_FORMAT, 0, "%s: VMDK COWD capacity of 0 sectors",
				     rname(r));
	if (gran == 0 || (gran & (gran - 1)) || gran > VMDK_MAX_GRAIN_SECTORS)
		return dsc_error_set(e,
				     gran > VMDK_MAX_GRAIN_SECTORS ? DSC_ERR_LIMIT : DSC_ERR_FORMAT,
				     0,
				     "%s: VMDK COWD granularity of %" PRIu32
				     " sectors is not a power of two from 1 to %u",
				     rname(r), gran, VMDK_MAX_GRAIN_SECTORS);
	per_gt = (uint64_t)gran * VMDK_COWD_GTES_PER_GT;
	need = (sectors + per_gt - 1) / per_gt;
	if (gd_n < need)
		return dsc_error_set(e, DSC_ERR_FORMAT, 0,
				     "%s: VMDK COWD grain directory has %" PRIu32
				     " entries, too few for the capacity (%" PRIu64 " needed)",
				     rname(r), gd_n, need);
	if (gd < VMDK_COWD_HEADER_SECTORS)
		return dsc_error_set(e, DSC_ERR_FORMAT, 0,
				     "%s: VMDK COWD grain directory at sector %" PRIu32
				     " overlaps the header (sectors 0 to 3)",
				     rname(r), gd);
	memset(h, 0, sizeof *h);
	h->version = 1;
	h->capacity = sectors;
	h->grain_size = gran;
	h->gtes_per_gt = VMDK_COWD_GTES_PER_GT;
	h->gd_offset = gd;
	h->overhead = VMDK_COWD_HEADER_SECTORS;
	vr->cap_sectors = h->capacity;
	vr->grain_bytes = (size_t)gran * VMDK_SECTOR;
	r->capacity = h->capacity * VMDK_SECTOR;
	r->cluster_size = vr->grain_bytes;
	return dscp_vmdk_sparse_open(r, h, vr->base, rel_tell(r), VMDK_COWD_HEADER_SECTORS,
				     &vr->sparse, e);
}

/* What dsc-img info reports of a sparse extent (qemu-img info's keys): the
 * image is its one extent. */
static void report_info(dsc_reader *r, const struct vmdk_header *h, const struct vmdk_descriptor *d,
			bool have_desc, bool stream)
{
	r->cluster_size = h->grain_size * VMDK_SECTOR;
	if (have_desc) {
		if (d->have_cid)
			dscp_info_uint(r, NULL, 0, "cid", d->cid);
		dscp_info_uint(r, NULL, 0, "parent-cid", d->parent_cid);
		dscp_info_str(r, NULL, 0, "create-type", d->create_type);
	}
	if (stream)
		dscp_info_bool(r, "extents", 0, "compressed", true);
	dscp_info_uint(r, "extents", 0, "virtual-size", h->capacity * VMDK_SECTOR);
	dscp_info_str(r, "extents", 0, "filename", dsc_stream_name(r->in));
	dscp_info_uint(r, "extents", 0, "cluster-size", r->cluster_size);
	dscp_info_str(r, "extents", 0, "format", "");
}

static dsc_err vmdk_open_impl(dsc_reader *r, struct vmdk_reader *vr, struct dsc_error *e)
{
	struct vmdk_header *h = &vr->h;
	struct vmdk_descriptor d;
	uint8_t hdr[VMDK_SECTOR];
	char *text;
	size_t got;
	bool sparse, empty_desc = false;
	dsc_err rc;

	rc = dsc_read_full(r->in, hdr, sizeof hdr, &got, e);
	if (rc != DSC_OK)
		return rc;
	if (got >= 4 && !memcmp(hdr, "COWD", 4))
		return cowd_open(r, vr, hdr, got, e);
	if (dscp_vmdk_text_descriptor(hdr, got, d.create_type, sizeof d.create_type))
		return dscp_vmdk_desc_open(r, hdr, got, &vr->desc, e);
	if (got < 4 || dscp_le32(hdr) != VMDK_MAGIC)
		return dsc_error_set(e, DSC_ERR_FORMAT, 0,
				     "%s: not a VMDK sparse extent (bad magic)", rname(r));
	if (got < sizeof hdr)
		return dsc_error_set(e, DSC_ERR_TRUNCATED, 0,
				     "%s: truncated: input ends at byte %zu inside the header",
				     rname(r), got);
	dscp_vmdk_header_decode(hdr, h);
	rc = dscp_vmdk_header_validate(h, rname(r), e);
	if (rc != DSC_OK)
		return rc;
	/* Uncompressed grains without markers: a hosted sparse extent
	 * (monolithicSparse); both: streamOptimized; one alone: neither. */
	sparse = !(h->flags & (VMDK_FLAG_COMPRESSED | VMDK_FLAG_MARKERS));
	if (!sparse && (h->flags & (VMDK_FLAG_COMPRESSED | VMDK_FLAG_MARKERS)) !=
			       (VMDK_FLAG_COMPRESSED | VMDK_FLAG_MARKERS))
		return dsc_error_set(e, DSC_ERR_UNSUPPORTED, 0,
				     "%s: VMDK flags 0x%08" PRIx32 " name compressed grains "
				     "without markers or markers without compression; neither "
				     "streamOptimized nor monolithicSparse",
				     rname(r), h->flags);
	if (h->overhead < h->desc_offset + h->desc_size || h->overhead > VMDK_MAX_CAPACITY_SECTORS)
		return dsc_error_set(e, DSC_ERR_FORMAT, 0,
				     "%s: overHead of %" PRIu64 " sectors does not hold the header "
				     "and descriptor",
				     rname(r), h->overhead);
	vr->gd_at_end = h->gd_offset == VMDK_GD_AT_END;
	vr->cap_sectors = h->capacity;
	vr->grain_bytes = (size_t)h->grain_size * VMDK_SECTOR;
	r->capacity = h->capacity * VMDK_SECTOR;

	if (h->desc_size) {
		bool empty;

		rc = skip_sectors(r, h->desc_offset - 1, "the header area", e);
		if (rc != DSC_OK)
			return rc;
		text = malloc(h->desc_size * VMDK_SECTOR);
		if (!text)
			return dsc_error_set(e, DSC_ERR_NOMEM, ENOMEM, "%s: out of memory",
					     rname(r));
		rc = read_sectors(r, text, h->desc_size * VMDK_SECTOR, "the descriptor", e);
		/* qemu leaves the descriptor area of a split set's extents
		 * empty: nothing to check there. */
		empty = rc == DSC_OK && sparse && !text[0];
		empty_desc = empty;
		if (rc == DSC_OK && !empty)
			rc = dscp_vmdk_descriptor_parse(text, h->desc_size * VMDK_SECTOR, rname(r),
							&d, e);
		free(text);
		if (rc != DSC_OK)
			return rc;
		if (!empty && d.has_parent &&
		    dscp_inspect_only(r, DSC_ERR_UNSUPPORTED,
				      "a VMDK delta (snapshot) disk (%s); parent chains are not "
				      "followed",
				      d.parent))
			dscp_info_backing(r, d.parent_hint, strlen(d.parent_hint), NULL);
		else if (!empty && d.has_parent)
			return dsc_error_set(e, DSC_ERR_UNSUPPORTED, 0,
					     "%s: a VMDK delta (snapshot) disk (%s); parent chains "
					     "are not supported: convert the parent-free disk, or "
					     "flatten the chain first",
					     rname(r), d.parent);
		if (empty) {
			/* Nothing to check. */
		} else if (sparse) {
			if (strcasecmp(d.create_type, "monolithicSparse") &&
			    strcasecmp(d.create_type, "twoGbMaxExtentSparse"))
				return dsc_error_set(
					e, DSC_ERR_UNSUPPORTED, 0,
					"%s: createType \"%s\" of an uncompressed sparse extent is "
					"not supported (monolithicSparse, twoGbMaxExtentSparse)",
					rname(r), d.create_type);
		} else if (strcasecmp(d.create_type, "streamOptimized"))
			return dsc_error_set(e, DSC_ERR_UNSUPPORTED, 0,
					     "%s: createType \"%s\" is not supported (only "
					     "streamOptimized)",
					     rname(r), d.create_type);
		/* VirtualBox rounds the header capacity up to a grain and
		 * keeps the exact size in the extent line (facts §5). */
		if (!empty && d.extent_sectors && d.extent_sectors < h->capacity &&
		    h->capacity - d.extent_sectors < h->grain_size)
			r->capacity = d.extent_sectors * VMDK_SECTOR;
	}
	report_info(r, h, &d, h->desc_size && !empty_desc, !sparse);
	if (h->overhead * VMDK_SECTOR < rel_tell(r))
		return dsc_error_set(e, DSC_ERR_FORMAT, 0,
				     "%s: overHead of %" PRIu64 " sectors ends inside the header",
				     rname(r), h->overhead);
	if (sparse) {
		uint64_t meta_end = DSC_MAX((uint64_t)1, h->desc_offset + h->desc_size);
		uint64_t cap = r->capacity;
		dsc_err src = dscp_vmdk_sparse_open(r, h, vr->base, rel_tell(r), meta_end,
						    &vr->sparse, e);

		if (src == DSC_OK && cap < r->capacity)
			r->capacity = cap;
		return src;
	}

	/* A marker's data: up to 2 x grain bytes, sector padded (facts §2). */
	vr->in_cap = (2 * vr->grain_bytes + 12 + VMDK_SECTOR - 1) / VMDK_SECTOR * VMDK_SECTOR;
	return DSC_OK;
}

static dsc_err vmdk_reader_open(dsc_reader *r, struct dsc_error *e)
{
	struct vmdk_reader *vr = r->impl;

	vr->base = dsc_stream_tell(r->in);
	return vmdk_open_impl(r, vr, e);
}

const struct dscp_reader_class dscp_vmdk_reader = {
	.size = sizeof(struct vmdk_reader),
	.open = vmdk_reader_open,
	.next = vmdk_next,
	.close = vmdk_reader_close,
};
