/* qcow2_write.c - the qcow2 writer: v3 (compat=1.1) or v2, plain or
 * compressed clusters, to a regular file or, in two passes, to a pipe.
 *
 * Extents arrive in ascending guest order and are gathered into one
 * cluster; an all-zero cluster stays unallocated. The file is laid out in
 * guest order so that it streams into a forward reader (facts §1, "Forward
 * qcow2 writer"):
 *
 *   seekable output: header | L1 (when the capacity is known) | for each
 *   L2 range: its L2 table, then its data clusters | L1 (capacity unknown)
 *   | refcount table | refcount blocks.
 *   The header, the L1 and each L2 table (written when its range is
 *   complete) are written by seeking back.
 *
 *   pipe (w->needs_plan): a first pass (plan) records which clusters hold
 *   data in a bitmap; every offset follows from it, and the second pass
 *   writes header | L1 | refcount table | refcount blocks | (L2, data)...
 *   strictly forward.
 *
 * With -c each cluster is compressed on the codec thread pool and written
 * in order, packed byte by byte into host clusters as qemu does: raw
 * deflate by libdeflate (level 5 by default; -level 1..3 ISA-L's stateless
 * deflate, faster still), or zlib with qemu's own settings (window 12,
 * level 6) in a build without libdeflate; or one zstd frame per cluster
 * (compression_type=zstd, level 3 like qemu). qemu inflates a cluster in
 * one call into a cluster-sized buffer, where back-references reach as
 * far as the output does whatever its windowBits -12 says, so streams with
 * 32 KiB matches read back in qemu (and are ~7% smaller than zlib's at a
 * 4 KiB window). A cluster whose
 * compressed form does not fit in cluster_size - 1 bytes is stored as a
 * plain cluster (qemu's rule). A host cluster shared by N compressed
 * clusters has refcount N (one byte per host cluster remembers them, up to
 * QCOW2_MAX_REFCOUNT_MEM; a new host cluster is started before a count
 * would pass what refcount_bits holds); every other cluster has refcount 1.
 * A new L2 range closes the partly filled host cluster so that its L2
 * table still precedes its data.
 *
 * The virtual size is the capacity rounded up to 512 bytes, as qemu-img
 * convert does. Memory is one L2 table, one cluster, the L1 (at most
 * QCOW2_MAX_L1_BYTES), the pool, and the plan bitmap (QCOW2_MAX_PLAN_BYTES)
 * or the -c refcounts.
 */
#include "qcow2.h"
#include "codec.h"
#include "pool.h"

#include <zlib.h>
#ifdef HAVE_LIBDEFLATE
#include <libdeflate.h>
#endif
#ifdef HAVE_ISAL
#include <isa-l/igzip_lib.h>
#endif
#ifdef HAVE_ZSTD
#include <zstd.h>
#endif

#define NONE UINT64_MAX

struct qcow2_writer {
	uint32_t version;
	uint32_t cluster_bits;
	uint32_t refcount_order;
	uint8_t ctype;
	uint64_t cs;     /* cluster size */
	uint64_t l2e;    /* entries of one L2 table */
	uint64_t rpb;    /* refcounts in one refcount block */
	unsigned refcap; /* the largest refcount -c gives a host cluster */
	bool size_known; /* the capacity was given at open */
	uint64_t size;   /* virtual size (a multiple of 512) when known */
	uint64_t base;   /* stream offset of the header */
	bool compress;
	int level;      /* zlib's or zstd's */
	int isal_level; /* ISA-L's 1..3 for -level 1..3, else -1 */
	bool plan_mode; /* the output cannot seek: two passes */

	uint64_t *l1; /* host offsets | COPIED */
	uint64_t l1_len, l1_cap;
	uint64_t l1_at; /* 0: written at the end */
	uint64_t l1c;   /* its clusters */

	uint64_t *l2; /* the current table */
	uint64_t l2_idx, l2_at;
	uint64_t end; /* the next free host byte */

	uint8_t *buf;  /* the cluster being gathered (plain mode) */
	uint8_t *meta; /* one cluster for encoding tables */
	uint64_t cur;  /* guest cluster being gathered, NONE when none */
	bool dirty;

	struct dscp_pool *pool;
	struct dscp_slot *slot;
	uint8_t *refs; /* -c: refcount of each host cluster */
	uint64_t refs_len, refs_cap;

	/* Two passes. */
	uint8_t *bitmap; /* guest clusters holding data */
	uint64_t bm_len; /* bytes */
	uint64_t rt_at, rtc, rb_at, rbc, nclusters;
	uint64_t emit_idx; /* next guest cluster the second pass emits */
	uint64_t emit_l2;  /* range whose L2 was written last */
	uint64_t emit_host;
	bool head_written;
};

static const char *wname(dsc_writer *w) { return dsc_stream_name(w->out); }

static dsc_err nomem(dsc_writer *w, struct dsc_error *e)
{
	return dsc_error_set(e, DSC_ERR_NOMEM, ENOMEM, "%s: out of memory", wname(w));
}

static uint64_t round_up(uint64_t v, uint64_t to) { return (v + to - 1) / to * to; }

/* L1 entries for a virtual size. */
static uint64_t l1_entries(const struct qcow2_writer *q, uint64_t size)
{
	uint64_t range = q->cs * q->l2e;

	return (size + range - 1) / range;
}

/* ---- output ------------------------------------------------------------- */

static dsc_err write_at(dsc_writer *w, uint64_t off, const void *p, size_t n, struct dsc_error *e)
{
	struct qcow2_writer *q = w->impl;
	dsc_err rc;

	if (dsc_stream_tell(w->out) != q->base + off) {
		rc = dsc_stream_seek(w->out, q->base + off, e);
		if (rc != DSC_OK)
			return rc;
	}
	return dsc_write_all(w->out, p, n, e);
}

/* The header (facts §1): 72 bytes for v2, 112 for v3 like qemu, then
 * the end-of-extensions marker (zeros, already there). */
