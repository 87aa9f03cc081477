/* qcow2_read.c - the qcow2 reader: versions 2 and 3, from a seekable or a
 * forward-only input.
 *
 * open() reads the header cluster, checks every field against the named
 * limits of qcow2.h and refuses what dsc does not convert (a backing file,
 * encryption, an external data file, the corrupt bit, unknown incompatible
 * features) before any extent. Then one of two walks produces "items" (an
 * L2 table, a run of normal clusters, a compressed cluster), which a common
 * emitter turns into extents: normal data straight from the read buffer,
 * split around all-zero units so outputs stay sparse; compressed clusters
 * through the dscp_pool threads (raw deflate as qemu writes it, or zstd),
 * collected in submission order.
 *
 * Seekable input (a file, a URL with Range): guest order. The L1 is loaded,
 * then each L2 table, and the clusters it maps are gathered into batches of
 * host-close items read with one read of up to QCOW2_READ_RUN bytes, so a
 * stream-ordered image is read front to back without a seek and any other
 * layout with one seek per run. Extents come in ascending guest order.
 *
 * Forward-only input (a pipe, an HTTP body): one pass in file order. After
 * the header the reader skips to the L1, keeping the last bytes it passed
 * (the hold-back window, max(2 clusters, QCOW2_MIN_HOLDBACK)) while some
 * table is still unread; a min-heap keyed by host offset holds what the
 * tables read so far map (L2 tables, clusters; at most QCOW2_MAX_PENDING).
 * Each item is served from the window when it has already passed (qemu-img
 * -c puts compressed data before the L2 that maps it), else read or skipped
 * to; compressed clusters that share sectors are served from the same window
 * bytes. A table mapping bytes that have left the window is "not
 * stream-ordered": the message says to read from a seekable input. In this
 * mode extents come in host order, so guest offsets may go backwards (after
 * qemu-io writes, say): a raw output on a regular file seeks and takes them,
 * other outputs refuse with their own message. After the last item the rest
 * of the input is read and dropped, so an upload body is consumed whole.
 *
 * Memory is bounded whatever the header says: the L1 (<= QCOW2_MAX_L1_BYTES),
 * one L2 table, the two read buffers or the window, the heap and the pool.
 */
#include "qcow2.h"
#include "pool.h"

#include <inttypes.h>
#include <zlib.h>
#ifdef HAVE_LIBDEFLATE
#include <libdeflate.h>
#endif
#ifdef HAVE_ZSTD
#include <zstd.h>
#endif

enum item_kind {
	ITEM_L2,   /* an L2 table (forward mode); guest = its L1 index */
	ITEM_DATA, /* normal clusters or subclusters, host- and guest-contiguous */
	ITEM_COMP, /* one compressed cluster */
};
/* dscp_slot.tag2 of a job on a seekable input: its clusters are in rbuf[1]. */
#define SLOT_RBUF1 1u

struct item {
	uint64_t host;  /* byte offset in the image file */
	uint64_t guest; /* byte offset in the disk (ITEM_L2: the L1 index) */
	uint32_t len;   /* bytes at host (ITEM_COMP: the compressed length) */
	uint16_t kind;
	bool clipped; /* ITEM_COMP: cut by the end of the input */
};

/* The clusters of a job, at the start of its slot's `in`; in_len counts
 * them. Their data is in a read buffer (seekable input: in_ref is set, to
 * hold the buffer) or copied into `in` after the JOB_CLUSTERS of these. */
struct cjob {
	const uint8_t *data;
	struct item it;
};
#define JOB_HEAD (JOB_CLUSTERS * sizeof(struct cjob))

#define BATCH_MAX 4096u /* items per seekable read */
/* A decompression job: up to JOB_CLUSTERS guest-adjacent compressed
 * clusters (of one read buffer, on a seekable input), JOB_BYTES of output
 * at most, so that a 64 KiB-cluster image costs one wake-up of a worker
 * and one extent per MiB. */
#define JOB_CLUSTERS 16u
#define JOB_BYTES (1u << 20)
#define FWD_CHUNK (1u << 20)      /* forward reads */
#define TICK_ENTRIES 4096u        /* L2 entries between ticks */
#define DRAIN_CHUNK (1u << 20)    /* bytes skipped per tick after the image */
#define FWD_SKIP_STEP (16u << 20) /* bytes skipped per tick before an item */

/* Decompression results (dscp_slot.result). */
enum {
	DEC_OK,
	DEC_BAD,   /* corrupt compressed data */
	DEC_SHORT, /* ends before one cluster */
};

struct qcow2_reader {
	struct qcow2_header h;
	uint64_t base;      /* stream offset of the image's byte 0 */
	uint64_t file_size; /* UINT64_MAX when unknown */
	size_t cluster;
	unsigned cbits;
	bool extl2;
	size_t esz;        /* bytes per L2 entry: 8, or 16 with extended L2 */
	size_t l2_entries; /* entries per L2 table */
	uint64_t l2_span;  /* guest bytes one L2 table maps */
	size_t sc_size;    /* subcluster bytes (extended L2) */
	uint32_t l1_n;     /* L1 entries that map the disk */
	uint64_t *l1;
	uint64_t l1_end; /* l1_table_offset + l1_n * 8 */
	uint64_t rt_end; /* end of the refcount table */
	unsigned comp_bits;
	uint64_t comp_off_mask, comp_nsect_mask;
	bool seekable;
	bool has_bitmaps;   /* a bitmaps header extension (check does not count them) */
	uint64_t skip_read; /* forward gaps read through, not seeked over */
	size_t zero_unit;

	/* The emitter. */
	struct dscp_pool *pool;
	unsigned job_clusters; /* compressed clusters per job */
	bool holding;          /* the oldest slot backs the extents being emitted */
	struct item cur;
	const uint8_t *cur_data;
	bool have_cur;
	const uint8_t *emit_data; /* a normal run, or a job's output, being emitted */
	uint64_t emit_guest;
	size_t emit_len, emit_off;
	bool done;
	/* An error met while clusters were still being decompressed: it is
	 * reported after them, so that the extents before an error do not
	 * depend on the number of threads. */
	dsc_err pending_rc;
	struct dsc_error pending;

	/* Seekable walk. */
	uint32_t l1_next;
	bool l2_loaded;
	uint8_t *l2buf;
	uint64_t l2_host;
	/* The table last read, kept in l2buf (0: none), and the last table
	 * found to map nothing: L1 entries naming either again cost no read
	 * (one request less on a URL), the empty one no parse either, so a
	 * tiny file whose L1 names one empty table 4M times stays cheap. */
	uint64_t l2_cached, l2_empty;
	bool l2_mapped; /* the current table has produced an item */
	uint32_t l2_index;
	size_t l2_next; /* entry */
	unsigned sc_next;
	struct item *batch;
	size_t batch_n, batch_pos;
	struct item peek;
	bool have_peek;
	/* Two read buffers, used in turn by the batches: the compressed
	 * clusters of one are decompressed straight from it (no copy into
	 * the pool) while the next batch is read into the other. rbuf_refs
	 * counts the slots still reading a buffer; it is refilled only at
	 * zero. */
	uint8_t *rbuf[2];
	unsigned rcur;
	size_t rbuf_refs[2];
	size_t rbuf_cap;
	uint64_t rbuf_host;

	/* Forward walk. */
	struct item *heap;
	size_t heap_n, heap_cap;
	uint8_t *win;
	size_t win_cap, win_len;
	uint64_t win_lo; /* host offset of win[0]; win_lo + win_len = position */
	uint64_t holdback;
	uint32_t l2_unread; /* L2 tables in the heap */
	bool l1_read;
	bool eof;
};

static const char *rname(dsc_reader *r) { return dsc_stream_name(r->in); }

static dsc_err nomem(dsc_reader *r, struct dsc_error *e)
{
	return dsc_error_set(e, DSC_ERR_NOMEM, ENOMEM, "%s: out of memory", rname(r));
}

static const char *not_ordered_tail = "; read it from a seekable input (a file, or a URL with "
				      "Range support)";

/* ---- decompression (worker threads) ------------------------------------ */

struct dctx {
	unsigned ctype;
	size_t cluster;
#ifdef HAVE_LIBDEFLATE
	struct libdeflate_decompressor *ld;
#endif
	z_stream zs;
	bool zs_ok;
#ifdef HAVE_ZSTD
	ZSTD_DCtx *zd;
#endif
};

static void dctx_free(void *p)
{
	struct dctx *c = p;

	if (!c)
		return;
#ifdef HAVE_LIBDEFLATE
	if (c->ld)
		libdeflate_free_decompressor(c->ld);
#endif
	if (c->zs_ok)
		inflateEnd(&c->zs);
#ifdef HAVE_ZSTD
	ZSTD_freeDCtx(c->zd);
#endif
	free(c);
}

