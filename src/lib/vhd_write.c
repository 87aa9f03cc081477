/* vhd_write.c - the VHD writer: dynamic (the default) and fixed disks.
 *
 * The virtual size follows qemu-img 7.2 (facts §2): without force_size the
 * size is rounded up to the smallest CHS geometry that holds it and the
 * creator is "qemu", so qemu reads the geometry; with force_size the size
 * is kept exactly, with the maximum geometry and the creator "qem2", which
 * qemu reads by current_size. azure=on is fixed + force_size with the size
 * rounded up to a whole MiB.
 *
 * A fixed disk is the data and then the footer: it streams to a pipe, and
 * its output size is known from the capacity before the first byte.
 *
 * A dynamic disk is laid out as qemu lays it out: footer copy @0, dynamic
 * header @512, BAT @1536, then 2 MiB blocks (a 512-byte bitmap, all set,
 * and the data) in guest order, the footer at the end. Extents arrive in
 * ascending order and are gathered one block at a time; all-zero blocks
 * are left out. On a seekable output the BAT is written at finish. On a
 * pipe the BAT must come first, so the writer asks for a first pass
 * (plan) over a seekable source to learn which blocks hold data.
 */
#include "vhd.h"

#include <inttypes.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

struct vhd_writer {
	bool fixed, force, azure;
	bool seekable;
	bool sized;
	uint64_t base; /* output offset of the image's byte 0 */
	uint64_t vsize;
	uint16_t cyls;
	uint8_t heads, spt;
	uint8_t footer[VHD_FOOTER_LEN];
	uint8_t uuid[16];
	uint32_t stamp;

	/* Fixed: data bytes written so far (holes included). */
	uint64_t pos;

	/* Dynamic. */
	uint32_t entries;
	uint32_t *bat;         /* sector offsets, VHD_BAT_UNUSED when absent */
	uint8_t *planned;      /* pipe: one bit per block with data (first pass) */
	uint64_t blocks_start; /* byte of the first block */
	uint64_t next_off;     /* where the next block goes */
	struct dscp_gather g;  /* dynamic: the block being gathered */
	bool head_written;
	uint64_t written, nplanned;
};

static dsc_err flush_block(dsc_writer *w, struct dsc_error *e);
static const char *wname(const dsc_writer *w) { return dsc_stream_name(w->out); }

static const uint8_t zeros[DSCP_ZERO_UNIT];

#define BLOCK_BYTES ((uint64_t)VHD_SECTOR + VHD_WRITE_BLOCK)

/* The virtual size and geometry for `capacity` bytes. */
static dsc_err size_for(dsc_writer *w, struct vhd_writer *v, uint64_t capacity, struct dsc_error *e)
{
	uint64_t bytes, ts, i;

	if (capacity > VHD_MAX_BYTES)
		goto too_big;
	bytes = (capacity + VHD_SECTOR - 1) / VHD_SECTOR * VHD_SECTOR;
	if (v->azure)
		bytes = (bytes + (1u << 20) - 1) & ~(uint64_t)((1u << 20) - 1);
	if (v->force) {
		v->cyls = VHD_CHS_MAX_C;
		v->heads = VHD_CHS_MAX_H;
		v->spt = VHD_CHS_MAX_S;
		v->vsize = bytes;
	} else {
		/* The smallest geometry that holds the size, as qemu searches
		 * it; past the largest one the size is kept (read by size). */
		ts = DSC_MIN(VHD_MAX_GEOMETRY, bytes / VHD_SECTOR);
		v->cyls = v->heads = v->spt = 0;
		for (i = 0; ts > (uint64_t)v->cyls * v->heads * v->spt; i++)
			dscp_vhd_geometry(ts + i, &v->cyls, &v->heads, &v->spt);
		if ((uint64_t)v->cyls * v->heads * v->spt == VHD_MAX_GEOMETRY)
			v->vsize = bytes;
		else
			v->vsize = (uint64_t)v->cyls * v->heads * v->spt * VHD_SECTOR;
	}
	if (v->vsize > VHD_MAX_BYTES)
		goto too_big;
	v->sized = true;
	return DSC_OK;
too_big:
	return dsc_error_set(e, DSC_ERR_LIMIT, 0,
			     "%s: a disk of %" PRIu64
			     " bytes exceeds VHD's maximum of %llu bytes (2040 GiB); use vhdx, "
			     "qcow2 or raw",
			     wname(w), capacity, (unsigned long long)VHD_MAX_BYTES);
}

