/* decompress.c - compression layers around an image: gzip, xz, zstd, bzip2.
 *
 * A compressed image (disk.raw.xz, disk.qcow2.gz, ...) is a read stream of
 * the decompressed bytes layered over the input: dsc_reader_open() finds
 * the layer by its magic, opens it here, detects (or is told) the image
 * format inside, and the image's reader reads the layer as it would a pipe.
 * Nothing is seekable, nothing is kept but the codec's own window, so a
 * file, a pipe, an upload and a URL all decompress in one pass.
 *
 * Libraries, one per format (not libarchive's filters, which decode gzip
 * with zlib only and xz on one thread):
 *   gzip   ISA-L's igzip stream inflate when built with it (several times
 *          zlib's speed), else zlib; members are decoded one after another
 *          (`cat a.gz b.gz`, pigz -i), each checked by its CRC-32 and size.
 *   xz     liblzma's multi-threaded decoder (blocks in parallel when the
 *          file has several, as xz -T writes), concatenated streams and
 *          stream padding; its memory is capped by DSCP_XZ_MEMLIMIT.
 *   zstd   libzstd's streaming decoder: frames one after another, skippable
 *          frames, checksums; the window is capped by DSCP_ZSTD_WINDOW_LOG.
 *   bzip2  libbz2, streams one after another.
 * After the last gzip or bzip2 member only zero bytes may follow (tape
 * padding, which gzip and bzip2 accept too), after xz only its stream
 * padding, after zstd nothing: other trailing bytes are an error, never
 * a silently short disk. Errors name the layer and the compressed offset.
 */
#include "internal.h"
#include "pool.h"

#include <inttypes.h>
#include <stdio.h>
#include <zlib.h>
#if HAVE_ISAL
#include <isa-l/igzip_lib.h>
#endif
#if HAVE_LZMA
#include <lzma.h>
#endif
#if HAVE_ZSTD
#include <zstd.h>
#include <zstd_errors.h>
#endif
#if HAVE_BZ2
#include <bzlib.h>
#endif

/* Compressed bytes read from the input at a time. */
#define DZ_IN_BUF (256u * 1024)
/* Consumed bytes kept in front of the unconsumed ones when the buffer is
 * refilled: ISA-L may hold up to 8 bytes past a member's end in its bit
 * buffer, which are given back before the next member starts. */
#define DZ_KEEP 16u
/* xz: the decoder's memory limit (the dictionary of xz -9 is 64 MiB; a
 * file that needs more is refused by this limit, never allocated), and
 * the threads it may use at most. */
#define DSCP_XZ_MEMLIMIT (256ull << 20)
#define DSCP_XZ_MAX_THREADS 8u
/* zstd: the largest window, as a power of two (128 MiB: zstd's own default
 * limit; zstd --long=31 frames need `zstd -d --memory=2GB`). */
#define DSCP_ZSTD_WINDOW_LOG 27

enum dz_kind {
	DZ_GZIP,
	DZ_XZ,
	DZ_ZSTD,
	DZ_BZIP2
};

static const char *const dz_layer[] = {"gzip", "xz", "zstd", "bzip2"};

struct dz {
	dsc_stream *in; /* not owned */
	enum dz_kind kind;
	uint8_t *buf;
	size_t start, end; /* unconsumed input: buf[start..end) */
	uint64_t buf_off;  /* input offset of buf[0] */
	bool in_eof;       /* the input has ended */
	bool member_done;  /* gzip, bzip2: the last member ended cleanly */
	bool between;      /* zstd: the last frame ended cleanly */
	bool done;         /* end of the layer */
	uint64_t members;
	union {
		z_stream z;
#if HAVE_ISAL
		struct inflate_state *isal;
#endif
#if HAVE_LZMA
		lzma_stream x;
#endif
#if HAVE_ZSTD
		ZSTD_DCtx *zs;
#endif
#if HAVE_BZ2
		bz_stream b;
#endif
	} u;
	bool use_isal;
	bool codec_live; /* u holds an initialised decoder */
};

