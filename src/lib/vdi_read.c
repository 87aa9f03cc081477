/* vdi_read.c - the VDI reader: dynamic ("normal") and static ("fixed")
 * images, from a file or a pipe.
 *
 * The header (512 bytes) is checked against the rules qemu 7.2 applies
 * and the limits in vdi.h, then the block map is read whole. A block whose
 * map entry is "unallocated" or "discarded" reads as zeros; any other
 * entry is the block's index in the data area, which must be below
 * blocks_in_image (qemu's check) and used once. A seekable input is read
 * in guest order; a forward-only one in file order (the map sorted by
 * index), since the map always precedes the data. qemu-img convert writes
 * blocks in guest order, but a VM (or qemu-io) allocates them in the order
 * it writes, so a pipe then gives extents out of guest order: a raw file
 * takes them, the other writers refuse them. Zero runs inside allocated
 * blocks (a static image's empty space) are left out, as holes.
 * Differencing and undo images, whose data partly lives in another file,
 * are refused by name.
 */
#include "vdi.h"

#include <inttypes.h>

struct vdi_block {
	uint32_t pos; /* index in the data area (the map entry) */
	uint32_t idx; /* guest block number */
};

struct vdi_reader {
	struct dscp_rpos at; /* where the input is */
	bool done;
	uint64_t vsize;
	uint64_t offset_data;
	uint32_t block_size;

	uint8_t *buf; /* DSCP_IO_CHUNK */
	const uint8_t *emit_data;
	size_t emit_off, emit_len;
	uint64_t emit_guest;

	struct vdi_block *blocks; /* allocated blocks in reading order */
	size_t nblocks, next_block;
	bool in_block;
	struct vdi_block cur;
	uint32_t cur_done; /* bytes of cur consumed */
};

static const char *rname(const dsc_reader *r) { return dsc_stream_name(r->in); }

static uint64_t block_off(const struct vdi_reader *v, const struct vdi_block *b)
{
	return v->offset_data + (uint64_t)b->pos * v->block_size;
}

static bool is_null_uuid(const uint8_t *u)
{
	static const uint8_t zero[16];

	return !memcmp(u, zero, sizeof zero);
}

