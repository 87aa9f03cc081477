/* vhdx_read.c - the VHDX reader: dynamic and fixed disks, from a seekable
 * or a forward-only input.
 *
 * open() reads the 1 MiB header section, takes the valid header with the
 * higher sequence number (CRC-32C over 4 KiB, MS-VHDX 2.2.2) and the first
 * valid region table (CRC-32C over 64 KiB, 2.2.3), and refuses what dsc
 * does not convert before any extent: unknown required regions or metadata
 * items, differencing disks. A header that names a log (the disk was not
 * shut down cleanly) has it replayed into memory on a seekable input
 * (vhdx_log.c: patches laid over every read, the input never written) and
 * refused on a forward-only one, which cannot go back to apply it. It then
 * reads the metadata (2.6) and
 * the BAT (2.5) and checks every entry against the file: payload blocks
 * must lie past the header section and clear of the log, the BAT, the
 * metadata and each other, and inside the input when its size is known.
 *
 * The regions are read in file order, so a forward-only input works for
 * any layout that puts them before the payload (qemu-img's: log @1M, BAT
 * @2M, metadata after it). Payload blocks are then produced in host order:
 * a seekable input gets guest order instead (one read per
 * VHDX_READ_CHUNK, no seek between host-contiguous blocks), while on a
 * forward-only input extents follow the file, so guest offsets may go back
 * (blocks qemu allocated as a guest wrote them): a raw file output seeks
 * and takes them, other outputs refuse with their own message. After the
 * last block a forward-only input is read to its end, so an upload body is
 * consumed whole.
 *
 * Memory is bounded whatever the file says: the metadata read
 * (<= VHDX_MAX_METADATA_BYTES), the BAT (<= VHDX_MAX_BAT_BYTES) with one
 * 8-byte key per present block, one VHDX_READ_CHUNK buffer, and for a log
 * replay the log (<= VHDX_MAX_LOG_BYTES) while it is parsed, then its
 * patches.
 */
#include "vhdx.h"
#include "crc32c.h"

#include <inttypes.h>
#include <stdio.h>

#define DRAIN_CHUNK (1u << 20) /* bytes skipped per tick after the image */
#define SKIP_STEP (16u << 20)  /* bytes skipped per tick before a block */

struct span {
	uint64_t off, len;
	const char *what;
};

struct vhdx_reader {
	uint64_t base;      /* stream offset of the image's byte 0 */
	uint64_t file_size; /* UINT64_MAX when unknown */
	uint64_t pos;       /* image offset the stream is at */
	bool seekable;
	bool eof;

	uint32_t block;   /* payload block size */
	uint32_t lsector; /* logical sector size */
	uint64_t vsize;   /* virtual disk size */
	uint64_t chunk_ratio;
	uint64_t nblocks; /* payload blocks */
	uint64_t *bat;    /* payload entries only, in guest order */
	uint64_t *order;  /* present blocks, in the order they are read */
	uint64_t norder;
	uint64_t next; /* index into order */

	/* The block being produced. */
	uint64_t cur_guest, cur_host, cur_left;
	uint8_t *buf;
	size_t buf_len, buf_off;
	uint64_t buf_guest;
	bool done;

	/* A log replayed into memory, laid over every read. */
	struct vhdx_log log;
	bool replayed;
};

static const char *rname(dsc_reader *r) { return dsc_stream_name(r->in); }

static dsc_err nomem(dsc_reader *r, struct dsc_error *e)
{
	return dsc_error_set(e, DSC_ERR_NOMEM, ENOMEM, "%s: out of memory", rname(r));
}

static const char *seek_tail = "; read it from a seekable input (a file, or a URL with Range "
			       "support)";

static bool guid_is_zero(const uint8_t *g)
{
	for (int i = 0; i < 16; i++)
		if (g[i])
			return false;
	return true;
}

static void guid_text(const uint8_t *g, char out[37])
{
	snprintf(out, 37, "%08" PRIx32 "-%04x-%04x-%02x%02x-%02x%02x%02x%02x%02x%02x", dscp_le32(g),
		 dscp_le16(g + 4), dscp_le16(g + 6), g[8], g[9], g[10], g[11], g[12], g[13], g[14],
		 g[15]);
}

/* Skip forward (reading, or seeking when the stream can) to image offset
 * `off`, ticking on long stretches. */
static dsc_err skip_to(dsc_reader *r, struct vhdx_reader *v, uint64_t off, struct dsc_error *e)
{
	uint64_t skipped, n;
	dsc_err rc;

	while (v->pos < off) {
		rc = dscp_reader_tick(r, e);
		if (rc != DSC_OK)
			return rc;
		n = DSC_MIN(off - v->pos, (uint64_t)SKIP_STEP);
		rc = dsc_stream_skip(r->in, n, &skipped, e);
		if (rc != DSC_OK)
			return rc;
		v->pos += skipped;
		if (skipped < n)
			return dsc_error_set(e, DSC_ERR_TRUNCATED, 0,
					     "%s: truncated: the VHDX file ends at byte %" PRIu64
					     ", before byte %" PRIu64,
					     rname(r), v->pos, off);
	}
	return DSC_OK;
}

