/* vhdx_write.c - the VHDX writer: dynamic (default) or fixed disks.
 *
 * Layout, every piece 1 MiB-aligned (MS-VHDX 2.1):
 *   header section (1 MiB) | log (log_size, empty) | metadata (1 MiB) |
 *   BAT (when the capacity is known) | payload blocks | BAT (else)
 * The header section holds the file identifier, two headers with
 * consecutive sequence numbers and two identical region tables naming the
 * BAT and the metadata region, each with its CRC-32C. The log is left
 * empty (zero log GUID), so no reader has anything to replay.
 *
 * The virtual size is the capacity rounded up to a whole logical sector
 * (512 bytes, or 4096 with -o logical_sector_size=4096; MS-VHDX 2.6.2.2).
 *
 * Dynamic: a block is stored only once data that is not all zeros lands in
 * it; the others get BAT state ZERO and no space (qemu's default,
 * block_state_zero=on). Fixed: every block is stored, in guest order.
 *
 * Seekable output, dynamic: blocks are allocated in the order data arrives
 * and written in place (seeking inside them), so out-of-order extents are
 * fine; the header section, metadata and BAT are written by finish.
 * Sequential output (a pipe; also fixed output on a file): the layout is
 * fixed before the first byte: fixed needs the capacity up front, dynamic
 * takes two passes over a seekable source (plan()/plan_done() record which
 * blocks hold data). On a pipe everything is written front to back, so
 * extents must come in ascending order and gaps are written as zeros; on
 * a file they are holes and any order is fine.
 *
 * Memory: the BAT (<= VHDX_MAX_BAT_BYTES) and one 1 MiB zero/metadata
 * buffer, whatever the disk size.
 */
#include "vhdx.h"
#include "crc32c.h"

#include <inttypes.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/random.h>
#endif

#define NONE UINT64_MAX   /* bat_host[i] of a block not stored */
#define ZBUF_LEN VHDX_MIB /* zeros written at once on a pipe */

struct vhdx_writer {
	uint64_t base; /* stream offset of the image's byte 0 */
	uint64_t pos;  /* image offset the stream is at */
	bool seekable;
	bool fixed;
	bool sequential; /* layout known before the first byte */
	bool size_known;
	bool started; /* sequential: the metadata part has been written */
	uint32_t block;
	uint32_t lsector; /* logical sector size */
	uint64_t log_len;
	uint64_t size;        /* virtual size (capacity rounded up to a logical sector) */
	uint64_t nblocks;     /* blocks of `size` (known size) or seen so far */
	uint64_t chunk_ratio; /* payload entries per sector bitmap entry */
	uint64_t md_off, bat_off, bat_len, data_off;
	uint64_t next_host; /* dynamic, seekable: where the next block goes */
	uint64_t *host;     /* per block: its file offset, or NONE */
	uint64_t host_cap;  /* entries allocated in host */
	uint64_t last_end;  /* sequential: end of the last extent (guest) */
	uint8_t *zbuf;
	uint8_t guids[3][16]; /* file write, data write, page 83 */
};

static const char *wname(dsc_writer *w) { return dsc_stream_name(w->out); }

static dsc_err nomem(dsc_writer *w, struct dsc_error *e)
{
	return dsc_error_set(e, DSC_ERR_NOMEM, ENOMEM, "%s: out of memory", wname(w));
}

static uint64_t round_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

/* Random (version 4) GUIDs: they only need to be unique. */
static void make_guids(struct vhdx_writer *v)
{
	uint8_t *p = (uint8_t *)v->guids;
	size_t n = sizeof v->guids, got = 0;

#ifdef __linux__
	ssize_t k = getrandom(p, n, GRND_NONBLOCK);

	if (k > 0)
		got = (size_t)k;
#endif
	if (got < n) {
		/* No entropy source: mix the time, the pid and an address. */
		struct timespec ts;
		uint64_t x;

		clock_gettime(CLOCK_REALTIME, &ts);
		x = (uint64_t)ts.tv_sec * 1000000007u ^ (uint64_t)ts.tv_nsec ^
		    (uint64_t)getpid() << 32 ^ (uint64_t)(uintptr_t)v;
		for (size_t i = got; i < n; i++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			p[i] = (uint8_t)(x >> 24);
		}
	}
	for (int i = 0; i < 3; i++) {
		v->guids[i][7] = (uint8_t)((v->guids[i][7] & 0x0f) | 0x40); /* data3: 4xxx */
		v->guids[i][8] = (uint8_t)((v->guids[i][8] & 0x3f) | 0x80);
	}
}