static void encode_header(const struct qcow2_writer *q, uint8_t *h, uint64_t l1_size,
			  uint64_t rt_at, uint64_t rtc)
{
	memset(h, 0, (size_t)q->cs);
	qcow2_put_be32(h, QCOW2_MAGIC);
	qcow2_put_be32(h + 4, q->version);
	qcow2_put_be32(h + 20, q->cluster_bits);
	qcow2_put_be64(h + 24, q->size);
	qcow2_put_be32(h + 32, QCOW2_CRYPT_NONE);
	qcow2_put_be32(h + 36, (uint32_t)l1_size);
	qcow2_put_be64(h + 40, q->l1_at);
	qcow2_put_be64(h + 48, rt_at);
	qcow2_put_be32(h + 56, (uint32_t)rtc);
	if (q->version >= 3) {
		qcow2_put_be64(h + 72, q->ctype ? QCOW2_INCOMPAT_COMPRESSION : 0);
		qcow2_put_be32(h + 96, q->refcount_order);
		qcow2_put_be32(h + 100, QCOW2_WRITE_HEADER_LEN);
		h[104] = q->ctype;
	}
}

/* Refcount entry i of a block (qemu's get/set_refcount_roN: sub-byte
 * widths fill each byte from bit 0, wider ones are big-endian). */
static void refblock_set(const struct qcow2_writer *q, uint8_t *b, uint64_t i, uint64_t v)
{
	unsigned bits = 1u << q->refcount_order;

	if (bits < 8)
		b[i * bits / 8] |= (uint8_t)(v << (i * bits % 8));
	else if (bits == 8)
		b[i] = (uint8_t)v;
	else if (bits == 16)
		b[2 * i] = (uint8_t)(v >> 8), b[2 * i + 1] = (uint8_t)v;
	else if (bits == 32)
		qcow2_put_be32(b + 4 * i, (uint32_t)v);
	else
		qcow2_put_be64(b + 8 * i, v);
}

static uint64_t refcount_of(const struct qcow2_writer *q, uint64_t c)
{
	return q->refs && c < q->refs_len ? q->refs[c] : 1;
}

/* The refcount structures for `before` clusters of other data: blocks
 * cover the table and themselves, so iterate to the fixed point. */
static void refcount_layout(const struct qcow2_writer *q, uint64_t before, uint64_t *rtc,
			    uint64_t *rbc)
{
	uint64_t t = 1, b = 1, nt, nb;

	for (;;) {
		nb = (before + t + b + q->rpb - 1) / q->rpb;
		nt = (nb * 8 + q->cs - 1) / q->cs;
		if (nb == b && nt == t)
			break;
		b = nb;
		t = nt;
	}
	*rtc = t;
	*rbc = b;
}

/* Write the refcount table at rt_at and the blocks at rb_at, counting
 * clusters [0, n). */
static dsc_err write_refcounts(dsc_writer *w, uint64_t rt_at, uint64_t rtc, uint64_t rb_at,
			       uint64_t rbc, uint64_t n, struct dsc_error *e)
{
	struct qcow2_writer *q = w->impl;
	uint64_t per = q->cs / 8, i, j, c;
	dsc_err rc;

	if (rtc * q->cs > QCOW2_MAX_REFTABLE_BYTES)
		return dsc_error_set(e, DSC_ERR_LIMIT, 0,
				     "%s: the refcount table would exceed qemu's %u bytes",
				     wname(w), QCOW2_MAX_REFTABLE_BYTES);
	for (i = 0; i < rtc; i++) {
		memset(q->meta, 0, (size_t)q->cs);
		for (j = 0; j < per && i * per + j < rbc; j++)
			qcow2_put_be64(q->meta + 8 * j, rb_at + (i * per + j) * q->cs);
		rc = write_at(w, rt_at + i * q->cs, q->meta, (size_t)q->cs, e);
		if (rc != DSC_OK)
			return rc;
	}
	for (i = 0; i < rbc; i++) {
		memset(q->meta, 0, (size_t)q->cs);
		for (j = 0; j < q->rpb && (c = i * q->rpb + j) < n; j++)
			refblock_set(q, q->meta, j, refcount_of(q, c));
		rc = write_at(w, rb_at + i * q->cs, q->meta, (size_t)q->cs, e);
		if (rc != DSC_OK)
			return rc;
	}
	return DSC_OK;
}

static dsc_err write_l1(dsc_writer *w, uint64_t l1_size, struct dsc_error *e)
{
	struct qcow2_writer *q = w->impl;
	uint64_t per = q->cs / 8, i, j;
	dsc_err rc;

	for (i = 0; i < q->l1c; i++) {
		memset(q->meta, 0, (size_t)q->cs);
		for (j = 0; j < per && i * per + j < l1_size; j++)
			qcow2_put_be64(q->meta + 8 * j,
				       i * per + j < q->l1_len ? q->l1[i * per + j] : 0);
		rc = write_at(w, q->l1_at + i * q->cs, q->meta, (size_t)q->cs, e);
		if (rc != DSC_OK)
			return rc;
	}
	return DSC_OK;
}

/* ---- host clusters and tables (seekable output) ------------------------- */

/* -c: note one more reference to host cluster c (0 -> 1 for metadata). */
static dsc_err ref_add(dsc_writer *w, uint64_t c, struct dsc_error *e)
{
	struct qcow2_writer *q = w->impl;
	uint64_t ncap;
	uint8_t *p;

	if (!q->compress)
		return DSC_OK;
	if (c >= q->refs_cap) {
		ncap = q->refs_cap ? q->refs_cap : 4096;
		while (ncap <= c)
			ncap *= 2;
		if (ncap > QCOW2_MAX_REFCOUNT_MEM)
			ncap = QCOW2_MAX_REFCOUNT_MEM;
		if (c >= ncap)
			return dsc_error_set(e, DSC_ERR_LIMIT, 0,
					     "%s: compressed output beyond %llu host clusters "
					     "(the writer's limit on refcounts kept in memory)",
					     wname(w), (unsigned long long)QCOW2_MAX_REFCOUNT_MEM);
		p = realloc(q->refs, (size_t)ncap);
		if (!p)
			return nomem(w, e);
		memset(p + q->refs_cap, 0, (size_t)(ncap - q->refs_cap));
		q->refs = p;
		q->refs_cap = ncap;
	}
	q->refs[c]++;
	if (c >= q->refs_len)
		q->refs_len = c + 1;
	return DSC_OK;
}

