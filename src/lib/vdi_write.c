/* vdi_write.c - the VDI writer: dynamic (the default) and static images.
 *
 * The layout is qemu-img 7.2's: the 512-byte header, the block map at byte
 * 512 (one u32 per 1 MiB block, padded to a sector), the data area right
 * after it. The disk size is the capacity rounded up to a sector, as qemu
 * rounds it.
 *
 * Static (-o static=on): every block allocated, block i at index i; the
 * map is known from the capacity, so the header and the map go first and
 * the data streams after them, to a pipe too, and the output size is known
 * before the first byte.
 *
 * Dynamic: all-zero blocks are left out (unallocated); the others are
 * stored in guest order. Extents arrive in ascending order and are
 * gathered one block at a time. On a seekable output the blocks are
 * written as they come and the header and map at finish. On a pipe the map
 * must come first, so the writer asks for a first pass (plan) over a
 * seekable source to learn which blocks hold data.
 */
#include "vdi.h"

#include <inttypes.h>
#include <sys/random.h>
#include <time.h>

struct vdi_writer {
	bool fixed;
	bool seekable;
	uint64_t base; /* output offset of the image's byte 0 */
	uint64_t vsize;
	uint32_t blocks;
	uint64_t offset_data;
	uint8_t uuid_image[16], uuid_snap[16];

	uint32_t *map;        /* block indexes, VDI_UNALLOCATED when absent */
	uint8_t *planned;     /* dynamic to a pipe: one bit per block with data */
	struct dscp_gather g; /* dynamic: the block being gathered */
	uint64_t pos;         /* static: guest bytes written so far (holes included) */
	uint64_t end;         /* image bytes the output holds so far */
	uint32_t next_index, nplanned;
	bool head_written;
};

static dsc_err flush_block(dsc_writer *w, struct dsc_error *e);
static const char *wname(const dsc_writer *w) { return dsc_stream_name(w->out); }

static const uint8_t zeros[DSCP_ZERO_UNIT];

static dsc_err put_zeros(dsc_writer *w, uint64_t n, struct dsc_error *e)
{
	dsc_err rc = DSC_OK;

	while (n > 0 && rc == DSC_OK) {
		size_t k = (size_t)DSC_MIN(n, (uint64_t)sizeof zeros);

		rc = dsc_write_all(w->out, zeros, k, e);
		n -= k;
	}
	return rc;
}

/* Move the output to image byte `to` (>= where it is, on a pipe). */
static dsc_err out_to(dsc_writer *w, struct vdi_writer *v, uint64_t to, struct dsc_error *e)
{
	uint64_t here = dsc_stream_tell(w->out) - v->base;

	if (here == to)
		return DSC_OK;
	if (v->seekable)
		return dsc_stream_seek(w->out, v->base + to, e);
	if (to < here)
		return dsc_error_set(e, DSC_ERR_INVAL, 0, "%s: VDI writer cannot go back on a pipe",
				     wname(w));
	return put_zeros(w, to - here, e);
}

/* Write len bytes at image byte `at`. */
static dsc_err put_at(dsc_writer *w, struct vdi_writer *v, uint64_t at, const void *buf, size_t len,
		      struct dsc_error *e)
{
	dsc_err rc = out_to(w, v, at, e);

	if (rc == DSC_OK)
		rc = dsc_write_all(w->out, buf, len, e);
	if (rc == DSC_OK)
		v->end = DSC_MAX(v->end, at + len);
	return rc;
}

static void random_uuid(uint8_t *u, const void *salt)
{
	if (getrandom(u, 16, 0) != 16) {
		uint64_t t = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)salt;

		memset(u, 0, 16);
		memcpy(u, &t, sizeof t);
	}
	u[6] = (uint8_t)((u[6] & 0x0f) | 0x40); /* version 4, as qemu's */
	u[8] = (uint8_t)((u[8] & 0x3f) | 0x80);
}