static uint64_t bat_entries(uint64_t nblocks, uint64_t chunk_ratio)
{
	return nblocks ? nblocks + (nblocks - 1) / chunk_ratio : 0;
}

/* Set the size and everything that follows from it. */
static dsc_err set_size(dsc_writer *w, struct vhdx_writer *v, uint64_t capacity,
			struct dsc_error *e)
{
	uint64_t bytes;

	if (capacity > VHDX_MAX_VIRTUAL_SIZE)
		return dsc_error_set(e, DSC_ERR_LIMIT, 0,
				     "%s: capacity of %" PRIu64 " bytes exceeds VHDX's 64 TiB",
				     wname(w), capacity);
	v->size = round_up(capacity, v->lsector);
	v->nblocks = (v->size + v->block - 1) / v->block;
	bytes = bat_entries(v->nblocks, v->chunk_ratio) * 8;
	if (bytes > VHDX_MAX_BAT_BYTES)
		return dsc_error_set(e, DSC_ERR_LIMIT, 0,
				     "%s: the VHDX BAT would take %" PRIu64
				     " bytes, more than dsc's %u; use a larger block_size",
				     wname(w), bytes, VHDX_MAX_BAT_BYTES);
	v->bat_len = round_up(DSC_MAX(bytes, 1), VHDX_MIB);
	return DSC_OK;
}

/* Make room for blocks [0, n) in v->host. */
static dsc_err grow(dsc_writer *w, struct vhdx_writer *v, uint64_t n, struct dsc_error *e)
{
	uint64_t cap = v->host_cap ? v->host_cap : 1024, *p;

	if (n <= v->host_cap)
		return DSC_OK;
	if (bat_entries(n, v->chunk_ratio) * 8 > VHDX_MAX_BAT_BYTES)
		return dsc_error_set(e, DSC_ERR_LIMIT, 0,
				     "%s: the VHDX BAT would exceed dsc's %u bytes; use a larger "
				     "block_size",
				     wname(w), VHDX_MAX_BAT_BYTES);
	while (cap < n)
		cap *= 2;
	if (!(p = realloc(v->host, (size_t)cap * sizeof *p)))
		return nomem(w, e);
	for (uint64_t i = v->host_cap; i < cap; i++)
		p[i] = NONE;
	v->host = p;
	v->host_cap = cap;
	return DSC_OK;
}

/* Position the output at image offset `off`: a seek, or on a pipe zeros
 * up to it (never backwards). */
static dsc_err go_to(dsc_writer *w, struct vhdx_writer *v, uint64_t off, struct dsc_error *e)
{
	dsc_err rc;

	if (off == v->pos)
		return DSC_OK;
	if (v->seekable) {
		rc = dsc_stream_seek(w->out, v->base + off, e);
		if (rc == DSC_OK)
			v->pos = off;
		return rc;
	}
	if (off < v->pos)
		return dsc_error_set(e, DSC_ERR_INVAL, 0,
				     "%s: VHDX output to a pipe takes data in ascending order "
				     "only",
				     wname(w));
	while (v->pos < off) {
		size_t n = (size_t)DSC_MIN(off - v->pos, (uint64_t)ZBUF_LEN);

		rc = dsc_write_all(w->out, v->zbuf, n, e);
		if (rc != DSC_OK)
			return rc;
		v->pos += n;
	}
	return DSC_OK;
}

static dsc_err write_at(dsc_writer *w, struct vhdx_writer *v, uint64_t off, const void *buf,
			size_t len, struct dsc_error *e)
{
	dsc_err rc = go_to(w, v, off, e);

	if (rc != DSC_OK)
		return rc;
	rc = dsc_write_all(w->out, buf, len, e);
	if (rc == DSC_OK)
		v->pos += len;
	return rc;
}

/* ---- the metadata part --------------------------------------------------- */

static void put_checksum(uint8_t *buf, size_t len)
{
	dscp_put32(buf + 4, 0);
	dscp_put32(buf + 4, dscp_crc32c(0, buf, len));
}