/* A whole new host cluster; the partly filled one of -c is closed. */
static dsc_err alloc_cluster(dsc_writer *w, uint64_t *at, struct dsc_error *e)
{
	struct qcow2_writer *q = w->impl;

	q->end = round_up(q->end, q->cs);
	*at = q->end;
	q->end += q->cs;
	if (q->end > QCOW2_MAX_HOST_OFFSET)
		return dsc_error_set(e, DSC_ERR_LIMIT, 0,
				     "%s: the image would exceed qcow2's 2^56 byte host offsets",
				     wname(w));
	return ref_add(w, *at >> q->cluster_bits, e);
}

static dsc_err l1_grow(dsc_writer *w, uint64_t len, struct dsc_error *e)
{
	struct qcow2_writer *q = w->impl;
	uint64_t ncap;
	uint64_t *p;

	if (len <= q->l1_len)
		return DSC_OK;
	if (len * 8 > QCOW2_MAX_L1_BYTES)
		return dsc_error_set(e, DSC_ERR_LIMIT, 0,
				     "%s: the L1 table would exceed qemu's %u bytes; use a larger "
				     "cluster_size",
				     wname(w), QCOW2_MAX_L1_BYTES);
	if (len > q->l1_cap) {
		ncap = q->l1_cap ? q->l1_cap : 64;
		while (ncap < len)
			ncap *= 2;
		p = realloc(q->l1, (size_t)ncap * 8);
		if (!p)
			return nomem(w, e);
		q->l1 = p;
		q->l1_cap = ncap;
	}
	memset(q->l1 + q->l1_len, 0, (size_t)(len - q->l1_len) * 8);
	q->l1_len = len;
	return DSC_OK;
}

/* Write the current L2 table in place and point the L1 at it. */
static dsc_err flush_l2(dsc_writer *w, struct dsc_error *e)
{
	struct qcow2_writer *q = w->impl;
	uint64_t i;
	dsc_err rc;

	if (q->l2_idx == NONE)
		return DSC_OK;
	for (i = 0; i < q->l2e; i++)
		qcow2_put_be64(q->meta + 8 * i, q->l2[i]);
	rc = write_at(w, q->l2_at, q->meta, (size_t)q->cs, e);
	if (rc != DSC_OK)
		return rc;
	q->l1[q->l2_idx] = q->l2_at | QCOW2_OFLAG_COPIED;
	q->l2_idx = NONE;
	return DSC_OK;
}

/* Guest cluster c is about to be written: its range's L2 table goes
 * right before the range's first data cluster. */
static dsc_err enter_range(dsc_writer *w, uint64_t c, struct dsc_error *e)
{
	struct qcow2_writer *q = w->impl;
	uint64_t k = c / q->l2e;
	dsc_err rc;

	if (k == q->l2_idx)
		return DSC_OK;
	rc = flush_l2(w, e);
	if (rc == DSC_OK)
		rc = l1_grow(w, k + 1, e);
	if (rc == DSC_OK)
		rc = alloc_cluster(w, &q->l2_at, e);
	if (rc != DSC_OK)
		return rc;
	memset(q->l2, 0, (size_t)q->cs);
	q->l2_idx = k;
	return DSC_OK;
}

static dsc_err put_plain(dsc_writer *w, uint64_t c, const uint8_t *data, struct dsc_error *e)
{
	struct qcow2_writer *q = w->impl;
	uint64_t at;
	dsc_err rc;

	rc = enter_range(w, c, e);
	if (rc == DSC_OK)
		rc = alloc_cluster(w, &at, e);
	if (rc == DSC_OK)
		rc = write_at(w, at, data, (size_t)q->cs, e);
	if (rc == DSC_OK)
		q->l2[c % q->l2e] = at | QCOW2_OFLAG_COPIED;
	return rc;
}

/* ---- compression -------------------------------------------------------- */

struct cctx {
	uint8_t ctype;
	int level;
	int isal_level;
	z_stream z;
	bool z_ready;
#ifdef HAVE_LIBDEFLATE
	struct libdeflate_compressor *ld;
#endif
#ifdef HAVE_ISAL
	struct isal_zstream is;
	uint8_t *isal_buf;
	uint32_t isal_buf_size;
#endif
#ifdef HAVE_ZSTD
	ZSTD_CCtx *zc;
#endif
};

static void *cctx_new(void *arg)
{
	const struct qcow2_writer *q = arg;
	struct cctx *c = calloc(1, sizeof *c);

	if (!c)
		return NULL;
	c->ctype = q->ctype;
	c->level = q->level;
	c->isal_level = q->isal_level;
#ifdef HAVE_ISAL
	if (c->ctype == QCOW2_COMPRESSION_DEFLATE && c->isal_level > 0) {
		static const uint32_t sizes[] = {ISAL_DEF_LVL0_DEFAULT, ISAL_DEF_LVL1_DEFAULT,
						 ISAL_DEF_LVL2_DEFAULT, ISAL_DEF_LVL3_DEFAULT};

		c->isal_buf_size = sizes[c->isal_level];
		c->isal_buf = malloc(c->isal_buf_size);
		if (c->isal_buf)
			return c;
		free(c);
		return NULL;
	}
#endif
	if (c->ctype == QCOW2_COMPRESSION_ZSTD) {
#ifdef HAVE_ZSTD
		c->zc = ZSTD_createCCtx();
		if (c->zc)
			return c;
#endif
		free(c);
		return NULL;
	}
#ifdef HAVE_LIBDEFLATE
	/* qemu inflates a cluster in one call into a cluster-sized buffer,
	 * where zlib takes back-references as far as the output reaches
	 * whatever windowBits says: libdeflate's 32 KiB matches decode there
	 * (checked by qemu-img compare in the tests). */
	c->ld = libdeflate_alloc_compressor(c->level);
	if (c->ld)
		return c;
	free(c);
	return NULL;
#endif
	/* qcow2-threads.c: raw deflate (no zlib header), windowBits -12,
	 * memLevel 9, qemu's level Z_DEFAULT_COMPRESSION. */
	if (deflateInit2(&c->z, c->level, Z_DEFLATED, -QCOW2_DEFLATE_WINDOW_BITS, 9,
			 Z_DEFAULT_STRATEGY) != Z_OK) {
		free(c);
		return NULL;
	}
	c->z_ready = true;
	return c;
}