/* The disk size for `capacity` bytes, and the layout that follows. */
static dsc_err size_for(dsc_writer *w, struct vdi_writer *v, uint64_t capacity, struct dsc_error *e)
{
	uint64_t bytes, blocks;

	if (capacity > VDI_MAX_BYTES)
		return dsc_error_set(e, DSC_ERR_LIMIT, 0,
				     "%s: a disk of %" PRIu64
				     " bytes exceeds dsc's VDI limit of %llu bytes (%u blocks of "
				     "1 MiB); use qcow2 or raw",
				     wname(w), capacity, (unsigned long long)VDI_MAX_BYTES,
				     VDI_MAX_BLOCKS);
	bytes = (capacity + VDI_SECTOR - 1) / VDI_SECTOR * VDI_SECTOR;
	blocks = (bytes + VDI_WRITE_BLOCK - 1) / VDI_WRITE_BLOCK;
	if (v->map && (blocks != v->blocks || bytes != v->vsize))
		return dsc_error_set(e, DSC_ERR_INVAL, 0,
				     "%s: the disk size changed during the conversion", wname(w));
	v->vsize = bytes;
	v->blocks = (uint32_t)blocks;
	v->offset_data = VDI_HEADER_LEN + (blocks * 4 + VDI_SECTOR - 1) / VDI_SECTOR * VDI_SECTOR;
	return DSC_OK;
}

static dsc_err vdi_wopen(dsc_writer *w, struct dsc_error *e)
{
	struct vdi_writer *v = w->impl;
	uint64_t cap = w->opts.capacity, i;
	dsc_err rc;

	v->fixed = dscp_writer_option_uint(w, "static") != 0;
	v->seekable = dsc_stream_can_seek(w->out);
	v->base = dsc_stream_tell(w->out);
	v->g.cur = DSCP_NO_BLOCK;
	v->g.size = VDI_WRITE_BLOCK;
	v->g.fmt = "VDI";
	v->g.flush = flush_block;
	random_uuid(v->uuid_image, v);
	random_uuid(v->uuid_snap, v->uuid_image);
	if (w->opts.compress)
		return dsc_error_set(e, DSC_ERR_UNSUPPORTED, 0, "%s: VDI has no compression (-c)",
				     wname(w));
	if (cap == DSC_CAPACITY_UNKNOWN)
		return dsc_error_set(e, DSC_ERR_UNSUPPORTED, 0,
				     "%s: a VDI starts with its block map, which needs the disk "
				     "size before the data, and the input's size is unknown (a "
				     "raw pipe): use a file as input",
				     wname(w));
	rc = size_for(w, v, cap, e);
	if (rc != DSC_OK)
		return rc;
	v->map = malloc(v->blocks ? (size_t)v->blocks * 4 : 1);
	if (!v->map)
		return dsc_error_set(e, DSC_ERR_NOMEM, ENOMEM, "%s: out of memory", wname(w));
	if (v->fixed) {
		for (i = 0; i < v->blocks; i++)
			v->map[i] = (uint32_t)i;
		v->next_index = v->blocks;
		w->output_size = v->offset_data + (uint64_t)v->blocks * VDI_WRITE_BLOCK;
		return DSC_OK;
	}
	memset(v->map, 0xff, (size_t)v->blocks * 4);
	v->g.blk = malloc(VDI_WRITE_BLOCK);
	if (!v->g.blk)
		return dsc_error_set(e, DSC_ERR_NOMEM, ENOMEM, "%s: out of memory", wname(w));
	if (!v->seekable) {
		v->planned = calloc((size_t)v->blocks / 8 + 1, 1);
		if (!v->planned)
			return dsc_error_set(e, DSC_ERR_NOMEM, ENOMEM, "%s: out of memory",
					     wname(w));
		w->needs_plan = true;
	}
	return DSC_OK;
}

static bool is_planned(const struct vdi_writer *v, uint64_t b)
{
	return v->planned[b >> 3] & (1u << (b & 7));
}

static dsc_err check_range(dsc_writer *w, struct vdi_writer *v, const struct dsc_extent *ext,
			   struct dsc_error *e)
{
	if (ext->offset > v->vsize || ext->length > v->vsize - ext->offset)
		return dsc_error_set(e, DSC_ERR_INVAL, 0,
				     "%s: data at byte %" PRIu64 " past the VDI's size %" PRIu64,
				     wname(w), ext->offset, v->vsize);
	return DSC_OK;
}

