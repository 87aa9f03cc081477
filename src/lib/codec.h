/* codec.h - one grain's deflate and inflate, in the zlib format (RFC 1950).
 *
 * libdeflate when configure found it (several times faster per grain, see
 * docs/grain-codecs.md), zlib otherwise. One codec object per thread.
 */
#ifndef DSC_CODEC_H
#define DSC_CODEC_H

#include "internal.h"

#define DSCP_LEVEL_DEFAULT_LIBDEFLATE 5 /* no larger than zlib 6 (qemu) */
#define DSCP_LEVEL_DEFAULT_ZLIB 6
#define DSCP_LEVEL_MAX 12 /* zlib clamps to 9 */

struct dscp_deflater;
struct dscp_inflater;

/* The level `level` (0: default) maps to; -1 if out of range. */
int dscp_level_resolve(int level);
struct dscp_deflater *dscp_deflater_new(int level);
void dscp_deflater_free(struct dscp_deflater *d);
/* Worst-case compressed size of n bytes. */
size_t dscp_deflate_bound(size_t n);
/* Compress n bytes into out (cap bytes); returns the size, 0 on failure. */
size_t dscp_deflate(struct dscp_deflater *d, const void *in, size_t n, void *out, size_t cap);

enum dscp_inflate_result {
	DSCP_INFLATE_OK,
	DSCP_INFLATE_TOO_BIG, /* more than cap bytes of output */
	DSCP_INFLATE_BAD,     /* corrupt or cut-short data */
};
struct dscp_inflater *dscp_inflater_new(void);
void dscp_inflater_free(struct dscp_inflater *i);
enum dscp_inflate_result dscp_inflate(struct dscp_inflater *i, const void *in, size_t n, void *out,
				      size_t cap, size_t *out_len);
/* "libdeflate" or "zlib". */
const char *dscp_codec_name(void);

#endif