static void make_footer(struct vhd_writer *v)
{
	uint8_t *f = v->footer;

	memset(f, 0, VHD_FOOTER_LEN);
	memcpy(f, VHD_COOKIE, 8);
	vhd_put32(f + VHD_F_FEATURES, 2); /* "reserved", always set */
	vhd_put32(f + VHD_F_VERSION, 0x00010000u);
	vhd_put64(f + VHD_F_DATA_OFFSET, v->fixed ? UINT64_MAX : VHD_FOOTER_LEN);
	vhd_put32(f + VHD_F_TIMESTAMP, v->stamp);
	memcpy(f + VHD_F_CREATOR_APP, v->force ? "qem2" : "qemu", 4);
	vhd_put32(f + VHD_F_CREATOR_VER, 0x00050003u); /* as qemu: Virtual PC 2007 */
	memcpy(f + VHD_F_CREATOR_OS, "Wi2k", 4);
	vhd_put64(f + VHD_F_ORIG_SIZE, v->vsize);
	vhd_put64(f + VHD_F_CUR_SIZE, v->vsize);
	vhd_put16(f + VHD_F_CYLS, v->cyls);
	f[VHD_F_HEADS] = v->heads;
	f[VHD_F_SPT] = v->spt;
	vhd_put32(f + VHD_F_TYPE, v->fixed ? VHD_TYPE_FIXED : VHD_TYPE_DYNAMIC);
	memcpy(f + VHD_F_UUID, v->uuid, 16);
	vhd_put32(f + VHD_F_CHECKSUM, dscp_vhd_checksum(f, VHD_FOOTER_LEN, VHD_F_CHECKSUM));
}

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
static dsc_err out_to(dsc_writer *w, struct vhd_writer *v, uint64_t to, struct dsc_error *e)
{
	uint64_t here = dsc_stream_tell(w->out) - v->base;

	if (here == to)
		return DSC_OK;
	if (v->seekable)
		return dsc_stream_seek(w->out, v->base + to, e);
	if (to < here)
		return dsc_error_set(e, DSC_ERR_INVAL, 0, "%s: VHD writer cannot go back on a pipe",
				     wname(w));
	return put_zeros(w, to - here, e);
}