static void *dctx_new(void *arg)
{
	const struct qcow2_reader *q = arg;
	struct dctx *c = calloc(1, sizeof *c);

	if (!c)
		return NULL;
	c->ctype = q->h.compression_type;
	c->cluster = q->cluster;
	if (c->ctype == QCOW2_COMPRESSION_ZSTD) {
#ifdef HAVE_ZSTD
		if (!(c->zd = ZSTD_createDCtx()))
			goto fail;
#endif
		return c;
	}
#ifdef HAVE_LIBDEFLATE
	if (!(c->ld = libdeflate_alloc_decompressor()))
		goto fail;
#endif
	/* Raw deflate (no zlib header): qemu uses windowBits -12
	 * (qcow2-threads.c); -15 accepts every such stream. */
	if (inflateInit2(&c->zs, -15) != Z_OK)
		goto fail;
	c->zs_ok = true;
	return c;
fail:
	dctx_free(c);
	return NULL;
}

/* qemu's rule: success iff the output buffer fills; the stream need not end
 * there and trailing input is ignored. */
static int inflate_cluster(struct dctx *c, const uint8_t *in, size_t n, uint8_t *out)
{
	int zr;

#ifdef HAVE_LIBDEFLATE
	/* libdeflate inflates 64 KiB clusters about 1.3x as fast as ISA-L's
	 * stateless inflate and 2x as fast as zlib (one core, qemu-img -c
	 * data, 2026-12-02); it decides the common case, a stream that ends
	 * with the cluster full. A stream longer than one cluster, or cut
	 * short after it, is left to zlib, which tells the way qemu decides. */
	{
		size_t got = 0;

		if (libdeflate_deflate_decompress(c->ld, in, n, out, c->cluster, &got) ==
			    LIBDEFLATE_SUCCESS &&
		    got == c->cluster)
			return DEC_OK;
	}
#endif
	if (inflateReset(&c->zs) != Z_OK)
		return DEC_BAD;
	c->zs.next_in = (Bytef *)in;
	c->zs.avail_in = (uInt)n;
	c->zs.next_out = out;
	c->zs.avail_out = (uInt)c->cluster;
	zr = inflate(&c->zs, Z_FINISH);
	if ((zr == Z_STREAM_END || zr == Z_BUF_ERROR) && c->zs.avail_out == 0)
		return DEC_OK;
	return zr == Z_STREAM_END || zr == Z_BUF_ERROR ? DEC_SHORT : DEC_BAD;
}

#ifdef HAVE_ZSTD
/* qemu's qcow2_zstd_decompress: frames until the cluster is full, the last
 * one complete there; trailing input allowed. */
static int unzstd_cluster(struct dctx *c, const uint8_t *in, size_t n, uint8_t *out)
{
	ZSTD_inBuffer ib = {in, n, 0};
	ZSTD_outBuffer ob = {out, c->cluster, 0};
	size_t zr = 0, lin, lout;

	ZSTD_DCtx_reset(c->zd, ZSTD_reset_session_only);
	while (ob.pos < ob.size) {
		lin = ib.pos;
		lout = ob.pos;
		zr = ZSTD_decompressStream(c->zd, &ob, &ib);
		if (ZSTD_isError(zr))
			return DEC_BAD;
		if (ib.pos <= lin && ob.pos <= lout)
			return ib.pos == ib.size ? DEC_SHORT : DEC_BAD;
	}
	return zr == 0 ? DEC_OK : DEC_BAD;
}
#endif

static int decompress_cluster(struct dctx *c, const uint8_t *in, size_t n, uint8_t *out)
{
#ifdef HAVE_ZSTD
	if (c->ctype == QCOW2_COMPRESSION_ZSTD)
		return unzstd_cluster(c, in, n, out);
#endif
	return inflate_cluster(c, in, n, out);
}

/* The in_len clusters of struct cjob in `in`, one after the other into
 * `out`; on a failure out_len is the index of the cluster that failed. */
static void decompress_job(void *ctx, struct dscp_slot *s)
{
	struct dctx *c = ctx;
	const struct cjob *j = (const struct cjob *)(void *)s->in;
	size_t i;

	s->result = DEC_OK;
	for (i = 0; i < s->in_len; i++) {
		s->result = decompress_cluster(c, j[i].data, j[i].it.len, s->out + i * c->cluster);
		if (s->result != DEC_OK) {
			s->out_len = i;
			return;
		}
	}
}

/* ---- checks of what the tables map ------------------------------------- */

static bool overlaps(uint64_t a, uint64_t alen, uint64_t b, uint64_t bend)
{
	return a < bend && b < a + alen;
}

/* An L2 table at `host` (cluster-aligned), named by L1 entry `idx`. */
static dsc_err check_l2_offset(dsc_reader *r, struct qcow2_reader *q, uint32_t idx, uint64_t entry,
			       uint64_t host, struct dsc_error *e)
{
	uint64_t at = q->h.l1_table_offset + 8ull * idx;
	const char *what = NULL;

	if (entry & QCOW2_L1_RESERVED)
		return dsc_error_set(e, DSC_ERR_FORMAT, 0,
				     "%s: L1 entry %" PRIu32 " at byte %" PRIu64
				     ": reserved bits set (0x%016" PRIx64 ")",
				     rname(r), idx, at, (uint64_t)(entry & QCOW2_L1_RESERVED));
	if (host == 0)
		return DSC_OK; /* no L2 table: reads as zero */
	if (host & (q->cluster - 1))
		what = "is not cluster-aligned";
	else if (host < q->cluster)
		what = "is inside the header cluster";
	else if (overlaps(host, q->cluster, q->h.l1_table_offset, q->l1_end))
		what = "overlaps the L1 table";
	else if (overlaps(host, q->cluster, q->h.refcount_table_offset, q->rt_end))
		what = "overlaps the refcount table";
	if (what)
		return dsc_error_set(e, DSC_ERR_FORMAT, 0,
				     "%s: L1 entry %" PRIu32 " at byte %" PRIu64
				     ": the L2 table at byte %" PRIu64 " %s",
				     rname(r), idx, at, host, what);
	if (q->file_size != UINT64_MAX && host + q->cluster > q->file_size)
		return dsc_error_set(e, DSC_ERR_TRUNCATED, 0,
				     "%s: truncated: the L2 table at byte %" PRIu64
				     " (L1 entry %" PRIu32
				     ") lies past the end of the file (%" PRIu64 " bytes)",
				     rname(r), host, idx, q->file_size);
	return DSC_OK;
}

/* Data at [host, host + len) mapped by the L2 table at l2_host. */
static dsc_err check_data(dsc_reader *r, struct qcow2_reader *q, uint64_t l2_host, uint64_t host,
			  uint64_t len, bool compressed, struct dsc_error *e)
{
	const char *what = NULL;

	if (host < q->cluster)
		what = "inside the header cluster";
	else if (overlaps(host, len, q->h.l1_table_offset, q->l1_end))
		what = "inside the L1 table";
	else if (overlaps(host, len, l2_host, l2_host + q->cluster))
		what = "inside the L2 table itself";
	else if (overlaps(host, len, q->h.refcount_table_offset, q->rt_end))
		what = "inside the refcount table";
	else if (host + len > QCOW2_MAX_HOST_OFFSET)
		what = "beyond the limit of 2^56";
	if (what)
		return dsc_error_set(e, DSC_ERR_FORMAT, 0,
				     "%s: the L2 table at byte %" PRIu64 " maps %s at byte %" PRIu64
				     ", %s",
				     rname(r), l2_host,
				     compressed ? "a compressed cluster" : "data", host, what);
	if (q->file_size != UINT64_MAX &&
	    (compressed ? host >= q->file_size : host + len > q->file_size))
		return dsc_error_set(e, DSC_ERR_TRUNCATED, 0,
				     "%s: truncated: the L2 table at byte %" PRIu64
				     " maps data at byte %" PRIu64
				     ", past the end of the file (%" PRIu64 " bytes)",
				     rname(r), l2_host, host, q->file_size);
	return DSC_OK;
}

/* The next item of entry j of the L2 table at l2_host (bytes l2), starting
 * at subcluster *sc; *got false when the entry has nothing (more). */
static dsc_err entry_item(dsc_reader *r, struct qcow2_reader *q, uint64_t l2_host,
			  const uint8_t *l2, size_t j, uint64_t guest, unsigned *sc,
			  struct item *it, bool *got, struct dsc_error *e)
{
	uint64_t ent = dscp_be64(l2 + j * q->esz), bitmap = 0, host, at = l2_host + j * q->esz;
	uint64_t left = r->capacity - guest;
	uint32_t alloc, zero;
	unsigned i, k;
	dsc_err rc;

