/* vmdk_sparse_read.c - reader for hosted sparse VMDK extents
 * (monolithicSparse, versions 1 and 2: uncompressed grains, no markers).
 *
 * The header names a grain directory (GD) whose entries point at grain
 * tables (GTs) whose entries point at grains (formats.md §4). On a seekable
 * input the reader walks the directory in guest order, one table at a time
 * (memory stays at one table whatever the capacity), compares each table
 * with its redundant copy when the header has one, and reads runs of
 * grains that are adjacent in the file in one read. On a forward-only input
 * the directory and the tables must come before the grains (they do in
 * qemu's and VMware's files): it skips to the directory, reads the tables as
 * they pass, then reads the grains in file order, which may not be guest
 * order; metadata behind the read position is DSC_ERR_SEEK.
 *
 * qemu reads through the GD and never looks at the redundant one; we refuse
 * a redundant table that differs from its primary (DSC_ERR_FORMAT) where
 * the input can seek, since one of the two is then damaged and we cannot
 * tell which.
 */
#include "vmdk.h"

#include <inttypes.h>

struct grain_ref {
	uint64_t sec;   /* file sector of the grain */
	uint64_t grain; /* guest grain index */
};

struct vmdk_sparse {
	struct vmdk_header h;
	uint64_t base;     /* stream offset of the header */
	uint64_t pos;      /* image byte the stream is at */
	bool seekable;     /* seekable, of known size */
	uint64_t file_len; /* seekable: image bytes */
	uint64_t cap_sectors;
	uint64_t gd_entries;
	uint64_t gt_sectors;
	size_t grain_bytes;
	uint64_t meta_end; /* first sector after the header and descriptor */
	uint32_t *gd;      /* seekable: the directory */
	uint32_t *rgd;     /* seekable: the redundant one, or NULL */
	uint8_t *gt;       /* one table (seekable), or scratch */
	uint8_t *rgt;
	uint64_t gd_next; /* seekable: next directory entry to load */
	struct grain_ref *refs;
	size_t nrefs, refs_cap, ref_next;
	uint8_t *buf; /* grains read, being emitted */
	size_t buf_cap;
	/* The run being emitted: grains in buf, starting at guest byte
	 * emit_guest. */
	size_t emit_len, emit_off;
	uint64_t emit_guest;
};

static const char *rname(dsc_reader *r) { return dsc_stream_name(r->in); }

/* To image byte `to`: seek where the input can, else skip forward. */
static dsc_err go_to(dsc_reader *r, struct vmdk_sparse *s, uint64_t to, const char *what,
		     struct dsc_error *e)
{
	uint64_t got;
	dsc_err rc;

	if (to == s->pos)
		return DSC_OK;
	if (s->seekable) {
		rc = dsc_stream_seek(r->in, s->base + to, e);
		if (rc == DSC_OK)
			s->pos = to;
		return rc;
	}
	if (to < s->pos)
		return dsc_error_set(e, DSC_ERR_SEEK, 0,
				     "%s: needs a seekable input: the VMDK %s at byte %" PRIu64
				     " comes before byte %" PRIu64 ", already read",
				     rname(r), what, to, s->pos);
	rc = dsc_stream_skip(r->in, to - s->pos, &got, e);
	if (rc != DSC_OK)
		return rc;
	s->pos += got;
	if (s->pos < to)
		return dsc_error_set(e, DSC_ERR_TRUNCATED, 0,
				     "%s: truncated: input ends at byte %" PRIu64
				     " before the %s at byte %" PRIu64,
				     rname(r), s->pos, what, to);
	return DSC_OK;
}

/* Read len bytes at image byte `at`; *got short only when allow_short. */
static dsc_err read_at(dsc_reader *r, struct vmdk_sparse *s, uint64_t at, void *buf, size_t len,
		       const char *what, bool allow_short, size_t *got, struct dsc_error *e)
{
	size_t n;
	dsc_err rc;

	rc = go_to(r, s, at, what, e);
	if (rc != DSC_OK)
		return rc;
	rc = dsc_read_full(r->in, buf, len, &n, e);
	if (rc != DSC_OK)
		return rc;
	s->pos += n;
	if (got)
		*got = n;
	if (n < len && !(allow_short && n > 0))
		return dsc_error_set(e, DSC_ERR_TRUNCATED, 0,
				     "%s: truncated: input ends at byte %" PRIu64
				     " inside the %s at byte %" PRIu64,
				     rname(r), at + n, what, at);
	return DSC_OK;
}

/* A table or directory of `sectors` at sector `sec` must lie after the
 * header and descriptor and, where the size is known, inside the file. */