/* The header's fields, each checked before use. */
static dsc_err check_header(dsc_reader *r, struct vdi_reader *v, const uint8_t *h, uint32_t *blocks,
			    uint64_t *bmap, struct dsc_error *e)
{
	uint32_t sig = dscp_le32(h + VDI_H_SIGNATURE), ver = dscp_le32(h + VDI_H_VERSION);
	uint32_t hsize = dscp_le32(h + VDI_H_HEADER_SIZE), type = dscp_le32(h + VDI_H_TYPE);
	uint32_t ssize = dscp_le32(h + VDI_H_SECTOR_SIZE), bs = dscp_le32(h + VDI_H_BLOCK_SIZE);
	uint32_t extra = dscp_le32(h + VDI_H_BLOCK_EXTRA), n = dscp_le32(h + VDI_H_BLOCKS);
	uint32_t alloc = dscp_le32(h + VDI_H_ALLOCATED);
	uint64_t size = dscp_le64(h + VDI_H_DISK_SIZE);

	*bmap = dscp_le32(h + VDI_H_OFFSET_BMAP);
	v->offset_data = dscp_le32(h + VDI_H_OFFSET_DATA);
	if (sig != VDI_SIGNATURE)
		return dsc_error_set(e, DSC_ERR_FORMAT, 0,
				     "%s: no VDI signature at byte 64 (0x%08" PRIx32
				     ", not 0x%08x)",
				     rname(r), sig, VDI_SIGNATURE);
	if (ver != VDI_VERSION_1_1)
		return dsc_error_set(
			e, DSC_ERR_UNSUPPORTED, 0,
			"%s: VDI version %" PRIu32 ".%" PRIu32
			" is not supported (only 1.1, which VirtualBox and qemu write)",
			rname(r), ver >> 16, ver & 0xffff);
	if (hsize < VDI_MIN_HEADER_SIZE || hsize > VDI_MAX_HEADER_SIZE)
		return dsc_error_set(e, DSC_ERR_FORMAT, 0,
				     "%s: VDI header size %" PRIu32 " is outside %u to %u",
				     rname(r), hsize, VDI_MIN_HEADER_SIZE, VDI_MAX_HEADER_SIZE);
	if (type == VDI_TYPE_UNDO || type == VDI_TYPE_DIFF)
		return dsc_error_set(e, DSC_ERR_UNSUPPORTED, 0,
				     "%s: a VDI %s image (its unchanged data is in a parent "
				     "image, another file) is not supported",
				     rname(r), type == VDI_TYPE_DIFF ? "differencing" : "undo");
	if (type != VDI_TYPE_NORMAL && type != VDI_TYPE_FIXED)
		return dsc_error_set(e, DSC_ERR_FORMAT, 0, "%s: unknown VDI image type %" PRIu32,
				     rname(r), type);
	if (!is_null_uuid(h + VDI_H_UUID_LINK) || !is_null_uuid(h + VDI_H_UUID_PARENT))
		return dsc_error_set(e, DSC_ERR_UNSUPPORTED, 0,
				     "%s: the VDI header names a %s UUID: a differencing image "
				     "(its unchanged data is in a parent image, another file) is "
				     "not supported",
				     rname(r),
				     is_null_uuid(h + VDI_H_UUID_PARENT) ? "link" : "parent");
	if (ssize != VDI_SECTOR)
		return dsc_error_set(e, DSC_ERR_UNSUPPORTED, 0,
				     "%s: VDI sector size %" PRIu32 " is not supported (only 512)",
				     rname(r), ssize);
	if (bs < VDI_SECTOR || (bs & (bs - 1)))
		return dsc_error_set(e, DSC_ERR_FORMAT, 0,
				     "%s: VDI block size %" PRIu32
				     " is not a power of two of 512-byte sectors",
				     rname(r), bs);
	if (bs < VDI_MIN_BLOCK)
		return dsc_error_set(e, DSC_ERR_UNSUPPORTED, 0,
				     "%s: VDI block size %" PRIu32 " is below %u bytes", rname(r),
				     bs, VDI_MIN_BLOCK);
	if (bs > VDI_MAX_BLOCK)
		return dsc_error_set(e, DSC_ERR_LIMIT, 0,
				     "%s: VDI block size %" PRIu32 " exceeds the limit of %u",
				     rname(r), bs, VDI_MAX_BLOCK);
	if (extra)
		return dsc_error_set(e, DSC_ERR_UNSUPPORTED, 0,
				     "%s: VDI blocks with %" PRIu32
				     " bytes of extra data are not supported (qemu ignores the "
				     "field, VirtualBox skips the bytes: the two disagree)",
				     rname(r), extra);
	if (*bmap % VDI_SECTOR || v->offset_data % VDI_SECTOR)
		return dsc_error_set(e, DSC_ERR_FORMAT, 0,
				     "%s: VDI %s offset %" PRIu64 " is not a multiple of 512",
				     rname(r), *bmap % VDI_SECTOR ? "block map" : "data",
				     *bmap % VDI_SECTOR ? *bmap : v->offset_data);
	if (n > VDI_MAX_BLOCKS)
		return dsc_error_set(e, DSC_ERR_LIMIT, 0,
				     "%s: VDI image of %" PRIu32
				     " blocks exceeds the limit of %u blocks",
				     rname(r), n, VDI_MAX_BLOCKS);
	/* qemu: an odd size (VBoxManage convertfromraw makes them) counts
	 * whole sectors, rounded up; the map must cover it. */
	if (size > (uint64_t)n * bs)
		return dsc_error_set(e, DSC_ERR_FORMAT, 0,
				     "%s: VDI disk size %" PRIu64 " exceeds its %" PRIu32
				     " blocks of %" PRIu32 " bytes",
				     rname(r), size, n, bs);
	size = (size + VDI_SECTOR - 1) / VDI_SECTOR * VDI_SECTOR;
	if (r->max_capacity && size > r->max_capacity)
		return dsc_error_set(e, DSC_ERR_LIMIT, 0,
				     "%s: image of %" PRIu64 " bytes exceeds the limit of %" PRIu64
				     " bytes",
				     rname(r), size, r->max_capacity);
	if (alloc > n)
		return dsc_error_set(e, DSC_ERR_FORMAT, 0,
				     "%s: VDI header counts %" PRIu32
				     " allocated blocks of only %" PRIu32,
				     rname(r), alloc, n);
	if (*bmap < VDI_TEXT_LEN + (uint64_t)hsize)
		return dsc_error_set(e, DSC_ERR_FORMAT, 0,
				     "%s: VDI block map offset %" PRIu64
				     " is inside the header (%" PRIu64 " bytes)",
				     rname(r), *bmap, VDI_TEXT_LEN + (uint64_t)hsize);
	if (*bmap > VDI_MAX_META_OFFSET || v->offset_data > VDI_MAX_META_OFFSET)
		return dsc_error_set(e, DSC_ERR_FORMAT, 0,
				     "%s: VDI %s offset %" PRIu64
				     " is past byte %llu (VDI_MAX_META_OFFSET)",
				     rname(r), *bmap > VDI_MAX_META_OFFSET ? "block map" : "data",
				     *bmap > VDI_MAX_META_OFFSET ? *bmap : v->offset_data,
				     (unsigned long long)VDI_MAX_META_OFFSET);
	if (*bmap + (uint64_t)n * 4 > v->offset_data)
		return dsc_error_set(e, DSC_ERR_FORMAT, 0,
				     "%s: VDI block map at byte %" PRIu64 " (%" PRIu32
				     " entries) runs into the data area at byte %" PRIu64,
				     rname(r), *bmap, n, v->offset_data);
	if (v->at.seekable && *bmap + (uint64_t)n * 4 > v->at.file_len)
		return dsc_error_set(e, DSC_ERR_TRUNCATED, 0,
				     "%s: truncated: the VDI block map at byte %" PRIu64
				     " ends past the end of the file (%" PRIu64 " bytes)",
				     rname(r), *bmap, v->at.file_len);
	v->block_size = bs;
	v->vsize = size;
	*blocks = n;
	return DSC_OK;
}