	*got = false;
	if (q->extl2)
		bitmap = dscp_be64(l2 + j * q->esz + 8);
	if (ent & QCOW2_OFLAG_COMPRESSED) {
		uint64_t nsect, csize;

		if (*sc)
			return DSC_OK;
		*sc = QCOW2_SUBCLUSTERS;
		if (bitmap)
			return dsc_error_set(e, DSC_ERR_FORMAT, 0,
					     "%s: L2 entry at byte %" PRIu64
					     ": a compressed cluster with a subcluster bitmap",
					     rname(r), at);
		/* facts §1: offset in the low comp_bits bits, then the count
		 * of extra 512-byte sectors. */
		host = ent & q->comp_off_mask;
		nsect = ((ent >> q->comp_bits) & q->comp_nsect_mask) + 1;
		csize = nsect * 512 - (host & 511);
		if (csize > q->cluster + QCOW2_MAX_COMPRESSED_EXTRA)
			return dsc_error_set(e, DSC_ERR_FORMAT, 0,
					     "%s: L2 entry at byte %" PRIu64
					     ": compressed length %" PRIu64
					     " exceeds the cluster size "
					     "(%zu) + %u",
					     rname(r), at, csize, q->cluster,
					     QCOW2_MAX_COMPRESSED_EXTRA);
		it->clipped = false;
		if (q->file_size != UINT64_MAX && host < q->file_size &&
		    csize > q->file_size - host) {
			csize = q->file_size - host;
			it->clipped = true;
		}
		rc = check_data(r, q, l2_host, host, csize, true, e);
		if (rc != DSC_OK)
			return rc;
		it->host = host;
		it->guest = guest;
		it->len = (uint32_t)csize;
		it->kind = ITEM_COMP;
		*got = true;
		return DSC_OK;
	}
	if (ent & QCOW2_L2_RESERVED)
		return dsc_error_set(e, DSC_ERR_FORMAT, 0,
				     "%s: L2 entry at byte %" PRIu64
				     ": reserved bits set (0x%016" PRIx64 ")",
				     rname(r), at, (uint64_t)(ent & QCOW2_L2_RESERVED));
	host = ent & QCOW2_L2_OFFSET_MASK;
	if (!q->extl2) {
		if (*sc)
			return DSC_OK;
		*sc = QCOW2_SUBCLUSTERS;
		if ((ent & QCOW2_OFLAG_ZERO) && q->h.version < 3)
			return dsc_error_set(e, DSC_ERR_FORMAT, 0,
					     "%s: L2 entry at byte %" PRIu64
					     ": the zero flag in a version 2 image",
					     rname(r), at);
		if ((ent & QCOW2_OFLAG_ZERO) || host == 0)
			return DSC_OK; /* reads as zero, or unallocated */
		i = 0;
		k = QCOW2_SUBCLUSTERS;
	} else {
		alloc = (uint32_t)bitmap;
		zero = (uint32_t)(bitmap >> 32);
		if (alloc & zero)
			return dsc_error_set(e, DSC_ERR_FORMAT, 0,
					     "%s: L2 entry at byte %" PRIu64
					     ": subclusters both allocated and zero (bitmap "
					     "0x%016" PRIx64 ")",
					     rname(r), at, bitmap);
		if (host == 0) {
			*sc = QCOW2_SUBCLUSTERS;
			if (alloc)
				return dsc_error_set(e, DSC_ERR_FORMAT, 0,
						     "%s: L2 entry at byte %" PRIu64
						     ": allocated subclusters in an unallocated "
						     "cluster",
						     rname(r), at);
			return DSC_OK;
		}
		for (i = *sc; i < QCOW2_SUBCLUSTERS && !(alloc & (1u << i)); i++)
			;
		for (k = i; k < QCOW2_SUBCLUSTERS && (alloc & (1u << k)); k++)
			;
		*sc = k;
		if (i == QCOW2_SUBCLUSTERS)
			return DSC_OK;
	}
	if (host & (q->cluster - 1))
		return dsc_error_set(e, DSC_ERR_FORMAT, 0,
				     "%s: L2 entry at byte %" PRIu64 ": data offset %" PRIu64
				     " is not cluster-aligned",
				     rname(r), at, host);
	{
		size_t sub = q->extl2 ? q->sc_size : q->cluster / QCOW2_SUBCLUSTERS;
		uint64_t off = (uint64_t)i * sub, len = (uint64_t)(k - i) * sub;

		if (off >= left)
			return DSC_OK; /* past the virtual size */
		len = DSC_MIN(len, left - off);
		rc = check_data(r, q, l2_host, host + off, len, false, e);
		if (rc != DSC_OK)
			return rc;
		it->host = host + off;
		it->guest = guest + off;
		it->len = (uint32_t)len;
		it->kind = ITEM_DATA;
		it->clipped = false;
		*got = true;
	}
	return DSC_OK;
}

/* Entries of L2 table `idx` that map the disk. */
static size_t table_entries(dsc_reader *r, struct qcow2_reader *q, uint32_t idx)
{
	uint64_t first = (uint64_t)idx * q->l2_span, left = r->capacity - first;

	return (size_t)DSC_MIN((uint64_t)q->l2_entries, (left + q->cluster - 1) >> q->cbits);
}

/* ---- seekable walk ------------------------------------------------------- */

/* Read len bytes at host (fewer only at the end of the input). */
static dsc_err read_at(dsc_reader *r, struct qcow2_reader *q, uint64_t host, void *buf, size_t len,
		       size_t *got, struct dsc_error *e)
{
	uint64_t pos = dsc_stream_tell(r->in) - q->base;
	dsc_err rc;

	if (host > pos && host - pos <= q->skip_read) {
		/* A short gap (a table between runs) is cheaper to read than
		 * a seek is on a URL. */
		uint8_t tmp[16384];
		size_t n;

		while (pos < host) {
			n = (size_t)DSC_MIN(host - pos, (uint64_t)sizeof tmp);
			rc = dsc_read_full(r->in, tmp, n, got, e);
			if (rc != DSC_OK)
				return rc;
			pos += *got;
			if (*got < n) {
				*got = 0;
				return DSC_OK;
			}
		}
	} else if (host != pos) {
		rc = dsc_stream_seek(r->in, q->base + host, e);
		if (rc != DSC_OK)
			return rc;
	}
	return dsc_read_full(r->in, buf, len, got, e);
}

/* The next item in guest order; *table_end when the current L2 table has
 * no more (so a batch ends with its table, before the next one is read). */
static dsc_err scan_next(dsc_reader *r, struct qcow2_reader *q, struct item *it, bool *got,
			 bool *table_end, struct dsc_error *e)
{
	size_t n, got_bytes;
	uint64_t host;
	dsc_err rc;

	*got = *table_end = false;
	for (;;) {
		if (!q->l2_loaded) {
			if (q->l1_next >= q->l1_n)
				return DSC_OK;
			rc = dscp_reader_tick(r, e);
			if (rc != DSC_OK)
				return rc;
			q->l2_index = q->l1_next++;
			host = q->l1[q->l2_index] & QCOW2_L1_OFFSET_MASK;
			rc = check_l2_offset(r, q, q->l2_index, q->l1[q->l2_index], host, e);
			if (rc != DSC_OK)
				return rc;
			if (host == 0 || host == q->l2_empty)
				continue;
			if (host != q->l2_cached) {
				q->l2_cached = 0;
				rc = read_at(r, q, host, q->l2buf, q->cluster, &got_bytes, e);
				if (rc != DSC_OK)
					return rc;
				if (got_bytes < q->cluster)
					return dsc_error_set(e, DSC_ERR_TRUNCATED, 0,
							     "%s: truncated: input ends inside the "
							     "L2 table at byte %" PRIu64,
							     rname(r), host);
				q->l2_cached = host;
			}
			q->l2_host = host;
			q->l2_mapped = false;
			q->l2_loaded = true;
			q->l2_next = 0;
			q->sc_next = 0;
		}
		n = table_entries(r, q, q->l2_index);
		while (q->l2_next < n) {
			if (q->l2_next % TICK_ENTRIES == 0 && q->sc_next == 0) {
				rc = dscp_reader_tick(r, e);
				if (rc != DSC_OK)
					return rc;
			}
			rc = entry_item(r, q, q->l2_host, q->l2buf, q->l2_next,
					(uint64_t)q->l2_index * q->l2_span +
						((uint64_t)q->l2_next << q->cbits),
					&q->sc_next, it, got, e);
			if (rc != DSC_OK)
				return rc;
			if (*got) {
				q->l2_mapped = true;
				return DSC_OK;
			}
			q->l2_next++;
			q->sc_next = 0;
		}
		q->l2_loaded = false;
		/* Only a table whose every entry mapped nothing (and that has
		 * the full number of entries) is skipped when named again. */
		if (!q->l2_mapped && n == q->cluster / q->esz)
			q->l2_empty = q->l2_host;
		*table_end = true;
		return DSC_OK;
	}
}