static dsc_err vhd_wopen(dsc_writer *w, struct dsc_error *e)
{
	struct vhd_writer *v = w->impl;
	const char *sub = dscp_writer_option(w, "subformat");
	uint64_t cap = w->opts.capacity;

	v->azure = dscp_writer_option_uint(w, "azure") != 0;
	if (v->azure && w->opts.options) {
		const char *given_sub = dsc_optlist_get(w->opts.options, "subformat");
		const char *given_force = dsc_optlist_get(w->opts.options, "force_size");

		/* azure=on is a fixed VHD of the exact size: say so rather
		 * than quietly override an option that asks otherwise. */
		if ((given_sub && strcasecmp(sub, "fixed")) ||
		    (given_force && !dscp_writer_option_uint(w, "force_size")))
			return dsc_error_set(e, DSC_ERR_INVAL, 0,
					     "%s: -o azure=on makes a fixed VHD of the exact size; "
					     "it cannot be combined with %s",
					     wname(w),
					     given_sub && strcasecmp(sub, "fixed") ?
						     "subformat=dynamic" :
						     "force_size=off");
	}
	v->fixed = v->azure || (sub && !strcasecmp(sub, "fixed"));
	v->force = v->azure || dscp_writer_option_uint(w, "force_size") != 0;
	v->seekable = dsc_stream_can_seek(w->out);
	v->base = dsc_stream_tell(w->out);
	v->g.cur = DSCP_NO_BLOCK;
	v->g.size = VHD_WRITE_BLOCK;
	v->g.fmt = "VHD";
	v->g.flush = flush_block;
	v->stamp = (uint32_t)((uint64_t)time(NULL) - VHD_EPOCH);
	if (getrandom(v->uuid, sizeof v->uuid, 0) != (ssize_t)sizeof v->uuid) {
		uint64_t t = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)v;

		memcpy(v->uuid, &t, sizeof t);
	}
	v->uuid[6] = (uint8_t)((v->uuid[6] & 0x0f) | 0x40); /* version 4 */
	v->uuid[8] = (uint8_t)((v->uuid[8] & 0x3f) | 0x80);
	if (w->opts.compress)
		return dsc_error_set(e, DSC_ERR_UNSUPPORTED, 0, "%s: VHD has no compression (-c)",
				     wname(w));
	if (cap != DSC_CAPACITY_UNKNOWN) {
		dsc_err rc = size_for(w, v, cap, e);

		if (rc != DSC_OK)
			return rc;
	}
	if (v->fixed) {
		if (v->sized)
			w->output_size = v->vsize + VHD_FOOTER_LEN;
		return DSC_OK;
	}
	if (cap == DSC_CAPACITY_UNKNOWN)
		return dsc_error_set(
			e, DSC_ERR_UNSUPPORTED, 0,
			"%s: a dynamic VHD needs the disk size before the data, and the "
			"input's size is unknown (a raw pipe): use -o subformat=fixed, "
			"or a file as input",
			wname(w));
	v->entries = (uint32_t)((v->vsize + VHD_WRITE_BLOCK - 1) / VHD_WRITE_BLOCK);
	v->blocks_start = 3 * VHD_SECTOR + (((uint64_t)v->entries * 4 + VHD_SECTOR - 1) &
					    ~(uint64_t)(VHD_SECTOR - 1));
	v->next_off = v->blocks_start;
	v->bat = malloc(v->entries ? (size_t)v->entries * 4 : 1);
	v->g.blk = malloc(VHD_WRITE_BLOCK);
	if (!v->bat || !v->g.blk)
		return dsc_error_set(e, DSC_ERR_NOMEM, ENOMEM, "%s: out of memory", wname(w));
	memset(v->bat, 0xff, (size_t)v->entries * 4);
	if (!v->seekable) {
		v->planned = calloc(((size_t)v->entries + 7) / 8 + 1, 1);
		if (!v->planned)
			return dsc_error_set(e, DSC_ERR_NOMEM, ENOMEM, "%s: out of memory",
					     wname(w));
		w->needs_plan = true;
	}
	return DSC_OK;
}

static bool is_planned(const struct vhd_writer *v, uint64_t b)
{
	return v->planned[b >> 3] & (1u << (b & 7));
}

static dsc_err check_range(dsc_writer *w, struct vhd_writer *v, const struct dsc_extent *ext,
			   struct dsc_error *e)
{
	if (v->sized && (ext->offset > v->vsize || ext->length > v->vsize - ext->offset))
		return dsc_error_set(e, DSC_ERR_INVAL, 0,
				     "%s: data at byte %" PRIu64 " past the VHD's size %" PRIu64,
				     wname(w), ext->offset, v->vsize);
	return DSC_OK;
}

static dsc_err vhd_plan(dsc_writer *w, const struct dsc_extent *ext, struct dsc_error *e)
{
	struct vhd_writer *v = w->impl;
	uint64_t off = ext->offset;
	size_t done = 0;
	dsc_err rc = check_range(w, v, ext, e);

	if (rc != DSC_OK)
		return rc;
	while (done < ext->length) {
		uint64_t b = off / VHD_WRITE_BLOCK;
		size_t n = (size_t)DSC_MIN((uint64_t)(ext->length - done),
					   (b + 1) * VHD_WRITE_BLOCK - off);

		if (!is_planned(v, b) && !dscp_is_zero(ext->data + done, n)) {
			v->planned[b >> 3] |= (uint8_t)(1u << (b & 7));
			v->nplanned++;
		}
		done += n;
		off += n;
	}
	return DSC_OK;
}

static dsc_err vhd_plan_done(dsc_writer *w, uint64_t capacity, uint64_t *file_size,
			     struct dsc_error *e)
{
	struct vhd_writer *v = w->impl;
	uint64_t b, k = 0, vsize = v->vsize;
	dsc_err rc = size_for(w, v, capacity, e);