/* Read len bytes at image offset `off`: a seek on a seekable input, else
 * a skip forward (the caller has checked the order). *got < len only at
 * the end of the input. */
static dsc_err read_at(dsc_reader *r, struct vhdx_reader *v, uint64_t off, void *buf, size_t len,
		       size_t *got, struct dsc_error *e)
{
	dsc_err rc;

	if (v->pos != off) {
		if (v->seekable) {
			rc = dsc_stream_seek(r->in, v->base + off, e);
			if (rc != DSC_OK)
				return rc;
			v->pos = off;
		} else {
			if (off < v->pos)
				return dsc_error_set(e, DSC_ERR_SEEK, 0,
						     "%s: the VHDX layout is not stream-ordered "
						     "(byte %" PRIu64
						     " is needed after byte %" PRIu64 ")%s",
						     rname(r), off, v->pos, seek_tail);
			rc = skip_to(r, v, off, e);
			if (rc != DSC_OK)
				return rc;
		}
	}
	rc = dsc_read_full(r->in, buf, len, got, e);
	if (rc != DSC_OK)
		return rc;
	v->pos += *got;
	return DSC_OK;
}

static dsc_err read_exact(dsc_reader *r, struct vhdx_reader *v, uint64_t off, void *buf, size_t len,
			  const char *what, struct dsc_error *e)
{
	size_t got;
	uint64_t end;
	dsc_err rc = read_at(r, v, off, buf, len, &got, e);

	if (rc != DSC_OK)
		return rc;
	if (v->replayed) {
		/* A replayed log may have extended the file: zeros there. */
		if (got < len && v->file_size != UINT64_MAX && off + len <= v->file_size) {
			memset((uint8_t *)buf + got, 0, len - got);
			got = len;
		}
		vhdx_log_apply(&v->log, off, buf, got);
	}
	if (got == len)
		return DSC_OK;
	/* A seek past the end reads nothing: say where the file ends. */
	end = got ? off + got : DSC_MIN(off, v->file_size);
	return dsc_error_set(e, DSC_ERR_TRUNCATED, 0,
			     "%s: truncated: the VHDX file ends at byte %" PRIu64 ", %s the %s at "
			     "byte %" PRIu64,
			     rname(r), end, end > off ? "inside" : "before", what, off);
}

/* ---- header section (MS-VHDX 2.2) --------------------------------------- */

/* Whether the header at `h` is valid; *why says why not. */
static bool header_ok(const uint8_t *h, char *why, size_t cap)
{
	uint32_t want = dscp_le32(h + VHDX_HDR_CHECKSUM), got;
	uint8_t tmp[VHDX_HEADER_CRC_LEN];

	if (dscp_le32(h) != VHDX_HDR_SIGNATURE) {
		snprintf(why, cap, "no \"head\" signature");
		return false;
	}
	memcpy(tmp, h, sizeof tmp);
	memset(tmp + VHDX_HDR_CHECKSUM, 0, 4);
	got = dscp_crc32c(0, tmp, sizeof tmp);
	if (got != want) {
		snprintf(why, cap, "checksum 0x%08" PRIx32 " does not match 0x%08" PRIx32, want,
			 got);
		return false;
	}
	if (dscp_le16(h + VHDX_HDR_VERSION) != VHDX_VERSION) {
		snprintf(why, cap, "version %u (only %u is defined)",
			 dscp_le16(h + VHDX_HDR_VERSION), VHDX_VERSION);
		return false;
	}
	return true;
}

static bool region_ok(uint8_t *t, char *why, size_t cap)
{
	uint32_t want = dscp_le32(t + 4), got;
	uint8_t saved[4];

	if (dscp_le32(t) != VHDX_RT_SIGNATURE) {
		snprintf(why, cap, "no \"regi\" signature");
		return false;
	}
	memcpy(saved, t + 4, 4);
	memset(t + 4, 0, 4);
	got = dscp_crc32c(0, t, VHDX_REGION_LEN);
	memcpy(t + 4, saved, 4);
	if (got != want) {
		snprintf(why, cap, "checksum 0x%08" PRIx32 " does not match 0x%08" PRIx32, want,
			 got);
		return false;
	}
	if (dscp_le32(t + 8) > VHDX_RT_MAX_ENTRIES) {
		snprintf(why, cap, "%" PRIu32 " entries (at most %u)", dscp_le32(t + 8),
			 VHDX_RT_MAX_ENTRIES);
		return false;
	}
	return true;
}

static bool overlaps(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return a < b + blen && b < a + alen;
}

/* A region (log, BAT, metadata) must be 1 MiB-aligned, past the header
 * section, of a sane size, and clear of the others. */