static dsc_err seek_produce(dsc_reader *r, struct qcow2_reader *q, struct item *it,
			    const uint8_t **data, bool *got, struct dsc_error *e)
{
	uint64_t lo = 0, hi = 0, end;
	size_t n, i, nread;
	bool more, table_end;
	dsc_err rc;

	*got = false;
	if (q->batch_pos < q->batch_n)
		goto hand_out;
	q->batch_n = q->batch_pos = 0;
	for (;;) {
		if (!q->have_peek) {
			rc = scan_next(r, q, &q->peek, &more, &table_end, e);
			if (rc != DSC_OK)
				return rc;
			if (!more) {
				if (table_end && q->batch_n == 0)
					continue;
				break;
			}
			q->have_peek = true;
		}
		end = q->peek.host + q->peek.len;
		if (q->batch_n) {
			struct item *last = &q->batch[q->batch_n - 1];

			if (q->batch_n == BATCH_MAX || q->peek.host < last->host ||
			    q->peek.host > hi + QCOW2_READ_GAP ||
			    DSC_MAX(hi, end) - lo > QCOW2_READ_RUN)
				break;
			if (q->peek.kind == ITEM_DATA && last->kind == ITEM_DATA &&
			    last->host + last->len == q->peek.host &&
			    last->guest + last->len == q->peek.guest)
				last->len += q->peek.len;
			else
				q->batch[q->batch_n++] = q->peek;
			hi = DSC_MAX(hi, end);
		} else {
			q->batch[q->batch_n++] = q->peek;
			lo = q->peek.host;
			hi = end;
		}
		q->have_peek = false;
	}
	if (q->batch_n == 0)
		return DSC_OK;
	n = (size_t)(hi - lo);
	q->rcur ^= 1; /* free: qcow2_next collected the slots reading it */
	rc = read_at(r, q, lo, q->rbuf[q->rcur], n, &nread, e);
	if (rc != DSC_OK)
		return rc;
	q->rbuf_host = lo;
	if (nread < n) {
		/* Only compressed data may run past the end (its last sector
		 * is counted whole, facts §1). */
		for (i = 0; i < q->batch_n; i++) {
			struct item *b = &q->batch[i];

			if (b->host + b->len <= lo + nread)
				continue;
			if (b->kind == ITEM_COMP && b->host < lo + nread) {
				b->len = (uint32_t)(lo + nread - b->host);
				b->clipped = true;
				continue;
			}
			return dsc_error_set(e, DSC_ERR_TRUNCATED, 0,
					     "%s: truncated: input ends at byte %" PRIu64
					     ", inside %s at byte %" PRIu64 " (disk offset %" PRIu64
					     ")",
					     rname(r), lo + nread,
					     b->kind == ITEM_COMP ? "a compressed cluster" :
								    "a data cluster",
					     b->host, b->guest);
		}
	}
hand_out:
	*it = q->batch[q->batch_pos++];
	*data = q->rbuf[q->rcur] + (it->host - q->rbuf_host);
	*got = true;
	return DSC_OK;
}

/* ---- forward walk -------------------------------------------------------- */

static bool heap_less(const struct item *a, const struct item *b)
{
	/* Tables first at equal offsets: their items may start there. */
	return a->host < b->host || (a->host == b->host && a->kind < b->kind);
}

static dsc_err heap_push(dsc_reader *r, struct qcow2_reader *q, const struct item *it,
			 struct dsc_error *e)
{
	size_t i, p;

	/* Clusters mapped ahead count against the limit; L2 tables are
	 * bounded by the L1 (QCOW2_MAX_L1_BYTES), so a stream-ordered image
	 * with many tables is not refused. */
	if (it->kind != ITEM_L2 && q->heap_n - q->l2_unread >= QCOW2_MAX_PENDING)
		return dsc_error_set(e, DSC_ERR_LIMIT, 0,
				     "%s: more than %u clusters are mapped ahead of their data "
				     "(the limit QCOW2_MAX_PENDING)%s",
				     rname(r), QCOW2_MAX_PENDING, not_ordered_tail);
	if (q->heap_n == q->heap_cap) {
		size_t cap = q->heap_cap ? 2 * q->heap_cap : 1024;
		struct item *h;

		cap = DSC_MIN(cap, (size_t)QCOW2_MAX_PENDING + q->l1_n);
		h = realloc(q->heap, cap * sizeof *h);
		if (!h)
			return nomem(r, e);
		q->heap = h;
		q->heap_cap = cap;
	}
	i = q->heap_n++;
	while (i > 0) {
		p = (i - 1) / 2;
		if (!heap_less(it, &q->heap[p]))
			break;
		q->heap[i] = q->heap[p];
		i = p;
	}
	q->heap[i] = *it;
	return DSC_OK;
}

static void heap_pop(struct qcow2_reader *q)
{
	struct item last = q->heap[--q->heap_n];
	size_t i = 0, c;

	while ((c = 2 * i + 1) < q->heap_n) {
		if (c + 1 < q->heap_n && heap_less(&q->heap[c + 1], &q->heap[c]))
			c++;
		if (!heap_less(&q->heap[c], &last))
			break;
		q->heap[i] = q->heap[c];
		i = c;
	}
	if (q->heap_n)
		q->heap[i] = last;
}

static uint64_t fwd_pos(const struct qcow2_reader *q) { return q->win_lo + q->win_len; }

/* Read forward until the position reaches `target` or the input ends. The
 * window keeps every byte from `need` on, and while a table is unread the
 * last `holdback` bytes too; anything older is dropped. */
static dsc_err fwd_fill(dsc_reader *r, struct qcow2_reader *q, uint64_t target, uint64_t need,
			struct dsc_error *e)
{
	uint64_t pos, keep, skipped;
	size_t n, got, drop;
	bool hold = !q->l1_read || q->l2_unread > 0;
	dsc_err rc;

	while ((pos = fwd_pos(q)) < target && !q->eof) {
		rc = dscp_reader_tick(r, e);
		if (rc != DSC_OK)
			return rc;
		keep = DSC_MIN(need, target);
		if (hold)
			keep = DSC_MIN(keep, pos > q->holdback ? pos - q->holdback : 0);
		if (keep > pos) {
			/* Nothing to keep up to `keep`: skip without copying. */
			q->win_lo = pos;
			q->win_len = 0;
			/* In steps, so that the tick runs on a long skip. */
			uint64_t step = DSC_MIN(keep - pos, (uint64_t)FWD_SKIP_STEP);

			rc = dsc_stream_skip(r->in, step, &skipped, e);
			if (rc != DSC_OK)
				return rc;
			q->win_lo = pos + skipped;
			if (skipped < step)
				q->eof = true;
			continue;
		}
		if (keep > q->win_lo) {
			drop = (size_t)(keep - q->win_lo);
			memmove(q->win, q->win + drop, q->win_len - drop);
			q->win_len -= drop;
			q->win_lo = keep;
		}
		n = q->win_cap - q->win_len;
		if (n == 0)
			return dsc_error_set(
				e, DSC_ERR_SEEK, 0,
				"%s: the hold-back window of %zu bytes is full at byte "
				"%" PRIu64 ": the qcow2 image is not stream-ordered%s",
				rname(r), q->win_cap, pos, not_ordered_tail);
		n = DSC_MIN(n, (size_t)DSC_MAX(DSC_MIN(target - pos, (uint64_t)q->win_cap),
					       (uint64_t)FWD_CHUNK));
		rc = dsc_read_full(r->in, q->win + q->win_len, n, &got, e);
		if (rc != DSC_OK)
			return rc;
		q->win_len += got;
		if (got < n)
			q->eof = true;
	}
	return DSC_OK;
}

/* `table` at byte `at` maps `what` at byte `host`, already passed. */
static dsc_err not_ordered(dsc_reader *r, const char *table, uint64_t at, const char *what,
			   uint64_t host, struct dsc_error *e)
{
	return dsc_error_set(e, DSC_ERR_SEEK, 0,
			     "%s: the qcow2 image is not stream-ordered (the %s at byte %" PRIu64
			     " maps %s at byte %" PRIu64 ", which came before it)%s",
			     rname(r), table, at, what, host, not_ordered_tail);
}

/* An L2 table has arrived: queue what it maps. */
static dsc_err fwd_table(dsc_reader *r, struct qcow2_reader *q, const struct item *t,
			 const uint8_t *l2, struct dsc_error *e)
{
	uint32_t idx = (uint32_t)t->guest;
	size_t j, n = table_entries(r, q, idx);
	struct item it;
	unsigned sc;
	bool got;
	dsc_err rc;

	for (j = 0; j < n; j++) {
		if (j % TICK_ENTRIES == 0) {
			rc = dscp_reader_tick(r, e);
			if (rc != DSC_OK)
				return rc;
		}
		for (sc = 0; sc < QCOW2_SUBCLUSTERS;) {
			rc = entry_item(r, q, t->host, l2, j,
					(uint64_t)idx * q->l2_span + ((uint64_t)j << q->cbits), &sc,
					&it, &got, e);
			if (rc != DSC_OK)
				return rc;
			if (!got)
				break;
			if (it.host < q->win_lo)
				return not_ordered(r, "L2 table", t->host, "data", it.host, e);
			rc = heap_push(r, q, &it, e);
			if (rc != DSC_OK)
				return rc;
		}
	}
	return DSC_OK;
}