	if (rc != DSC_OK)
		return rc;
	if (v->vsize != vsize)
		return dsc_error_set(e, DSC_ERR_INVAL, 0,
				     "%s: the disk size changed between the two passes", wname(w));
	for (b = 0; b < v->entries; b++)
		if (is_planned(v, b))
			v->bat[b] = (uint32_t)((v->blocks_start + k++ * BLOCK_BYTES) / VHD_SECTOR);
	*file_size = v->blocks_start + k * BLOCK_BYTES + VHD_FOOTER_LEN;
	return DSC_OK;
}

/* Footer copy, dynamic header and BAT: the image's first blocks_start
 * bytes. */
static dsc_err write_head(dsc_writer *w, struct vhd_writer *v, struct dsc_error *e)
{
	uint8_t h[VHD_DYN_HEADER_LEN], sec[VHD_SECTOR];
	uint64_t i, n = v->blocks_start - 3 * VHD_SECTOR;
	dsc_err rc;

	make_footer(v);
	memset(h, 0, sizeof h);
	memcpy(h, VHD_DYN_COOKIE, 8);
	/* All 64 bits set: what Microsoft's tools expect (facts §2). */
	vhd_put64(h + VHD_H_DATA_OFFSET, UINT64_MAX);
	vhd_put64(h + VHD_H_TABLE_OFFSET, 3 * VHD_SECTOR);
	vhd_put32(h + VHD_H_VERSION, 0x00010000u);
	vhd_put32(h + VHD_H_MAX_ENTRIES, v->entries);
	vhd_put32(h + VHD_H_BLOCK_SIZE, VHD_WRITE_BLOCK);
	vhd_put32(h + VHD_H_CHECKSUM, dscp_vhd_checksum(h, sizeof h, VHD_H_CHECKSUM));
	rc = out_to(w, v, 0, e);
	if (rc == DSC_OK)
		rc = dsc_write_all(w->out, v->footer, VHD_FOOTER_LEN, e);
	if (rc == DSC_OK)
		rc = dsc_write_all(w->out, h, sizeof h, e);
	for (i = 0; i < n && rc == DSC_OK; i += VHD_SECTOR) {
		size_t j;

		for (j = 0; j < VHD_SECTOR; j += 4) {
			uint64_t idx = (i + j) / 4;

			vhd_put32(sec + j, idx < v->entries ? v->bat[idx] : VHD_BAT_UNUSED);
		}
		rc = dsc_write_all(w->out, sec, sizeof sec, e);
	}
	v->head_written = rc == DSC_OK;
	return rc;
}

/* Write the block in blk, unless it is all zeros (or, on a pipe, was not
 * planned). */
static dsc_err flush_block(dsc_writer *w, struct dsc_error *e)
{
	struct vhd_writer *v = w->impl;
	uint8_t bitmap[VHD_SECTOR];
	uint64_t at;
	dsc_err rc;

	if (v->g.cur == DSCP_NO_BLOCK)
		return DSC_OK;
	if (v->planned) {
		if (!is_planned(v, v->g.cur)) {
			if (!dscp_is_zero(v->g.blk, VHD_WRITE_BLOCK))
				return dsc_error_set(e, DSC_ERR_INVAL, 0,
						     "%s: the input changed between the two "
						     "passes (block %" PRIu64 ")",
						     wname(w), v->g.cur);
			v->g.cur = DSCP_NO_BLOCK;
			return DSC_OK;
		}
		if (!v->head_written) {
			rc = write_head(w, v, e);
			if (rc != DSC_OK)
				return rc;
		}
		at = (uint64_t)v->bat[v->g.cur] * VHD_SECTOR;
	} else {
		if (dscp_is_zero(v->g.blk, VHD_WRITE_BLOCK)) {
			v->g.cur = DSCP_NO_BLOCK;
			return DSC_OK;
		}
		at = v->next_off;
		v->bat[v->g.cur] = (uint32_t)(at / VHD_SECTOR);
		v->next_off += BLOCK_BYTES;
	}
	/* Every sector present, as qemu writes it (facts §2). */
	memset(bitmap, 0xff, sizeof bitmap);
	rc = out_to(w, v, at, e);
	if (rc == DSC_OK)
		rc = dsc_write_all(w->out, bitmap, sizeof bitmap, e);
	if (rc == DSC_OK)
		rc = dsc_write_all(w->out, v->g.blk, VHD_WRITE_BLOCK, e);
	v->written++;
	v->g.cur = DSCP_NO_BLOCK;
	return rc;
}

