/* vmdk_sparse_write.c - writer for monolithicSparse VMDK (hosted sparse
 * extent, version 1; version 2 with -o zeroed_grain=on).
 *
 * The layout is qemu's (formats.md §4, qemu block/vmdk.c vmdk_init_extent):
 * header at sector 0, a 20-sector embedded descriptor from sector 1, the
 * redundant grain directory at sector 21 followed by all its grain tables,
 * the grain directory followed by all its tables, then 64 KiB grains from
 * the first grain-aligned sector after them (overHead), in guest order.
 * All-zero grains are left unallocated (GTE 0), which reads as zeros in
 * both versions; version 2 only adds the flag that allows GTE 1.
 *
 * On a seekable output the metadata area is written as zeros at open, the
 * grains as they come, and the tables at finish by seeking back. On a pipe
 * the converter runs two passes (w->needs_plan): the first marks the
 * non-zero grains, which fixes every table and the file size, the second
 * writes header, tables and grains in one forward sequence.
 *
 * Memory: one grain buffer, the tables (4 bytes per grain, at most 128 MiB
 * at the 2 TiB limit below) and, for a pipe, one bit per grain.
 */
#include "vmdk.h"

#include <inttypes.h>

/* GTEs are 32-bit sector numbers: the file must end below 2^32 sectors
 * (2 TiB), so the capacity is bounded by that less the metadata. */
#define VMDK_SPARSE_MAX_FILE_SECTORS 0xFFFFFFFFull
/* qemu's descriptor area (block/vmdk.c: desc_size = 20). */
#define VMDK_SPARSE_DESC_SECTORS 20u

struct vmdk_sparse_writer {
	struct vmdk_header h;
	uint64_t base;       /* stream offset of the header */
	uint64_t grains;     /* grains of the capacity */
	uint64_t gt_count;   /* tables */
	uint64_t gd_sectors; /* sectors of one directory */
	uint64_t gt_sectors; /* sectors of one table */
	uint32_t *gte;       /* every table's entries, in guest order */
	uint64_t next;       /* sector of the next grain */
	uint8_t *grain;      /* the grain being gathered */
	uint64_t cur;        /* its index, UINT64_MAX: none */
	bool dirty;
	bool seekable;
	uint8_t *planned; /* pipe: bit per grain, non-zero in the first pass */
	uint64_t nplanned, written;
	bool head_written;
	char desc[VMDK_SPARSE_DESC_SECTORS * VMDK_SECTOR];
};

static const char *wname(dsc_writer *w) { return dsc_stream_name(w->out); }

#define GRAIN_BYTES ((size_t)VMDK_GRAIN_SECTORS * VMDK_SECTOR)