/* Read and drop the rest of the input (an upload body is consumed whole). */
static dsc_err fwd_drain(dsc_reader *r, struct qcow2_reader *q, struct dsc_error *e)
{
	uint64_t skipped;
	dsc_err rc;

	q->win_len = 0;
	while (!q->eof) {
		rc = dscp_reader_tick(r, e);
		if (rc != DSC_OK)
			return rc;
		rc = dsc_stream_skip(r->in, DRAIN_CHUNK, &skipped, e);
		if (rc != DSC_OK)
			return rc;
		if (skipped < DRAIN_CHUNK)
			q->eof = true;
	}
	return DSC_OK;
}

/* The L1: skip to it, holding back what passes, copy it out of the window
 * as it streams by, and queue its L2 tables. */
static dsc_err fwd_read_l1(dsc_reader *r, struct qcow2_reader *q, struct dsc_error *e)
{
	uint64_t off = q->h.l1_table_offset, end = q->l1_end, done = off, avail;
	uint8_t *dst = (uint8_t *)q->l1;
	struct item it;
	uint32_t i;
	dsc_err rc;

	if (off < fwd_pos(q))
		return dsc_error_set(e, DSC_ERR_FORMAT, 0,
				     "%s: the L1 table at byte %" PRIu64 " overlaps the header",
				     rname(r), off);
	rc = fwd_fill(r, q, off, UINT64_MAX, e);
	while (rc == DSC_OK && done < end) {
		if (fwd_pos(q) < end && !q->eof) {
			/* Keep from the first byte not yet copied. */
			rc = fwd_fill(r, q, DSC_MIN(fwd_pos(q) + FWD_CHUNK, end), done, e);
			if (rc != DSC_OK)
				break;
		}
		avail = DSC_MIN(fwd_pos(q), end);
		if (avail <= done)
			break;
		memcpy(dst + (done - off), q->win + (done - q->win_lo), (size_t)(avail - done));
		done = avail;
	}
	if (rc != DSC_OK)
		return rc;
	if (done < end)
		return dsc_error_set(e, DSC_ERR_TRUNCATED, 0,
				     "%s: truncated: input ends at byte %" PRIu64
				     ", inside the L1 table at byte %" PRIu64,
				     rname(r), fwd_pos(q), off);
	q->l1_read = true;
	for (i = 0; i < q->l1_n; i++) {
		uint64_t host;

		q->l1[i] = dscp_be64((const uint8_t *)&q->l1[i]);
		host = q->l1[i] & QCOW2_L1_OFFSET_MASK;
		rc = check_l2_offset(r, q, i, q->l1[i], host, e);
		if (rc != DSC_OK)
			return rc;
		if (!host)
			continue;
		if (host < q->win_lo)
			return not_ordered(r, "L1 table", off, "the L2 table", host, e);
		it.host = host;
		it.guest = i;
		it.len = (uint32_t)q->cluster;
		it.kind = ITEM_L2;
		it.clipped = false;
		rc = heap_push(r, q, &it, e);
		if (rc != DSC_OK)
			return rc;
		q->l2_unread++;
	}
	return DSC_OK;
}

static dsc_err fwd_produce(dsc_reader *r, struct qcow2_reader *q, struct item *it,
			   const uint8_t **data, bool *got, struct dsc_error *e)
{
	struct item top;
	uint64_t end;
	dsc_err rc;

	*got = false;
	if (!q->l1_read) {
		rc = fwd_read_l1(r, q, e);
		if (rc != DSC_OK)
			return rc;
	}
	for (;;) {
		if (q->heap_n == 0)
			return fwd_drain(r, q, e);
		top = q->heap[0];
		if (top.host < q->win_lo)
			return not_ordered(r, "L2 table", top.host, "data", top.host, e);
		rc = fwd_fill(r, q, top.host + top.len, top.host, e);
		if (rc != DSC_OK)
			return rc;
		end = fwd_pos(q);
		if (end < top.host + top.len) {
			if (top.kind == ITEM_COMP && end > top.host) {
				top.len = (uint32_t)(end - top.host);
				top.clipped = true;
			} else {
				return dsc_error_set(e, DSC_ERR_TRUNCATED, 0,
						     "%s: truncated: input ends at byte %" PRIu64
						     ", before the end of %s at byte %" PRIu64,
						     rname(r), end,
						     top.kind == ITEM_L2 ? "the L2 table" :
						     top.kind == ITEM_COMP ?
									   "a compressed cluster" :
									   "a data cluster",
						     top.host);
			}
		}
		heap_pop(q);
		if (top.kind == ITEM_L2) {
			q->l2_unread--;
			rc = fwd_table(r, q, &top, q->win + (top.host - q->win_lo), e);
			if (rc != DSC_OK)
				return rc;
			continue;
		}
		/* Runs of normal clusters in both orders become one item. */
		while (top.kind == ITEM_DATA && q->heap_n && q->heap[0].kind == ITEM_DATA &&
		       q->heap[0].host == top.host + top.len &&
		       q->heap[0].guest == top.guest + top.len &&
		       top.len + (uint64_t)q->heap[0].len <= QCOW2_READ_RUN &&
		       q->heap[0].host + q->heap[0].len <= end) {
			top.len += q->heap[0].len;
			heap_pop(q);
		}
		*it = top;
		*data = q->win + (top.host - q->win_lo);
		*got = true;
		return DSC_OK;
	}
}

/* ---- the emitter ---------------------------------------------------------- */

static dsc_err start_pool(dsc_reader *r, struct qcow2_reader *q, struct dsc_error *e)
{
	unsigned t = r->threads ? r->threads : dscp_cpu_count();
	size_t k, in_cap, per_slot, slots = 4 * (size_t)t;

	k = DSC_MAX((size_t)1, DSC_MIN((size_t)JOB_CLUSTERS, JOB_BYTES / q->cluster));
	q->job_clusters = (unsigned)k;
	/* A forward walk copies the clusters into the slot. */
	in_cap = JOB_HEAD + (q->seekable ? 0 : k * (q->cluster + QCOW2_MAX_COMPRESSED_EXTRA));
	per_slot = in_cap + k * q->cluster;
	/* Four jobs in flight per thread, within QCOW2_POOL_BYTES (2 MiB
	 * clusters on many CPUs), and never fewer slots than threads. */
	slots = DSC_MIN(slots, DSC_MAX((size_t)2, (size_t)QCOW2_POOL_BYTES / per_slot));
	if (t > slots)
		t = (unsigned)slots;
	if (dscp_pool_new(t > 1 ? t : 0, t > 1 ? slots : 1, in_cap, k * q->cluster, decompress_job,
			  dctx_new, dctx_free, q, &q->pool) != DSC_OK)
		return dsc_error_set(e, DSC_ERR_NOMEM, ENOMEM, "%s: cannot start decompression",
				     rname(r));
	return DSC_OK;
}

static bool emit_piece(struct qcow2_reader *q, struct dsc_extent *ext);

/* The oldest decompression job: its first non-zero piece as an extent
 * (*ext zero: all zero), the rest emitted by emit_piece() before the
 * slot is released. */
static dsc_err collect(dsc_reader *r, struct qcow2_reader *q, struct dsc_extent *ext,
		       struct dsc_error *e)
{
	struct dscp_slot *s = dscp_pool_collect(q->pool);

	if (s->in_ref)
		q->rbuf_refs[(s->tag2 & SLOT_RBUF1) ? 1 : 0]--;

	if (s->result != DEC_OK) {
		const struct item *it = &((const struct cjob *)(void *)s->in)[s->out_len].it;
		dsc_err rc;

		/* Cut by the end of the input: that is the likelier cause. */
		rc = it->clipped ?
			     dsc_error_set(e, DSC_ERR_TRUNCATED, 0,
					   "%s: truncated: input ends at byte %" PRIu64
					   ", inside the compressed cluster at byte %" PRIu64
					   " (disk offset %" PRIu64 ")",
					   rname(r), it->host + it->len, it->host, it->guest) :
			     dsc_error_set(e, DSC_ERR_FORMAT, 0,
					   "%s: the compressed cluster at byte %" PRIu64
					   " (disk offset %" PRIu64 "): %s",
					   rname(r), it->host, it->guest,
					   s->result == DEC_SHORT ?
						   "data decompresses to less than one cluster" :
						   "corrupt compressed data");
		dscp_pool_release(q->pool);
		return rc;
	}
	q->emit_data = s->out;
	q->emit_guest = s->tag;
	q->emit_len = (size_t)DSC_MIN((uint64_t)s->in_len * q->cluster, r->capacity - s->tag);
	q->emit_off = 0;
	q->holding = true;
	if (!emit_piece(q, ext)) {
		dscp_pool_release(q->pool);
		q->holding = false;
	}
	return DSC_OK;
}