/* The header section (1 MiB) into buf. */
static void build_header_section(const struct vhdx_writer *v, uint8_t *buf)
{
	static const char creator[] = "dsc " PACKAGE_VERSION;
	uint8_t *h, *t;

	memset(buf, 0, VHDX_HEADER_SECTION);
	memcpy(buf, VHDX_SIGNATURE, 8);
	for (size_t i = 0; creator[i] && 2 * i + 2 <= VHDX_CREATOR_LEN; i++)
		dscp_put16(buf + 8 + 2 * i, (uint8_t)creator[i]);
	for (int k = 0; k < 2; k++) {
		h = buf + (k ? VHDX_HEADER2_OFFSET : VHDX_HEADER1_OFFSET);
		dscp_put32(h, VHDX_HDR_SIGNATURE);
		dscp_put64(h + VHDX_HDR_SEQUENCE, (uint64_t)k + 1);
		memcpy(h + VHDX_HDR_FILE_WRITE_GUID, v->guids[0], 16);
		memcpy(h + VHDX_HDR_DATA_WRITE_GUID, v->guids[1], 16);
		dscp_put16(h + VHDX_HDR_LOG_VERSION, 0);
		dscp_put16(h + VHDX_HDR_VERSION, VHDX_VERSION);
		dscp_put32(h + VHDX_HDR_LOG_LENGTH, (uint32_t)v->log_len);
		dscp_put64(h + VHDX_HDR_LOG_OFFSET, VHDX_HEADER_SECTION);
		put_checksum(h, VHDX_HEADER_CRC_LEN);
	}
	t = buf + VHDX_REGION1_OFFSET;
	dscp_put32(t, VHDX_RT_SIGNATURE);
	dscp_put32(t + 8, 2);
	memcpy(t + 16, vhdx_guid_bat, 16);
	dscp_put64(t + 32, v->bat_off);
	dscp_put32(t + 40, (uint32_t)v->bat_len);
	dscp_put32(t + 44, VHDX_RT_REQUIRED);
	memcpy(t + 48, vhdx_guid_metadata, 16);
	dscp_put64(t + 64, v->md_off);
	dscp_put32(t + 72, (uint32_t)VHDX_MIB);
	dscp_put32(t + 76, VHDX_RT_REQUIRED);
	put_checksum(t, VHDX_REGION_LEN);
	memcpy(buf + VHDX_REGION2_OFFSET, t, VHDX_REGION_LEN);
}

/* The metadata region (1 MiB) into buf: the table and five items. */
static void build_metadata(const struct vhdx_writer *v, uint8_t *buf)
{
	static const struct {
		const uint8_t *guid;
		uint32_t len, flags;
	} items[] = {
		{vhdx_guid_file_params, 8, VHDX_MD_IS_REQUIRED},
		{vhdx_guid_virtual_size, 8, VHDX_MD_IS_REQUIRED | VHDX_MD_IS_VIRTUAL_DISK},
		{vhdx_guid_page83, 16, VHDX_MD_IS_REQUIRED | VHDX_MD_IS_VIRTUAL_DISK},
		{vhdx_guid_logical_sector, 4, VHDX_MD_IS_REQUIRED | VHDX_MD_IS_VIRTUAL_DISK},
		{vhdx_guid_physical_sector, 4, VHDX_MD_IS_REQUIRED | VHDX_MD_IS_VIRTUAL_DISK},
	};
	uint32_t off = VHDX_MD_TABLE_LEN;

	memset(buf, 0, VHDX_MIB);
	memcpy(buf, VHDX_MD_SIGNATURE, 8);
	dscp_put16(buf + 10, 5);
	for (size_t i = 0; i < 5; i++) {
		uint8_t *ent = buf + 32 + 32 * i;

		memcpy(ent, items[i].guid, 16);
		dscp_put32(ent + 16, off);
		dscp_put32(ent + 20, items[i].len);
		dscp_put32(ent + 24, items[i].flags);
		switch (i) {
		case 0:
			dscp_put32(buf + off, v->block);
			dscp_put32(buf + off + 4, v->fixed ? VHDX_FP_LEAVE_ALLOCATED : 0);
			break;
		case 1: dscp_put64(buf + off, v->size); break;
		case 2: memcpy(buf + off, v->guids[2], 16); break;
		default: dscp_put32(buf + off, v->lsector); break;
		}
		off += items[i].len;
	}
}

