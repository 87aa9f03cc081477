/* vhd_read.c - the VHD reader: fixed and dynamic disks, from a file or a
 * pipe.
 *
 * A fixed disk is its data followed by a 512-byte footer. On a seekable
 * input the footer is read at the end first; on a pipe (or a URL, which is
 * read forward) the reader holds back the last bytes it has seen (the
 * footer, and the data a CHS geometry may leave past the virtual size) and
 * checks the last 512 as the footer when the input ends, so the capacity is known
 * only then, as for a raw pipe.
 *
 * A dynamic disk is a footer copy at byte 0, a dynamic header, the BAT
 * (one sector number per block) and the blocks, each a sector bitmap and
 * the block's data; the footer again at the end. Everything is checked
 * against the limits in vhd.h before it is used. A seekable input is read
 * in guest order; a forward-only one in file order (the BAT sorted by
 * offset), which is guest order for what qemu and Hyper-V write. A sector
 * whose bitmap bit is clear reads as zeros (the spec's rule; qemu sets
 * every bit and ignores them). Differencing disks, whose data partly lives
 * in a parent file, are refused by name.
 */
#include "vhd.h"

#include <inttypes.h>
#include <stdio.h>

struct vhd_block {
	uint32_t sec; /* sector of the block's bitmap in the image (the BAT entry) */
	uint32_t idx; /* block number */
};

static uint64_t block_off(const struct vhd_block *b) { return (uint64_t)b->sec * VHD_SECTOR; }

struct vhd_reader {
	struct dscp_rpos at; /* where the input is */
	bool fixed;
	bool done;
	uint8_t footer[VHD_FOOTER_LEN];
	uint64_t vsize;

	uint8_t *buf; /* VHD_PIPE_CHUNK + VHD_PIPE_HOLD */
	size_t held;  /* fixed pipe: bytes kept at buf[0] for the next round */
	uint64_t held_guest;

	/* Emission of the chunk in buf. */
	const uint8_t *emit_data;
	size_t emit_off, emit_len;
	uint64_t emit_guest;

	/* Dynamic disks. */
	uint32_t block_size, bitmap_len;
	uint8_t *bitmap;
	bool bitmap_full;
	struct vhd_block *blocks; /* allocated blocks in reading order */
	size_t nblocks, next_block;
	bool in_block;
	struct vhd_block cur;
	uint32_t cur_done; /* data bytes of cur consumed */
};

static const char *rname(const dsc_reader *r) { return dsc_stream_name(r->in); }

/* Check one footer (at image byte `at`) and take the virtual size from it. */
static dsc_err check_footer(dsc_reader *r, struct vhd_reader *v, const uint8_t *f, uint64_t at,
			    struct dsc_error *e)
{
	uint32_t want = dscp_be32(f + VHD_F_CHECKSUM), got;
	uint32_t type;
	uint64_t size;

	if (memcmp(f, VHD_COOKIE, 8))
		return dsc_error_set(e, DSC_ERR_FORMAT, 0,
				     "%s: no VHD footer at byte %" PRIu64
				     " (no \"conectix\" cookie)",
				     rname(r), at);
	got = dscp_vhd_checksum(f, VHD_FOOTER_LEN, VHD_F_CHECKSUM);
	if (got != want)
		return dsc_error_set(e, DSC_ERR_FORMAT, 0,
				     "%s: VHD footer at byte %" PRIu64 ": checksum 0x%08" PRIx32
				     " does not match 0x%08" PRIx32,
				     rname(r), at, want, got);
	type = dscp_be32(f + VHD_F_TYPE);
	if (type == VHD_TYPE_DIFF)
		return dsc_error_set(e, DSC_ERR_UNSUPPORTED, 0,
				     "%s: a differencing VHD (its unchanged data is in a parent "
				     "image, another file) is not supported",
				     rname(r));
	if (type != VHD_TYPE_FIXED && type != VHD_TYPE_DYNAMIC)
		return dsc_error_set(e, DSC_ERR_FORMAT, 0,
				     "%s: VHD footer at byte %" PRIu64
				     ": unknown disk type %" PRIu32,
				     rname(r), at, type);
	/* qemu counts whole sectors of current_size. */
	size = dscp_vhd_footer_size(f) / VHD_SECTOR * VHD_SECTOR;
	if (size > VHD_MAX_BYTES)
		return dsc_error_set(e, DSC_ERR_LIMIT, 0,
				     "%s: VHD virtual size %" PRIu64
				     " exceeds the format's maximum of %llu bytes (2040 GiB)",
				     rname(r), size, (unsigned long long)VHD_MAX_BYTES);
	if (r->max_capacity && size > r->max_capacity)
		return dsc_error_set(e, DSC_ERR_LIMIT, 0,
				     "%s: image of %" PRIu64 " bytes exceeds the limit of %" PRIu64
				     " bytes",
				     rname(r), size, r->max_capacity);
	v->vsize = size;
	return DSC_OK;
}