/* The next non-zero piece of the run being emitted. */
static bool emit_piece(struct qcow2_reader *q, struct dsc_extent *ext)
{
	size_t u, start;

	while (q->emit_off < q->emit_len) {
		u = DSC_MIN(q->zero_unit, q->emit_len - q->emit_off);
		if (!dscp_is_zero(q->emit_data + q->emit_off, u))
			break;
		q->emit_off += u;
	}
	if (q->emit_off >= q->emit_len)
		return false;
	start = q->emit_off;
	while (q->emit_off < q->emit_len) {
		u = DSC_MIN(q->zero_unit, q->emit_len - q->emit_off);
		if (dscp_is_zero(q->emit_data + q->emit_off, u))
			break;
		q->emit_off += u;
	}
	ext->offset = q->emit_guest + start;
	ext->length = q->emit_off - start;
	ext->data = q->emit_data + start;
	return true;
}

/* A job for slot s: the current compressed cluster and the guest-adjacent
 * compressed ones right after it. On a seekable input they come from the
 * read buffer's batch; on a forward walk from the walk, and the item that
 * does not fit stays current for the caller (with the walk's error, if it
 * ended in one, pending as any other). */
static void fill_job(dsc_reader *r, struct qcow2_reader *q, struct dscp_slot *s)
{
	struct cjob *j = (struct cjob *)(void *)s->in;
	uint8_t *copy = s->in + JOB_HEAD;
	size_t n = 0;
	bool got;
	dsc_err rc;

	s->tag = q->cur.guest;
	s->tag2 = 0;
	s->in_ref = NULL;
	for (;;) {
		j[n].it = q->cur;
		if (q->seekable) {
			j[n].data = q->cur_data;
		} else {
			/* The window moves on: the cluster is copied. */
			memcpy(copy, q->cur_data, q->cur.len);
			j[n].data = copy;
			copy += q->cur.len;
		}
		n++;
		q->have_cur = false;
		if (n == q->job_clusters)
			break;
		if (q->seekable) {
			const struct item *b = &q->batch[q->batch_pos];

			if (q->batch_pos >= q->batch_n || b->kind != ITEM_COMP ||
			    b->guest != s->tag + n * q->cluster)
				break;
			q->cur = *b;
			q->cur_data = q->rbuf[q->rcur] + (b->host - q->rbuf_host);
			q->batch_pos++;
			continue;
		}
		if (q->done)
			break;
		rc = fwd_produce(r, q, &q->cur, &q->cur_data, &got, &q->pending);
		if (rc != DSC_OK) {
			q->pending_rc = rc;
			got = false;
		}
		q->have_cur = got;
		q->done = !got;
		if (!got || q->cur.kind != ITEM_COMP || q->cur.guest != s->tag + n * q->cluster)
			break;
	}
	s->in_len = n;
	if (q->seekable) {
		s->in_ref = j[0].data;
		s->tag2 = q->rcur ? SLOT_RBUF1 : 0;
		q->rbuf_refs[q->rcur]++;
	}
}

static dsc_err qcow2_next(dsc_reader *r, struct dsc_extent *ext, struct dsc_error *e)
{
	struct qcow2_reader *q = r->impl;
	struct dscp_slot *s;
	bool got;
	dsc_err rc;

	memset(ext, 0, sizeof *ext);
	for (;;) {
		if (q->holding && q->emit_off >= q->emit_len) {
			dscp_pool_release(q->pool);
			q->holding = false;
		}
		rc = dscp_reader_tick(r, e);
		if (rc != DSC_OK)
			return rc;
		if (q->emit_off < q->emit_len) {
			if (emit_piece(q, ext))
				return DSC_OK;
			continue;
		}
		if (!q->have_cur && !q->done && q->seekable && q->batch_pos >= q->batch_n &&
		    q->rbuf_refs[q->rcur ^ 1]) {
			/* The next batch goes into the other buffer: the
			 * clusters still reading it go out first. */
			rc = collect(r, q, ext, e);
			if (rc != DSC_OK || ext->length)
				return rc;
			continue;
		}
		if (!q->have_cur && !q->done) {
			rc = q->seekable ?
				     seek_produce(r, q, &q->cur, &q->cur_data, &got, &q->pending) :
				     fwd_produce(r, q, &q->cur, &q->cur_data, &got, &q->pending);
			if (rc != DSC_OK) {
				q->pending_rc = rc;
				got = false;
			}
			q->have_cur = got;
			q->done = !got;
		}
		if (!q->have_cur) {
			/* The end: what is still being decompressed, then the
			 * error that ended the walk, if one did. */
			if (!q->pool || dscp_pool_pending(q->pool) == 0) {
				if (q->pending_rc != DSC_OK && e && e->code == DSC_OK)
					*e = q->pending;
				return q->pending_rc;
			}
			rc = collect(r, q, ext, e);
			if (rc != DSC_OK || ext->length)
				return rc;
			continue;
		}
		if (q->cur.kind == ITEM_DATA) {
			/* Extents in order: the clusters before it go first. */
			if (q->pool && dscp_pool_pending(q->pool)) {
				rc = collect(r, q, ext, e);
				if (rc != DSC_OK || ext->length)
					return rc;
				continue;
			}
			q->emit_data = q->cur_data;
			q->emit_guest = q->cur.guest;
			q->emit_len = q->cur.len;
			q->emit_off = 0;
			q->have_cur = false;
			continue;
		}
		if (!q->pool) {
			rc = start_pool(r, q, e);
			if (rc != DSC_OK)
				return rc;
		}
		s = dscp_pool_head(q->pool);
		if (!s) {
			rc = collect(r, q, ext, e);
			if (rc != DSC_OK || ext->length)
				return rc;
			continue;
		}
		fill_job(r, q, s);
		dscp_pool_submit(q->pool);
	}
}

/* ---- open ------------------------------------------------------------------ */

static void header_decode(const uint8_t *b, struct qcow2_header *h)
{
	memset(h, 0, sizeof *h);
	h->version = dscp_be32(b + 4);
	h->backing_file_offset = dscp_be64(b + 8);
	h->backing_file_size = dscp_be32(b + 16);
	h->cluster_bits = dscp_be32(b + 20);
	h->size = dscp_be64(b + 24);
	h->crypt_method = dscp_be32(b + 32);
	h->l1_size = dscp_be32(b + 36);
	h->l1_table_offset = dscp_be64(b + 40);
	h->refcount_table_offset = dscp_be64(b + 48);
	h->refcount_table_clusters = dscp_be32(b + 56);
	h->nb_snapshots = dscp_be32(b + 60);
	h->snapshots_offset = dscp_be64(b + 64);
	if (h->version < 3) {
		h->refcount_order = 4;
		h->header_length = QCOW2_V2_HEADER_LEN;
		return;
	}
	h->incompatible = dscp_be64(b + 72);
	h->compatible = dscp_be64(b + 80);
	h->autoclear = dscp_be64(b + 88);
	h->refcount_order = dscp_be32(b + 96);
	h->header_length = dscp_be32(b + 100);
}

/* A name from the image, for a message: printable ASCII, bounded. */
static void sanitize(const uint8_t *p, size_t n, char *out, size_t cap)
{
	size_t i, k = 0;

	for (i = 0; i < n && k + 1 < cap; i++)
		out[k++] = p[i] >= 0x20 && p[i] < 0x7f && p[i] != '\'' ? (char)p[i] : '?';
	out[k] = '\0';
}

/* Offsets of a table in the header: aligned, below 2^56, inside the file. */
static dsc_err check_table(dsc_reader *r, struct qcow2_reader *q, const char *what, uint64_t off,
			   struct dsc_error *e)
{
	if (off & (q->cluster - 1))
		return dsc_error_set(e, DSC_ERR_FORMAT, 0,
				     "%s: the %s offset %" PRIu64 " is not cluster-aligned",
				     rname(r), what, off);
	if (off >= QCOW2_MAX_HOST_OFFSET)
		return dsc_error_set(e, DSC_ERR_FORMAT, 0,
				     "%s: the %s offset %" PRIu64 " is beyond the limit of 2^56",
				     rname(r), what, off);
	if (q->file_size != UINT64_MAX && off >= q->file_size)
		return dsc_error_set(e, DSC_ERR_TRUNCATED, 0,
				     "%s: truncated: the %s at byte %" PRIu64
				     " lies past the end of the file (%" PRIu64 " bytes)",
				     rname(r), what, off, q->file_size);
	return DSC_OK;
}

/* Walk the header extensions (facts §1) by their lengths. */
static dsc_err walk_extensions(dsc_reader *r, struct qcow2_reader *q, const uint8_t *b, size_t got,
			       struct dsc_error *e)
{
	const struct qcow2_header *h = &q->h;
	uint64_t off = h->header_length, end = q->cluster;
	uint32_t type, len;