static dsc_err vdi_plan(dsc_writer *w, const struct dsc_extent *ext, struct dsc_error *e)
{
	struct vdi_writer *v = w->impl;
	uint64_t off = ext->offset;
	size_t done = 0;
	dsc_err rc = check_range(w, v, ext, e);

	if (rc != DSC_OK)
		return rc;
	while (done < ext->length) {
		uint64_t b = off / VDI_WRITE_BLOCK;
		size_t n = (size_t)DSC_MIN((uint64_t)(ext->length - done),
					   (b + 1) * VDI_WRITE_BLOCK - off);

		if (!is_planned(v, b) && !dscp_is_zero(ext->data + done, n)) {
			v->planned[b >> 3] |= (uint8_t)(1u << (b & 7));
			v->nplanned++;
		}
		done += n;
		off += n;
	}
	return DSC_OK;
}

static dsc_err vdi_plan_done(dsc_writer *w, uint64_t capacity, uint64_t *file_size,
			     struct dsc_error *e)
{
	struct vdi_writer *v = w->impl;
	uint32_t b, k = 0;
	dsc_err rc = size_for(w, v, capacity, e);

	if (rc != DSC_OK)
		return rc;
	for (b = 0; b < v->blocks; b++)
		if (is_planned(v, b))
			v->map[b] = k++;
	*file_size = v->offset_data + (uint64_t)k * VDI_WRITE_BLOCK;
	return DSC_OK;
}

/* The header and the map: the image's first offset_data bytes. */
static dsc_err write_head(dsc_writer *w, struct vdi_writer *v, uint32_t allocated,
			  struct dsc_error *e)
{
	uint8_t h[VDI_HEADER_LEN], sec[VDI_SECTOR];
	uint64_t i, n = v->offset_data - VDI_HEADER_LEN;
	dsc_err rc;

	memset(h, 0, sizeof h);
	memcpy(h, VDI_TEXT, sizeof VDI_TEXT - 1);
	dscp_put32(h + VDI_H_SIGNATURE, VDI_SIGNATURE);
	dscp_put32(h + VDI_H_VERSION, VDI_VERSION_1_1);
	dscp_put32(h + VDI_H_HEADER_SIZE, VDI_MIN_HEADER_SIZE);
	dscp_put32(h + VDI_H_TYPE, v->fixed ? VDI_TYPE_FIXED : VDI_TYPE_NORMAL);
	dscp_put32(h + VDI_H_OFFSET_BMAP, VDI_HEADER_LEN);
	dscp_put32(h + VDI_H_OFFSET_DATA, (uint32_t)v->offset_data);
	dscp_put32(h + VDI_H_SECTOR_SIZE, VDI_SECTOR);
	dscp_put64(h + VDI_H_DISK_SIZE, v->vsize);
	dscp_put32(h + VDI_H_BLOCK_SIZE, VDI_WRITE_BLOCK);
	dscp_put32(h + VDI_H_BLOCKS, v->blocks);
	dscp_put32(h + VDI_H_ALLOCATED, allocated);
	memcpy(h + VDI_H_UUID_IMAGE, v->uuid_image, 16);
	memcpy(h + VDI_H_UUID_SNAP, v->uuid_snap, 16);
	rc = put_at(w, v, 0, h, sizeof h, e);
	for (i = 0; i < n && rc == DSC_OK; i += VDI_SECTOR) {
		size_t j;

		for (j = 0; j < VDI_SECTOR; j += 4) {
			uint64_t idx = (i + j) / 4;

			dscp_put32(sec + j, idx < v->blocks ? v->map[idx] : 0);
		}
		rc = put_at(w, v, VDI_HEADER_LEN + i, sec, sizeof sec, e);
	}
	v->head_written = rc == DSC_OK;
	return rc;
}

/* Write the block in blk, unless it is all zeros (or, on a pipe, was not
 * planned). */