static const char *dzname(const struct dz *z) { return dsc_stream_name(z->in); }

static const char *dzl(const struct dz *z)
{
	return (size_t)z->kind < sizeof dz_layer / sizeof dz_layer[0] ? dz_layer[z->kind] : "?";
}

static uint64_t dz_at(const struct dz *z) { return z->buf_off + z->start; }

static dsc_err dz_corrupt(struct dz *z, const char *what, struct dsc_error *e)
{
	return dsc_error_set(e, DSC_ERR_FORMAT, 0,
			     "%s: %s: corrupt data (%s) at compressed byte %" PRIu64, dzname(z),
			     dzl(z), what, dz_at(z));
}

static dsc_err dz_nomem(struct dz *z, struct dsc_error *e)
{
	return dsc_error_set(e, DSC_ERR_NOMEM, ENOMEM, "%s: %s: out of memory", dzname(z), dzl(z));
}

/* Read more input: keep what is unconsumed (and DZ_KEEP consumed bytes in
 * front of it), then fill the rest of the buffer. */
static dsc_err dz_refill(struct dz *z, struct dsc_error *e)
{
	size_t keep = DSC_MIN(z->start, (size_t)DZ_KEEP), from = z->start - keep, got;
	dsc_err rc;

	if (z->in_eof)
		return DSC_OK;
	memmove(z->buf, z->buf + from, z->end - from);
	z->buf_off += from;
	z->start -= from;
	z->end -= from;
	rc = dsc_read_full(z->in, z->buf + z->end, DZ_IN_BUF - z->end, &got, e);
	if (rc != DSC_OK)
		return rc;
	if (got == 0)
		z->in_eof = true;
	z->end += got;
	return DSC_OK;
}

/* Between members: more input must be another member (its magic), or
 * zero bytes to the end. Sets z->done at the end; returns true in *more
 * when a member follows. */
static dsc_err dz_next_member(struct dz *z, const uint8_t *magic, size_t mlen, bool *more,
			      struct dsc_error *e)
{
	dsc_err rc;

	*more = false;
	for (;;) {
		while (z->end - z->start < mlen && !z->in_eof) {
			rc = dz_refill(z, e);
			if (rc != DSC_OK)
				return rc;
		}
		if (z->start == z->end) {
			z->done = true;
			return DSC_OK;
		}
		if (z->end - z->start >= mlen && !memcmp(z->buf + z->start, magic, mlen)) {
			*more = true;
			return DSC_OK;
		}
		while (z->start < z->end && z->buf[z->start] == 0)
			z->start++;
		if (z->start < z->end)
			return dsc_error_set(e, DSC_ERR_FORMAT, 0,
					     "%s: %s: the bytes at compressed byte %" PRIu64
					     ", after member %" PRIu64 ", are not another member",
					     dzname(z), dzl(z), dz_at(z), z->members);
		if (z->in_eof) {
			z->done = true;
			return DSC_OK;
		}
		rc = dz_refill(z, e);
		if (rc != DSC_OK)
			return rc;
	}
}

static dsc_err dz_truncated(struct dz *z, struct dsc_error *e)
{
	if (z->kind == DZ_XZ) /* liblzma counts its streams itself */
		return dsc_error_set(e, DSC_ERR_TRUNCATED, 0,
				     "%s: xz: truncated: the input ends at compressed byte %" PRIu64
				     " inside a stream",
				     dzname(z), dz_at(z));
	return dsc_error_set(e, DSC_ERR_TRUNCATED, 0,
			     "%s: %s: truncated: the input ends at compressed byte %" PRIu64
			     " inside %s %" PRIu64,
			     dzname(z), dzl(z), dz_at(z), z->kind == DZ_ZSTD ? "frame" : "member",
			     z->members + 1);
}

/* ---- gzip ---------------------------------------------------------------- */

static const uint8_t gzip_magic[3] = {0x1f, 0x8b, 0x08};