	if (h->backing_file_offset && h->backing_file_offset > off)
		end = DSC_MIN(end, h->backing_file_offset);
	while (off + 8 <= end) {
		if (off + 8 > got)
			return dsc_error_set(e, DSC_ERR_TRUNCATED, 0,
					     "%s: truncated: input ends at byte %zu, inside the "
					     "header extensions",
					     rname(r), got);
		type = dscp_be32(b + off);
		len = dscp_be32(b + off + 4);
		if (type == QCOW2_EXT_END)
			break;
		if (len > end - off - 8)
			return dsc_error_set(e, DSC_ERR_FORMAT, 0,
					     "%s: header extension 0x%08" PRIx32 " at byte %" PRIu64
					     ": length %" PRIu32 " runs past the header cluster",
					     rname(r), type, off, len);
		if (type == QCOW2_EXT_BACKING_FORMAT && h->backing_file_offset && len &&
		    len <= QCOW2_MAX_EXT_NAME) {
			char fmt[QCOW2_MAX_EXT_NAME + 1];

			sanitize(b + off + 8, len, fmt, sizeof fmt);
			if (r->backing_file)
				dscp_info_backing(r, r->backing_file, strlen(r->backing_file), fmt);
		}
		if (type == QCOW2_EXT_BITMAPS)
			q->has_bitmaps = true;
		if (type == QCOW2_EXT_DATA_FILE)
			return dsc_error_set(e, DSC_ERR_UNSUPPORTED, 0,
					     "%s: uses an external data file; qcow2 images with an "
					     "external data file are not supported",
					     rname(r));
		off += 8 + (((uint64_t)len + 7) & ~7ull);
	}
	return DSC_OK;
}

static dsc_err check_header(dsc_reader *r, struct qcow2_reader *q, const uint8_t *b, size_t got,
			    struct dsc_error *e)
{
	struct qcow2_header *h = &q->h;
	uint64_t l2_span, need, unknown;
	dsc_err rc;

	if (h->version != 2 && h->version != 3)
		return dsc_error_set(e, DSC_ERR_UNSUPPORTED, 0,
				     "%s: qcow2 version %" PRIu32
				     " is not supported (only 2 and 3)",
				     rname(r), h->version);
	if (got < (h->version == 2 ? QCOW2_V2_HEADER_LEN : QCOW2_V3_HEADER_LEN))
		return dsc_error_set(
			e, DSC_ERR_TRUNCATED, 0,
			"%s: truncated: input ends at byte %zu, inside the qcow2 header", rname(r),
			got);
	if (h->cluster_bits < QCOW2_MIN_CLUSTER_BITS || h->cluster_bits > QCOW2_MAX_CLUSTER_BITS)
		return dsc_error_set(e, DSC_ERR_FORMAT, 0,
				     "%s: cluster_bits %" PRIu32
				     " is out of range (9 to 21: 512 bytes to 2 MiB)",
				     rname(r), h->cluster_bits);
	q->cbits = h->cluster_bits;
	q->cluster = (size_t)1 << q->cbits;
	if (h->version == 3 && (h->header_length < QCOW2_V3_HEADER_LEN || h->header_length % 8 ||
				h->header_length > q->cluster))
		return dsc_error_set(e, DSC_ERR_FORMAT, 0,
				     "%s: header_length %" PRIu32
				     " is invalid (at least 104, a multiple of 8, within the "
				     "%zu-byte cluster)",
				     rname(r), h->header_length, q->cluster);
	if (h->header_length > got)
		return dsc_error_set(
			e, DSC_ERR_TRUNCATED, 0,
			"%s: truncated: input ends at byte %zu, inside the qcow2 header", rname(r),
			got);
	if (h->header_length > QCOW2_V3_HEADER_LEN)
		h->compression_type = b[104];
	/* Refusals first, the most telling first. */
	if (h->backing_file_offset) {
		char name[QCOW2_MAX_EXT_NAME + 1];
		uint64_t bo = h->backing_file_offset;
		uint32_t bn = h->backing_file_size;

		if (bn && bn <= QCOW2_MAX_BACKING_NAME && bo < got && bn <= got - bo) {
			sanitize(b + bo, DSC_MIN((size_t)bn, (size_t)QCOW2_MAX_EXT_NAME), name,
				 sizeof name);
			if (dscp_inspect_only(r, DSC_ERR_UNSUPPORTED,
					      "has a backing file '%s'; backing files are not "
					      "followed",
					      name))
				dscp_info_backing(r, (const char *)b + bo, bn, NULL);
			else
				return dsc_error_set(
					e, DSC_ERR_UNSUPPORTED, 0,
					"%s: has a backing file '%s'%s; backing files are not "
					"followed (convert the chain with qemu-img first)",
					rname(r), name, bn > QCOW2_MAX_EXT_NAME ? "..." : "");
		} else if (!dscp_inspect_only(r, DSC_ERR_UNSUPPORTED,
					      "has a backing file; backing files are not followed"))
			return dsc_error_set(e, DSC_ERR_UNSUPPORTED, 0,
					     "%s: has a backing file; backing files are not "
					     "followed (convert the chain with qemu-img first)",
					     rname(r));
	}
	if (h->crypt_method)
		return dsc_error_set(e, DSC_ERR_UNSUPPORTED, 0,
				     "%s: the image is encrypted (%s); encrypted qcow2 images are "
				     "not supported",
				     rname(r),
				     h->crypt_method == QCOW2_CRYPT_AES  ? "AES" :
				     h->crypt_method == QCOW2_CRYPT_LUKS ? "LUKS" :
									   "unknown method");
	if (h->incompatible & QCOW2_INCOMPAT_DATA_FILE)
		return dsc_error_set(e, DSC_ERR_UNSUPPORTED, 0,
				     "%s: uses an external data file (incompatible feature bit 2); "
				     "qcow2 images with an external data file are not supported",
				     rname(r));
	if ((h->incompatible & QCOW2_INCOMPAT_CORRUPT) &&
	    !dscp_inspect_only(r, DSC_ERR_FORMAT,
			       "the image is marked corrupt (incompatible feature bit 1)"))
		return dsc_error_set(
			e, DSC_ERR_UNSUPPORTED, 0,
			"%s: the image is marked corrupt (incompatible feature bit 1); "
			"repair it with qemu-img check -r all first",
			rname(r));
	unknown = h->incompatible & ~QCOW2_INCOMPAT_KNOWN;
	if (unknown)
		return dsc_error_set(e, DSC_ERR_UNSUPPORTED, 0,
				     "%s: unknown incompatible feature bits 0x%" PRIx64
				     "; this qcow2 variant is not supported",
				     rname(r), unknown);
	if (h->compression_type > QCOW2_COMPRESSION_ZSTD)
		return dsc_error_set(e, DSC_ERR_UNSUPPORTED, 0,
				     "%s: compression type %u is not supported (0 deflate, 1 zstd)",
				     rname(r), h->compression_type);
	if (!!h->compression_type != !!(h->incompatible & QCOW2_INCOMPAT_COMPRESSION))
		return dsc_error_set(e, DSC_ERR_FORMAT, 0,
				     "%s: compression type %u %s incompatible feature bit 3",
				     rname(r), h->compression_type,
				     h->compression_type ? "without" : "with");
#ifndef HAVE_ZSTD
	if (h->compression_type == QCOW2_COMPRESSION_ZSTD)
		return dsc_error_set(e, DSC_ERR_UNSUPPORTED, 0,
				     "%s: compressed with zstd, and this dsc was built without "
				     "libzstd",
				     rname(r));
#endif
	q->extl2 = (h->incompatible & QCOW2_INCOMPAT_EXTL2) != 0;
	if (q->extl2 && q->cbits < QCOW2_MIN_EXTL2_CLUSTER_BITS)
		return dsc_error_set(e, DSC_ERR_FORMAT, 0,
				     "%s: extended L2 entries need clusters of 16 KiB or more, not "
				     "%zu bytes",
				     rname(r), q->cluster);
	if (h->refcount_order > QCOW2_MAX_REFCOUNT_ORDER)
		return dsc_error_set(e, DSC_ERR_FORMAT, 0,
				     "%s: refcount_order %" PRIu32 " is out of range (0 to 6)",
				     rname(r), h->refcount_order);
	if (h->size > QCOW2_MAX_VIRTUAL_SIZE)
		return dsc_error_set(e, DSC_ERR_LIMIT, 0,
				     "%s: virtual size of %" PRIu64
				     " bytes exceeds the limit of %llu bytes",
				     rname(r), h->size, (unsigned long long)QCOW2_MAX_VIRTUAL_SIZE);
	q->esz = q->extl2 ? 16 : 8;
	q->l2_entries = q->cluster / q->esz;
	q->l2_span = l2_span = (uint64_t)q->l2_entries << q->cbits;
	q->sc_size = q->cluster / QCOW2_SUBCLUSTERS;
	if ((uint64_t)h->l1_size * 8 > QCOW2_MAX_L1_BYTES)
		return dsc_error_set(e, DSC_ERR_LIMIT, 0,
				     "%s: L1 table of %" PRIu32
				     " entries exceeds the limit of %u bytes",
				     rname(r), h->l1_size, QCOW2_MAX_L1_BYTES);
	need = (h->size + l2_span - 1) / l2_span;
	if (h->l1_size < need)
		return dsc_error_set(e, DSC_ERR_FORMAT, 0,
				     "%s: L1 table of %" PRIu32
				     " entries is too small for the virtual size of %" PRIu64
				     " bytes (needs %" PRIu64 ")",
				     rname(r), h->l1_size, h->size, need);
	q->l1_n = (uint32_t)need;
	if ((uint64_t)h->refcount_table_clusters << q->cbits > QCOW2_MAX_REFTABLE_BYTES)
		return dsc_error_set(e, DSC_ERR_LIMIT, 0,
				     "%s: refcount table of %" PRIu32
				     " clusters exceeds the limit of %u bytes",
				     rname(r), h->refcount_table_clusters,
				     QCOW2_MAX_REFTABLE_BYTES);
	rc = check_table(r, q, "refcount table", h->refcount_table_offset, e);
	if (rc != DSC_OK)
		return rc;
	q->rt_end = h->refcount_table_offset + ((uint64_t)h->refcount_table_clusters << q->cbits);
	if (h->nb_snapshots) {
		rc = check_table(r, q, "snapshot table", h->snapshots_offset, e);
		if (rc != DSC_OK)
			return rc;
	}
	if (q->l1_n) {
		rc = check_table(r, q, "L1 table", h->l1_table_offset, e);
		if (rc != DSC_OK)
			return rc;
		if (h->l1_table_offset < q->cluster)
			return dsc_error_set(e, DSC_ERR_FORMAT, 0,
					     "%s: the L1 table at byte %" PRIu64
					     " is inside the header cluster",
					     rname(r), h->l1_table_offset);
	}
	q->l1_end = h->l1_table_offset + 8ull * q->l1_n;
	return walk_extensions(r, q, b, got, e);
}