static dsc_err check_meta(dsc_reader *r, struct vmdk_sparse *s, uint64_t sec, uint64_t sectors,
			  const char *what, uint64_t index, struct dsc_error *e)
{
	if (sec < s->meta_end)
		return dsc_error_set(e, DSC_ERR_FORMAT, 0,
				     "%s: VMDK %s %" PRIu64 " at sector %" PRIu64
				     " overlaps the header or descriptor (sectors 0 to %" PRIu64
				     ")",
				     rname(r), what, index, sec, s->meta_end - 1);
	if (sec > VMDK_MAX_CAPACITY_SECTORS ||
	    (s->seekable && (sec + sectors) * VMDK_SECTOR > s->file_len))
		return dsc_error_set(e, DSC_ERR_FORMAT, 0,
				     "%s: VMDK %s %" PRIu64 " at sector %" PRIu64
				     " is past the end of the file",
				     rname(r), what, index, sec);
	return DSC_OK;
}

/* Add the allocated entries of table `t` (guest grains from `first`). */
static dsc_err collect_gt(dsc_reader *r, struct vmdk_sparse *s, const uint8_t *gt, uint64_t t,
			  struct dsc_error *e)
{
	uint64_t first = t * s->h.gtes_per_gt, g, v;
	uint32_t j;

	for (j = 0; j < s->h.gtes_per_gt; j++) {
		g = first + j;
		if (g * s->h.grain_size >= s->cap_sectors)
			break;
		v = dscp_le32(gt + 4 * (size_t)j);
		if (v == 0)
			continue;
		/* Version 2: GTE 1 reads as zeros (formats.md §4). */
		if (v == 1 && (s->h.flags & VMDK_FLAG_ZERO_GTE))
			continue;
		if (v < s->h.overhead || v < s->meta_end)
			return dsc_error_set(e, DSC_ERR_FORMAT, 0,
					     "%s: VMDK grain table %" PRIu64 " entry %" PRIu32
					     ": grain at sector %" PRIu64
					     " points into the metadata (before sector %" PRIu64
					     ")",
					     rname(r), t, j, v,
					     DSC_MAX(s->h.overhead, s->meta_end));
		if (s->seekable && v * VMDK_SECTOR >= s->file_len)
			return dsc_error_set(e, DSC_ERR_FORMAT, 0,
					     "%s: VMDK grain table %" PRIu64 " entry %" PRIu32
					     ": grain at sector %" PRIu64
					     " is past the end of the file",
					     rname(r), t, j, v);
		if (s->nrefs == s->refs_cap) {
			size_t cap = s->refs_cap ? 2 * s->refs_cap : 1024;
			struct grain_ref *n;

			if (s->refs_cap >= VMDK_MAX_STREAM_GRAINS)
				return dsc_error_set(
					e, DSC_ERR_LIMIT, 0,
					"%s: VMDK image on a forward-only input lists more than %u "
					"grains; read it from a seekable input",
					rname(r), VMDK_MAX_STREAM_GRAINS);
			cap = DSC_MIN(cap, (size_t)VMDK_MAX_STREAM_GRAINS);
			n = realloc(s->refs, cap * sizeof *n);
			if (!n)
				return dsc_error_set(e, DSC_ERR_NOMEM, ENOMEM, "%s: out of memory",
						     rname(r));
			s->refs = n;
			s->refs_cap = cap;
		}
		s->refs[s->nrefs].sec = v;
		s->refs[s->nrefs].grain = g;
		s->nrefs++;
	}
	return DSC_OK;
}

/* File order; a grain named by two entries, in guest order. */
static int by_sec(const void *a, const void *b)
{
	const struct grain_ref *x = a, *y = b;

	if (x->sec != y->sec)
		return x->sec < y->sec ? -1 : 1;
	return x->grain < y->grain ? -1 : x->grain > y->grain;
}

struct gt_at {
	uint64_t sec, index;
};

static int gt_by_sec(const void *a, const void *b)
{
	const struct gt_at *x = a, *y = b;

	return x->sec < y->sec ? -1 : x->sec > y->sec;
}