static dsc_err gzip_init(struct dz *z, struct dsc_error *e)
{
#if HAVE_ISAL
	z->use_isal = true;
	if (!z->u.isal && !(z->u.isal = malloc(sizeof *z->u.isal)))
		return dz_nomem(z, e);
	isal_inflate_init(z->u.isal);
	z->u.isal->crc_flag = ISAL_GZIP;
	z->codec_live = true;
	return DSC_OK;
#else
	memset(&z->u.z, 0, sizeof z->u.z);
	if (inflateInit2(&z->u.z, 16 + MAX_WBITS) != Z_OK)
		return dz_nomem(z, e);
	z->codec_live = true;
	return DSC_OK;
#endif
}

static void gzip_end(struct dz *z)
{
	if (!z->codec_live)
		return;
#if HAVE_ISAL
	free(z->u.isal);
	z->u.isal = NULL;
#else
	inflateEnd(&z->u.z);
#endif
	z->codec_live = false;
}

/* Ready for the next member. */
static dsc_err gzip_reset(struct dz *z, struct dsc_error *e)
{
#if HAVE_ISAL
	isal_inflate_reset(z->u.isal);
	z->u.isal->crc_flag = ISAL_GZIP;
#else
	if (inflateReset(&z->u.z) != Z_OK)
		return dz_corrupt(z, "decoder reset failed", e);
#endif
	return DSC_OK;
}

/* One decoding step into out; *produced may be 0 (more input needed or a
 * member boundary crossed). */
static dsc_err gzip_step(struct dz *z, uint8_t *out, size_t len, size_t *produced,
			 struct dsc_error *e)
{
	size_t avail = z->end - z->start;
	bool finished;

	*produced = 0;
	if (len > UINT32_MAX)
		len = UINT32_MAX;
#if HAVE_ISAL
	struct inflate_state *s = z->u.isal;
	int ret;
	uint32_t back;

	s->next_in = z->buf + z->start;
	s->avail_in = (uint32_t)avail;
	s->next_out = out;
	s->avail_out = (uint32_t)len;
	ret = isal_inflate(s);
	z->start = (size_t)(s->next_in - z->buf);
	*produced = len - s->avail_out;
	if (ret == ISAL_INCORRECT_CHECKSUM)
		return dz_corrupt(z, "CRC-32 or size mismatch at the end of a member", e);
	if (ret == ISAL_INVALID_WRAPPER || ret == ISAL_UNSUPPORTED_METHOD)
		return dz_corrupt(z, "bad member header", e);
	if (ret != ISAL_DECOMP_OK)
		return dz_corrupt(z, "invalid deflate data", e);
	finished = s->block_state == ISAL_BLOCK_FINISH;
	if (finished) {
		/* Bytes read into the bit buffer past the trailer belong to
		 * what follows. */
		back = (uint32_t)(s->read_in_length / 8);
		if (back > z->start)
			back = (uint32_t)z->start;
		z->start -= back;
	}
#else
	z_stream *s = &z->u.z;
	int ret;

	s->next_in = z->buf + z->start;
	s->avail_in = (uInt)DSC_MIN(avail, (size_t)UINT32_MAX);
	s->next_out = out;
	s->avail_out = (uInt)len;
	ret = inflate(s, Z_NO_FLUSH);
	z->start = (size_t)(s->next_in - z->buf);
	*produced = len - s->avail_out;
	if (ret == Z_MEM_ERROR)
		return dz_nomem(z, e);
	if (ret == Z_DATA_ERROR && s->msg &&
	    (!strcmp(s->msg, "incorrect data check") || !strcmp(s->msg, "incorrect length check")))
		return dz_corrupt(z, "CRC-32 or size mismatch at the end of a member", e);
	if (ret == Z_DATA_ERROR || ret == Z_NEED_DICT || ret == Z_STREAM_ERROR)
		return dz_corrupt(z, s->msg ? s->msg : "invalid deflate data", e);
	finished = ret == Z_STREAM_END;
#endif
	if (finished) {
		z->members++;
		z->member_done = true;
	} else if (*produced == 0 && z->start == z->end && z->in_eof) {
		return dz_truncated(z, e);
	}
	return DSC_OK;
}