/* What dsc-img info reports: qemu-img info's format-specific keys. */
static void report_info(dsc_reader *r, const struct qcow2_reader *q)
{
	const struct qcow2_header *h = &q->h;

	r->cluster_size = q->cluster;
	r->dirty = (h->incompatible & QCOW2_INCOMPAT_DIRTY) != 0;
	dscp_info_str(r, NULL, 0, "compat", h->version == 2 ? "0.10" : "1.1");
	dscp_info_str(r, NULL, 0, "compression-type",
		      h->compression_type == QCOW2_COMPRESSION_ZSTD ? "zstd" : "zlib");
	if (h->version >= 3)
		dscp_info_bool(r, NULL, 0, "lazy-refcounts",
			       (h->compatible & QCOW2_COMPAT_LAZY_REFCOUNTS) != 0);
	dscp_info_uint(r, NULL, 0, "refcount-bits", 1ull << h->refcount_order);
	if (h->version >= 3) {
		dscp_info_bool(r, NULL, 0, "corrupt",
			       (h->incompatible & QCOW2_INCOMPAT_CORRUPT) != 0);
		dscp_info_bool(r, NULL, 0, "extended-l2", q->extl2);
	}
	dscp_info_uint(r, NULL, 0, "dsc-snapshots", h->nb_snapshots);
}

static dsc_err qcow2_open(dsc_reader *r, struct dsc_error *e)
{
	struct qcow2_reader *q = r->impl;
	uint64_t total = dsc_stream_total(r->in);
	uint8_t *b = NULL;
	size_t got, more;
	dsc_err rc;

	q->base = dsc_stream_tell(r->in);
	q->file_size = total != UINT64_MAX && total >= q->base ? total - q->base : UINT64_MAX;
	q->seekable = (dsc_stream_caps(r->in) & DSC_STREAM_SEEK) != 0;

	/* The header cluster is at most 2 MiB; read 512 bytes first, as
	 * much as cluster_bits says after. */
	if (!(b = calloc(1, (size_t)1 << QCOW2_MAX_CLUSTER_BITS)))
		return nomem(r, e);
	rc = dsc_read_full(r->in, b, 512, &got, e);
	if (rc != DSC_OK)
		goto out;
	if (got < 8 || dscp_be32(b) != QCOW2_MAGIC) {
		rc = got < 8 ? dsc_error_set(e, DSC_ERR_TRUNCATED, 0,
					     "%s: truncated: input ends at byte %zu, inside the "
					     "qcow2 header",
					     rname(r), got) :
			       dsc_error_set(e, DSC_ERR_FORMAT, 0,
					     "%s: not a qcow2 image (bad magic)", rname(r));
		goto out;
	}
	header_decode(b, &q->h);
	q->h.cluster_bits = got >= 24 ? q->h.cluster_bits : 0;
	if (got == 512 && q->h.cluster_bits > 9 && q->h.cluster_bits <= QCOW2_MAX_CLUSTER_BITS) {
		rc = dsc_read_full(r->in, b + 512, ((size_t)1 << q->h.cluster_bits) - 512, &more,
				   e);
		if (rc != DSC_OK)
			goto out;
		got += more;
	}
	rc = check_header(r, q, b, got, e);
	if (rc != DSC_OK)
		goto out;
	report_info(r, q);
	/* qemu counts the disk in whole sectors (bs->total_sectors = size /
	 * 512 in qcow2_do_open): so does dsc, for the same bytes. */
	r->capacity = q->h.size & ~511ull;
	/* A seek is a new request on a URL: there, gaps up to four clusters
	 * (qemu-img puts the refcount table and block between the header and
	 * the L1) are read through, so a stream-ordered image takes one. */
	q->skip_read = dscp_stream_query(r->in, DSCP_Q_FILE) ?
			       QCOW2_READ_GAP :
			       DSC_MAX((uint64_t)QCOW2_SKIP_READ, 4 * (uint64_t)q->cluster);
	q->zero_unit = DSC_MIN(q->cluster, (size_t)DSCP_ZERO_UNIT);
	q->comp_bits = 62 - (q->cbits - 8);
	q->comp_off_mask = (1ull << q->comp_bits) - 1;
	q->comp_nsect_mask = (1ull << (q->cbits - 8)) - 1;
	if (q->l1_n && !(q->l1 = malloc((size_t)q->l1_n * 8))) {
		rc = nomem(r, e);
		goto out;
	}
	if (q->seekable) {
		q->rbuf_cap =
			DSC_MAX((size_t)QCOW2_READ_RUN, q->cluster + QCOW2_MAX_COMPRESSED_EXTRA);
		q->l2buf = malloc(q->cluster);
		q->rbuf[0] = malloc(q->rbuf_cap);
		q->rbuf[1] = malloc(q->rbuf_cap);
		q->batch = malloc(BATCH_MAX * sizeof *q->batch);
		if (!q->l2buf || !q->rbuf[0] || !q->rbuf[1] || !q->batch) {
			rc = nomem(r, e);
			goto out;
		}
		if (q->l1_n) {
			rc = read_at(r, q, q->h.l1_table_offset, q->l1, (size_t)q->l1_n * 8, &got,
				     e);
			if (rc != DSC_OK)
				goto out;
			if (got < (size_t)q->l1_n * 8) {
				rc = dsc_error_set(e, DSC_ERR_TRUNCATED, 0,
						   "%s: truncated: input ends inside the L1 table "
						   "at byte %" PRIu64,
						   rname(r), q->h.l1_table_offset);
				goto out;
			}
			for (uint32_t i = 0; i < q->l1_n; i++)
				q->l1[i] = dscp_be64((const uint8_t *)&q->l1[i]);
		}
	} else {
		q->holdback = DSC_MAX(2 * (uint64_t)q->cluster, (uint64_t)QCOW2_MIN_HOLDBACK);
		q->win_cap = (size_t)q->holdback + QCOW2_READ_RUN + 2 * q->cluster + FWD_CHUNK;
		if (!(q->win = malloc(q->win_cap))) {
			rc = nomem(r, e);
			goto out;
		}
		/* The header cluster has passed; it holds no data. */
		q->win_lo = got;
		if (!q->l1_n)
			q->l1_read = true;
	}
out:
	free(b);
	return rc;
}

static void qcow2_close(dsc_reader *r)
{
	struct qcow2_reader *q = r->impl;

	dscp_pool_free(q->pool);
	free(q->l1);
	free(q->l2buf);
	free(q->rbuf[0]);
	free(q->rbuf[1]);
	free(q->batch);
	free(q->heap);
	free(q->win);
}

static dsc_err qcow2_check(dsc_reader *r, struct dsc_check_report *rep, struct dsc_error *e)
{
	const struct qcow2_reader *q = r->impl;

	return dscp_qcow2_check(r->in, q->base, q->file_size, &q->h, q->has_bitmaps, rep, e);
}

const struct dscp_reader_class dscp_qcow2_reader = {
	.size = sizeof(struct qcow2_reader),
	.open = qcow2_open,
	.next = qcow2_next,
	.close = qcow2_close,
	.check = qcow2_check,
};
