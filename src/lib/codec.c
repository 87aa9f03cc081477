/* codec.c - grain compression with libdeflate or zlib.
 *
 * Both produce and accept the zlib wrapper (RFC 1950), which is what qemu,
 * VMware and libvmdk use per grain (facts §2). zlib streams are reused with
 * deflateReset/inflateReset, which is measurably faster than compress2 per
 * 64 KiB grain. The levels' names ("fast", "best") are parsed here too, for
 * the CLI and the server alike (dsc_level_parse).
 */
#include "codec.h"

#ifdef HAVE_LIBDEFLATE
#include <libdeflate.h>
#ifdef HAVE_ISAL
#include <isa-l/igzip_lib.h>
#endif
#else
#include <zlib.h>
#endif

dsc_err dsc_level_parse(const char *text, int *level, struct dsc_error *e)
{
	static const struct {
		const char *name;
		int level;
	} names[] = {
		{"fast", DSC_LEVEL_FAST},
		{"default", DSC_LEVEL_DEFAULT},
		{"best", DSC_LEVEL_BEST},
	};
	size_t i;
	int n = 0;

	*level = DSC_LEVEL_DEFAULT;
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(text, names[i].name) == 0) {
			*level = names[i].level;
			return DSC_OK;
		}
	/* Digits only (strtol would take a sign and leading spaces); at most
	 * two of them can be in range, so more is an error, not an overflow. */
	for (i = 0; text[i] >= '0' && text[i] <= '9' && n <= DSCP_LEVEL_MAX; i++)
		n = n * 10 + (text[i] - '0');
	if (i == 0 || text[i] != '\0' || n < 1 || n > DSCP_LEVEL_MAX)
		return dsc_error_set(e, DSC_ERR_INVAL, 0,
				     "level must be fast, default, best or 1-%d, not '%.64s'",
				     DSCP_LEVEL_MAX, text);
	*level = n;
	return DSC_OK;
}

int dscp_level_resolve(int level)
{
	if (level == 0)
#ifdef HAVE_LIBDEFLATE
		return DSCP_LEVEL_DEFAULT_LIBDEFLATE;
#else
		return DSCP_LEVEL_DEFAULT_ZLIB;
#endif
	if (level < 1 || level > DSCP_LEVEL_MAX)
		return -1;
#ifdef HAVE_LIBDEFLATE
	return level;
#else
	return level > 9 ? 9 : level;
#endif
}

#ifdef HAVE_LIBDEFLATE

#ifdef HAVE_ISAL
const char *dscp_codec_name(void) { return "libdeflate + ISA-L (fast level)"; }
#else
const char *dscp_codec_name(void) { return "libdeflate"; }
#endif

struct dscp_deflater {
	struct libdeflate_compressor *ld;
#ifdef HAVE_ISAL
	uint8_t *isal_buf; /* ISA-L level-3 work area: set for the fast level */
#endif
};

struct dscp_deflater *dscp_deflater_new(int level)
{
	struct dscp_deflater *d = calloc(1, sizeof *d);

	if (!d)
		return NULL;
	level = dscp_level_resolve(level);
#ifdef HAVE_ISAL
	/* ISA-L's stateless level 3 is faster per grain than libdeflate's
	 * level 1 and stays within 1.10x of zlib 6's output, where ISA-L's
	 * level 1 went past it on binaries (1.12x): it serves the fast level. */
	if (level == 1) {
		d->isal_buf = malloc(ISAL_DEF_LVL3_DEFAULT);
		if (!d->isal_buf) {
			free(d);
			return NULL;
		}
		return d;
	}
#endif
	d->ld = libdeflate_alloc_compressor(level);
	if (!d->ld) {
		free(d);
		return NULL;
	}
	return d;
}

void dscp_deflater_free(struct dscp_deflater *d)
{
	if (!d)
		return;
	libdeflate_free_compressor(d->ld);
#ifdef HAVE_ISAL
	free(d->isal_buf);
#endif
	free(d);
}

size_t dscp_deflate_bound(size_t n)
{
	/* NULL asks for the bound that holds for every level; ISA-L's stored
	 * fallback stays within it too (input + block headers + trailer). */
	return libdeflate_zlib_compress_bound(NULL, n) + 64;
}