/* ---- xz ------------------------------------------------------------------ */

#if HAVE_LZMA
static dsc_err xz_init(struct dz *z, struct dsc_error *e)
{
	lzma_mt mt = {0};
	lzma_ret ret;
	unsigned n = dscp_cpu_count();

	z->u.x = (lzma_stream)LZMA_STREAM_INIT;
	mt.flags = LZMA_CONCATENATED;
	mt.threads = DSC_MIN(n, DSCP_XZ_MAX_THREADS);
	mt.timeout = 0;
	mt.memlimit_threading = DSCP_XZ_MEMLIMIT;
	mt.memlimit_stop = DSCP_XZ_MEMLIMIT;
	ret = lzma_stream_decoder_mt(&z->u.x, &mt);
	if (ret == LZMA_MEM_ERROR)
		return dz_nomem(z, e);
	if (ret != LZMA_OK)
		return dsc_error_set(e, DSC_ERR_IO, 0, "%s: xz: decoder setup failed (%d)",
				     dzname(z), (int)ret);
	z->codec_live = true;
	return DSC_OK;
}

static dsc_err xz_step(struct dz *z, uint8_t *out, size_t len, size_t *produced,
		       struct dsc_error *e)
{
	lzma_stream *s = &z->u.x;
	lzma_ret ret;

	s->next_in = z->buf + z->start;
	s->avail_in = z->end - z->start;
	s->next_out = out;
	s->avail_out = len;
	ret = lzma_code(s, z->in_eof ? LZMA_FINISH : LZMA_RUN);
	z->start = (size_t)(s->next_in - z->buf);
	*produced = len - s->avail_out;
	switch (ret) {
	case LZMA_OK: break;
	case LZMA_STREAM_END: z->done = true; break;
	case LZMA_MEM_ERROR: return dz_nomem(z, e);
	case LZMA_MEMLIMIT_ERROR:
		return dsc_error_set(e, DSC_ERR_LIMIT, 0,
				     "%s: xz: decoding needs more memory than the limit of %llu "
				     "MiB (a dictionary larger than xz -9's), at compressed byte "
				     "%" PRIu64,
				     dzname(z), (unsigned long long)(DSCP_XZ_MEMLIMIT >> 20),
				     dz_at(z));
	case LZMA_BUF_ERROR:
		if (z->in_eof)
			return dz_truncated(z, e);
		break;
	case LZMA_FORMAT_ERROR: return dz_corrupt(z, "not an xz stream", e);
	case LZMA_OPTIONS_ERROR: return dz_corrupt(z, "unsupported options", e);
	case LZMA_DATA_ERROR: return dz_corrupt(z, "invalid compressed data", e);
	default: return dz_corrupt(z, "decoder error", e);
	}
	if (!z->done && *produced == 0 && z->start == z->end && z->in_eof)
		return dz_truncated(z, e);
	return DSC_OK;
}
#endif

/* ---- zstd ---------------------------------------------------------------- */

#if HAVE_ZSTD
static dsc_err zstd_init(struct dz *z, struct dsc_error *e)
{
	z->u.zs = ZSTD_createDCtx();
	if (!z->u.zs)
		return dz_nomem(z, e);
	z->codec_live = true;
	if (ZSTD_isError(
		    ZSTD_DCtx_setParameter(z->u.zs, ZSTD_d_windowLogMax, DSCP_ZSTD_WINDOW_LOG)))
		return dsc_error_set(e, DSC_ERR_IO, 0, "%s: zstd: decoder setup failed", dzname(z));
	return DSC_OK;
}

static dsc_err zstd_step(struct dz *z, uint8_t *out, size_t len, size_t *produced,
			 struct dsc_error *e)
{
	ZSTD_inBuffer ib = {z->buf, z->end, z->start};
	ZSTD_outBuffer ob = {out, len, 0};
	size_t ret;