static dsc_err check_span(dsc_reader *r, const struct span *s, const struct span *others, int n,
			  struct dsc_error *e)
{
	if (s->off % VHDX_MIB || s->len % VHDX_MIB || s->len == 0 || s->off < VHDX_HEADER_SECTION ||
	    s->off > VHDX_MAX_FILE_OFFSET || s->len > VHDX_MAX_FILE_OFFSET)
		return dsc_error_set(e, DSC_ERR_FORMAT, 0,
				     "%s: VHDX %s at byte %" PRIu64 " (%" PRIu64
				     " bytes) is not a 1 MiB-aligned range past the header section",
				     rname(r), s->what, s->off, s->len);
	for (int i = 0; i < n; i++)
		if (others[i].len && overlaps(s->off, s->len, others[i].off, others[i].len))
			return dsc_error_set(e, DSC_ERR_FORMAT, 0,
					     "%s: VHDX %s at byte %" PRIu64
					     " overlaps the %s at byte %" PRIu64,
					     rname(r), s->what, s->off, others[i].what,
					     others[i].off);
	return DSC_OK;
}

/* ---- metadata (MS-VHDX 2.6) --------------------------------------------- */

struct md_item {
	const uint8_t *guid;
	const char *name;
	uint32_t min_len;
	uint32_t off, len;
	bool found;
};

static dsc_err parse_metadata(dsc_reader *r, struct vhdx_reader *v, uint64_t md_off,
			      uint64_t md_len, struct dsc_error *e)
{
	struct md_item items[] = {
		{vhdx_guid_file_params, "file parameters", 8, 0, 0, false},
		{vhdx_guid_virtual_size, "virtual disk size", 8, 0, 0, false},
		{vhdx_guid_logical_sector, "logical sector size", 4, 0, 0, false},
		{vhdx_guid_physical_sector, "physical sector size", 4, 0, 0, false},
		{vhdx_guid_page83, "page 83 data", 16, 0, 0, false},
		{vhdx_guid_parent_locator, "parent locator", 0, 0, 0, false},
	};
	const size_t n_items = sizeof items / sizeof items[0];
	uint8_t *md = NULL;
	uint64_t need = VHDX_MD_TABLE_LEN;
	uint32_t count, flags, bs, fpflags, pss;
	char g[37];
	dsc_err rc = DSC_OK;

	if (md_len < VHDX_MD_TABLE_LEN)
		return dsc_error_set(e, DSC_ERR_FORMAT, 0,
				     "%s: VHDX metadata region of %" PRIu64
				     " bytes cannot hold its 64 KiB table",
				     rname(r), md_len);
	if (!(md = malloc(VHDX_MD_TABLE_LEN)))
		return nomem(r, e);
	rc = read_exact(r, v, md_off, md, VHDX_MD_TABLE_LEN, "VHDX metadata table", e);
	if (rc != DSC_OK)
		goto out;
	if (memcmp(md, VHDX_MD_SIGNATURE, 8)) {
		rc = dsc_error_set(e, DSC_ERR_FORMAT, 0,
				   "%s: VHDX metadata table at byte %" PRIu64
				   " has no \"metadata\" signature",
				   rname(r), md_off);
		goto out;
	}
	count = dscp_le16(md + 10);
	if (count > VHDX_MD_MAX_ENTRIES) {
		rc = dsc_error_set(e, DSC_ERR_FORMAT, 0,
				   "%s: VHDX metadata table at byte %" PRIu64 " has %" PRIu32
				   " entries (at most %u)",
				   rname(r), md_off, count, VHDX_MD_MAX_ENTRIES);
		goto out;
	}
	for (uint32_t i = 0; i < count; i++) {
		const uint8_t *ent = md + 32 + (size_t)i * 32;
		uint32_t off = dscp_le32(ent + 16), len = dscp_le32(ent + 20);
		size_t k;

		flags = dscp_le32(ent + 24);
		for (k = 0; k < n_items; k++)
			if (!memcmp(ent, items[k].guid, 16))
				break;
		if (k == n_items) {
			if (flags & VHDX_MD_IS_REQUIRED) {
				guid_text(ent, g);
				rc = dsc_error_set(e, DSC_ERR_UNSUPPORTED, 0,
						   "%s: VHDX metadata item %s is required but "
						   "unknown to dsc",
						   rname(r), g);
				goto out;
			}
			continue;
		}
		if (items[k].found) {
			rc = dsc_error_set(e, DSC_ERR_FORMAT, 0,
					   "%s: VHDX metadata item \"%s\" appears twice", rname(r),
					   items[k].name);
			goto out;
		}
		if (len < items[k].min_len || len > VHDX_MD_MAX_ITEM ||
		    (len && (off < VHDX_MD_TABLE_LEN || (uint64_t)off + len > md_len))) {
			rc = dsc_error_set(e, DSC_ERR_FORMAT, 0,
					   "%s: VHDX metadata item \"%s\": %" PRIu32
					   " bytes at offset %" PRIu32
					   " do not fit the metadata region (%" PRIu64 " bytes)",
					   rname(r), items[k].name, len, off, md_len);
			goto out;
		}
		items[k].found = true;
		items[k].off = off;
		items[k].len = len;
		if (k < 4 && (uint64_t)off + items[k].min_len > need)
			need = (uint64_t)off + items[k].min_len;
	}
	for (size_t k = 0; k < 5; k++)
		if (!items[k].found) {
			rc = dsc_error_set(e, DSC_ERR_FORMAT, 0,
					   "%s: VHDX metadata has no \"%s\" item", rname(r),
					   items[k].name);
			goto out;
		}
	if (need > VHDX_MAX_METADATA_BYTES) {
		rc = dsc_error_set(e, DSC_ERR_LIMIT, 0,
				   "%s: VHDX metadata items end %" PRIu64
				   " bytes into the region, past dsc's limit of %u",
				   rname(r), need, VHDX_MAX_METADATA_BYTES);
		goto out;
	}
	if (need > VHDX_MD_TABLE_LEN) {
		uint8_t *bigger = realloc(md, (size_t)need);

		if (!bigger) {
			rc = nomem(r, e);
			goto out;
		}
		md = bigger;
		rc = read_exact(r, v, md_off + VHDX_MD_TABLE_LEN, md + VHDX_MD_TABLE_LEN,
				(size_t)need - VHDX_MD_TABLE_LEN, "VHDX metadata items", e);
		if (rc != DSC_OK)
			goto out;
	}
	bs = dscp_le32(md + items[0].off);
	fpflags = dscp_le32(md + items[0].off + 4);
	v->vsize = dscp_le64(md + items[1].off);
	v->lsector = dscp_le32(md + items[2].off);
	pss = dscp_le32(md + items[3].off);
	if (fpflags & VHDX_FP_HAS_PARENT) {
		rc = dsc_error_set(e, DSC_ERR_UNSUPPORTED, 0,
				   "%s: a differencing VHDX (it has a parent disk); convert the "
				   "chain with qemu-img convert first",
				   rname(r));
		goto out;
	}
	if (bs < VHDX_MIN_BLOCK || bs > VHDX_MAX_BLOCK || (bs & (bs - 1))) {
		rc = dsc_error_set(e, DSC_ERR_FORMAT, 0,
				   "%s: VHDX block size %" PRIu32
				   " is not a power of two from 1 MiB to 256 MiB",
				   rname(r), bs);
		goto out;
	}
	if (v->lsector != 512 && v->lsector != 4096) {
		rc = dsc_error_set(e, DSC_ERR_FORMAT, 0,
				   "%s: VHDX logical sector size %" PRIu32 " (512 or 4096)",
				   rname(r), v->lsector);
		goto out;
	}
	if (pss != 512 && pss != 4096) {
		rc = dsc_error_set(e, DSC_ERR_FORMAT, 0,
				   "%s: VHDX physical sector size %" PRIu32 " (512 or 4096)",
				   rname(r), pss);
		goto out;
	}
	if (v->vsize > VHDX_MAX_VIRTUAL_SIZE) {
		rc = dsc_error_set(e, DSC_ERR_LIMIT, 0,
				   "%s: VHDX virtual size %" PRIu64
				   " bytes exceeds the format's 64 TiB",
				   rname(r), v->vsize);
		goto out;
	}
	if (v->vsize % v->lsector) {
		rc = dsc_error_set(e, DSC_ERR_FORMAT, 0,
				   "%s: VHDX virtual size %" PRIu64
				   " is not a multiple of the %" PRIu32 "-byte logical sector",
				   rname(r), v->vsize, v->lsector);
		goto out;
	}
	v->block = bs;
	v->chunk_ratio = VHDX_CHUNK_SECTORS * v->lsector / bs;
	v->nblocks = (v->vsize + bs - 1) / bs;
out:
	free(md);
	return rc;
}