dsc_err dscp_vmdk_sparse_wopen(dsc_writer *w, struct vmdk_sparse_writer **out,
			       const char *extent_name, uint32_t cid, const char *long_cid,
			       const char *adapter, unsigned hwversion, struct dsc_error *e)
{
	struct vmdk_sparse_writer *s;
	uint64_t cap = w->opts.capacity, sectors, meta;
	bool zeroed = dscp_writer_option_uint(w, "zeroed_grain") != 0;

	*out = NULL;
	if (w->opts.compress)
		return dsc_error_set(e, DSC_ERR_UNSUPPORTED, 0,
				     "%s: monolithicSparse VMDK grains are not compressed (-c): "
				     "use subformat=streamOptimized",
				     wname(w));
	if (cap == DSC_CAPACITY_UNKNOWN)
		return dsc_error_set(e, DSC_ERR_UNSUPPORTED, 0,
				     "%s: a monolithicSparse VMDK needs the disk size before the "
				     "data, and the input's size is unknown (a raw pipe): use a "
				     "file as input",
				     wname(w));
	sectors = (cap + VMDK_SECTOR - 1) / VMDK_SECTOR;
	if (sectors == 0)
		return dsc_error_set(e, DSC_ERR_UNSUPPORTED, 0,
				     "%s: the source image is empty (0 bytes); a VMDK needs at "
				     "least one sector",
				     wname(w));
	if (sectors > VMDK_SPARSE_MAX_FILE_SECTORS)
		return dsc_error_set(e, DSC_ERR_LIMIT, 0,
				     "%s: a monolithicSparse VMDK holds at most 2 TiB (32-bit "
				     "grain table entries); %" PRIu64 " bytes do not fit: use "
				     "subformat=streamOptimized",
				     wname(w), cap);
	s = calloc(1, sizeof *s);
	if (!s)
		return dsc_error_set(e, DSC_ERR_NOMEM, ENOMEM, "%s: out of memory", wname(w));
	*out = s;
	s->grains = (sectors + VMDK_GRAIN_SECTORS - 1) / VMDK_GRAIN_SECTORS;
	s->gt_count = (s->grains + VMDK_GTES_PER_GT - 1) / VMDK_GTES_PER_GT;
	s->gt_sectors = VMDK_GTES_PER_GT * 4 / VMDK_SECTOR;
	s->gd_sectors = (s->gt_count * 4 + VMDK_SECTOR - 1) / VMDK_SECTOR;
	meta = s->gd_sectors + s->gt_count * s->gt_sectors;
	s->h.version = zeroed ? 2 : 1;
	s->h.flags = VMDK_FLAG_NL_TEST | VMDK_FLAG_RGD | (zeroed ? VMDK_FLAG_ZERO_GTE : 0);
	s->h.capacity = sectors;
	s->h.grain_size = VMDK_GRAIN_SECTORS;
	s->h.desc_offset = 1;
	s->h.desc_size = VMDK_SPARSE_DESC_SECTORS;
	s->h.gtes_per_gt = VMDK_GTES_PER_GT;
	s->h.rgd_offset = 1 + VMDK_SPARSE_DESC_SECTORS;
	s->h.gd_offset = s->h.rgd_offset + meta;
	s->h.overhead = (s->h.gd_offset + meta + VMDK_GRAIN_SECTORS - 1) / VMDK_GRAIN_SECTORS *
			VMDK_GRAIN_SECTORS;
	if (s->h.overhead + s->grains * VMDK_GRAIN_SECTORS > VMDK_SPARSE_MAX_FILE_SECTORS)
		return dsc_error_set(e, DSC_ERR_LIMIT, 0,
				     "%s: a monolithicSparse VMDK holds at most 2 TiB (32-bit "
				     "grain table entries); %" PRIu64 " bytes do not fit: use "
				     "subformat=streamOptimized",
				     wname(w), cap);
	if (!dscp_vmdk_descriptor_build_type(s->desc, sizeof s->desc, sectors, extent_name, cid,
					     long_cid, adapter, hwversion, "monolithicSparse"))
		return dsc_error_set(e, DSC_ERR_INVAL, 0, "%s: descriptor does not fit", wname(w));
	s->gte = calloc((size_t)s->gt_count * VMDK_GTES_PER_GT, 4);
	s->grain = malloc(GRAIN_BYTES);
	if (!s->gte || !s->grain)
		return dsc_error_set(e, DSC_ERR_NOMEM, ENOMEM, "%s: out of memory", wname(w));
	s->cur = UINT64_MAX;
	s->next = s->h.overhead;
	s->base = dsc_stream_tell(w->out);
	s->seekable = dsc_stream_can_seek(w->out);
	if (!s->seekable) {
		s->planned = calloc((size_t)(s->grains + 7) / 8, 1);
		if (!s->planned)
			return dsc_error_set(e, DSC_ERR_NOMEM, ENOMEM, "%s: out of memory",
					     wname(w));
		w->needs_plan = true;
		return DSC_OK;
	}
	return DSC_OK;
}

void dscp_vmdk_sparse_wfree(struct vmdk_sparse_writer *s)
{
	if (!s)
		return;
	free(s->gte);
	free(s->grain);
	free(s->planned);
	free(s);
}

/* Header, descriptor and both directories with their tables, padded to
 * overHead: the first h.overhead sectors of the file. */