static dsc_err flush_block(dsc_writer *w, struct dsc_error *e)
{
	struct vdi_writer *v = w->impl;
	dsc_err rc;

	if (v->g.cur == DSCP_NO_BLOCK)
		return DSC_OK;
	if (v->planned) {
		if (!is_planned(v, v->g.cur)) {
			v->g.cur = DSCP_NO_BLOCK;
			if (!dscp_is_zero(v->g.blk, VDI_WRITE_BLOCK))
				return dsc_error_set(e, DSC_ERR_INVAL, 0,
						     "%s: the input changed between the two passes",
						     wname(w));
			return DSC_OK;
		}
		if (!v->head_written) {
			rc = write_head(w, v, v->nplanned, e);
			if (rc != DSC_OK)
				return rc;
		}
		v->next_index++;
	} else {
		if (dscp_is_zero(v->g.blk, VDI_WRITE_BLOCK)) {
			v->g.cur = DSCP_NO_BLOCK;
			return DSC_OK;
		}
		v->map[v->g.cur] = v->next_index++;
	}
	rc = put_at(w, v, v->offset_data + (uint64_t)v->map[v->g.cur] * VDI_WRITE_BLOCK, v->g.blk,
		    VDI_WRITE_BLOCK, e);
	v->g.cur = DSCP_NO_BLOCK;
	return rc;
}

static dsc_err vdi_put(dsc_writer *w, const struct dsc_extent *ext, struct dsc_error *e)
{
	struct vdi_writer *v = w->impl;
	dsc_err rc = check_range(w, v, ext, e);

	if (rc != DSC_OK)
		return rc;
	if (!v->fixed)
		return dscp_gather(w, &v->g, ext, e);
	if (ext->offset < v->pos)
		return dsc_error_set(e, DSC_ERR_UNSUPPORTED, 0,
				     "%s: data for byte %" PRIu64 " arrives after byte %" PRIu64
				     ": the VDI writer needs the input in ascending order",
				     wname(w), ext->offset, v->pos);
	if (!v->head_written) {
		rc = write_head(w, v, v->blocks, e);
		if (rc != DSC_OK)
			return rc;
	}
	rc = put_at(w, v, v->offset_data + ext->offset, ext->data, ext->length, e);
	v->pos = ext->offset + ext->length;
	return rc;
}

static dsc_err vdi_finish(dsc_writer *w, uint64_t capacity, struct dsc_error *e)
{
	struct vdi_writer *v = w->impl;
	uint64_t end;
	dsc_err rc = size_for(w, v, capacity, e);

	if (rc == DSC_OK && !v->fixed)
		rc = flush_block(w, e);
	if (rc != DSC_OK)
		return rc;
	if (v->planned && v->next_index != v->nplanned)
		return dsc_error_set(e, DSC_ERR_INVAL, 0,
				     "%s: the input changed between the two passes", wname(w));
	/* Static, and dynamic to a pipe: the head first if no block wrote it;
	 * dynamic to a file: the head now, with the final map. */
	if (!v->head_written || (!v->fixed && !v->planned))
		rc = write_head(w, v, v->fixed ? v->blocks : v->next_index, e);
	end = v->offset_data + (uint64_t)v->next_index * VDI_WRITE_BLOCK;
	/* Every allocated block is whole in the file: where the data stops
	 * short of the end, write zeros (on a file, only the last sector). */
	if (rc == DSC_OK && v->end < end) {
		uint64_t from = v->seekable ? DSC_MAX(v->end, end - VDI_SECTOR) : v->end;

		rc = out_to(w, v, from, e);
		if (rc == DSC_OK)
			rc = put_zeros(w, end - from, e);
	}
	if (rc != DSC_OK)
		return rc;
	w->image_size = v->vsize;
	w->file_size = end;
	return dsc_stream_finish(w->out, e);
}

static void vdi_wclose(dsc_writer *w)
{
	struct vdi_writer *v = w->impl;

	free(v->map);
	free(v->g.blk);
	free(v->planned);
}

const struct dscp_writer_class dscp_vdi_writer = {
	.size = sizeof(struct vdi_writer),
	.open = vdi_wopen,
	.put = vdi_put,
	.finish = vdi_finish,
	.close = vdi_wclose,
	.plan = vdi_plan,
	.plan_done = vdi_plan_done,
};