static dsc_err vdi_open_impl(dsc_reader *r, struct dsc_error *e)
{
	struct vdi_reader *v = r->impl;
	uint64_t bmap, need;
	uint8_t h[VDI_HEADER_LEN], *map = NULL;
	uint32_t n = 0, i, *inv = NULL;
	struct vdi_block b;
	size_t got;
	dsc_err rc;

	dscp_rpos_init(&v->at, r->in, "VDI");
	rc = dsc_read_full(r->in, h, sizeof h, &got, e);
	if (rc != DSC_OK)
		return rc;
	v->at.pos = got;
	if (got < sizeof h)
		return dsc_error_set(e, DSC_ERR_TRUNCATED, 0,
				     "%s: truncated: %zu bytes, less than a VDI header", rname(r),
				     got);
	rc = check_header(r, v, h, &n, &bmap, e);
	if (rc != DSC_OK)
		return rc;
	need = (v->vsize + v->block_size - 1) / v->block_size;
	/* The map, and its inverse: the guest block stored at each place of
	 * the data area (VDI_UNALLOCATED where none is), which finds an
	 * entry used twice and gives file order without a sort. */
	map = malloc(n ? (size_t)n * 4 : 1);
	inv = malloc(n ? (size_t)n * sizeof *inv : 1);
	v->buf = malloc(DSCP_IO_CHUNK);
	if (!map || !inv || !v->buf) {
		rc = dsc_error_set(e, DSC_ERR_NOMEM, ENOMEM, "%s: out of memory for the VDI map",
				   rname(r));
		goto out;
	}
	rc = dscp_rpos_read(&v->at, bmap, map, (size_t)n * 4, "VDI block map", e);
	if (rc != DSC_OK)
		goto out;
	for (i = 0; i < n; i++)
		inv[i] = VDI_UNALLOCATED;
	for (i = 0; i < need; i++) {
		uint32_t ent = dscp_le32(map + 4 * (size_t)i);

		if (ent >= VDI_DISCARDED)
			continue;
		if (ent >= n) {
			rc = dsc_error_set(e, DSC_ERR_FORMAT, 0,
					   "%s: VDI block map entry %" PRIu32
					   ": block index %" PRIu32
					   " is not below the image's %" PRIu32 " blocks",
					   rname(r), i, ent, n);
			goto out;
		}
		if (inv[ent] != VDI_UNALLOCATED) {
			rc = dsc_error_set(e, DSC_ERR_FORMAT, 0,
					   "%s: VDI block map entry %" PRIu32
					   ": block index %" PRIu32
					   " is used by an earlier entry too",
					   rname(r), i, ent);
			goto out;
		}
		inv[ent] = i;
		v->nblocks++;
		b.pos = ent;
		b.idx = i;
		if (v->at.seekable && block_off(v, &b) + v->block_size > v->at.file_len) {
			rc = dsc_error_set(e, DSC_ERR_TRUNCATED, 0,
					   "%s: truncated: VDI block %" PRIu32 " at byte %" PRIu64
					   " ends past the end of the file (%" PRIu64 " bytes)",
					   rname(r), i, block_off(v, &b), v->at.file_len);
			goto out;
		}
	}
	/* The blocks in reading order: guest order (the map's) from a
	 * seekable input, file order (inv's) from a forward one; the map
	 * precedes the data (checked), so that never needs a seek. At most
	 * two of map, inv and blocks are held at once. */
	if (v->at.seekable) {
		free(inv);
		inv = NULL;
	} else {
		free(map);
		map = NULL;
	}
	v->blocks = malloc(v->nblocks ? v->nblocks * sizeof *v->blocks : 1);
	if (!v->blocks) {
		rc = dsc_error_set(e, DSC_ERR_NOMEM, ENOMEM, "%s: out of memory for the VDI map",
				   rname(r));
		goto out;
	}
	v->nblocks = 0;
	for (i = 0; i < (v->at.seekable ? need : n); i++) {
		uint32_t ent = v->at.seekable ? dscp_le32(map + 4 * (size_t)i) : inv[i];

		if (ent >= VDI_DISCARDED)
			continue;
		v->blocks[v->nblocks].pos = v->at.seekable ? ent : i;
		v->blocks[v->nblocks++].idx = v->at.seekable ? i : ent;
	}
	r->capacity = v->vsize;
	rc = DSC_OK;
out:
	free(map);
	free(inv);
	return rc;
}