static dsc_err write_meta(dsc_writer *w, struct vmdk_sparse_writer *s, struct dsc_error *e)
{
	size_t area = (size_t)s->h.overhead * VMDK_SECTOR;
	uint64_t copy, t, at;
	uint8_t *buf = calloc(1, area);
	dsc_err rc;

	if (!buf)
		return dsc_error_set(e, DSC_ERR_NOMEM, ENOMEM, "%s: out of memory", wname(w));
	dscp_vmdk_header_encode(&s->h, buf);
	memcpy(buf + VMDK_SECTOR, s->desc, sizeof s->desc);
	/* The redundant copy and the primary are the same tables. */
	for (copy = 0; copy < 2; copy++) {
		uint64_t gd = copy ? s->h.gd_offset : s->h.rgd_offset;

		for (t = 0; t < s->gt_count; t++) {
			at = gd + s->gd_sectors + t * s->gt_sectors;
			dscp_put32(buf + gd * VMDK_SECTOR + 4 * t, (uint32_t)at);
			for (size_t j = 0; j < VMDK_GTES_PER_GT; j++)
				dscp_put32(buf + at * VMDK_SECTOR + 4 * j,
					   s->gte[t * VMDK_GTES_PER_GT + j]);
		}
	}
	rc = dsc_write_all(w->out, buf, area, e);
	free(buf);
	return rc;
}

static bool is_planned(const struct vmdk_sparse_writer *s, uint64_t g)
{
	return s->planned[g >> 3] & (1u << (g & 7));
}

static dsc_err check_range(dsc_writer *w, struct vmdk_sparse_writer *s,
			   const struct dsc_extent *ext, struct dsc_error *e)
{
	uint64_t size = s->h.capacity * VMDK_SECTOR;

	if (ext->offset > size || ext->length > size - ext->offset)
		return dsc_error_set(e, DSC_ERR_INVAL, 0,
				     "%s: data at byte %" PRIu64 " past the VMDK's size %" PRIu64,
				     wname(w), ext->offset, size);
	return DSC_OK;
}

dsc_err dscp_vmdk_sparse_plan(dsc_writer *w, struct vmdk_sparse_writer *s,
			      const struct dsc_extent *ext, struct dsc_error *e)
{
	uint64_t off = ext->offset, g;
	size_t done = 0, n;
	dsc_err rc = check_range(w, s, ext, e);

	if (rc != DSC_OK)
		return rc;
	while (done < ext->length) {
		g = off / GRAIN_BYTES;
		n = (size_t)DSC_MIN((uint64_t)(ext->length - done), (g + 1) * GRAIN_BYTES - off);
		if (!is_planned(s, g) && !dscp_is_zero(ext->data + done, n)) {
			s->planned[g >> 3] |= (uint8_t)(1u << (g & 7));
			s->nplanned++;
		}
		done += n;
		off += n;
	}
	return DSC_OK;
}

dsc_err dscp_vmdk_sparse_plan_done(dsc_writer *w, struct vmdk_sparse_writer *s, uint64_t capacity,
				   uint64_t *file_size, struct dsc_error *e)
{
	uint64_t g, next = s->h.overhead;

	if ((capacity + VMDK_SECTOR - 1) / VMDK_SECTOR != s->h.capacity)
		return dsc_error_set(e, DSC_ERR_INVAL, 0,
				     "%s: the disk size changed between the two passes", wname(w));
	for (g = 0; g < s->grains; g++)
		if (is_planned(s, g)) {
			s->gte[g] = (uint32_t)next;
			next += VMDK_GRAIN_SECTORS;
		}
	*file_size = next * VMDK_SECTOR;
	return DSC_OK;
}