/* The BAT, written in 1 MiB pieces from v->zbuf's companion buffer. */
static dsc_err write_bat(dsc_writer *w, struct vhdx_writer *v, uint8_t *buf, struct dsc_error *e)
{
	uint64_t entries = bat_entries(v->nblocks, v->chunk_ratio), done = 0;
	const uint64_t per = VHDX_MIB / 8;
	dsc_err rc;

	while (done * 8 < v->bat_len) {
		memset(buf, 0, VHDX_MIB);
		for (uint64_t k = 0; k < per && done + k < entries; k++) {
			uint64_t idx = done + k, span = v->chunk_ratio + 1;
			uint64_t ent;

			if (idx % span == v->chunk_ratio)
				continue; /* a sector bitmap entry: not present */
			uint64_t blk = idx / span * v->chunk_ratio + idx % span;
			uint64_t host = blk < v->host_cap ? v->host[blk] : NONE;

			if (v->fixed)
				host = v->data_off + blk * v->block;
			ent = host == NONE ? VHDX_PAYLOAD_ZERO : host | VHDX_PAYLOAD_FULLY_PRESENT;
			dscp_put64(buf + k * 8, ent);
		}
		rc = write_at(w, v, v->bat_off + done * 8, buf, VHDX_MIB, e);
		if (rc != DSC_OK)
			return rc;
		done += per;
	}
	return DSC_OK;
}

/* Header section, log, metadata and (when it comes first) the BAT. */
static dsc_err write_front(dsc_writer *w, struct vhdx_writer *v, bool with_bat, struct dsc_error *e)
{
	uint8_t *buf = malloc(VHDX_HEADER_SECTION);
	dsc_err rc;

	if (!buf)
		return nomem(w, e);
	build_header_section(v, buf);
	rc = write_at(w, v, 0, buf, VHDX_HEADER_SECTION, e);
	if (rc == DSC_OK) {
		build_metadata(v, buf);
		rc = write_at(w, v, v->md_off, buf, VHDX_MIB, e);
	}
	if (rc == DSC_OK && with_bat)
		rc = write_bat(w, v, buf, e);
	free(buf);
	return rc;
}

/* ---- data --------------------------------------------------------------- */

static dsc_err check_extent(dsc_writer *w, struct vhdx_writer *v, const struct dsc_extent *ext,
			    struct dsc_error *e)
{
	if (ext->offset > VHDX_MAX_VIRTUAL_SIZE || ext->length > VHDX_MAX_VIRTUAL_SIZE ||
	    (v->size_known && ext->offset + ext->length > v->size))
		return dsc_error_set(e, DSC_ERR_INVAL, 0,
				     "%s: data at byte %" PRIu64 " is past the capacity", wname(w),
				     ext->offset);
	return DSC_OK;
}

static dsc_err vhdx_plan(dsc_writer *w, const struct dsc_extent *ext, struct dsc_error *e)
{
	struct vhdx_writer *v = w->impl;
	uint64_t off = ext->offset, end = ext->offset + ext->length;
	dsc_err rc = check_extent(w, v, ext, e);

	if (rc != DSC_OK)
		return rc;
	while (off < end) {
		uint64_t b = off / v->block, bend = DSC_MIN(end, (b + 1) * v->block);

		rc = grow(w, v, b + 1, e);
		if (rc != DSC_OK)
			return rc;
		if (v->host[b] == NONE &&
		    !dscp_is_zero(ext->data + (off - ext->offset), bend - off))
			v->host[b] = 0; /* stored; its place is set by plan_done */
		off = bend;
	}
	return DSC_OK;
}

static dsc_err vhdx_plan_done(dsc_writer *w, uint64_t capacity, uint64_t *file_size,
			      struct dsc_error *e)
{
	struct vhdx_writer *v = w->impl;
	uint64_t host;
	dsc_err rc = set_size(w, v, capacity, e);

	if (rc != DSC_OK)
		return rc;
	if (v->host_cap > v->nblocks) {
		for (uint64_t i = v->nblocks; i < v->host_cap; i++)
			if (v->host[i] != NONE)
				return dsc_error_set(e, DSC_ERR_INVAL, 0,
						     "%s: data past the capacity", wname(w));
	}
	rc = grow(w, v, v->nblocks, e);
	if (rc != DSC_OK)
		return rc;
	v->bat_off = v->md_off + VHDX_MIB;
	v->data_off = v->bat_off + v->bat_len;
	host = v->data_off;
	for (uint64_t i = 0; i < v->nblocks; i++)
		if (v->host[i] != NONE) {
			v->host[i] = host;
			host += v->block;
		}
	v->size_known = true;
	*file_size = host;
	return DSC_OK;
}