static dsc_err not_fixed(dsc_reader *r, uint64_t at, struct dsc_error *e)
{
	return dsc_error_set(e, DSC_ERR_FORMAT, 0,
			     "%s: the VHD footer at byte %" PRIu64
			     " is not a fixed disk's, and there is no footer copy at byte 0 (a "
			     "dynamic disk's)",
			     rname(r), at);
}

static int by_offset(const void *a, const void *b)
{
	const struct vhd_block *x = a, *y = b;

	return x->sec < y->sec ? -1 : x->sec > y->sec;
}

static int by_index(const void *a, const void *b)
{
	const struct vhd_block *x = a, *y = b;

	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static bool overlaps(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return a < b + blen && b < a + alen;
}

/* The dynamic header and the BAT, after the footer copy at byte 0. */
static dsc_err open_dynamic(dsc_reader *r, struct vhd_reader *v, struct dsc_error *e)
{
	uint8_t h[VHD_DYN_HEADER_LEN];
	uint64_t hoff = dscp_be64(v->footer + VHD_F_DATA_OFFSET), toff, bat_len, meta_end, need;
	uint32_t want, got, entries, i;
	uint8_t *bat = NULL;
	dsc_err rc;

	if (hoff < VHD_FOOTER_LEN || hoff > VHD_MAX_META_OFFSET)
		return dsc_error_set(e, DSC_ERR_FORMAT, 0,
				     "%s: VHD dynamic header offset %" PRIu64
				     " is outside bytes 512 to %llu",
				     rname(r), hoff, (unsigned long long)VHD_MAX_META_OFFSET);
	rc = dscp_rpos_read(&v->at, hoff, h, sizeof h, "VHD dynamic header", e);
	if (rc != DSC_OK)
		return rc;
	if (memcmp(h, VHD_DYN_COOKIE, 8))
		return dsc_error_set(e, DSC_ERR_FORMAT, 0,
				     "%s: no VHD dynamic header at byte %" PRIu64
				     " (no \"cxsparse\" cookie)",
				     rname(r), hoff);
	want = dscp_be32(h + VHD_H_CHECKSUM);
	got = dscp_vhd_checksum(h, sizeof h, VHD_H_CHECKSUM);
	if (want != got)
		return dsc_error_set(e, DSC_ERR_FORMAT, 0,
				     "%s: VHD dynamic header at byte %" PRIu64
				     ": checksum 0x%08" PRIx32 " does not match 0x%08" PRIx32,
				     rname(r), hoff, want, got);
	v->block_size = dscp_be32(h + VHD_H_BLOCK_SIZE);
	if (v->block_size < VHD_SECTOR || (v->block_size & (v->block_size - 1)))
		return dsc_error_set(e, DSC_ERR_FORMAT, 0,
				     "%s: VHD block size %" PRIu32
				     " is not a power of two of 512-byte sectors",
				     rname(r), v->block_size);
	if (v->block_size < VHD_MIN_BLOCK)
		return dsc_error_set(e, DSC_ERR_UNSUPPORTED, 0,
				     "%s: VHD block size %" PRIu32
				     " is below %u bytes: qemu and the VHD spec place the data of "
				     "such blocks differently, so dsc does not guess",
				     rname(r), v->block_size, VHD_MIN_BLOCK);
	if (v->block_size > VHD_MAX_BLOCK)
		return dsc_error_set(e, DSC_ERR_LIMIT, 0,
				     "%s: VHD block size %" PRIu32 " exceeds the limit of %u",
				     rname(r), v->block_size, VHD_MAX_BLOCK);
	/* One bit per sector, padded to whole sectors (spec: "Block Bitmap");
	 * from 4 KiB up the same as qemu's block_size / 4096 rounded up to a
	 * sector. */
	v->bitmap_len =
		(v->block_size / VHD_SECTOR + 8 * VHD_SECTOR - 1) / (8 * VHD_SECTOR) * VHD_SECTOR;
	entries = dscp_be32(h + VHD_H_MAX_ENTRIES);
	need = (v->vsize + v->block_size - 1) / v->block_size;
	if (entries < need)
		return dsc_error_set(e, DSC_ERR_FORMAT, 0,
				     "%s: VHD BAT of %" PRIu32
				     " entries does not cover the virtual "
				     "size %" PRIu64 " (%" PRIu64 " blocks of %" PRIu32 ")",
				     rname(r), entries, v->vsize, need, v->block_size);
	if (entries > VHD_MAX_BAT_ENTRIES || entries > VHD_MAX_BYTES / v->block_size)
		return dsc_error_set(e, DSC_ERR_LIMIT, 0,
				     "%s: VHD BAT of %" PRIu32
				     " entries exceeds the limit of %llu for blocks of %" PRIu32,
				     rname(r), entries,
				     (unsigned long long)DSC_MIN((uint64_t)VHD_MAX_BAT_ENTRIES,
								 VHD_MAX_BYTES / v->block_size),
				     v->block_size);
	toff = dscp_be64(h + VHD_H_TABLE_OFFSET);
	bat_len = (uint64_t)entries * 4;
	if (toff > VHD_MAX_META_OFFSET)
		return dsc_error_set(e, DSC_ERR_FORMAT, 0,
				     "%s: VHD BAT offset %" PRIu64 " is outside bytes 512 to %llu",
				     rname(r), toff, (unsigned long long)VHD_MAX_META_OFFSET);
	if (overlaps(toff, bat_len, 0, VHD_FOOTER_LEN) ||
	    overlaps(toff, bat_len, hoff, VHD_DYN_HEADER_LEN) ||
	    (v->at.seekable && toff + bat_len > v->at.file_len - VHD_FOOTER_LEN))
		return dsc_error_set(e, DSC_ERR_FORMAT, 0,
				     "%s: VHD BAT at byte %" PRIu64 " (%" PRIu64
				     " bytes) overlaps the headers or lies outside the file",
				     rname(r), toff, bat_len);
	bat = malloc(bat_len ? (size_t)bat_len : 1);
	v->bitmap = malloc(v->bitmap_len);
	if (!bat || !v->bitmap) {
		rc = dsc_error_set(e, DSC_ERR_NOMEM, ENOMEM, "%s: out of memory for the VHD BAT",
				   rname(r));
		goto out;
	}
	rc = dscp_rpos_read(&v->at, toff, bat, (size_t)bat_len, "VHD BAT", e);
	if (rc != DSC_OK)
		goto out;
	meta_end = DSC_MAX(hoff + VHD_DYN_HEADER_LEN, toff + bat_len);
	for (i = 0; i < need; i++)
		v->nblocks += dscp_be32(bat + 4 * (size_t)i) != VHD_BAT_UNUSED;
	v->blocks = malloc(v->nblocks ? v->nblocks * sizeof *v->blocks : 1);
	if (!v->blocks) {
		rc = dsc_error_set(e, DSC_ERR_NOMEM, ENOMEM, "%s: out of memory for the VHD BAT",
				   rname(r));
		goto out;
	}
	v->nblocks = 0;
	for (i = 0; i < need; i++) {
		uint32_t sec = dscp_be32(bat + 4 * (size_t)i);
		uint64_t off = (uint64_t)sec * VHD_SECTOR, len;

		if (sec == VHD_BAT_UNUSED)
			continue;
		len = (uint64_t)v->bitmap_len + v->block_size;
		if (overlaps(off, len, 0, VHD_FOOTER_LEN) ||
		    overlaps(off, len, hoff, VHD_DYN_HEADER_LEN) ||
		    overlaps(off, len, toff, bat_len) ||
		    (v->at.seekable && off + len > v->at.file_len - VHD_FOOTER_LEN)) {
			rc = dsc_error_set(
				e, DSC_ERR_FORMAT, 0,
				"%s: VHD BAT entry %" PRIu32 ": block at byte %" PRIu64
				" overlaps the headers or the BAT or lies outside the file",
				rname(r), i, off);
			goto out;
		}
		v->blocks[v->nblocks].sec = sec;
		v->blocks[v->nblocks].idx = i;
		v->nblocks++;
	}
	/* In file order to check overlaps (and to read a pipe); a seekable
	 * input is then read in guest order, the order of the BAT. */
	qsort(v->blocks, v->nblocks, sizeof *v->blocks, by_offset);
	for (i = 1; i < v->nblocks; i++)
		if (block_off(&v->blocks[i]) <
		    block_off(&v->blocks[i - 1]) + v->bitmap_len + v->block_size) {
			rc = dsc_error_set(e, DSC_ERR_FORMAT, 0,
					   "%s: VHD blocks %" PRIu32 " and %" PRIu32
					   " overlap at byte %" PRIu64,
					   rname(r), v->blocks[i - 1].idx, v->blocks[i].idx,
					   block_off(&v->blocks[i]));
			goto out;
		}
	if (!v->at.seekable && v->nblocks && block_off(&v->blocks[0]) < meta_end) {
		rc = dsc_error_set(e, DSC_ERR_SEEK, 0,
				   "%s: needs a seekable input: VHD block %" PRIu32
				   " at byte %" PRIu64
				   " comes before the end of the BAT at byte %" PRIu64,
				   rname(r), v->blocks[0].idx, block_off(&v->blocks[0]), meta_end);
		goto out;
	}
	if (v->at.seekable)
		qsort(v->blocks, v->nblocks, sizeof *v->blocks, by_index);
	r->capacity = v->vsize;
	rc = DSC_OK;
out:
	free(bat);
	return rc;
}

static dsc_err vhd_open_impl(dsc_reader *r, struct dsc_error *e)
{
	struct vhd_reader *v = r->impl;
	uint8_t tail[VHD_FOOTER_LEN];
	size_t got;
	dsc_err rc;

	dscp_rpos_init(&v->at, r->in, "VHD");
	v->buf = malloc(DSCP_IO_CHUNK);
	if (!v->buf)
		return dsc_error_set(e, DSC_ERR_NOMEM, ENOMEM, "%s: out of memory", rname(r));
	rc = dsc_read_full(r->in, v->buf, VHD_FOOTER_LEN, &got, e);
	if (rc != DSC_OK)
		return rc;
	v->at.pos = got;
	if (got < VHD_FOOTER_LEN)
		return dsc_error_set(e, DSC_ERR_TRUNCATED, 0,
				     "%s: truncated: %zu bytes, less than a VHD footer", rname(r),
				     got);
	/* "conectix" at byte 0 makes a dynamic disk, as for qemu; else the
	 * footer at the end makes a fixed one. A pipe and a file agree. */
	if (!memcmp(v->buf, VHD_COOKIE, 8)) {
		memcpy(v->footer, v->buf, VHD_FOOTER_LEN);
		rc = check_footer(r, v, v->footer, 0, e);
		if (rc != DSC_OK)
			return rc;
		if (dscp_be32(v->footer + VHD_F_TYPE) != VHD_TYPE_DYNAMIC)
			return dsc_error_set(e, DSC_ERR_FORMAT, 0,
					     "%s: the VHD footer at byte 0 is not a dynamic disk's",
					     rname(r));
		if (v->at.seekable) {
			rc = dscp_rpos_read(&v->at, v->at.file_len - VHD_FOOTER_LEN, tail,
					    sizeof tail, "VHD footer", e);
			if (rc != DSC_OK)
				return rc;
			if (memcmp(v->footer, tail, sizeof tail)) {
				uint64_t vsize = v->vsize;

				/* No footer at all at the end: most likely a cut file. */
				if (memcmp(tail, VHD_COOKIE, 8))
					return dsc_error_set(
						e, DSC_ERR_TRUNCATED, 0,
						"%s: truncated or damaged: no VHD footer at the end "
						"(byte %" PRIu64 "), though byte 0 holds a dynamic "
						"disk's footer copy",
						rname(r), v->at.file_len - VHD_FOOTER_LEN);
				/* A damaged footer says what is wrong with it. */
				rc = check_footer(r, v, tail, v->at.file_len - VHD_FOOTER_LEN, e);
				v->vsize = vsize;
				if (rc != DSC_OK)
					return rc;
				return dsc_error_set(e, DSC_ERR_FORMAT, 0,
						     "%s: the VHD footer copy at byte 0 does not "
						     "match the footer at byte %" PRIu64,
						     rname(r), v->at.file_len - VHD_FOOTER_LEN);
			}
		}
		return open_dynamic(r, v, e);
	}
	if (v->at.seekable) {
		uint64_t at = v->at.file_len - VHD_FOOTER_LEN;

		rc = dscp_rpos_read(&v->at, at, v->footer, VHD_FOOTER_LEN, "VHD footer", e);
		if (rc == DSC_OK)
			rc = check_footer(r, v, v->footer, at, e);
		if (rc != DSC_OK)
			return rc;
		if (dscp_be32(v->footer + VHD_F_TYPE) != VHD_TYPE_FIXED)
			return not_fixed(r, at, e);
		if (v->vsize > at)
			return dsc_error_set(e, DSC_ERR_TRUNCATED, 0,
					     "%s: truncated: the fixed VHD of %" PRIu64
					     " bytes holds only %" PRIu64 " bytes of data",
					     rname(r), v->vsize, at);
		v->fixed = true;
		r->capacity = v->vsize;
		return dscp_rpos_go(&v->at, 0, e);
	}
	/* A fixed disk on a pipe: the footer is the last 512 bytes, seen at
	 * the end. */
	{
		uint8_t *big = realloc(v->buf, VHD_PIPE_CHUNK + VHD_PIPE_HOLD);

		if (!big)
			return dsc_error_set(e, DSC_ERR_NOMEM, ENOMEM, "%s: out of memory",
					     rname(r));
		v->buf = big;
	}
	v->fixed = true;
	v->held = VHD_FOOTER_LEN;
	v->held_guest = 0;
	r->capacity = DSC_CAPACITY_UNKNOWN;
	return DSC_OK;
}

/* The next non-zero run of the chunk being emitted. */
static bool emit_piece(struct vhd_reader *v, struct dsc_extent *ext)
{
	size_t u, start;

	while (v->emit_off < v->emit_len) {
		u = DSC_MIN(DSCP_ZERO_UNIT, v->emit_len - v->emit_off);
		if (!dscp_is_zero(v->emit_data + v->emit_off, u))
			break;
		v->emit_off += u;
	}
	if (v->emit_off >= v->emit_len)
		return false;
	start = v->emit_off;
	while (v->emit_off < v->emit_len) {
		u = DSC_MIN(DSCP_ZERO_UNIT, v->emit_len - v->emit_off);
		if (dscp_is_zero(v->emit_data + v->emit_off, u))
			break;
		v->emit_off += u;
	}
	ext->offset = v->emit_guest + start;
	ext->length = v->emit_off - start;
	ext->data = v->emit_data + start;
	return true;
}

static void emit(struct vhd_reader *v, const uint8_t *data, size_t len, uint64_t guest)
{
	v->emit_data = data;
	v->emit_len = len;
	v->emit_off = 0;
	v->emit_guest = guest;
}

/* Fixed disk, seekable: the data region up to the virtual size, skipping
 * holes the file system reports. */
static dsc_err fixed_seek_fill(dsc_reader *r, struct vhd_reader *v, struct dsc_error *e)
{
	uint64_t data_off;
	size_t n;
	dsc_err rc;

	if (v->at.pos >= v->vsize) {
		v->done = true;
		return DSC_OK;
	}
	rc = dsc_stream_next_data(r->in, v->at.base + v->at.pos, &data_off, e);
	if (rc == DSC_OK) {
		if (data_off == UINT64_MAX || data_off >= v->at.base + v->vsize) {
			v->done = true;
			return DSC_OK;
		}
		if (data_off > v->at.base + v->at.pos + DSCP_ZERO_UNIT) {
			uint64_t to = (data_off - v->at.base) & ~(uint64_t)(DSCP_ZERO_UNIT - 1);

			rc = dscp_rpos_go(&v->at, to, e);
			if (rc != DSC_OK)
				return rc;
		}
	} else if (rc != DSC_ERR_UNSUPPORTED) {
		return rc;
	}
	n = (size_t)DSC_MIN((uint64_t)DSCP_IO_CHUNK, v->vsize - v->at.pos);
	rc = dscp_rpos_read(&v->at, v->at.pos, v->buf, n, "VHD data", e);
	if (rc != DSC_OK)
		return rc;
	emit(v, v->buf, n, v->at.pos - n);
	return DSC_OK;
}

/* Fixed disk on a pipe: everything but the last 512 bytes seen is data. */
static dsc_err fixed_pipe_fill(dsc_reader *r, struct vhd_reader *v, struct dsc_error *e)
{
	size_t got, total, out;
	uint64_t data_len;
	dsc_err rc;

	if (v->held > VHD_PIPE_HOLD) {
		/* The previous chunk has been emitted: keep what may be the
		 * footer and the data past a geometry's size. */
		memmove(v->buf, v->buf + v->held - VHD_PIPE_HOLD, VHD_PIPE_HOLD);
		v->held_guest += v->held - VHD_PIPE_HOLD;
		v->held = VHD_PIPE_HOLD;
	}
	rc = dsc_read_full(r->in, v->buf + v->held, VHD_PIPE_CHUNK + VHD_PIPE_HOLD - v->held, &got,
			   e);
	if (rc != DSC_OK)
		return rc;
	v->at.pos += got;
	total = v->held + got;
	if (total == VHD_PIPE_CHUNK + VHD_PIPE_HOLD) {
		emit(v, v->buf, total - VHD_PIPE_HOLD, v->held_guest);
		v->held = total;
		return DSC_OK;
	}
	/* The end: the last 512 bytes must be the footer. */
	out = total - VHD_FOOTER_LEN; /* held never drops below one footer */
	data_len = v->held_guest + out;
	rc = check_footer(r, v, v->buf + out, data_len, e);
	if (rc != DSC_OK)
		return rc;
	if (dscp_be32(v->buf + out + VHD_F_TYPE) != VHD_TYPE_FIXED)
		return not_fixed(r, data_len, e);
	if (data_len < v->vsize)
		return dsc_error_set(e, DSC_ERR_TRUNCATED, 0,
				     "%s: truncated: the fixed VHD of %" PRIu64
				     " bytes holds only %" PRIu64 " bytes of data",
				     rname(r), v->vsize, data_len);
	/* Data past the size qemu reads (a CHS geometry below the current
	 * size) is dropped, as from a file, while it is still held back. */
	if (v->vsize < v->held_guest)
		return dsc_error_set(e, DSC_ERR_SEEK, 0,
				     "%s: needs a seekable input: the fixed VHD holds %" PRIu64
				     " bytes of data, %" PRIu64
				     " more than its virtual size, which were passed on already",
				     rname(r), data_len, data_len - v->vsize);
	memcpy(v->footer, v->buf + out, VHD_FOOTER_LEN);
	r->capacity = v->vsize;
	emit(v, v->buf, (size_t)(v->vsize - v->held_guest), v->held_guest);
	v->held = 0;
	v->done = true;
	return DSC_OK;
}

/* Dynamic disk: the next chunk of the current block, or the next block. */
static dsc_err dynamic_fill(dsc_reader *r, struct vhd_reader *v, struct dsc_error *e)
{
	uint64_t guest;
	uint32_t n, s, first, i, spb;
	dsc_err rc;

	if (!v->in_block) {
		if (v->next_block >= v->nblocks) {
			v->done = true;
			return DSC_OK;
		}
		v->cur = v->blocks[v->next_block++];
		rc = dscp_rpos_read(&v->at, block_off(&v->cur), v->bitmap, v->bitmap_len,
				    "VHD block bitmap", e);
		if (rc != DSC_OK)
			return rc;
		spb = v->block_size / VHD_SECTOR;
		v->bitmap_full = true;
		for (i = 0; i < spb / 8 && v->bitmap_full; i++)
			v->bitmap_full = v->bitmap[i] == 0xff;
		if (spb % 8 && v->bitmap_full) {
			uint8_t mask = (uint8_t)(0xffu << (8 - spb % 8));

			v->bitmap_full = (v->bitmap[spb / 8] & mask) == mask;
		}
		v->in_block = true;
		v->cur_done = 0;
	}
	n = (uint32_t)DSC_MIN((uint32_t)DSCP_IO_CHUNK, v->block_size - v->cur_done);
	rc = dscp_rpos_read(&v->at, block_off(&v->cur) + v->bitmap_len + v->cur_done, v->buf, n,
			    "VHD block", e);
	if (rc != DSC_OK)
		return rc;
	if (!v->bitmap_full) {
		first = v->cur_done / VHD_SECTOR;
		for (s = 0; s < n / VHD_SECTOR; s++)
			if (!(v->bitmap[(first + s) >> 3] & (0x80u >> ((first + s) & 7))))
				memset(v->buf + (size_t)s * VHD_SECTOR, 0, VHD_SECTOR);
	}
	guest = (uint64_t)v->cur.idx * v->block_size + v->cur_done;
	v->cur_done += n;
	if (v->cur_done >= v->block_size)
		v->in_block = false;
	if (guest < v->vsize)
		emit(v, v->buf, (size_t)DSC_MIN((uint64_t)n, v->vsize - guest), guest);
	return DSC_OK;
}

static dsc_err vhd_next(dsc_reader *r, struct dsc_extent *ext, struct dsc_error *e)
{
	struct vhd_reader *v = r->impl;
	dsc_err rc;

	memset(ext, 0, sizeof *ext);
	for (;;) {
		if (emit_piece(v, ext))
			return DSC_OK;
		if (v->done)
			return DSC_OK;
		v->emit_len = v->emit_off = 0;
		if (!v->fixed)
			rc = dynamic_fill(r, v, e);
		else if (v->at.seekable)
			rc = fixed_seek_fill(r, v, e);
		else
			rc = fixed_pipe_fill(r, v, e);
		if (rc == DSC_OK)
			rc = dscp_reader_tick(r, e);
		if (rc != DSC_OK)
			return rc;
	}
}

static void vhd_close(dsc_reader *r)
{
	struct vhd_reader *v = r->impl;

	free(v->buf);
	free(v->bitmap);
	free(v->blocks);
}

/* Open, then what dsc-img info reports: the disk type and its creator. */
static dsc_err vhd_open(dsc_reader *r, struct dsc_error *e)
{
	struct vhd_reader *v = r->impl;
	dsc_err rc = vhd_open_impl(r, e);
	char app[5], os[5], ver[16];
	size_t i;

	if (rc != DSC_OK)
		return rc;
	for (i = 0; i < 4; i++) {
		uint8_t a = v->footer[VHD_F_CREATOR_APP + i], o = v->footer[VHD_F_CREATOR_OS + i];

		app[i] = a >= 0x20 && a < 0x7f ? (char)a : '?';
		os[i] = o >= 0x20 && o < 0x7f ? (char)o : '?';
	}
	app[4] = os[4] = '\0';
	if (!v->fixed)
		r->cluster_size = v->block_size;
	dscp_info_str(r, NULL, 0, "vhd-type", v->fixed ? "fixed" : "dynamic");
	dscp_info_str(r, NULL, 0, "creator-app", app);
	snprintf(ver, sizeof ver, "%u.%u", dscp_be32(v->footer + VHD_F_CREATOR_VER) >> 16,
		 dscp_be32(v->footer + VHD_F_CREATOR_VER) & 0xffffu);
	dscp_info_str(r, NULL, 0, "creator-version", ver);
	dscp_info_str(r, NULL, 0, "creator-os", os);
	return DSC_OK;
}

const struct dscp_reader_class dscp_vhd_reader = {
	.size = sizeof(struct vhd_reader),
	.open = vhd_open,
	.next = vhd_next,
	.close = vhd_close,
};
