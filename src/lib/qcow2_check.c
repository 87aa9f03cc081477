/* qcow2_check.c - dsc-img check for qcow2: the refcounts against the tables.
 *
 * Every cluster the image uses is counted from its tables: the header
 * cluster, the L1 tables (the active one and each snapshot's), the L2
 * tables they point to and the data clusters those map (a compressed
 * cluster counts every host cluster it touches), the refcount table and
 * its blocks, and the snapshot table. Each count is then compared with the
 * refcount the image stores, as qemu-img check does: a refcount below the
 * count is a corruption (the cluster could be handed out again while in
 * use), one above it a leak. A table entry that is not cluster-aligned or
 * lies past the end of the file is a corruption too, and so is a COPIED
 * flag of the image's tables that disagrees with a refcount of 1.
 *
 * Memory: one 16-bit counter and one bit per host cluster (saturating),
 * bounded by QCOW2_MAX_CHECK_CLUSTERS, an L1 table and one cluster of table
 * at a time. Work: each L1 table walks each L2 table once, so reads stay
 * within the file's size per L1 table (the image's and each snapshot's).
 */
#include "internal.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>

#include "qcow2.h"

struct checker {
	dsc_stream *in;
	const char *name;
	uint64_t base, file_size, nclusters;
	unsigned cbits;
	size_t cs;
	uint16_t *use;
	uint8_t *seen; /* a bit per cluster: an L2 table the current L1 walked */
	uint8_t *buf;  /* one cluster */
	unsigned comp_bits;
	uint64_t comp_off_mask, comp_nsect_mask;
	size_t esz;
	uint64_t top; /* one past the highest cluster in use */
	struct dsc_check_report *rep;
};