	*produced = 0;
	if (z->between && z->start == z->end && z->in_eof) {
		z->done = true; /* the input ended after a whole frame */
		return DSC_OK;
	}
	ret = ZSTD_decompressStream(z->u.zs, &ob, &ib);
	z->start = ib.pos;
	*produced = ob.pos;
	if (ZSTD_isError(ret)) {
		if (ZSTD_getErrorCode(ret) == ZSTD_error_frameParameter_windowTooLarge)
			return dsc_error_set(
				e, DSC_ERR_LIMIT, 0,
				"%s: zstd: the frame's window is larger than the limit "
				"of %u MiB, at compressed byte %" PRIu64,
				dzname(z), 1u << (DSCP_ZSTD_WINDOW_LOG - 20), dz_at(z));
		if (ZSTD_getErrorCode(ret) == ZSTD_error_memory_allocation)
			return dz_nomem(z, e);
		return dz_corrupt(z, ZSTD_getErrorName(ret), e);
	}
	if (ret == 0) {
		/* A frame has ended and all of it is out. */
		z->members++;
		z->between = true;
	} else if (ob.pos > 0 || ib.pos > 0) {
		z->between = false;
	}
	if (!z->between && *produced == 0 && z->start == z->end && z->in_eof)
		return dz_truncated(z, e);
	return DSC_OK;
}
#endif

/* ---- bzip2 --------------------------------------------------------------- */

#if HAVE_BZ2
static const uint8_t bzip2_magic[3] = {'B', 'Z', 'h'};

static dsc_err bzip2_init(struct dz *z, struct dsc_error *e)
{
	memset(&z->u.b, 0, sizeof z->u.b);
	if (BZ2_bzDecompressInit(&z->u.b, 0, 0) != BZ_OK)
		return dz_nomem(z, e);
	z->codec_live = true;
	return DSC_OK;
}

static dsc_err bzip2_step(struct dz *z, uint8_t *out, size_t len, size_t *produced,
			  struct dsc_error *e)
{
	bz_stream *s = &z->u.b;
	int ret;

	s->next_in = (char *)z->buf + z->start;
	s->avail_in = (unsigned)(z->end - z->start);
	s->next_out = (char *)out;
	s->avail_out = (unsigned)DSC_MIN(len, (size_t)UINT32_MAX);
	ret = BZ2_bzDecompress(s);
	z->start = (size_t)((uint8_t *)s->next_in - z->buf);
	*produced = DSC_MIN(len, (size_t)UINT32_MAX) - s->avail_out;
	switch (ret) {
	case BZ_OK: break;
	case BZ_STREAM_END:
		z->members++;
		z->member_done = true;
		BZ2_bzDecompressEnd(s);
		z->codec_live = false;
		return DSC_OK;
	case BZ_MEM_ERROR: return dz_nomem(z, e);
	case BZ_DATA_ERROR_MAGIC: return dz_corrupt(z, "bad stream header", e);
	case BZ_DATA_ERROR: return dz_corrupt(z, "invalid block or CRC mismatch", e);
	default: return dz_corrupt(z, "decoder error", e);
	}
	if (*produced == 0 && z->start == z->end && z->in_eof)
		return dz_truncated(z, e);
	return DSC_OK;
}
#endif

/* ---- the stream ---------------------------------------------------------- */

static dsc_err dz_init(struct dz *z, struct dsc_error *e)
{
	switch (z->kind) {
	case DZ_GZIP: return gzip_init(z, e);
#if HAVE_LZMA
	case DZ_XZ: return xz_init(z, e);
#endif
#if HAVE_ZSTD
	case DZ_ZSTD: return zstd_init(z, e);
#endif
#if HAVE_BZ2
	case DZ_BZIP2: return bzip2_init(z, e);
#endif
	default: break;
	}
	return dsc_error_set(e, DSC_ERR_UNSUPPORTED, 0, "%s: %s support is not built in", dzname(z),
			     dzl(z));
}