static dsc_err vhdx_put(dsc_writer *w, const struct dsc_extent *ext, struct dsc_error *e)
{
	struct vhdx_writer *v = w->impl;
	uint64_t off = ext->offset, end = ext->offset + ext->length;
	dsc_err rc = check_extent(w, v, ext, e);

	if (rc != DSC_OK)
		return rc;
	if (v->sequential) {
		if (!v->started) {
			rc = write_front(w, v, true, e);
			if (rc != DSC_OK)
				return rc;
			v->started = true;
		}
		if (!v->seekable && off < v->last_end)
			return dsc_error_set(e, DSC_ERR_INVAL, 0,
					     "%s: data at byte %" PRIu64
					     " comes after byte %" PRIu64
					     "; VHDX output to a pipe takes data in ascending "
					     "order only",
					     wname(w), off, v->last_end);
		v->last_end = end;
	}
	while (off < end) {
		uint64_t b = off / v->block, bend = DSC_MIN(end, (b + 1) * v->block);
		const uint8_t *p = ext->data + (off - ext->offset);
		uint64_t host;

		if (v->fixed) {
			host = v->data_off + b * v->block;
		} else {
			rc = grow(w, v, b + 1, e);
			if (rc != DSC_OK)
				return rc;
			if (v->host[b] == NONE) {
				if (dscp_is_zero(p, bend - off)) {
					off = bend;
					continue;
				}
				if (v->sequential)
					return dsc_error_set(e, DSC_ERR_INVAL, 0,
							     "%s: data at byte %" PRIu64
							     " was not in the first pass (did the "
							     "source change?)",
							     wname(w), off);
				v->host[b] = v->next_host;
				v->next_host += v->block;
			}
			host = v->host[b];
		}
		rc = write_at(w, v, host + off % v->block, p, (size_t)(bend - off), e);
		if (rc != DSC_OK)
			return rc;
		off = bend;
	}
	return DSC_OK;
}

/* Make a seekable output `end` bytes long (the rest of the last block
 * reads as zeros). */
static dsc_err extend(dsc_writer *w, struct vhdx_writer *v, uint64_t end, struct dsc_error *e)
{
	static const uint8_t zero;
	dsc_err rc;

	if (v->pos >= end)
		return DSC_OK;
	rc = dsc_stream_set_size(w->out, v->base + end, false, e);
	if (rc == DSC_ERR_UNSUPPORTED)
		rc = write_at(w, v, end - 1, &zero, 1, e);
	return rc;
}

static dsc_err vhdx_finish(dsc_writer *w, uint64_t capacity, struct dsc_error *e)
{
	struct vhdx_writer *v = w->impl;
	uint64_t end;
	dsc_err rc;

	if (v->size_known && round_up(capacity, v->lsector) != v->size)
		return dsc_error_set(e, DSC_ERR_INVAL, 0,
				     "%s: capacity %" PRIu64 " differs from the %" PRIu64
				     " given at open",
				     wname(w), capacity, v->size);
	if (!v->size_known) {
		rc = set_size(w, v, capacity, e);
		if (rc != DSC_OK)
			return rc;
		for (uint64_t i = v->nblocks; i < v->host_cap; i++)
			if (v->host[i] != NONE)
				return dsc_error_set(e, DSC_ERR_INVAL, 0,
						     "%s: data past the capacity", wname(w));
	}
	if (v->sequential) {
		if (!v->started) {
			rc = write_front(w, v, true, e);
			if (rc != DSC_OK)
				return rc;
		}
		end = v->data_off;
		if (v->fixed)
			end += v->nblocks * v->block;
		else
			for (uint64_t i = 0; i < v->nblocks; i++)
				if (v->host[i] != NONE)
					end = DSC_MAX(end, v->host[i] + v->block);
		/* The last block is stored whole. */
		rc = v->seekable ? extend(w, v, end, e) : go_to(w, v, end, e);
		if (rc != DSC_OK)
			return rc;
	} else {
		/* Dynamic on a seekable output: the BAT goes after the last
		 * block unless the capacity was known at open. */
		if (!v->bat_off) {
			v->bat_off = round_up(v->next_host, VHDX_MIB);
			end = v->bat_off + v->bat_len;
		} else {
			end = DSC_MAX(v->next_host, v->data_off);
		}
		rc = grow(w, v, v->nblocks, e);
		if (rc != DSC_OK)
			return rc;
		rc = write_front(w, v, true, e);
		if (rc != DSC_OK)
			return rc;
		rc = extend(w, v, end, e);
		if (rc != DSC_OK)
			return rc;
	}
	w->image_size = v->size;
	w->file_size = end;
	return dsc_stream_finish(w->out, e);
}