/* The gathered grain is complete: write it, or leave it out when zero. */
static dsc_err flush_grain(dsc_writer *w, struct vmdk_sparse_writer *s, struct dsc_error *e)
{
	uint64_t g = s->cur;
	bool zero;
	dsc_err rc;

	if (g == UINT64_MAX || !s->dirty)
		return DSC_OK;
	s->dirty = false;
	zero = dscp_is_zero(s->grain, GRAIN_BYTES);
	if (s->planned) {
		/* The plan fixed the layout: the second pass must agree. */
		if (zero != !is_planned(s, g))
			return dsc_error_set(e, DSC_ERR_INVAL, 0,
					     "%s: the input changed between the two passes "
					     "(grain %" PRIu64 ")",
					     wname(w), g);
		if (zero)
			return DSC_OK;
		if (!s->head_written) {
			rc = write_meta(w, s, e);
			if (rc != DSC_OK)
				return rc;
			s->head_written = true;
		}
		if (s->gte[g] != s->next)
			return dsc_error_set(e, DSC_ERR_INVAL, 0,
					     "%s: grain %" PRIu64 " out of the planned order",
					     wname(w), g);
	} else {
		if (zero)
			return DSC_OK;
		s->gte[g] = (uint32_t)s->next;
	}
	rc = dsc_write_all(w->out, s->grain, GRAIN_BYTES, e);
	if (rc != DSC_OK)
		return rc;
	s->next += VMDK_GRAIN_SECTORS;
	s->written++;
	return DSC_OK;
}

dsc_err dscp_vmdk_sparse_put(dsc_writer *w, struct vmdk_sparse_writer *s,
			     const struct dsc_extent *ext, struct dsc_error *e)
{
	uint64_t off = ext->offset, g;
	size_t done = 0, n, at;
	dsc_err rc = check_range(w, s, ext, e);

	if (rc != DSC_OK)
		return rc;
	if (s->seekable && !s->head_written) {
		rc = write_meta(w, s, e);
		if (rc != DSC_OK)
			return rc;
		s->head_written = true;
	}
	while (done < ext->length) {
		g = off / GRAIN_BYTES;
		at = (size_t)(off % GRAIN_BYTES);
		n = (size_t)DSC_MIN((uint64_t)(ext->length - done), GRAIN_BYTES - at);
		if (g != s->cur) {
			if (s->cur != UINT64_MAX && g < s->cur)
				return dsc_error_set(e, DSC_ERR_INVAL, 0,
						     "%s: data for byte %" PRIu64
						     " arrives after byte %" PRIu64
						     ": the VMDK writer needs the input in "
						     "ascending order",
						     wname(w), off, s->cur * GRAIN_BYTES);
			rc = flush_grain(w, s, e);
			if (rc != DSC_OK)
				return rc;
			s->cur = g;
			memset(s->grain, 0, GRAIN_BYTES);
		}
		memcpy(s->grain + at, ext->data + done, n);
		s->dirty = true;
		done += n;
		off += n;
	}
	return DSC_OK;
}

dsc_err dscp_vmdk_sparse_finish(dsc_writer *w, struct vmdk_sparse_writer *s, uint64_t capacity,
				struct dsc_error *e)
{
	dsc_err rc;

	if ((capacity + VMDK_SECTOR - 1) / VMDK_SECTOR != s->h.capacity)
		return dsc_error_set(e, DSC_ERR_INVAL, 0,
				     "%s: the disk size changed during the conversion", wname(w));
	rc = flush_grain(w, s, e);
	if (rc != DSC_OK)
		return rc;
	if (s->planned && s->written != s->nplanned)
		return dsc_error_set(e, DSC_ERR_INVAL, 0,
				     "%s: the input changed between the two passes", wname(w));
	if (!s->head_written) {
		/* No data at all: the metadata is the whole file. */
		rc = write_meta(w, s, e);
		if (rc != DSC_OK)
			return rc;
		s->head_written = true;
	} else if (!s->planned) {
		/* The tables now know every grain: back to the start. */
		rc = dsc_stream_seek(w->out, s->base, e);
		if (rc == DSC_OK)
			rc = write_meta(w, s, e);
		if (rc == DSC_OK)
			rc = dsc_stream_seek(w->out, s->base + s->next * VMDK_SECTOR, e);
		if (rc != DSC_OK)
			return rc;
	}
	w->image_size = s->h.capacity * VMDK_SECTOR;
	w->file_size = s->next * VMDK_SECTOR;
	return dsc_stream_finish(w->out, e);
}