static dsc_err vhd_put(dsc_writer *w, const struct dsc_extent *ext, struct dsc_error *e)
{
	struct vhd_writer *v = w->impl;
	dsc_err rc = check_range(w, v, ext, e);

	if (rc != DSC_OK)
		return rc;
	if (!v->fixed)
		return dscp_gather(w, &v->g, ext, e);
	if (ext->offset < v->pos)
		return dsc_error_set(e, DSC_ERR_UNSUPPORTED, 0,
				     "%s: data for byte %" PRIu64 " arrives after byte %" PRIu64
				     ": the VHD writer needs the input in ascending order",
				     wname(w), ext->offset, v->pos);
	rc = out_to(w, v, ext->offset, e);
	if (rc == DSC_OK)
		rc = dsc_write_all(w->out, ext->data, ext->length, e);
	v->pos = ext->offset + ext->length;
	return rc;
}

static dsc_err vhd_finish(dsc_writer *w, uint64_t capacity, struct dsc_error *e)
{
	struct vhd_writer *v = w->impl;
	uint64_t announced = w->output_size;
	dsc_err rc = size_for(w, v, capacity, e);

	if (rc != DSC_OK)
		return rc;
	if (announced && announced != v->vsize + VHD_FOOTER_LEN)
		return dsc_error_set(e, DSC_ERR_INVAL, 0,
				     "%s: the disk size changed during the conversion", wname(w));
	if (v->fixed) {
		if (v->pos > v->vsize)
			return dsc_error_set(e, DSC_ERR_INVAL, 0,
					     "%s: data past the VHD's size %" PRIu64, wname(w),
					     v->vsize);
		make_footer(v);
		rc = out_to(w, v, v->vsize, e);
		if (rc == DSC_OK)
			rc = dsc_write_all(w->out, v->footer, VHD_FOOTER_LEN, e);
		if (rc != DSC_OK)
			return rc;
		w->image_size = v->vsize;
		w->file_size = v->vsize + VHD_FOOTER_LEN;
		return dsc_stream_finish(w->out, e);
	}
	if ((v->vsize + VHD_WRITE_BLOCK - 1) / VHD_WRITE_BLOCK != v->entries)
		return dsc_error_set(e, DSC_ERR_INVAL, 0,
				     "%s: the disk size changed during the conversion", wname(w));
	rc = flush_block(w, e);
	if (rc != DSC_OK)
		return rc;
	if (v->planned) {
		if (v->written != v->nplanned)
			return dsc_error_set(e, DSC_ERR_INVAL, 0,
					     "%s: the input changed between the two passes",
					     wname(w));
		if (!v->head_written)
			rc = write_head(w, v, e);
		v->next_off = v->blocks_start + v->written * BLOCK_BYTES;
	}
	if (rc == DSC_OK)
		rc = out_to(w, v, v->next_off, e);
	make_footer(v);
	if (rc == DSC_OK)
		rc = dsc_write_all(w->out, v->footer, VHD_FOOTER_LEN, e);
	if (rc == DSC_OK && !v->planned)
		rc = write_head(w, v, e);
	if (rc != DSC_OK)
		return rc;
	w->image_size = v->vsize;
	w->file_size = v->next_off + VHD_FOOTER_LEN;
	return dsc_stream_finish(w->out, e);
}

static void vhd_wclose(dsc_writer *w)
{
	struct vhd_writer *v = w->impl;

	free(v->bat);
	free(v->g.blk);
	free(v->planned);
}

const struct dscp_writer_class dscp_vhd_writer = {
	.size = sizeof(struct vhd_writer),
	.open = vhd_wopen,
	.put = vhd_put,
	.finish = vhd_finish,
	.close = vhd_wclose,
	.plan = vhd_plan,
	.plan_done = vhd_plan_done,
};