/* Load a directory of gd_entries at sector `sec`. */
static dsc_err load_gd(dsc_reader *r, struct vmdk_sparse *s, uint64_t sec, const char *what,
		       uint32_t **out, struct dsc_error *e)
{
	size_t bytes = (size_t)s->gd_entries * 4, i;
	uint8_t *raw;
	uint32_t *gd;
	dsc_err rc;

	*out = NULL;
	rc = check_meta(r, s, sec, (bytes + VMDK_SECTOR - 1) / VMDK_SECTOR, what, 0, e);
	if (rc != DSC_OK)
		return rc;
	raw = malloc(bytes);
	gd = malloc(bytes);
	if (!raw || !gd) {
		free(raw);
		free(gd);
		return dsc_error_set(e, DSC_ERR_NOMEM, ENOMEM, "%s: out of memory", rname(r));
	}
	rc = read_at(r, s, sec * VMDK_SECTOR, raw, bytes, what, false, NULL, e);
	for (i = 0; rc == DSC_OK && i < s->gd_entries; i++)
		gd[i] = dscp_le32(raw + 4 * i);
	free(raw);
	if (rc != DSC_OK) {
		free(gd);
		return rc;
	}
	*out = gd;
	return DSC_OK;
}

/* Forward-only: directory, tables in file order, then the grain list
 * sorted by file offset. */
static dsc_err open_stream(dsc_reader *r, struct vmdk_sparse *s, struct dsc_error *e)
{
	struct gt_at *gts = NULL;
	size_t ngts = 0, i;
	uint32_t *gd = NULL;
	dsc_err rc;

	rc = load_gd(r, s, s->h.gd_offset, "grain directory", &gd, e);
	if (rc != DSC_OK)
		return rc;
	gts = malloc((size_t)s->gd_entries * sizeof *gts);
	if (!gts) {
		rc = dsc_error_set(e, DSC_ERR_NOMEM, ENOMEM, "%s: out of memory", rname(r));
		goto out;
	}
	for (i = 0; i < s->gd_entries; i++) {
		if (!gd[i])
			continue;
		rc = check_meta(r, s, gd[i], s->gt_sectors, "grain table", i, e);
		if (rc != DSC_OK)
			goto out;
		gts[ngts].sec = gd[i];
		gts[ngts].index = i;
		ngts++;
	}
	if (ngts)
		qsort(gts, ngts, sizeof *gts, gt_by_sec);
	for (i = 0; i < ngts; i++) {
		rc = dscp_reader_tick(r, e);
		if (rc == DSC_OK)
			rc = read_at(r, s, gts[i].sec * VMDK_SECTOR, s->gt,
				     (size_t)s->gt_sectors * VMDK_SECTOR, "grain table", false,
				     NULL, e);
		if (rc == DSC_OK)
			rc = collect_gt(r, s, s->gt, gts[i].index, e);
		if (rc != DSC_OK)
			goto out;
	}
	if (s->nrefs) /* refs is NULL when no grain is allocated */
		qsort(s->refs, s->nrefs, sizeof *s->refs, by_sec);
	/* Two entries may share a grain (qemu reads it in both places);
	 * grains that overlap only in part are damage. */
	for (i = 1; i < s->nrefs; i++)
		if (s->refs[i].sec != s->refs[i - 1].sec &&
		    s->refs[i].sec < s->refs[i - 1].sec + s->h.grain_size) {
			rc = dsc_error_set(e, DSC_ERR_FORMAT, 0,
					   "%s: VMDK grains %" PRIu64 " and %" PRIu64
					   " overlap at sector %" PRIu64,
					   rname(r), s->refs[i - 1].grain, s->refs[i].grain,
					   s->refs[i].sec);
			goto out;
		}
	if (s->nrefs && s->refs[0].sec * VMDK_SECTOR < s->pos)
		rc = dsc_error_set(e, DSC_ERR_SEEK, 0,
				   "%s: needs a seekable input: VMDK grain %" PRIu64
				   " at byte %" PRIu64 " comes before the end of its grain tables "
				   "at byte %" PRIu64,
				   rname(r), s->refs[0].grain, s->refs[0].sec * VMDK_SECTOR,
				   s->pos);
out:
	free(gd);
	free(gts);
	return rc;
}

/* Seekable: the next table in guest order (compared with its redundant
 * copy) becomes the list. False in *more at the end of the directory. */