static void problem(struct checker *c, bool leak, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void problem(struct checker *c, bool leak, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	if (leak)
		c->rep->leaks++;
	else
		c->rep->corruptions++;
	if (!c->rep->problem)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	c->rep->problem(c->rep->user, leak, msg);
}

/* Count the clusters of [off, off + len) as used by `what`; false (and a
 * corruption) when the range is misaligned or leaves the file. */
static bool use_range(struct checker *c, uint64_t off, uint64_t len, bool aligned, const char *what)
{
	uint64_t first, last, i;

	if (!len)
		return true;
	if (aligned && (off & (c->cs - 1))) {
		problem(c, false, "%s at offset %" PRIu64 " is not cluster-aligned", what, off);
		return false;
	}
	if (off >= c->file_size || len > c->file_size - off) {
		problem(c, false,
			"%s at offset %" PRIu64 " (%" PRIu64 " bytes) lies past the end "
			"of the file (%" PRIu64 " bytes)",
			what, off, len, c->file_size);
		return false;
	}
	first = off >> c->cbits;
	last = (off + len - 1) >> c->cbits;
	for (i = first; i <= last; i++)
		if (c->use[i] != UINT16_MAX)
			c->use[i]++;
	if (last + 1 > c->top)
		c->top = last + 1;
	return true;
}

static dsc_err read_at(struct checker *c, uint64_t off, void *buf, size_t len, const char *what,
		       struct dsc_error *e)
{
	size_t got;
	dsc_err rc = dsc_stream_seek(c->in, c->base + off, e);

	if (rc == DSC_OK)
		rc = dsc_read_full(c->in, buf, len, &got, e);
	if (rc == DSC_OK && got < len)
		rc = dsc_error_set(e, DSC_ERR_TRUNCATED, 0,
				   "%s: truncated: the %s at byte %" PRIu64 " ends past the input",
				   c->name, what, off);
	return rc;
}

/* One L2 table: its data clusters. `active`: count the guest clusters
 * allocated (qemu-img check's allocated-clusters). */
static dsc_err walk_l2(struct checker *c, uint64_t l2, bool active, struct dsc_error *e)
{
	size_t i, n = c->cs / c->esz;
	dsc_err rc = read_at(c, l2, c->buf, c->cs, "L2 table", e);

	if (rc != DSC_OK)
		return rc;
	for (i = 0; i < n; i++) {
		uint64_t ent = dscp_be64(c->buf + i * c->esz), off;

		if (ent & QCOW2_OFLAG_COMPRESSED) {
			uint64_t nsect = ((ent >> c->comp_bits) & c->comp_nsect_mask) + 1;

			off = ent & c->comp_off_mask;
			use_range(c, off & ~511ull, nsect * 512, false, "a compressed cluster");
			c->rep->allocated_clusters += active;
			continue;
		}
		off = ent & QCOW2_L2_OFFSET_MASK;
		if (!off)
			continue;
		/* Counted allocated even when it points out of the file, as
		 * qemu-img check counts it. */
		use_range(c, off, c->cs, true, "a data cluster");
		c->rep->allocated_clusters += active;
	}
	return DSC_OK;
}

/* Mark the L2 table at host offset l2 as walked for the current L1 table;
 * false when it already was, or lies past the end of the file. */
static bool seen_mark(struct checker *c, uint64_t l2)
{
	uint64_t k = l2 >> c->cbits;

	if (k >= c->nclusters || (c->seen[k / 8] & (1u << (k % 8))))
		return false;
	c->seen[k / 8] |= (uint8_t)(1u << (k % 8));
	return true;
}

/* Clear the marks of an L1 table's n entries, for the next table (every
 * bit set belongs to one of them, so whole bytes are cleared). */
static void seen_reset(struct checker *c, const uint8_t *l1, uint64_t n)
{
	uint64_t i, k;

	for (i = 0; i < n; i++) {
		k = (dscp_be64(l1 + 8 * i) & QCOW2_L1_OFFSET_MASK) >> c->cbits;
		if (k < c->nclusters)
			c->seen[k / 8] = 0;
	}
}

/* An L1 table of n entries at `off` (at most QCOW2_MAX_L1_BYTES, checked
 * by the caller) and every L2 table it points to. */
static dsc_err walk_l1(struct checker *c, uint64_t off, uint64_t n, bool active,
		       struct dsc_error *e)
{
	uint8_t *l1;
	uint64_t i;
	dsc_err rc;

	if (!use_range(c, off, n * 8, true, active ? "the L1 table" : "a snapshot's L1 table"))
		return DSC_OK;
	if (!(l1 = calloc(n ? n : 1, 8)))
		return dsc_error_set(e, DSC_ERR_NOMEM, ENOMEM, "%s: out of memory", c->name);
	rc = read_at(c, off, l1, n * 8, "L1 table", e);
	for (i = 0; rc == DSC_OK && i < n; i++) {
		uint64_t l2 = dscp_be64(l1 + 8 * i) & QCOW2_L1_OFFSET_MASK;

		if (!l2 || !use_range(c, l2, c->cs, true, "an L2 table"))
			continue;
		/* One L1 table never maps two ranges through one L2 table:
		 * walked once, so that a table of n copies costs one read
		 * (the work stays within the file's size per L1 table). */
		if (!seen_mark(c, l2)) {
			problem(c, false,
				"the L2 table at offset %" PRIu64 " is used twice by one "
				"L1 table",
				l2);
			continue;
		}
		rc = walk_l2(c, l2, active, e);
	}
	seen_reset(c, l1, n);
	free(l1);
	return rc;
}

/* The snapshot table: its own clusters and each snapshot's L1 table. */
static dsc_err walk_snapshots(struct checker *c, const struct qcow2_header *h, struct dsc_error *e)
{
	uint64_t off = h->snapshots_offset, start = off;
	uint32_t k;
	dsc_err rc;

	if (h->nb_snapshots > QCOW2_MAX_SNAPSHOTS)
		return dsc_error_set(e, DSC_ERR_LIMIT, 0,
				     "%s: %" PRIu32 " snapshots exceed the limit of %u", c->name,
				     h->nb_snapshots, QCOW2_MAX_SNAPSHOTS);
	for (k = 0; k < h->nb_snapshots; k++) {
		uint8_t sh[40];
		uint64_t l1, len;
		uint32_t l1_size, extra;

		if (off >= c->file_size || c->file_size - off < sizeof sh) {
			problem(c, false,
				"the snapshot table at offset %" PRIu64 " runs past the "
				"end of the file",
				start);
			return DSC_OK;
		}
		rc = read_at(c, off, sh, sizeof sh, "snapshot table", e);
		if (rc != DSC_OK)
			return rc;
		l1 = dscp_be64(sh);
		l1_size = dscp_be32(sh + 8);
		extra = dscp_be32(sh + 36);
		if ((uint64_t)l1_size * 8 > QCOW2_MAX_L1_BYTES || extra > QCOW2_MAX_SNAPSHOT_EXTRA)
			return dsc_error_set(e, DSC_ERR_LIMIT, 0,
					     "%s: snapshot %" PRIu32
					     " has an L1 table or extra data "
					     "beyond dsc's limits",
					     c->name, k + 1);
		/* Entries start 8-aligned; the table ends with the last one
		 * (no padding after it, as qemu writes and counts it). */
		len = sizeof sh + extra + dscp_be16(sh + 12) + dscp_be16(sh + 14);
		off += len;
		if (k + 1 < h->nb_snapshots)
			off = (off + 7) & ~7ull;
		rc = walk_l1(c, l1, l1_size, false, e);
		if (rc != DSC_OK)
			return rc;
	}
	use_range(c, start, off - start, true, "the snapshot table");
	return DSC_OK;
}

/* The stored refcount of the cluster at host offset `off` (c->use holds
 * them by now; 0 past the end of the file, as qemu reads it there), or
 * UINT64_MAX when `off` names no cluster (0, or not aligned). */
static uint64_t stored_ref(const struct checker *c, uint64_t off)
{
	if (!off || (off & (c->cs - 1)))
		return UINT64_MAX;
	return (off >> c->cbits) < c->nclusters ? c->use[off >> c->cbits] : 0;
}

/* The COPIED flag (bit 63) of the image's L1 and L2 entries says the
 * cluster's refcount is exactly 1 (it may be written in place): a flag
 * that disagrees with the refcount is a corruption, as qemu-img check
 * counts it. Each L2 table once, as in walk_l1. */
static dsc_err check_copied(struct checker *c, uint64_t off, uint64_t n, struct dsc_error *e)
{
	uint8_t *l1;
	uint64_t i, j, ref;
	dsc_err rc;

	if (off >= c->file_size || n * 8 > c->file_size - off)
		return DSC_OK; /* reported by walk_l1 */
	if (!(l1 = calloc(n ? n : 1, 8)))
		return dsc_error_set(e, DSC_ERR_NOMEM, ENOMEM, "%s: out of memory", c->name);
	rc = read_at(c, off, l1, n * 8, "L1 table", e);
	for (i = 0; rc == DSC_OK && i < n; i++) {
		uint64_t ent = dscp_be64(l1 + 8 * i), l2 = ent & QCOW2_L1_OFFSET_MASK;

		ref = stored_ref(c, l2);
		if (ref == UINT64_MAX)
			continue;
		if ((ref == 1) != !!(ent & QCOW2_OFLAG_COPIED))
			problem(c, false,
				"OFLAG_COPIED L2 cluster: l1_index=%" PRIu64 " l1_entry=%" PRIx64
				" refcount=%" PRIu64,
				i, ent, ref);
		if (!seen_mark(c, l2))
			continue; /* past the end (reported), or walked */
		rc = read_at(c, l2, c->buf, c->cs, "L2 table", e);
		for (j = 0; rc == DSC_OK && j < c->cs / c->esz; j++) {
			uint64_t l2e = dscp_be64(c->buf + j * c->esz);

			if (l2e & QCOW2_OFLAG_COMPRESSED)
				continue;
			ref = stored_ref(c, l2e & QCOW2_L2_OFFSET_MASK);
			if (ref != UINT64_MAX && (ref == 1) != !!(l2e & QCOW2_OFLAG_COPIED))
				problem(c, false,
					"OFLAG_COPIED data cluster: l2_entry=%" PRIx64
					" refcount=%" PRIu64,
					l2e, ref);
		}
	}
	seen_reset(c, l1, n);
	free(l1);
	return rc;
}

/* Refcount `i` of a block of `bits`-bit big-endian entries. */
static uint64_t refcount_at(const uint8_t *blk, uint64_t i, unsigned order)
{
	unsigned bits = 1u << order;

	switch (bits) {
	case 64: return dscp_be64(blk + 8 * i);
	case 32: return dscp_be32(blk + 4 * i);
	case 16: return dscp_be16(blk + 2 * i);
	case 8: return blk[i];
	default: /* 1, 2, 4: within a byte, from its low bits */
		return (uint64_t)(blk[i * bits / 8] >> (i * bits % 8)) & ((1u << bits) - 1);
	}
}

dsc_err dscp_qcow2_check(dsc_stream *in, uint64_t base, uint64_t file_size,
			 const struct qcow2_header *h, bool has_bitmaps,
			 struct dsc_check_report *rep, struct dsc_error *e)
{
	struct checker c = {.in = in, .name = dsc_stream_name(in), .base = base, .rep = rep};
	uint64_t rt_n, per_block, i, cur_block = UINT64_MAX;
	uint8_t *rt = NULL, *blk = NULL;
	dsc_err rc = DSC_OK;

	if (has_bitmaps)
		return dsc_error_set(e, DSC_ERR_UNSUPPORTED, 0,
				     "%s: has persistent dirty bitmaps; dsc does not check the "
				     "refcounts of their clusters",
				     c.name);
	if (file_size == UINT64_MAX)
		return dsc_error_set(e, DSC_ERR_UNSUPPORTED, 0,
				     "%s: the file's size is unknown; its refcounts cannot be "
				     "checked",
				     c.name);
	c.file_size = file_size;
	c.cbits = h->cluster_bits;
	c.cs = (size_t)1 << c.cbits;
	c.nclusters = (file_size + c.cs - 1) >> c.cbits;
	if (c.nclusters > QCOW2_MAX_CHECK_CLUSTERS)
		return dsc_error_set(e, DSC_ERR_LIMIT, 0,
				     "%s: %" PRIu64 " host clusters exceed the limit of %u for a "
				     "refcount check",
				     c.name, c.nclusters, QCOW2_MAX_CHECK_CLUSTERS);
	c.esz = (h->incompatible & QCOW2_INCOMPAT_EXTL2) ? 16 : 8;
	c.comp_bits = 62 - (c.cbits - 8);
	c.comp_off_mask = (1ull << c.comp_bits) - 1;
	c.comp_nsect_mask = (1ull << (c.cbits - 8)) - 1;
	rt_n = ((uint64_t)h->refcount_table_clusters << c.cbits) / 8;
	c.use = calloc(c.nclusters ? c.nclusters : 1, sizeof *c.use);
	c.seen = calloc(c.nclusters / 8 + 1, 1);
	c.buf = malloc(c.cs);
	blk = malloc(c.cs);
	rt = malloc(rt_n ? rt_n * 8 : 1);
	if (!c.use || !c.seen || !c.buf || !blk || !rt) {
		rc = dsc_error_set(e, DSC_ERR_NOMEM, ENOMEM, "%s: out of memory", c.name);
		goto out;
	}
	rep->total_clusters = (h->size + c.cs - 1) >> c.cbits;

	use_range(&c, 0, c.cs, true, "the header");
	rc = walk_l1(&c, h->l1_table_offset, h->l1_size, true, e);
	if (rc == DSC_OK && h->nb_snapshots)
		rc = walk_snapshots(&c, h, e);
	if (rc != DSC_OK)
		goto out;
	if (use_range(&c, h->refcount_table_offset, rt_n * 8, true, "the refcount table")) {
		rc = read_at(&c, h->refcount_table_offset, rt, rt_n * 8, "refcount table", e);
		if (rc != DSC_OK)
			goto out;
	} else
		rt_n = 0;
	for (i = 0; i < rt_n; i++) {
		uint64_t b = dscp_be64(rt + 8 * i) & QCOW2_L1_OFFSET_MASK;

		if (b && !use_range(&c, b, c.cs, true, "a refcount block"))
			dscp_put64(rt + 8 * i, 0); /* not read below */
	}

	/* The stored refcounts against the counts. */
	per_block = ((uint64_t)c.cs * 8) >> h->refcount_order;
	for (i = 0; i < c.nclusters; i++) {
		uint64_t bi = i / per_block, ref = 0, used = c.use[i];

		if (bi < rt_n && (dscp_be64(rt + 8 * bi) & QCOW2_L1_OFFSET_MASK)) {
			if (bi != cur_block) {
				rc = read_at(&c, dscp_be64(rt + 8 * bi) & QCOW2_L1_OFFSET_MASK, blk,
					     c.cs, "refcount block", e);
				if (rc != DSC_OK)
					goto out;
				cur_block = bi;
			}
			ref = refcount_at(blk, i % per_block, h->refcount_order);
		}
		/* The stored refcount replaces the count, for check_copied. */
		c.use[i] = ref >= UINT16_MAX ? UINT16_MAX : (uint16_t)ref;
		if (ref == used || (used == UINT16_MAX && ref >= used))
			continue;
		if (ref < used)
			problem(&c, false,
				"cluster %" PRIu64 " refcount=%" PRIu64 " reference=%" PRIu64, i,
				ref, used);
		else if (!used)
			problem(&c, true,
				"leaked cluster %" PRIu64 " refcount=%" PRIu64 " reference=0", i,
				ref);
		else
			problem(&c, true,
				"cluster %" PRIu64 " refcount=%" PRIu64 " reference=%" PRIu64, i,
				ref, used);
	}
	rc = check_copied(&c, h->l1_table_offset, h->l1_size, e);
	if (rc != DSC_OK)
		goto out;
	rep->image_end_offset = c.top << c.cbits;
out:
	free(c.use);
	free(c.seen);
	free(c.buf);
	free(blk);
	free(rt);
	return rc;
}