static dsc_err dz_step(struct dz *z, uint8_t *out, size_t len, size_t *produced,
		       struct dsc_error *e)
{
	switch (z->kind) {
	case DZ_GZIP: return gzip_step(z, out, len, produced, e);
#if HAVE_LZMA
	case DZ_XZ: return xz_step(z, out, len, produced, e);
#endif
#if HAVE_ZSTD
	case DZ_ZSTD: return zstd_step(z, out, len, produced, e);
#endif
#if HAVE_BZ2
	case DZ_BZIP2: return bzip2_step(z, out, len, produced, e);
#endif
	default: break;
	}
	*produced = 0;
	return DSC_ERR_UNSUPPORTED;
}

static const uint8_t *dz_magic(const struct dz *z, size_t *len)
{
	*len = 3;
#if HAVE_BZ2
	if (z->kind == DZ_BZIP2)
		return bzip2_magic;
#endif
	return gzip_magic;
}

static dsc_err dz_read(void *ctx, void *buf, size_t len, size_t *nread, struct dsc_error *e)
{
	struct dz *z = ctx;
	size_t produced, mlen;
	const uint8_t *magic;
	bool more;
	dsc_err rc;

	*nread = 0;
	while (*nread == 0 && !z->done && len > 0) {
		if (z->member_done) {
			/* gzip and bzip2 decoders end with their member; zstd
			 * and xz read theirs one after another themselves. */
			magic = dz_magic(z, &mlen);
			rc = dz_next_member(z, magic, mlen, &more, e);
			if (rc != DSC_OK || !more)
				return rc;
			z->member_done = false;
			rc = z->kind == DZ_GZIP ? gzip_reset(z, e) : dz_init(z, e);
			if (rc != DSC_OK)
				return rc;
		}
		if (z->start == z->end && !z->in_eof) {
			rc = dz_refill(z, e);
			if (rc != DSC_OK)
				return rc;
		}
		rc = dz_step(z, buf, len, &produced, e);
		if (rc != DSC_OK)
			return rc;
		*nread = produced;
	}
	return DSC_OK;
}

static void dz_close(void *ctx)
{
	struct dz *z = ctx;

	if (!z)
		return;
	if (z->codec_live) {
		switch (z->kind) {
		case DZ_GZIP: gzip_end(z); break;
#if HAVE_LZMA
		case DZ_XZ: lzma_end(&z->u.x); break;
#endif
#if HAVE_ZSTD
		case DZ_ZSTD: ZSTD_freeDCtx(z->u.zs); break;
#endif
#if HAVE_BZ2
		case DZ_BZIP2: BZ2_bzDecompressEnd(&z->u.b); break;
#endif
		default: break;
		}
	}
	free(z->buf);
	free(z);
}

static const struct dsc_stream_ops dz_ops = {
	.name = "decompress",
	.read = dz_read,
	.close = dz_close,
};

/* Open the layer of format `kind` over `in`, named "<in> (<layer>)". */
static dsc_err dz_open(dsc_stream *in, enum dz_kind kind, dsc_stream **out, struct dsc_error *e)
{
	struct dz *z;
	char name[512];
	dsc_err rc;

	*out = NULL;
	z = calloc(1, sizeof *z);
	if (!z || !(z->buf = malloc(DZ_IN_BUF))) {
		free(z);
		return dsc_error_set(e, DSC_ERR_NOMEM, ENOMEM, "%s: out of memory",
				     dsc_stream_name(in));
	}
	z->in = in;
	z->kind = kind;
	z->buf_off = dsc_stream_tell(in);
	rc = dz_init(z, e);
	if (rc == DSC_OK) {
		snprintf(name, sizeof name, "%s (%s)", dsc_stream_name(in), dzl(z));
		rc = dsc_stream_new(&dz_ops, z, name, out, e);
	}
	if (rc != DSC_OK)
		dz_close(z);
	return rc;
}

/* ---- the format table's entries ------------------------------------------- */