static void cctx_free(void *ctx)
{
	struct cctx *c = ctx;

	if (!c)
		return;
	if (c->z_ready)
		deflateEnd(&c->z);
#ifdef HAVE_LIBDEFLATE
	libdeflate_free_compressor(c->ld);
#endif
#ifdef HAVE_ISAL
	free(c->isal_buf);
#endif
#ifdef HAVE_ZSTD
	ZSTD_freeCCtx(c->zc);
#endif
	free(c);
}

/* Worker thread: result = compressed bytes, 0 to store the cluster as it
 * is (qemu gives the codec cluster_size - 1 bytes of room and stores the
 * cluster uncompressed when that is not enough), -1 on failure. */
static void compress_job(void *ctx, struct dscp_slot *s)
{
	struct cctx *c = ctx;
	size_t room = s->in_len - 1;
	int ret;

	if (c->ctype == QCOW2_COMPRESSION_ZSTD) {
#ifdef HAVE_ZSTD
		size_t n = ZSTD_compressCCtx(c->zc, s->out, room, s->in, s->in_len, c->level);

		s->result = ZSTD_isError(n) ? 0 : (int)n;
#else
		s->result = -1;
#endif
		return;
	}
#ifdef HAVE_ISAL
	if (c->isal_buf) {
		/* Stateless raw deflate (its 32 KiB window decodes in qemu
		 * as libdeflate's does); the stateless API also falls back
		 * to stored blocks. */
		isal_deflate_stateless_init(&c->is);
		c->is.level = (uint32_t)c->isal_level;
		c->is.level_buf = c->isal_buf;
		c->is.level_buf_size = c->isal_buf_size;
		c->is.gzip_flag = IGZIP_DEFLATE;
		c->is.end_of_stream = 1;
		c->is.flush = NO_FLUSH;
		c->is.next_in = s->in;
		c->is.avail_in = (uint32_t)s->in_len;
		c->is.next_out = s->out;
		c->is.avail_out = (uint32_t)room;
		ret = isal_deflate_stateless(&c->is);
		s->result = ret == COMP_OK            ? (int)c->is.total_out :
			    ret == STATELESS_OVERFLOW ? 0 :
							-1;
		return;
	}
#endif
#ifdef HAVE_LIBDEFLATE
	if (c->ld) {
		/* 0 when it does not fit in `room`: stored plain. */
		s->result = (int)libdeflate_deflate_compress(c->ld, s->in, s->in_len, s->out, room);
		return;
	}
#endif
	if (deflateReset(&c->z) != Z_OK) {
		s->result = -1;
		return;
	}
	c->z.next_in = s->in;
	c->z.avail_in = (uInt)s->in_len;
	c->z.next_out = s->out;
	c->z.avail_out = (uInt)room;
	ret = deflate(&c->z, Z_FINISH);
	if (ret == Z_STREAM_END)
		s->result = (int)(room - c->z.avail_out);
	else
		s->result = ret == Z_OK || ret == Z_BUF_ERROR ? 0 : -1;
}

/* Write the oldest compressed cluster, packed after the previous one. */
static dsc_err write_oldest(dsc_writer *w, struct dsc_error *e)
{
	struct qcow2_writer *q = w->impl;
	struct dscp_slot *s = dscp_pool_collect(q->pool);
	uint64_t c = s->tag, at, first, last, k, x = 62 - (q->cluster_bits - 8), n;
	dsc_err rc;

	if (s->result < 0) {
		rc = dsc_error_set(e, DSC_ERR_IO, 0,
				   "%s: compression of the cluster at byte %llu failed", wname(w),
				   (unsigned long long)(c << q->cluster_bits));
		goto out;
	}
	rc = enter_range(w, c, e);
	if (rc != DSC_OK)
		goto out;
	if (s->result == 0) {
		rc = put_plain(w, c, s->in, e);
		goto out;
	}
	n = (uint64_t)s->result;
	/* A shared host cluster must not count past what refcount_bits
	 * holds: start a new one first. */
	if (q->end % q->cs && q->refs[q->end >> q->cluster_bits] >= q->refcap)
		q->end = round_up(q->end, q->cs);
	at = q->end;
	if (at + n > (1ull << x)) {
		rc = dsc_error_set(e, DSC_ERR_LIMIT, 0,
				   "%s: compressed data beyond the %llu bytes a compressed "
				   "descriptor addresses",
				   wname(w), (unsigned long long)(1ull << x));
		goto out;
	}
	first = at >> q->cluster_bits;
	last = (at + n - 1) >> q->cluster_bits;
	for (k = first; k <= last && rc == DSC_OK; k++)
		rc = ref_add(w, k, e);
	if (rc == DSC_OK)
		rc = write_at(w, at, s->out, (size_t)n, e);
	if (rc != DSC_OK)
		goto out;
	q->end = at + n;
	/* Facts §1: the sector count field holds the sectors touched - 1. */
	q->l2[c % q->l2e] = QCOW2_OFLAG_COMPRESSED | ((((at + n - 1) >> 9) - (at >> 9)) << x) | at;
out:
	dscp_pool_release(q->pool);
	return rc;
}

static dsc_err drain(dsc_writer *w, struct dsc_error *e)
{
	struct qcow2_writer *q = w->impl;
	dsc_err rc = DSC_OK;

	while (rc == DSC_OK && q->pool && dscp_pool_pending(q->pool))
		rc = write_oldest(w, e);
	return rc;
}