size_t dscp_deflate(struct dscp_deflater *d, const void *in, size_t n, void *out, size_t cap)
{
#ifdef HAVE_ISAL
	if (d->isal_buf) {
		struct isal_zstream zs;

		isal_deflate_stateless_init(&zs);
		zs.level = 3;
		zs.level_buf = d->isal_buf;
		zs.level_buf_size = ISAL_DEF_LVL3_DEFAULT;
		/* The zlib wrapper (RFC 1950), set for every grain: facts §2
		 * and the ISA-L trap in docs/grain-codecs.md. */
		zs.gzip_flag = IGZIP_ZLIB;
		zs.end_of_stream = 1;
		zs.flush = NO_FLUSH;
		zs.next_in = (uint8_t *)in;
		zs.avail_in = (uint32_t)n;
		zs.next_out = out;
		zs.avail_out = (uint32_t)cap;
		if (isal_deflate_stateless(&zs) != COMP_OK)
			return 0;
		return zs.total_out;
	}
#endif
	return libdeflate_zlib_compress(d->ld, in, n, out, cap);
}

struct dscp_inflater *dscp_inflater_new(void)
{
	return (struct dscp_inflater *)libdeflate_alloc_decompressor();
}

void dscp_inflater_free(struct dscp_inflater *i)
{
	if (i)
		libdeflate_free_decompressor((struct libdeflate_decompressor *)i);
}

enum dscp_inflate_result dscp_inflate(struct dscp_inflater *i, const void *in, size_t n, void *out,
				      size_t cap, size_t *out_len)
{
	size_t used_in = 0;
	enum libdeflate_result r;

	*out_len = 0;
	r = libdeflate_zlib_decompress_ex((struct libdeflate_decompressor *)i, in, n, out, cap,
					  &used_in, out_len);
	if (r == LIBDEFLATE_INSUFFICIENT_SPACE)
		return DSCP_INFLATE_TOO_BIG;
	return r == LIBDEFLATE_SUCCESS ? DSCP_INFLATE_OK : DSCP_INFLATE_BAD;
}

#else /* zlib */

const char *dscp_codec_name(void) { return "zlib"; }

struct dscp_deflater {
	z_stream zs;
};

struct dscp_inflater {
	z_stream zs;
};

struct dscp_deflater *dscp_deflater_new(int level)
{
	struct dscp_deflater *d = calloc(1, sizeof *d);

	if (d && deflateInit(&d->zs, dscp_level_resolve(level)) != Z_OK) {
		free(d);
		d = NULL;
	}
	return d;
}

void dscp_deflater_free(struct dscp_deflater *d)
{
	if (!d)
		return;
	deflateEnd(&d->zs);
	free(d);
}

size_t dscp_deflate_bound(size_t n) { return compressBound((uLong)n); }

size_t dscp_deflate(struct dscp_deflater *d, const void *in, size_t n, void *out, size_t cap)
{
	if (deflateReset(&d->zs) != Z_OK)
		return 0;
	d->zs.next_in = (Bytef *)in;
	d->zs.avail_in = (uInt)n;
	d->zs.next_out = out;
	d->zs.avail_out = (uInt)cap;
	if (deflate(&d->zs, Z_FINISH) != Z_STREAM_END)
		return 0;
	return cap - d->zs.avail_out;
}

struct dscp_inflater *dscp_inflater_new(void)
{
	struct dscp_inflater *i = calloc(1, sizeof *i);

	if (i && inflateInit(&i->zs) != Z_OK) {
		free(i);
		i = NULL;
	}
	return i;
}

void dscp_inflater_free(struct dscp_inflater *i)
{
	if (!i)
		return;
	inflateEnd(&i->zs);
	free(i);
}

enum dscp_inflate_result dscp_inflate(struct dscp_inflater *i, const void *in, size_t n, void *out,
				      size_t cap, size_t *out_len)
{
	uint8_t extra;
	int zr;

	*out_len = 0;
	if (inflateReset(&i->zs) != Z_OK)
		return DSCP_INFLATE_BAD;
	i->zs.next_in = (Bytef *)in;
	i->zs.avail_in = (uInt)n;
	i->zs.next_out = out;
	i->zs.avail_out = (uInt)cap;
	zr = inflate(&i->zs, Z_FINISH);
	if ((zr == Z_BUF_ERROR || zr == Z_OK) && i->zs.avail_out == 0) {
		/* Output full: does the stream end here, or want more? */
		i->zs.next_out = &extra;
		i->zs.avail_out = 1;
		zr = inflate(&i->zs, Z_FINISH);
		if (zr != Z_STREAM_END || i->zs.avail_out == 0)
			return DSCP_INFLATE_TOO_BIG;
		*out_len = cap;
		return DSCP_INFLATE_OK;
	}
	if (zr != Z_STREAM_END)
		return DSCP_INFLATE_BAD;
	*out_len = cap - i->zs.avail_out;
	return DSCP_INFLATE_OK;
}

#endif