/* Signatures: gzip 1f 8b 08 with the reserved flag bits clear (RFC 1952
 * 2.3.1); xz fd "7zXZ" 00 (xz file format 2.1.1.1); zstd 28 b5 2f fd, or
 * a skippable frame 0x184d2a5? (RFC 8878 3.1); bzip2 "BZh" + '1'-'9' and
 * the block magic 31 41 59 26 53 59 or the end-of-stream magic
 * 17 72 45 38 50 90. */
static bool at(const struct dscp_probe *p, size_t off, const void *magic, size_t n)
{
	return p->head_len >= off + n && !memcmp(p->head + off, magic, n);
}

static int score(bool hit) { return hit ? DSCP_SCORE_CERTAIN : DSCP_SCORE_NONE; }

static int probe_gzip(const struct dscp_probe *p)
{
	return score(at(p, 0, gzip_magic, 3) && p->head_len >= 4 && !(p->head[3] & 0xe0));
}

static int probe_xz(const struct dscp_probe *p)
{
	return score(at(p, 0, "\xfd\x37\x7a\x58\x5a\x00", 6));
}

static int probe_zstd(const struct dscp_probe *p)
{
	return score(at(p, 0, "\x28\xb5\x2f\xfd", 4) ||
		     (p->head_len >= 4 && (dscp_le32(p->head) & 0xfffffff0u) == 0x184d2a50u));
}

static int probe_bzip2(const struct dscp_probe *p)
{
	return score(at(p, 0, "BZh", 3) && p->head_len >= 10 && p->head[3] >= '1' &&
		     p->head[3] <= '9' &&
		     (at(p, 4, "\x31\x41\x59\x26\x53\x59", 6) ||
		      at(p, 4, "\x17\x72\x45\x38\x50\x90", 6)));
}

#define COMPRESSION(id_, kind_, name_, desc_, aliases_, exts_, noun_, have_)            \
	static dsc_err open_##id_(dsc_stream *in, const struct dsc_reader_opts *opts,   \
				  dsc_stream **out, struct dsc_error *e)                \
	{                                                                               \
		(void)opts;                                                             \
		return dz_open(in, kind_, out, e);                                      \
	}                                                                               \
	const struct dscp_format dscp_format_##id_ = {                                  \
		.info = {.name = name_,                                                 \
			 .description = desc_,                                          \
			 .aliases = aliases_,                                           \
			 .extensions = exts_,                                           \
			 .flags = DSC_FMT_WRAPPER |                                     \
				  ((have_) ? DSC_FMT_READ | DSC_FMT_READ_STREAMS : 0)}, \
		.probe = probe_##id_,                                                   \
		.noun = noun_,                                                          \
		.refusal = name_ " support is not built into this dsc",                 \
		.unwrap = (have_) ? open_##id_ : NULL,                                  \
	}

#define NAMES(...) ((const char *const[]){__VA_ARGS__, NULL})
#define NONE ((const char *const[]){NULL})

#ifndef HAVE_LZMA
#define HAVE_LZMA 0
#endif
#ifndef HAVE_ZSTD
#define HAVE_ZSTD 0
#endif
#ifndef HAVE_BZ2
#define HAVE_BZ2 0
#endif

COMPRESSION(gzip, DZ_GZIP, "gzip", "gzip-compressed image (read)", NAMES("gz"), NAMES(".gz"),
	    "a gzip-compressed file", 1);
COMPRESSION(xz, DZ_XZ, "xz", "xz-compressed image (read)", NONE, NAMES(".xz"),
	    "an xz-compressed file", HAVE_LZMA);
COMPRESSION(zstd, DZ_ZSTD, "zstd", "Zstandard-compressed image (read)", NAMES("zst"), NAMES(".zst"),
	    "a zstd-compressed file", HAVE_ZSTD);
COMPRESSION(bzip2, DZ_BZIP2, "bzip2", "bzip2-compressed image (read)", NAMES("bz2"), NAMES(".bz2"),
	    "a bzip2-compressed file", HAVE_BZ2);