static dsc_err vhdx_open(dsc_writer *w, struct dsc_error *e)
{
	struct vhdx_writer *v = w->impl;
	const struct dsc_writer_opts *o = &w->opts;
	uint64_t bs = dscp_writer_option_uint(w, "block_size");
	uint64_t log = dscp_writer_option_uint(w, "log_size");
	uint64_t lss = dscp_writer_option_uint(w, "logical_sector_size");
	dsc_err rc;

	if (bs < VHDX_MIN_BLOCK || bs > VHDX_MAX_BLOCK || (bs & (bs - 1)))
		return dsc_error_set(e, DSC_ERR_INVAL, 0,
				     "%s: option block_size: %" PRIu64
				     " is not a power of two from 1M to 256M",
				     wname(w), bs);
	if (log < VHDX_MIB || log > VHDX_MAX_LOG || log % VHDX_MIB)
		return dsc_error_set(e, DSC_ERR_INVAL, 0,
				     "%s: option log_size: %" PRIu64
				     " is not a multiple of 1M from 1M to 256M",
				     wname(w), log);
	if (lss != 512 && lss != 4096)
		return dsc_error_set(e, DSC_ERR_INVAL, 0,
				     "%s: option logical_sector_size: %" PRIu64
				     " is not 512 or 4096",
				     wname(w), lss);
	if (o->compress)
		return dsc_error_set(e, DSC_ERR_UNSUPPORTED, 0,
				     "%s: VHDX has no compressed form (drop -c)", wname(w));
	v->fixed = !strcmp(dscp_writer_option(w, "subformat"), "fixed");
	v->block = (uint32_t)bs;
	v->log_len = log;
	v->lsector = (uint32_t)lss;
	v->chunk_ratio = VHDX_CHUNK_SECTORS * lss / bs;
	v->md_off = VHDX_HEADER_SECTION + log;
	v->base = dsc_stream_tell(w->out);
	v->seekable = (dsc_stream_caps(w->out) & DSC_STREAM_SEEK) != 0;
	v->size_known = o->capacity != DSC_CAPACITY_UNKNOWN;
	if (v->size_known) {
		rc = set_size(w, v, o->capacity, e);
		if (rc != DSC_OK)
			return rc;
		v->bat_off = v->md_off + VHDX_MIB;
		v->data_off = v->bat_off + v->bat_len;
	} else {
		v->data_off = v->md_off + VHDX_MIB;
	}
	v->next_host = v->data_off;
	make_guids(v);
	if (!(v->zbuf = calloc(1, ZBUF_LEN)))
		return nomem(w, e);
	if (v->fixed) {
		if (!v->size_known)
			return dsc_error_set(e, DSC_ERR_INVAL, 0,
					     "%s: a fixed VHDX needs the capacity up front (the "
					     "source's size is not known)",
					     wname(w));
		v->sequential = true;
		return DSC_OK;
	}
	if (!v->seekable) {
		/* Two passes: the BAT precedes the data. */
		v->sequential = true;
		w->needs_plan = true;
	}
	return DSC_OK;
}

static void vhdx_close(dsc_writer *w)
{
	struct vhdx_writer *v = w->impl;

	free(v->host);
	free(v->zbuf);
}

const struct dscp_writer_class dscp_vhdx_writer = {
	.size = sizeof(struct vhdx_writer),
	.open = vhdx_open,
	.put = vhdx_put,
	.finish = vhdx_finish,
	.close = vhdx_close,
	.plan = vhdx_plan,
	.plan_done = vhdx_plan_done,
};