/* ---- the two-pass layout (pipe output) ---------------------------------- */

static bool planned(const struct qcow2_writer *q, uint64_t c)
{
	return c / 8 < q->bm_len && (q->bitmap[c / 8] >> (c % 8) & 1);
}

/* Guest clusters with data in L2 range k. */
static uint64_t range_count(const struct qcow2_writer *q, uint64_t k)
{
	uint64_t from = k * q->l2e / 8, to = DSC_MIN((k + 1) * q->l2e / 8, q->bm_len), n = 0, i;

	for (i = from; i < to; i++)
		n += (uint64_t)__builtin_popcount(q->bitmap[i]);
	return n;
}

static dsc_err emit_head(dsc_writer *w, struct dsc_error *e)
{
	struct qcow2_writer *q = w->impl;
	dsc_err rc;

	if (q->head_written)
		return DSC_OK;
	q->head_written = true;
	encode_header(q, q->meta, q->l1_len, q->rt_at, q->rtc);
	rc = dsc_write_all(w->out, q->meta, (size_t)q->cs, e);
	if (rc == DSC_OK)
		rc = write_l1(w, q->l1_len, e);
	if (rc == DSC_OK)
		rc = write_refcounts(w, q->rt_at, q->rtc, q->rb_at, q->rbc, q->nclusters, e);
	q->emit_host = q->rb_at + q->rbc * q->cs;
	return rc;
}

/* The second pass writes guest cluster c (with its range's L2 first). */
static dsc_err emit_cluster(dsc_writer *w, uint64_t c, const uint8_t *data, struct dsc_error *e)
{
	struct qcow2_writer *q = w->impl;
	uint64_t k = c / q->l2e, i, host;
	dsc_err rc;

	if (k != q->emit_l2) {
		host = (q->l1[k] & QCOW2_L1_OFFSET_MASK) + q->cs;
		memset(q->meta, 0, (size_t)q->cs);
		for (i = 0; i < q->l2e; i++)
			if (planned(q, k * q->l2e + i)) {
				qcow2_put_be64(q->meta + 8 * i, host | QCOW2_OFLAG_COPIED);
				host += q->cs;
			}
		rc = dsc_write_all(w->out, q->meta, (size_t)q->cs, e);
		if (rc != DSC_OK)
			return rc;
		q->emit_l2 = k;
		q->emit_host += q->cs;
	}
	q->emit_host += q->cs;
	return dsc_write_all(w->out, data, (size_t)q->cs, e);
}

/* Emit the planned clusters before guest cluster `to` that the second
 * pass did not bring (they read as zeros now). */
static dsc_err emit_upto(dsc_writer *w, uint64_t to, struct dsc_error *e)
{
	struct qcow2_writer *q = w->impl;
	dsc_err rc;

	while (q->emit_idx < to) {
		if (q->emit_idx / 8 >= q->bm_len) {
			q->emit_idx = to; /* nothing planned past the bitmap */
			break;
		}
		if (q->emit_idx % 8 == 0 && q->bitmap[q->emit_idx / 8] == 0 &&
		    to - q->emit_idx >= 8) {
			q->emit_idx += 8;
			continue;
		}
		if (planned(q, q->emit_idx)) {
			/* The L2 buffer is free in this mode: a zero cluster. */
			memset(q->l2, 0, (size_t)q->cs);
			rc = emit_cluster(w, q->emit_idx, (const uint8_t *)q->l2, e);
			if (rc != DSC_OK)
				return rc;
		}
		q->emit_idx++;
	}
	return DSC_OK;
}

static dsc_err qcow2_plan(dsc_writer *w, const struct dsc_extent *ext, struct dsc_error *e)
{
	struct qcow2_writer *q = w->impl;
	uint64_t off = ext->offset, c, need;
	const uint8_t *p = ext->data;
	size_t left = ext->length, n;
	uint8_t *nb;

	if (q->size_known && (off > q->size || left > q->size - off))
		return dsc_error_set(e, DSC_ERR_INVAL, 0,
				     "%s: data at byte %llu is past the capacity", wname(w),
				     (unsigned long long)off);
	while (left > 0) {
		c = off >> q->cluster_bits;
		n = (size_t)DSC_MIN((uint64_t)left, q->cs - (off & (q->cs - 1)));
		if (!planned(q, c) && !dscp_is_zero(p, n)) {
			need = c / 8 + 1;
			if (need > q->bm_len) {
				if (need > QCOW2_MAX_PLAN_BYTES)
					return dsc_error_set(
						e, DSC_ERR_LIMIT, 0,
						"%s: a qcow2 written to a pipe maps at most %llu "
						"clusters (%u bytes of plan); use a larger "
						"cluster_size or a regular file as output",
						wname(w),
						(unsigned long long)QCOW2_MAX_PLAN_BYTES * 8,
						QCOW2_MAX_PLAN_BYTES);
				need = DSC_MAX(need, DSC_MIN(2 * q->bm_len,
							     (uint64_t)QCOW2_MAX_PLAN_BYTES));
				nb = realloc(q->bitmap, (size_t)need);
				if (!nb)
					return nomem(w, e);
				memset(nb + q->bm_len, 0, (size_t)(need - q->bm_len));
				q->bitmap = nb;
				q->bm_len = need;
			}
			q->bitmap[c / 8] |= (uint8_t)(1u << (c % 8));
		}
		p += n;
		off += n;
		left -= n;
	}
	return DSC_OK;
}

static dsc_err qcow2_plan_done(dsc_writer *w, uint64_t capacity, uint64_t *file_size,
			       struct dsc_error *e)
{
	struct qcow2_writer *q = w->impl;
	uint64_t size, n1, k, cnt, data = 0, host;
	dsc_err rc;