static dsc_err load_next_gt(dsc_reader *r, struct vmdk_sparse *s, bool *more, struct dsc_error *e)
{
	size_t len = (size_t)s->gt_sectors * VMDK_SECTOR;
	uint64_t i;
	dsc_err rc;

	s->nrefs = 0;
	s->ref_next = 0;
	for (;;) {
		i = s->gd_next;
		if (i >= s->gd_entries) {
			*more = false;
			return DSC_OK;
		}
		s->gd_next++;
		if (!s->gd[i] && !(s->rgd && s->rgd[i]))
			continue;
		rc = dscp_reader_tick(r, e);
		if (rc != DSC_OK)
			return rc;
		if (s->rgd && (!s->gd[i]) != (!s->rgd[i]))
			return dsc_error_set(e, DSC_ERR_FORMAT, 0,
					     "%s: VMDK grain directory entry %" PRIu64
					     " (sector %" PRIu32
					     ") and its redundant copy (sector %" PRIu32
					     ") disagree on whether the table exists",
					     rname(r), i, s->gd[i], s->rgd[i]);
		rc = check_meta(r, s, s->gd[i], s->gt_sectors, "grain table", i, e);
		if (rc == DSC_OK)
			rc = read_at(r, s, (uint64_t)s->gd[i] * VMDK_SECTOR, s->gt, len,
				     "grain table", false, NULL, e);
		if (rc == DSC_OK && s->rgd) {
			rc = check_meta(r, s, s->rgd[i], s->gt_sectors, "redundant grain table", i,
					e);
			if (rc == DSC_OK)
				rc = read_at(r, s, (uint64_t)s->rgd[i] * VMDK_SECTOR, s->rgt, len,
					     "redundant grain table", false, NULL, e);
			if (rc == DSC_OK && memcmp(s->gt, s->rgt, (size_t)s->h.gtes_per_gt * 4))
				rc = dsc_error_set(
					e, DSC_ERR_FORMAT, 0,
					"%s: VMDK grain table %" PRIu64 " at sector %" PRIu32
					" differs from its redundant copy at sector %" PRIu32,
					rname(r), i, s->gd[i], s->rgd[i]);
		}
		if (rc == DSC_OK)
			rc = collect_gt(r, s, s->gt, i, e);
		if (rc != DSC_OK)
			return rc;
		if (s->nrefs) {
			*more = true;
			return DSC_OK;
		}
	}
}

dsc_err dscp_vmdk_sparse_open(dsc_reader *r, const struct vmdk_header *h, uint64_t base,
			      uint64_t pos, uint64_t meta_end, struct vmdk_sparse **out,
			      struct dsc_error *e)
{
	struct vmdk_sparse *s;
	uint64_t total = dsc_stream_total(r->in), per_gt;
	dsc_err rc;

	*out = NULL;
	if (h->version > 2 || (h->flags & (VMDK_FLAG_COMPRESSED | VMDK_FLAG_MARKERS)))
		return dsc_error_set(e, DSC_ERR_UNSUPPORTED, 0,
				     "%s: VMDK version %" PRIu32 " with flags 0x%08" PRIx32
				     " is neither monolithicSparse (uncompressed) nor "
				     "streamOptimized (compressed grains with markers)",
				     rname(r), h->version, h->flags);
	if (r->max_capacity && h->capacity * VMDK_SECTOR > r->max_capacity)
		return dsc_error_set(e, DSC_ERR_LIMIT, 0,
				     "%s: image of %" PRIu64 " bytes exceeds the limit of %" PRIu64
				     " bytes",
				     rname(r), h->capacity * VMDK_SECTOR, r->max_capacity);
	if (h->gd_offset == VMDK_GD_AT_END || h->gd_offset == 0)
		return dsc_error_set(e, DSC_ERR_FORMAT, 0,
				     "%s: VMDK grain directory at sector %" PRIu64
				     " is invalid for an uncompressed sparse extent",
				     rname(r), h->gd_offset);
	per_gt = h->grain_size * h->gtes_per_gt;
	s = calloc(1, sizeof *s);
	if (!s)
		return dsc_error_set(e, DSC_ERR_NOMEM, ENOMEM, "%s: out of memory", rname(r));
	*out = s;
	s->h = *h;
	s->base = base;
	s->pos = pos;
	s->meta_end = meta_end;
	s->cap_sectors = h->capacity;
	s->gd_entries = (h->capacity + per_gt - 1) / per_gt;
	s->gt_sectors = ((uint64_t)h->gtes_per_gt * 4 + VMDK_SECTOR - 1) / VMDK_SECTOR;
	s->grain_bytes = (size_t)h->grain_size * VMDK_SECTOR;
	s->seekable = dscp_detect_sees_tail(r->in) && total != UINT64_MAX && total >= base;
	if (s->seekable)
		s->file_len = total - base;
	if (s->gd_entries > VMDK_MAX_GD_ENTRIES)
		return dsc_error_set(e, DSC_ERR_LIMIT, 0,
				     "%s: VMDK grain directory of %" PRIu64
				     " entries exceeds the limit of %u",
				     rname(r), s->gd_entries, VMDK_MAX_GD_ENTRIES);
	s->buf_cap = DSC_MAX((size_t)DSCP_IO_CHUNK, s->grain_bytes);
	s->buf = malloc(s->buf_cap);
	s->gt = malloc((size_t)s->gt_sectors * VMDK_SECTOR);
	s->rgt = malloc((size_t)s->gt_sectors * VMDK_SECTOR);
	if (!s->buf || !s->gt || !s->rgt)
		return dsc_error_set(e, DSC_ERR_NOMEM, ENOMEM, "%s: out of memory", rname(r));
	r->capacity = h->capacity * VMDK_SECTOR;
	if (!s->seekable)
		return open_stream(r, s, e);
	rc = load_gd(r, s, h->gd_offset, "grain directory", &s->gd, e);
	if (rc == DSC_OK && (h->flags & VMDK_FLAG_RGD) && h->rgd_offset)
		rc = load_gd(r, s, h->rgd_offset, "redundant grain directory", &s->rgd, e);
	return rc;
}