/* ---- BAT (MS-VHDX 2.5) -------------------------------------------------- */

/* Entries the BAT of this disk holds: the payload entries with a sector
 * bitmap entry after every chunk_ratio of them (none after the last). */
static uint64_t bat_entries(const struct vhdx_reader *v)
{
	return v->nblocks ? v->nblocks + (v->nblocks - 1) / v->chunk_ratio : 0;
}

static uint64_t block_len(const struct vhdx_reader *v, uint64_t i)
{
	return DSC_MIN((uint64_t)v->block, v->vsize - i * v->block);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* A sort key: FileOffsetMB above, the block index (< 2^24, as the BAT
 * holds at most VHDX_MAX_BAT_BYTES / 8 entries) below. */
#define KEY_INDEX_BITS 24
#define KEY_INDEX_MASK ((1ull << KEY_INDEX_BITS) - 1)

static dsc_err check_bat(dsc_reader *r, struct vhdx_reader *v, const uint8_t *raw,
			 const struct span *spans, int nspans, struct dsc_error *e)
{
	uint64_t i, k = 0, present = 0;
	dsc_err rc;

	for (i = 0; i < v->nblocks; i++) {
		uint64_t idx = i + i / v->chunk_ratio;
		uint64_t ent = dscp_le64(raw + idx * 8);
		unsigned state = (unsigned)(ent & VHDX_BAT_STATE_MASK);

		if (i % VHDX_TICK_ENTRIES == VHDX_TICK_ENTRIES - 1) {
			rc = dscp_reader_tick(r, e);
			if (rc != DSC_OK)
				return rc;
		}
		switch (state) {
		case VHDX_PAYLOAD_NOT_PRESENT:
		case VHDX_PAYLOAD_UNDEFINED:
		case VHDX_PAYLOAD_ZERO:
		case VHDX_PAYLOAD_UNMAPPED:
		case VHDX_PAYLOAD_UNMAPPED_V095:
			/* Read as zeros, as qemu does for a disk without a parent. */
			v->bat[i] = state;
			break;
		case VHDX_PAYLOAD_FULLY_PRESENT: {
			uint64_t host = ent & VHDX_BAT_OFFSET_MASK, len = block_len(v, i);

			if (host < VHDX_HEADER_SECTION || host >= VHDX_MAX_FILE_OFFSET)
				return dsc_error_set(e, DSC_ERR_FORMAT, 0,
						     "%s: VHDX BAT entry %" PRIu64
						     ": block at byte %" PRIu64
						     " is inside the header section or past 1 EiB",
						     rname(r), idx, host);
			for (int s = 0; s < nspans; s++)
				if (spans[s].len && overlaps(host, len, spans[s].off, spans[s].len))
					return dsc_error_set(e, DSC_ERR_FORMAT, 0,
							     "%s: VHDX BAT entry %" PRIu64
							     ": block at byte %" PRIu64
							     " overlaps the %s at byte %" PRIu64,
							     rname(r), idx, host, spans[s].what,
							     spans[s].off);
			if (v->file_size != UINT64_MAX && host + len > v->file_size)
				return dsc_error_set(e, DSC_ERR_TRUNCATED, 0,
						     "%s: truncated: VHDX BAT entry %" PRIu64
						     " maps a block at byte %" PRIu64
						     ", past the end of the file (%" PRIu64
						     " bytes)",
						     rname(r), idx, host, v->file_size);
			v->bat[i] = ent & (VHDX_BAT_OFFSET_MASK | VHDX_BAT_STATE_MASK);
			present++;
			break;
		}
		case VHDX_PAYLOAD_PARTIALLY_PRESENT:
			return dsc_error_set(
				e, DSC_ERR_UNSUPPORTED, 0,
				"%s: VHDX BAT entry %" PRIu64
				" is partially present, which only a differencing disk "
				"may be",
				rname(r), idx);
		default:
			return dsc_error_set(e, DSC_ERR_FORMAT, 0,
					     "%s: VHDX BAT entry %" PRIu64
					     " has the reserved state %u",
					     rname(r), idx, state);
		}
	}
	if (present && !(v->order = malloc((size_t)present * sizeof *v->order)))
		return nomem(r, e);
	for (i = 0; i < v->nblocks; i++)
		if ((v->bat[i] & VHDX_BAT_STATE_MASK) == VHDX_PAYLOAD_FULLY_PRESENT)
			v->order[k++] = (v->bat[i] >> 20) << KEY_INDEX_BITS | i;
	v->norder = present;
	/* Host order, to find overlapping blocks; a forward-only input is
	 * read in this order, a seekable one in guest order. */
	if (present > 1)
		qsort(v->order, (size_t)present, sizeof *v->order, cmp_u64);
	for (i = 0; i < present; i++) {
		uint64_t b = v->order[i] & KEY_INDEX_MASK;

		if (i) {
			uint64_t a = v->order[i - 1] & KEY_INDEX_MASK;
			uint64_t ha = v->bat[a] & VHDX_BAT_OFFSET_MASK;
			uint64_t hb = v->bat[b] & VHDX_BAT_OFFSET_MASK;

			if (ha + block_len(v, a) > hb)
				return dsc_error_set(e, DSC_ERR_FORMAT, 0,
						     "%s: VHDX blocks %" PRIu64 " and %" PRIu64
						     " overlap at byte %" PRIu64,
						     rname(r), a, b, hb);
		}
	}
	for (i = 0; i < present; i++)
		v->order[i] &= KEY_INDEX_MASK;
	if (v->seekable && present > 1)
		qsort(v->order, (size_t)present, sizeof *v->order, cmp_u64);
	return DSC_OK;
}

/* ---- open --------------------------------------------------------------- */

/* A log to replay (MS-VHDX 2.3.3): on a seekable input, into memory; the
 * header section read so far gets the patches too. */
static dsc_err replay(dsc_reader *r, struct vhdx_reader *v, const uint8_t *guid,
		      const struct span *log, uint8_t *hs, struct dsc_error *e)
{
	char g[37], why[128] = "";
	uint8_t *buf = NULL;
	dsc_err rc;

	guid_text(guid, g);
	if (!v->seekable)
		return dsc_error_set(
			e, DSC_ERR_SEEK, 0,
			"%s: the VHDX log is not empty (log GUID %s: the disk was not "
			"shut down cleanly); replaying it needs a seekable input: read "
			"it from a file, or replay it first with qemu-img check -r all",
			rname(r), g);
	if (!log->len)
		return dsc_error_set(e, DSC_ERR_FORMAT, 0,
				     "%s: the VHDX header names log %s but no log region", rname(r),
				     g);
	if (log->len > VHDX_MAX_LOG_BYTES)
		return dsc_error_set(e, DSC_ERR_LIMIT, 0,
				     "%s: VHDX log of %" PRIu64
				     " bytes to replay exceeds dsc's limit "
				     "of %u",
				     rname(r), log->len, VHDX_MAX_LOG_BYTES);
	if (!(buf = malloc((size_t)log->len)))
		return nomem(r, e);
	rc = read_exact(r, v, log->off, buf, (size_t)log->len, "VHDX log", e);
	if (rc == DSC_OK) {
		rc = vhdx_log_plan(buf, log->len, guid, &v->log, why, sizeof why);
		if (rc == DSC_ERR_NOMEM)
			rc = nomem(r, e);
		else if (rc != DSC_OK)
			rc = dsc_error_set(e, rc, 0,
					   "%s: VHDX log at byte %" PRIu64 " (GUID %s): %s",
					   rname(r), log->off, g, why);
	}
	free(buf);
	if (rc != DSC_OK)
		return rc;
	if (v->file_size != UINT64_MAX && v->log.flushed > v->file_size)
		return dsc_error_set(
			e, DSC_ERR_TRUNCATED, 0,
			"%s: truncated: the VHDX log says the file had at least %" PRIu64
			" bytes, it has %" PRIu64,
			rname(r), v->log.flushed, v->file_size);
	v->replayed = true;
	/* The replay may extend the file (MS-VHDX 2.3.3): reads there give
	 * zeros. By at most VHDX_MAX_LOG_GROWTH: a zero descriptor may name
	 * any length, and blocks placed in that extension would be read (as
	 * zeros) however small the input is. */
	if (v->file_size != UINT64_MAX) {
		uint64_t end = vhdx_log_end(&v->log);

		if (end > v->file_size && end - v->file_size > VHDX_MAX_LOG_GROWTH)
			return dsc_error_set(e, DSC_ERR_LIMIT, 0,
					     "%s: the VHDX log would extend the file from %" PRIu64
					     " to %" PRIu64 " bytes, more than dsc's limit of %llu "
					     "bytes of growth",
					     rname(r), v->file_size, end,
					     (unsigned long long)VHDX_MAX_LOG_GROWTH);
		v->file_size = DSC_MAX(v->file_size, end);
	}
	vhdx_log_apply(&v->log, 0, hs, VHDX_HEADER_SECTION);
	return DSC_OK;
}

static dsc_err vhdx_open_impl(dsc_reader *r, struct dsc_error *e)
{
	struct vhdx_reader *v = r->impl;
	uint64_t total = dsc_stream_total(r->in);
	uint8_t *hs = NULL, *bat = NULL;
	const uint8_t *h = NULL, *rt = NULL;
	char why1[96] = "", why2[96] = "", g[37];
	struct span spans[3] = {{0, 0, "log"}, {0, 0, "BAT"}, {0, 0, "metadata region"}};
	bool have_bat = false, have_md = false, ok1, ok2;
	uint64_t bat_need, bat_read;
	dsc_err rc;

	v->base = dsc_stream_tell(r->in);
	v->file_size = total != UINT64_MAX && total >= v->base ? total - v->base : UINT64_MAX;
	v->seekable = (dsc_stream_caps(r->in) & DSC_STREAM_SEEK) != 0;

	if (!(hs = malloc(VHDX_HEADER_SECTION)))
		return nomem(r, e);
	/* The header section is read whole; only its first 320 KiB hold
	 * anything. */
	rc = read_exact(r, v, 0, hs, VHDX_HEADER_SECTION, "VHDX header section", e);
	if (rc != DSC_OK)
		goto out;
	if (memcmp(hs, VHDX_SIGNATURE, 8)) {
		rc = dsc_error_set(e, DSC_ERR_FORMAT, 0, "%s: not a VHDX image (no \"vhdxfile\")",
				   rname(r));
		goto out;
	}
	ok1 = header_ok(hs + VHDX_HEADER1_OFFSET, why1, sizeof why1);
	ok2 = header_ok(hs + VHDX_HEADER2_OFFSET, why2, sizeof why2);
	if (!ok1 && !ok2) {
		rc = dsc_error_set(e, DSC_ERR_FORMAT, 0,
				   "%s: no valid VHDX header: header 1 at byte %u: %s; header 2 at "
				   "byte %u: %s",
				   rname(r), VHDX_HEADER1_OFFSET, why1, VHDX_HEADER2_OFFSET, why2);
		goto out;
	}
	if (ok1 && ok2) {
		uint64_t s1 = dscp_le64(hs + VHDX_HEADER1_OFFSET + VHDX_HDR_SEQUENCE);
		uint64_t s2 = dscp_le64(hs + VHDX_HEADER2_OFFSET + VHDX_HDR_SEQUENCE);

		/* MS-VHDX 2.2.2.1: the higher sequence number is current. Equal
		 * numbers are only sound on identical headers (qemu accepts
		 * those, which Disk2VHD writes). */
		if (s1 == s2 && memcmp(hs + VHDX_HEADER1_OFFSET, hs + VHDX_HEADER2_OFFSET,
				       VHDX_HEADER_CRC_LEN)) {
			rc = dsc_error_set(e, DSC_ERR_FORMAT, 0,
					   "%s: both VHDX headers have sequence number %" PRIu64
					   " but differ",
					   rname(r), s1);
			goto out;
		}
		h = hs + (s2 > s1 ? VHDX_HEADER2_OFFSET : VHDX_HEADER1_OFFSET);
	} else {
		h = hs + (ok1 ? VHDX_HEADER1_OFFSET : VHDX_HEADER2_OFFSET);
	}
	spans[0].off = dscp_le64(h + VHDX_HDR_LOG_OFFSET);
	spans[0].len = dscp_le32(h + VHDX_HDR_LOG_LENGTH);
	if (spans[0].len) {
		rc = check_span(r, &spans[0], NULL, 0, e);
		if (rc != DSC_OK)
			goto out;
	}
	if (!guid_is_zero(h + VHDX_HDR_LOG_GUID)) {
		rc = replay(r, v, h + VHDX_HDR_LOG_GUID, &spans[0], hs, e);
		if (rc != DSC_OK)
			goto out;
	}

	/* Region tables: the first valid copy. */
	ok1 = region_ok(hs + VHDX_REGION1_OFFSET, why1, sizeof why1);
	ok2 = ok1 || region_ok(hs + VHDX_REGION2_OFFSET, why2, sizeof why2);
	if (!ok2) {
		rc = dsc_error_set(
			e, DSC_ERR_FORMAT, 0,
			"%s: no valid VHDX region table: table 1 at byte %u: %s; table 2 "
			"at byte %u: %s",
			rname(r), VHDX_REGION1_OFFSET, why1, VHDX_REGION2_OFFSET, why2);
		goto out;
	}
	rt = hs + (ok1 ? VHDX_REGION1_OFFSET : VHDX_REGION2_OFFSET);
	for (uint32_t i = 0, n = dscp_le32(rt + 8); i < n; i++) {
		const uint8_t *ent = rt + 16 + (size_t)i * 32;
		struct span s = {dscp_le64(ent + 16), dscp_le32(ent + 24), NULL};
		int slot;

		if (!memcmp(ent, vhdx_guid_bat, 16)) {
			slot = 1;
			if (have_bat)
				goto dup;
			have_bat = true;
		} else if (!memcmp(ent, vhdx_guid_metadata, 16)) {
			slot = 2;
			if (have_md)
				goto dup;
			have_md = true;
		} else {
			if (dscp_le32(ent + 28) & VHDX_RT_REQUIRED) {
				guid_text(ent, g);
				rc = dsc_error_set(e, DSC_ERR_UNSUPPORTED, 0,
						   "%s: VHDX region %s is required but unknown to "
						   "dsc",
						   rname(r), g);
				goto out;
			}
			continue;
		}
		s.what = spans[slot].what;
		rc = check_span(r, &s, spans, 3, e);
		if (rc != DSC_OK)
			goto out;
		spans[slot] = s;
		continue;
dup:
		rc = dsc_error_set(e, DSC_ERR_FORMAT, 0,
				   "%s: the VHDX region table lists the %s twice", rname(r),
				   slot == 1 ? "BAT" : "metadata region");
		goto out;
	}
	if (!have_bat || !have_md) {
		rc = dsc_error_set(e, DSC_ERR_FORMAT, 0, "%s: the VHDX region table has no %s",
				   rname(r), have_bat ? "metadata region" : "BAT");
		goto out;
	}
	free(hs);
	hs = NULL;

	/* Metadata and BAT, in file order on a forward-only input; the BAT
	 * is then read whole when it comes first. */
	if (spans[1].len > VHDX_MAX_BAT_BYTES && (!v->seekable && spans[1].off < spans[2].off)) {
		rc = dsc_error_set(e, DSC_ERR_LIMIT, 0,
				   "%s: VHDX BAT region of %" PRIu64
				   " bytes exceeds dsc's limit of %u",
				   rname(r), spans[1].len, VHDX_MAX_BAT_BYTES);
		goto out;
	}
	bat_read = 0;
	if (!v->seekable && spans[1].off < spans[2].off) {
		bat_read = spans[1].len;
		if (!(bat = malloc((size_t)bat_read))) {
			rc = nomem(r, e);
			goto out;
		}
		rc = read_exact(r, v, spans[1].off, bat, (size_t)bat_read, "VHDX BAT", e);
		if (rc != DSC_OK)
			goto out;
	}
	rc = parse_metadata(r, v, spans[2].off, spans[2].len, e);
	if (rc != DSC_OK)
		goto out;
	bat_need = bat_entries(v) * 8;
	if (bat_need > spans[1].len) {
		rc = dsc_error_set(e, DSC_ERR_FORMAT, 0,
				   "%s: VHDX BAT region of %" PRIu64
				   " bytes is too small for the %" PRIu64
				   " entries a disk of %" PRIu64 " bytes needs",
				   rname(r), spans[1].len, bat_entries(v), v->vsize);
		goto out;
	}
	if (bat_need > VHDX_MAX_BAT_BYTES) {
		rc = dsc_error_set(e, DSC_ERR_LIMIT, 0,
				   "%s: VHDX BAT of %" PRIu64 " bytes exceeds dsc's limit of %u",
				   rname(r), bat_need, VHDX_MAX_BAT_BYTES);
		goto out;
	}
	if (!bat_read && bat_need) {
		if (!(bat = malloc((size_t)bat_need))) {
			rc = nomem(r, e);
			goto out;
		}
		rc = read_exact(r, v, spans[1].off, bat, (size_t)bat_need, "VHDX BAT", e);
		if (rc != DSC_OK)
			goto out;
	}
	if (v->nblocks && !(v->bat = malloc((size_t)v->nblocks * sizeof *v->bat))) {
		rc = nomem(r, e);
		goto out;
	}
	rc = check_bat(r, v, bat, spans, 3, e);
	if (rc != DSC_OK)
		goto out;
	if (v->norder && !(v->buf = malloc(VHDX_READ_CHUNK))) {
		rc = nomem(r, e);
		goto out;
	}
	r->capacity = v->vsize;
out:
	free(hs);
	free(bat);
	return rc;
}

/* ---- extents ------------------------------------------------------------ */

/* Emit the next non-zero run of the buffer, if any. */
static bool emit(struct vhdx_reader *v, struct dsc_extent *ext)
{
	const size_t unit = DSCP_ZERO_UNIT;
	size_t a = v->buf_off, b;

	while (a < v->buf_len && dscp_is_zero(v->buf + a, DSC_MIN(unit, v->buf_len - a)))
		a += DSC_MIN(unit, v->buf_len - a);
	if (a >= v->buf_len) {
		v->buf_off = v->buf_len;
		return false;
	}
	b = a + DSC_MIN(unit, v->buf_len - a);
	while (b < v->buf_len && !dscp_is_zero(v->buf + b, DSC_MIN(unit, v->buf_len - b)))
		b += DSC_MIN(unit, v->buf_len - b);
	ext->offset = v->buf_guest + a;
	ext->length = b - a;
	ext->data = v->buf + a;
	v->buf_off = b;
	return true;
}

static dsc_err drain(dsc_reader *r, struct vhdx_reader *v, struct dsc_error *e)
{
	uint64_t skipped;
	dsc_err rc;

	while (!v->seekable && !v->eof) {
		rc = dscp_reader_tick(r, e);
		if (rc != DSC_OK)
			return rc;
		rc = dsc_stream_skip(r->in, DRAIN_CHUNK, &skipped, e);
		if (rc != DSC_OK)
			return rc;
		v->pos += skipped;
		if (skipped < DRAIN_CHUNK)
			v->eof = true;
	}
	return DSC_OK;
}

static dsc_err vhdx_next(dsc_reader *r, struct dsc_extent *ext, struct dsc_error *e)
{
	struct vhdx_reader *v = r->impl;
	dsc_err rc;

	for (;;) {
		if (v->buf_off < v->buf_len && emit(v, ext))
			return DSC_OK;
		if (v->cur_left) {
			size_t n = (size_t)DSC_MIN(v->cur_left, (uint64_t)VHDX_READ_CHUNK);

			rc = dscp_reader_tick(r, e);
			if (rc != DSC_OK)
				return rc;
			rc = read_exact(r, v, v->cur_host, v->buf, n, "VHDX payload block", e);
			if (rc != DSC_OK)
				return rc;
			v->buf_len = n;
			v->buf_off = 0;
			v->buf_guest = v->cur_guest;
			v->cur_guest += n;
			v->cur_host += n;
			v->cur_left -= n;
			continue;
		}
		if (v->next < v->norder) {
			uint64_t i = v->order[v->next++];

			v->cur_guest = i * v->block;
			v->cur_host = v->bat[i] & VHDX_BAT_OFFSET_MASK;
			v->cur_left = block_len(v, i);
			continue;
		}
		if (!v->done) {
			rc = drain(r, v, e);
			if (rc != DSC_OK)
				return rc;
			v->done = true;
		}
		ext->offset = r->capacity;
		ext->length = 0;
		ext->data = NULL;
		return DSC_OK;
	}
}

static void vhdx_close(dsc_reader *r)
{
	struct vhdx_reader *v = r->impl;

	free(v->bat);
	free(v->order);
	free(v->buf);
	vhdx_log_free(&v->log);
}

/* Open, then what dsc-img info reports. */
static dsc_err vhdx_open(dsc_reader *r, struct dsc_error *e)
{
	struct vhdx_reader *v = r->impl;
	dsc_err rc = vhdx_open_impl(r, e);

	if (rc != DSC_OK)
		return rc;
	r->cluster_size = v->block;
	dscp_info_uint(r, NULL, 0, "logical-sector-size", v->lsector);
	dscp_info_bool(r, NULL, 0, "log-replayed", v->replayed);
	return DSC_OK;
}

const struct dscp_reader_class dscp_vhdx_reader = {
	.size = sizeof(struct vhdx_reader),
	.open = vhdx_open,
	.next = vhdx_next,
	.close = vhdx_close,
};