	/* Checked before rounding, which would wrap just below 2^64. */
	if (capacity > QCOW2_MAX_VIRTUAL_SIZE)
		return dsc_error_set(e, DSC_ERR_LIMIT, 0, "%s: capacity of %llu bytes is too large",
				     wname(w), (unsigned long long)capacity);
	size = round_up(capacity, 512);
	if (q->size_known && size != q->size)
		return dsc_error_set(e, DSC_ERR_IO, 0,
				     "%s: the source's size changed during the first pass",
				     wname(w));
	q->size = size;
	n1 = l1_entries(q, size);
	rc = l1_grow(w, n1, e);
	if (rc != DSC_OK)
		return rc;
	for (k = 0; k < n1; k++) {
		cnt = range_count(q, k);
		data += cnt ? cnt + 1 : 0;
	}
	q->l1c = (n1 * 8 + q->cs - 1) / q->cs;
	refcount_layout(q, 1 + q->l1c + data, &q->rtc, &q->rbc);
	q->l1_at = q->l1c ? q->cs : 0; /* an empty image has none, as in qemu */
	q->rt_at = q->cs + q->l1c * q->cs;
	q->rb_at = q->rt_at + q->rtc * q->cs;
	q->nclusters = 1 + q->l1c + q->rtc + q->rbc + data;
	/* Before a byte is written (and a size announced). */
	if (q->rtc * q->cs > QCOW2_MAX_REFTABLE_BYTES)
		return dsc_error_set(e, DSC_ERR_LIMIT, 0,
				     "%s: the refcount table would exceed qemu's %u bytes; use a "
				     "larger cluster_size or fewer refcount_bits",
				     wname(w), QCOW2_MAX_REFTABLE_BYTES);
	if (q->nclusters > QCOW2_MAX_HOST_OFFSET >> q->cluster_bits)
		return dsc_error_set(e, DSC_ERR_LIMIT, 0,
				     "%s: the image would exceed qcow2's 2^56 byte host offsets",
				     wname(w));
	host = q->rb_at + q->rbc * q->cs;
	for (k = 0; k < n1; k++) {
		cnt = range_count(q, k);
		if (!cnt)
			continue;
		q->l1[k] = host | QCOW2_OFLAG_COPIED;
		host += (cnt + 1) * q->cs;
	}
	q->emit_l2 = NONE;
	*file_size = q->nclusters * q->cs;
	return DSC_OK;
}

/* ---- put and finish ----------------------------------------------------- */

static uint8_t *cur_buf(struct qcow2_writer *q) { return q->pool ? q->slot->in : q->buf; }

/* The gathered cluster is complete. */
static dsc_err flush_cluster(dsc_writer *w, struct dsc_error *e)
{
	struct qcow2_writer *q = w->impl;
	uint64_t c = q->cur;
	bool zero;
	dsc_err rc = DSC_OK;

	if (c == NONE)
		return DSC_OK;
	zero = !q->dirty || dscp_is_zero(cur_buf(q), (size_t)q->cs);
	q->cur = NONE;
	q->dirty = false;
	if (q->plan_mode) {
		rc = emit_upto(w, c, e);
		if (rc != DSC_OK)
			return rc;
		if (planned(q, c)) {
			q->emit_idx = c + 1;
			return emit_cluster(w, c, q->buf, e);
		}
		if (!zero)
			return dsc_error_set(e, DSC_ERR_IO, 0,
					     "%s: the source changed between the two passes "
					     "(data at byte %llu)",
					     wname(w), (unsigned long long)(c << q->cluster_bits));
		return DSC_OK;
	}
	if (zero)
		return DSC_OK;
	if (!q->pool)
		return put_plain(w, c, q->buf, e);
	q->slot->tag = c;
	q->slot->in_len = (size_t)q->cs;
	dscp_pool_submit(q->pool);
	q->slot = NULL;
	return rc;
}

/* Start gathering guest cluster c. */
static dsc_err start_cluster(dsc_writer *w, uint64_t c, struct dsc_error *e)
{
	struct qcow2_writer *q = w->impl;
	dsc_err rc;

	while (q->pool && !q->slot) {
		q->slot = dscp_pool_head(q->pool);
		if (q->slot)
			break;
		rc = write_oldest(w, e);
		if (rc != DSC_OK)
			return rc;
	}
	memset(cur_buf(q), 0, (size_t)q->cs);
	q->cur = c;
	return DSC_OK;
}

static dsc_err qcow2_put(dsc_writer *w, const struct dsc_extent *ext, struct dsc_error *e)
{
	struct qcow2_writer *q = w->impl;
	uint64_t off = ext->offset, c, in;
	const uint8_t *p = ext->data;
	size_t left = ext->length, n;
	dsc_err rc;

	if ((q->size_known || q->plan_mode) && (off > q->size || left > q->size - off))
		return dsc_error_set(e, DSC_ERR_INVAL, 0,
				     "%s: data at byte %llu is past the capacity", wname(w),
				     (unsigned long long)off);
	if (q->plan_mode) {
		rc = emit_head(w, e);
		if (rc != DSC_OK)
			return rc;
	}
	while (left > 0) {
		c = off >> q->cluster_bits;
		if (c != q->cur) {
			if (q->cur != NONE && c < q->cur)
				return dsc_error_set(e, DSC_ERR_UNSUPPORTED, 0,
						     "%s: data for byte %llu arrives after byte "
						     "%llu: the qcow2 writer needs the input in "
						     "ascending order",
						     wname(w), (unsigned long long)off,
						     (unsigned long long)(q->cur
									  << q->cluster_bits));
			rc = flush_cluster(w, e);
			if (rc == DSC_OK)
				rc = start_cluster(w, c, e);
			if (rc != DSC_OK)
				return rc;
		}
		in = off & (q->cs - 1);
		n = (size_t)DSC_MIN((uint64_t)left, q->cs - in);
		memcpy(cur_buf(q) + in, p, n);
		q->dirty = true;
		p += n;
		off += n;
		left -= n;
	}
	return DSC_OK;
}