/* The next non-zero run of the chunk being emitted. */
static bool emit_piece(struct vdi_reader *v, struct dsc_extent *ext)
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

/* On a seekable input: whether the file system reports a hole over all of
 * block b (a static image's never-written space), which is then skipped. */
static bool block_is_hole(dsc_reader *r, struct vdi_reader *v, const struct vdi_block *b)
{
	struct dsc_error ignored = {0};
	uint64_t at = v->at.base + block_off(v, b), data_off;

	if (!v->at.seekable || dsc_stream_next_data(r->in, at, &data_off, &ignored) != DSC_OK)
		return false;
	return data_off == UINT64_MAX || data_off >= at + v->block_size;
}

/* The next chunk of the current block, or the next block. */
static dsc_err fill(dsc_reader *r, struct vdi_reader *v, struct dsc_error *e)
{
	uint64_t guest;
	uint32_t n;
	dsc_err rc;

	while (!v->in_block) {
		if (v->next_block >= v->nblocks) {
			v->done = true;
			return DSC_OK;
		}
		v->cur = v->blocks[v->next_block++];
		v->cur_done = 0;
		v->in_block = !block_is_hole(r, v, &v->cur);
	}
	n = (uint32_t)DSC_MIN((uint32_t)DSCP_IO_CHUNK, v->block_size - v->cur_done);
	rc = dscp_rpos_read(&v->at, block_off(v, &v->cur) + v->cur_done, v->buf, n, "VDI block", e);
	if (rc != DSC_OK)
		return rc;
	guest = (uint64_t)v->cur.idx * v->block_size + v->cur_done;
	v->cur_done += n;
	if (v->cur_done >= v->block_size)
		v->in_block = false;
	if (guest < v->vsize) {
		v->emit_data = v->buf;
		v->emit_len = (size_t)DSC_MIN((uint64_t)n, v->vsize - guest);
		v->emit_off = 0;
		v->emit_guest = guest;
	}
	return DSC_OK;
}

static dsc_err vdi_next(dsc_reader *r, struct dsc_extent *ext, struct dsc_error *e)
{
	struct vdi_reader *v = r->impl;
	dsc_err rc;

	memset(ext, 0, sizeof *ext);
	for (;;) {
		if (emit_piece(v, ext))
			return DSC_OK;
		if (v->done)
			return DSC_OK;
		v->emit_len = v->emit_off = 0;
		rc = fill(r, v, e);
		if (rc == DSC_OK)
			rc = dscp_reader_tick(r, e);
		if (rc != DSC_OK)
			return rc;
	}
}

static void vdi_close(dsc_reader *r)
{
	struct vdi_reader *v = r->impl;

	free(v->buf);
	free(v->blocks);
}

/* Open, then what dsc-img info reports. */
static dsc_err vdi_open(dsc_reader *r, struct dsc_error *e)
{
	const struct vdi_reader *v = r->impl;
	dsc_err rc = vdi_open_impl(r, e);

	if (rc == DSC_OK)
		r->cluster_size = v->block_size;
	return rc;
}

const struct dscp_reader_class dscp_vdi_reader = {
	.size = sizeof(struct vdi_reader),
	.open = vdi_open,
	.next = vdi_next,
	.close = vdi_close,
};