void dscp_vmdk_sparse_free(struct vmdk_sparse *s)
{
	if (!s)
		return;
	free(s->gd);
	free(s->rgd);
	free(s->gt);
	free(s->rgt);
	free(s->refs);
	free(s->buf);
	free(s);
}

/* The next non-zero run of whole grains in the buffer. */
static bool emit_piece(struct vmdk_sparse *s, struct dsc_extent *ext, uint64_t capacity)
{
	size_t g = s->grain_bytes, start;

	while (s->emit_off < s->emit_len && dscp_is_zero(s->buf + s->emit_off, g))
		s->emit_off += g;
	if (s->emit_off >= s->emit_len)
		return false;
	start = s->emit_off;
	while (s->emit_off < s->emit_len && !dscp_is_zero(s->buf + s->emit_off, g))
		s->emit_off += g;
	ext->offset = s->emit_guest + start;
	ext->data = s->buf + start;
	/* The header's capacity may exceed the reader's (VirtualBox keeps the
	 * exact size in the extent line): grains past it are dropped. */
	if (ext->offset >= capacity) {
		s->emit_off = s->emit_len;
		return false;
	}
	/* The last grain may reach past the capacity. */
	ext->length = (size_t)DSC_MIN((uint64_t)(s->emit_off - start), capacity - ext->offset);
	return true;
}

dsc_err dscp_vmdk_sparse_next(dsc_reader *r, struct vmdk_sparse *s, struct dsc_extent *ext,
			      struct dsc_error *e)
{
	size_t n, max = s->buf_cap / s->grain_bytes, got, want;
	struct grain_ref *a;
	uint64_t at;
	bool more;
	dsc_err rc;

	memset(ext, 0, sizeof *ext);
	for (;;) {
		if (emit_piece(s, ext, r->capacity))
			return DSC_OK;
		if (s->ref_next >= s->nrefs) {
			if (!s->seekable)
				return DSC_OK;
			rc = load_next_gt(r, s, &more, e);
			if (rc != DSC_OK || !more)
				return rc;
		}
		rc = dscp_reader_tick(r, e);
		if (rc != DSC_OK)
			return rc;
		a = &s->refs[s->ref_next];
		/* A grain shared with the previous entry (adjacent in file
		 * order on a forward walk) is still the buffer's last one. */
		if (s->ref_next && a[0].sec == a[-1].sec) {
			memmove(s->buf, s->buf + s->emit_len - s->grain_bytes, s->grain_bytes);
			s->emit_guest = a[0].grain * s->grain_bytes;
			s->emit_len = s->grain_bytes;
			s->emit_off = 0;
			s->ref_next++;
			continue;
		}
		/* A run: adjacent in the file and in the guest. */
		for (n = 1;
		     n < max && s->ref_next + n < s->nrefs &&
		     a[n].sec == a[0].sec + n * s->h.grain_size && a[n].grain == a[0].grain + n;
		     n++)
			;
		at = a[0].sec * VMDK_SECTOR;
		want = n * s->grain_bytes;
		/* A file may end inside its last grain (qemu reads the rest as
		 * zeros); a seekable one is known to, a stream when this is
		 * its last grain. */
		rc = read_at(r, s, at, s->buf, want, "grain",
			     s->seekable ? at + want > s->file_len : s->ref_next + n == s->nrefs,
			     &got, e);
		if (rc != DSC_OK)
			return rc;
		if (got < want)
			memset(s->buf + got, 0, want - got);
		s->emit_guest = a[0].grain * s->grain_bytes;
		s->emit_len = want;
		s->emit_off = 0;
		s->ref_next += n;
	}
}