static dsc_err finish_planned(dsc_writer *w, struct dsc_error *e)
{
	struct qcow2_writer *q = w->impl;
	dsc_err rc;

	rc = emit_head(w, e);
	if (rc == DSC_OK)
		rc = flush_cluster(w, e);
	if (rc == DSC_OK)
		rc = emit_upto(w, (q->size + q->cs - 1) >> q->cluster_bits, e);
	if (rc != DSC_OK)
		return rc;
	if (q->emit_host != q->nclusters * q->cs)
		return dsc_error_set(e, DSC_ERR_IO, 0,
				     "%s: the second pass wrote %llu bytes, the plan said %llu",
				     wname(w), (unsigned long long)q->emit_host,
				     (unsigned long long)(q->nclusters * q->cs));
	w->file_size = q->nclusters * q->cs;
	return DSC_OK;
}

static dsc_err finish_seekable(dsc_writer *w, struct dsc_error *e)
{
	struct qcow2_writer *q = w->impl;
	uint64_t n1 = l1_entries(q, q->size), m, rtc, rbc, rt_at, rb_at, k;
	dsc_err rc;

	rc = flush_cluster(w, e);
	if (rc == DSC_OK)
		rc = drain(w, e);
	if (rc == DSC_OK)
		rc = flush_l2(w, e);
	if (rc != DSC_OK)
		return rc;
	if (q->l1_len > n1) {
		for (k = n1; k < q->l1_len; k++)
			if (q->l1[k])
				return dsc_error_set(e, DSC_ERR_INVAL, 0,
						     "%s: data past the capacity", wname(w));
		q->l1_len = n1;
	}
	rc = l1_grow(w, n1, e);
	if (rc != DSC_OK)
		return rc;
	q->end = round_up(q->end, q->cs);
	if (!q->size_known) {
		/* The capacity is known only now: the L1 goes at the end. */
		q->l1c = (n1 * 8 + q->cs - 1) / q->cs;
		q->l1_at = q->l1c ? q->end : 0;
		for (k = 0; k < q->l1c && rc == DSC_OK; k++)
			rc = alloc_cluster(w, &m, e);
		if (rc != DSC_OK)
			return rc;
	}
	m = q->end >> q->cluster_bits;
	refcount_layout(q, m, &rtc, &rbc);
	rt_at = q->end;
	rb_at = rt_at + rtc * q->cs;
	q->end = rb_at + rbc * q->cs;
	if (q->end > QCOW2_MAX_HOST_OFFSET)
		return dsc_error_set(e, DSC_ERR_LIMIT, 0,
				     "%s: the image would exceed qcow2's 2^56 byte host offsets",
				     wname(w));
	rc = write_l1(w, n1, e);
	if (rc == DSC_OK)
		rc = write_refcounts(w, rt_at, rtc, rb_at, rbc, m + rtc + rbc, e);
	if (rc != DSC_OK)
		return rc;
	encode_header(q, q->meta, n1, rt_at, rtc);
	rc = write_at(w, 0, q->meta, (size_t)q->cs, e);
	if (rc == DSC_OK)
		rc = dsc_stream_seek(w->out, q->base + q->end, e);
	w->file_size = q->end;
	return rc;
}

static dsc_err qcow2_finish(dsc_writer *w, uint64_t capacity, struct dsc_error *e)
{
	struct qcow2_writer *q = w->impl;
	/* qemu needs a whole number of sectors (qemu-img convert rounds the
	 * same way). */
	uint64_t size = round_up(DSC_MIN(capacity, QCOW2_MAX_VIRTUAL_SIZE + 1), 512);
	dsc_err rc;

	if (capacity > QCOW2_MAX_VIRTUAL_SIZE)
		return dsc_error_set(e, DSC_ERR_LIMIT, 0, "%s: capacity of %llu bytes is too large",
				     wname(w), (unsigned long long)capacity);
	if ((q->size_known || q->plan_mode) && size != q->size)
		return dsc_error_set(e, DSC_ERR_IO, 0,
				     "%s: the source's size changed during the conversion "
				     "(%llu bytes, announced %llu)",
				     wname(w), (unsigned long long)capacity,
				     (unsigned long long)q->size);
	if (q->cur != NONE && q->dirty && q->cur << q->cluster_bits >= size)
		return dsc_error_set(e, DSC_ERR_INVAL, 0, "%s: data past the capacity", wname(w));
	q->size = size;
	rc = q->plan_mode ? finish_planned(w, e) : finish_seekable(w, e);
	if (rc != DSC_OK)
		return rc;
	w->image_size = size;
	return dsc_stream_finish(w->out, e);
}

/* ---- open and close ----------------------------------------------------- */

static dsc_err bad_option(dsc_writer *w, const char *opt, const char *why, struct dsc_error *e)
{
	return dsc_error_set(e, DSC_ERR_INVAL, 0, "%s: option %s: %s", wname(w), opt, why);
}

static dsc_err qcow2_wopen(dsc_writer *w, struct dsc_error *e)
{
	struct qcow2_writer *q = w->impl;
	const struct dsc_writer_opts *o = &w->opts;
	const char *compat = dscp_writer_option(w, "compat");
	const char *ctype = dscp_writer_option(w, "compression_type");
	uint64_t cs = dscp_writer_option_uint(w, "cluster_size");
	uint64_t rbits = dscp_writer_option_uint(w, "refcount_bits");
	unsigned threads;
	uint64_t k;
	dsc_err rc;

	q->version = !strcmp(compat, "0.10") || !strcmp(compat, "v2") ? 2 : 3;
	if (cs < 512 || cs > (1u << QCOW2_MAX_CLUSTER_BITS) || (cs & (cs - 1)))
		return dsc_error_set(e, DSC_ERR_INVAL, 0,
				     "%s: option cluster_size: %llu is not a power of two from "
				     "512 to 2M",
				     wname(w), (unsigned long long)cs);
	if (rbits < 1 || rbits > 64 || (rbits & (rbits - 1)))
		return dsc_error_set(e, DSC_ERR_INVAL, 0,
				     "%s: option refcount_bits: %llu is not a power of two from 1 "
				     "to 64",
				     wname(w), (unsigned long long)rbits);
	if (q->version == 2 && rbits != 16)
		return bad_option(w, "refcount_bits",
				  "compat=0.10 (version 2) has 16-bit refcounts only", e);
	q->ctype = !strcmp(ctype, "zstd") ? QCOW2_COMPRESSION_ZSTD : QCOW2_COMPRESSION_DEFLATE;
	if (q->ctype == QCOW2_COMPRESSION_ZSTD && q->version == 2)
		return bad_option(w, "compression_type", "zstd needs compat=1.1 (version 3)", e);
#ifndef HAVE_ZSTD
	if (q->ctype == QCOW2_COMPRESSION_ZSTD)
		return dsc_error_set(e, DSC_ERR_UNSUPPORTED, 0,
				     "%s: compression_type=zstd: built without libzstd", wname(w));
#endif
	q->plan_mode = !(dsc_stream_caps(w->out) & DSC_STREAM_SEEK);
	if (o->compress && q->plan_mode)
		return dsc_error_set(e, DSC_ERR_SEEK, 0,
				     "%s: compressed qcow2 output needs a seekable output (a "
				     "regular file)",
				     wname(w));
	if (o->level < 0 || o->level > DSCP_LEVEL_MAX)
		return dsc_error_set(e, DSC_ERR_INVAL, 0, "%s: compression level %d (1 to %d)",
				     wname(w), o->level, DSCP_LEVEL_MAX);
	for (q->cluster_bits = 9; (1ull << q->cluster_bits) < cs; q->cluster_bits++)
		;
	for (q->refcount_order = 0; (1ull << q->refcount_order) < rbits; q->refcount_order++)
		;
	q->cs = cs;
	q->l2e = cs / 8;
	q->rpb = cs * 8 / rbits;
	q->refcap = rbits >= 8 ? 255u : (1u << rbits) - 1;
	q->cur = NONE;
	q->l2_idx = NONE;
	q->emit_l2 = NONE;
	q->size_known = o->capacity != DSC_CAPACITY_UNKNOWN;
	if (q->size_known) {
		q->size = round_up(DSC_MIN(o->capacity, QCOW2_MAX_VIRTUAL_SIZE + 1), 512);
		if (o->capacity > QCOW2_MAX_VIRTUAL_SIZE)
			return dsc_error_set(e, DSC_ERR_LIMIT, 0,
					     "%s: capacity of %llu bytes is too large", wname(w),
					     (unsigned long long)o->capacity);
		if (l1_entries(q, q->size) * 8 > QCOW2_MAX_L1_BYTES)
			return dsc_error_set(e, DSC_ERR_LIMIT, 0,
					     "%s: the L1 table would exceed qemu's %u bytes; use a "
					     "larger cluster_size",
					     wname(w), QCOW2_MAX_L1_BYTES);
	}
	q->buf = malloc((size_t)cs);
	q->meta = malloc((size_t)cs);
	q->l2 = malloc((size_t)cs);
	if (!q->buf || !q->meta || !q->l2)
		return nomem(w, e);
	q->base = dsc_stream_tell(w->out);
	if (q->plan_mode) {
		w->needs_plan = true;
		return DSC_OK;
	}
	if (o->compress) {
		q->compress = true;
#ifdef HAVE_LIBDEFLATE
		q->level = q->ctype == QCOW2_COMPRESSION_ZSTD ?
				   (o->level ? o->level : QCOW2_ZSTD_LEVEL) :
				   (o->level ? o->level : DSCP_LEVEL_DEFAULT_LIBDEFLATE);
#else
		q->level = q->ctype == QCOW2_COMPRESSION_ZSTD ?
				   (o->level ? o->level : QCOW2_ZSTD_LEVEL) :
				   (o->level ? DSC_MIN(o->level, 9) : Z_DEFAULT_COMPRESSION);
#endif
		q->isal_level = -1;
#ifdef HAVE_ISAL
		/* -level 1..3: ISA-L, about 10x zlib's speed for ~8% more
		 * bytes (see the writer's notes); the default stays zlib 6,
		 * qemu's own, for the same size as qemu-img -c. */
		if (q->ctype == QCOW2_COMPRESSION_DEFLATE && o->level >= 1 && o->level <= 3)
			q->isal_level = o->level;
#endif
		q->refs_len = 0;
		rc = ref_add(w, 0, e); /* the header */
		if (rc != DSC_OK)
			return rc;
		threads = o->threads ? o->threads : dscp_cpu_count();
		if (dscp_pool_new(threads > 1 ? threads : 0, threads > 1 ? 4 * (size_t)threads : 1,
				  (size_t)cs, (size_t)cs, compress_job, cctx_new, cctx_free, q,
				  &q->pool) != DSC_OK)
			return dsc_error_set(e, DSC_ERR_NOMEM, ENOMEM,
					     "%s: cannot start compression", wname(w));
	}
	q->end = cs;
	if (q->size_known) {
		/* Right after the header; written at finish. */
		q->l1c = (l1_entries(q, q->size) * 8 + cs - 1) / cs;
		q->l1_at = q->l1c ? cs : 0; /* an empty image has none, as in qemu */
		rc = l1_grow(w, l1_entries(q, q->size), e);
		q->end += q->l1c * cs;
		for (k = 1; rc == DSC_OK && k <= q->l1c; k++)
			rc = ref_add(w, k, e); /* no-op unless -c */
		if (rc != DSC_OK)
			return rc;
	}
	return DSC_OK;
}

static void qcow2_wclose(dsc_writer *w)
{
	struct qcow2_writer *q = w->impl;

	dscp_pool_free(q->pool);
	free(q->refs);
	free(q->bitmap);
	free(q->l1);
	free(q->l2);
	free(q->buf);
	free(q->meta);
}

const struct dscp_writer_class dscp_qcow2_writer = {
	.size = sizeof(struct qcow2_writer),
	.open = qcow2_wopen,
	.put = qcow2_put,
	.finish = qcow2_finish,
	.close = qcow2_wclose,
	.plan = qcow2_plan,
	.plan_done = qcow2_plan_done,
};
