/* io_hash.c - a SHA-256 pass-through stream (libcrypto's EVP interface).
 *
 * The wrapper sits between a stream and its user and hashes the bytes that
 * cross it. On the read side it offers neither seek nor hole detection, so
 * a reader that would skip holes on a file reads them instead and every
 * byte of the source enters the hash. On the write side it follows the
 * inner stream's abilities: a forward seek (how the raw writer leaves
 * holes) hashes the skipped range as zeros, and a size set with set_size
 * pads the hash with zeros up to it, so the digest is that of the file as
 * it ends up on disk. A backward seek breaks the byte sequence; so does truncating below what was
 * written; the digest is then reported as unavailable rather than wrong.
 */
#include "internal.h"

#include <stdio.h>

bool dsc_sha256_hex_valid(const char *hex)
{
	size_t i;

	if (!hex)
		return false;
	for (i = 0; i < DSC_SHA256_HEX_LEN; i++) {
		char c = hex[i];
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
			return false;
	}
	return hex[DSC_SHA256_HEX_LEN] == '\0';
}

#if HAVE_CRYPTO

#include <openssl/evp.h>

struct hash_stream {
	dsc_stream *inner;
	EVP_MD_CTX *md;
	unsigned flags;
	uint64_t hashed; /* bytes entered into the hash: the position */
	uint64_t size;   /* output size from set_size, or 0 */
	bool broken;     /* a backward seek happened */
	bool crypto_failed;
};

static dsc_err hash_update(struct hash_stream *h, const void *buf, size_t len, struct dsc_error *e)
{
	if (len && EVP_DigestUpdate(h->md, buf, len) != 1) {
		h->crypto_failed = true;
		return dsc_error_set(e, DSC_ERR_IO, 0, "%s: SHA-256 update failed",
				     dsc_stream_name(h->inner));
	}
	h->hashed += len;
	return DSC_OK;
}

/* Hash n zero bytes (a hole), a block at a time. */
static dsc_err hash_zeros(struct hash_stream *h, uint64_t n, struct dsc_error *e)
{
	static const uint8_t zeros[65536];
	dsc_err rc;

	while (n > 0) {
		size_t k = (size_t)DSC_MIN(n, (uint64_t)sizeof zeros);
		rc = hash_update(h, zeros, k, e);
		if (rc != DSC_OK)
			return rc;
		n -= k;
	}
	return DSC_OK;
}

static dsc_err hash_read(void *ctx, void *buf, size_t len, size_t *nread, struct dsc_error *e)
{
	struct hash_stream *h = ctx;
	dsc_err rc;

	*nread = 0;
	rc = dsc_read_full(h->inner, buf, len, nread, e);
	if (rc != DSC_OK)
		return rc;
	return hash_update(h, buf, *nread, e);
}

static dsc_err hash_write(void *ctx, const void *buf, size_t len, size_t *nwritten,
			  struct dsc_error *e)
{
	struct hash_stream *h = ctx;
	dsc_err rc;

	*nwritten = 0;
	rc = dsc_write_all(h->inner, buf, len, e);
	if (rc != DSC_OK)
		return rc;
	*nwritten = len;
	if (h->broken)
		return DSC_OK;
	return hash_update(h, buf, len, e);
}

static dsc_err hash_seek(void *ctx, uint64_t off, struct dsc_error *e)
{
	struct hash_stream *h = ctx;
	dsc_err rc;

	rc = dsc_stream_seek(h->inner, off, e);
	if (rc != DSC_OK || h->broken)
		return rc;
	if (off < h->hashed) {
		h->broken = true;
		return DSC_OK;
	}
	/* The raw writer seeks over holes; they read back as zeros. */
	return hash_zeros(h, off - h->hashed, e);
}

static dsc_err hash_set_size(void *ctx, uint64_t size, bool allocate, struct dsc_error *e)
{
	struct hash_stream *h = ctx;
	dsc_err rc;

	rc = dsc_stream_set_size(h->inner, size, allocate, e);
	if (rc != DSC_OK)
		return rc;
	/* Cutting off bytes already hashed leaves a digest we cannot fix. */
	if (size < h->hashed)
		h->broken = true;
	h->size = size;
	return DSC_OK;
}

static dsc_err hash_finish(void *ctx, struct dsc_error *e)
{
	struct hash_stream *h = ctx;

	return dsc_stream_finish(h->inner, e);
}

static void hash_close(void *ctx)
{
	struct hash_stream *h = ctx;

	if (!h)
		return;
	if (h->flags & DSC_SHA256_OWN)
		dsc_stream_close(h->inner);
	EVP_MD_CTX_free(h->md);
	free(h);
}

static const void *hash_query(void *ctx, int what) { return what == DSCP_Q_SHA256 ? ctx : NULL; }

static const struct dsc_stream_ops hash_read_ops = {
	.name = "sha256",
	.read = hash_read,
	.close = hash_close,
	.query = hash_query,
};

/* Two write tables: seek is offered only when the inner stream has it, since
 * writers decide between seeking and writing zeros by dsc_stream_can_seek. */
static const struct dsc_stream_ops hash_write_seek_ops = {
	.name = "sha256",
	.write = hash_write,
	.seek = hash_seek,
	.set_size = hash_set_size,
	.finish = hash_finish,
	.close = hash_close,
	.query = hash_query,
};

static const struct dsc_stream_ops hash_write_ops = {
	.name = "sha256",
	.write = hash_write,
	.set_size = hash_set_size,
	.finish = hash_finish,
	.close = hash_close,
	.query = hash_query,
};

/* The hash behind s: s itself, or (through) a stream it wraps. */
static struct hash_stream *hash_of(const dsc_stream *s, bool through)
{
	if (!s)
		return NULL;
	if (through)
		return (struct hash_stream *)dscp_stream_query(s, DSCP_Q_SHA256);
	return s->ops->query ? (struct hash_stream *)s->ops->query(s->ctx, DSCP_Q_SHA256) : NULL;
}

/* A SHA-256 read wrapper itself (verify and the gate read it to its end). */
static bool is_hash_input(const dsc_stream *s)
{
	const struct hash_stream *h = hash_of(s, false);

	return h && !(h->flags & DSC_SHA256_WRITE);
}

dsc_err dsc_stream_open_sha256(dsc_stream *inner, unsigned flags, dsc_stream **out,
			       struct dsc_error *e)
{
	const struct dsc_stream_ops *ops;
	struct hash_stream *h;
	dsc_err rc;

	*out = NULL;
	if (!inner)
		return dsc_error_set(e, DSC_ERR_INVAL, 0, "sha256: no stream to wrap");
	h = calloc(1, sizeof *h);
	if (!h)
		return dsc_error_set(e, DSC_ERR_NOMEM, ENOMEM, "%s: out of memory",
				     dsc_stream_name(inner));
	h->inner = inner;
	h->flags = flags;
	h->md = EVP_MD_CTX_new();
	if (!h->md || EVP_DigestInit_ex(h->md, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(h->md);
		free(h);
		return dsc_error_set(e, DSC_ERR_UNSUPPORTED, 0, "%s: SHA-256 is not available",
				     dsc_stream_name(inner));
	}
	if (!(flags & DSC_SHA256_WRITE))
		ops = &hash_read_ops;
	else if (dsc_stream_can_seek(inner))
		ops = &hash_write_seek_ops;
	else
		ops = &hash_write_ops;
	rc = dsc_stream_new_wrapper(ops, h, dsc_stream_name(inner), inner, out, e);
	if (rc != DSC_OK) {
		/* The caller keeps `inner` when we fail. */
		h->flags &= ~DSC_SHA256_OWN;
		hash_close(h);
		return rc;
	}
	dsc_stream_set_total(*out, dsc_stream_total(inner));
	return DSC_OK;
}

dsc_err dsc_stream_sha256_hex(dsc_stream *s, char hex[DSC_SHA256_HEX_LEN + 1], struct dsc_error *e)
{
	static const char digits[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0, i;
	struct hash_stream *h, pad;
	dsc_err rc = DSC_OK;

	hex[0] = '\0';
	h = hash_of(s, true);
	if (!h)
		return dsc_error_set(e, DSC_ERR_INVAL, 0, "%s: not a SHA-256 stream",
				     s ? dsc_stream_name(s) : "stream");
	if (h->broken)
		return dsc_error_set(e, DSC_ERR_UNSUPPORTED, 0,
				     "%s: SHA-256 unavailable: the output was not written in order",
				     dsc_stream_name(s));
	if (h->crypto_failed)
		return dsc_error_set(e, DSC_ERR_IO, 0, "%s: SHA-256 failed", dsc_stream_name(s));
	/* Finish a copy, so the stream can go on and be asked again. */
	pad = *h;
	pad.md = EVP_MD_CTX_new();
	if (!pad.md || EVP_MD_CTX_copy_ex(pad.md, h->md) != 1) {
		rc = dsc_error_set(e, DSC_ERR_NOMEM, 0, "%s: SHA-256: out of memory",
				   dsc_stream_name(s));
		goto out;
	}
	if ((h->flags & DSC_SHA256_WRITE) && pad.size > pad.hashed) {
		rc = hash_zeros(&pad, pad.size - pad.hashed, e);
		if (rc != DSC_OK)
			goto out;
	}
	if (EVP_DigestFinal_ex(pad.md, md, &mdlen) != 1 || mdlen != 32) {
		rc = dsc_error_set(e, DSC_ERR_IO, 0, "%s: SHA-256 failed", dsc_stream_name(s));
		goto out;
	}
	for (i = 0; i < mdlen; i++) {
		hex[2 * i] = digits[md[i] >> 4];
		hex[2 * i + 1] = digits[md[i] & 15];
	}
	hex[2 * mdlen] = '\0';
out:
	EVP_MD_CTX_free(pad.md);
	return rc;
}

dsc_err dsc_stream_sha256_verify(dsc_stream *in, const char *expected_hex, struct dsc_error *e)
{
	char got[DSC_SHA256_HEX_LEN + 1];
	uint64_t skipped;
	dsc_err rc;
	size_t i;

	if (!is_hash_input(in))
		return dsc_error_set(e, DSC_ERR_INVAL, 0, "%s: not a SHA-256 input stream",
				     in ? dsc_stream_name(in) : "stream");
	if (!dsc_sha256_hex_valid(expected_hex))
		return dsc_error_set(e, DSC_ERR_INVAL, 0,
				     "%s: expected SHA-256 is not 64 hex digits",
				     dsc_stream_name(in));
	/* A reader may stop before the end (a VMDK ends at its EOS marker);
	 * the digest covers every byte of the source. */
	rc = dsc_stream_skip(in, UINT64_MAX, &skipped, e);
	if (rc != DSC_OK)
		return rc;
	rc = dsc_stream_sha256_hex(in, got, e);
	if (rc != DSC_OK)
		return rc;
	for (i = 0; i < DSC_SHA256_HEX_LEN; i++) {
		char c = expected_hex[i];
		if (c >= 'A' && c <= 'F')
			c = (char)(c - 'A' + 'a');
		if (c != got[i])
			return dsc_error_set(e, DSC_ERR_INTEGRITY, 0,
					     "%s: SHA-256 mismatch: expected %.64s, got %s",
					     dsc_stream_name(in), expected_hex, got);
	}
	return DSC_OK;
}

/* The gate: an output that checks the input's digest before finishing. */
struct gate_stream {
	dsc_stream *out;
	dsc_stream *in;
	unsigned flags;
	char expected[DSC_SHA256_HEX_LEN + 1];
};

static dsc_err gate_write(void *ctx, const void *buf, size_t len, size_t *nwritten,
			  struct dsc_error *e)
{
	struct gate_stream *g = ctx;
	dsc_err rc = dsc_write_all(g->out, buf, len, e);

	*nwritten = rc == DSC_OK ? len : 0;
	return rc;
}

static dsc_err gate_seek(void *ctx, uint64_t off, struct dsc_error *e)
{
	return dsc_stream_seek(((struct gate_stream *)ctx)->out, off, e);
}

static dsc_err gate_set_size(void *ctx, uint64_t size, bool allocate, struct dsc_error *e)
{
	return dsc_stream_set_size(((struct gate_stream *)ctx)->out, size, allocate, e);
}

static dsc_err gate_finish(void *ctx, struct dsc_error *e)
{
	struct gate_stream *g = ctx;
	dsc_err rc = dsc_stream_sha256_verify(g->in, g->expected, e);

	if (rc != DSC_OK)
		return rc;
	return dsc_stream_finish(g->out, e);
}

static void gate_close(void *ctx)
{
	struct gate_stream *g = ctx;

	if (!g)
		return;
	if (g->flags & DSC_SHA256_OWN)
		dsc_stream_close(g->out);
	free(g);
}

static const struct dsc_stream_ops gate_seek_ops = {
	.name = "sha256-gate",
	.write = gate_write,
	.seek = gate_seek,
	.set_size = gate_set_size,
	.finish = gate_finish,
	.close = gate_close,
};

static const struct dsc_stream_ops gate_ops = {
	.name = "sha256-gate",
	.write = gate_write,
	.set_size = gate_set_size,
	.finish = gate_finish,
	.close = gate_close,
};

dsc_err dsc_stream_open_sha256_gate(dsc_stream *out, dsc_stream *in, const char *expected_hex,
				    unsigned flags, dsc_stream **gated, struct dsc_error *e)
{
	struct gate_stream *g;
	dsc_err rc;

	*gated = NULL;
	if (!out || !is_hash_input(in))
		return dsc_error_set(e, DSC_ERR_INVAL, 0,
				     "sha256 gate: needs an output and a SHA-256 input stream");
	if (!dsc_sha256_hex_valid(expected_hex))
		return dsc_error_set(e, DSC_ERR_INVAL, 0,
				     "%s: expected SHA-256 is not 64 hex digits",
				     dsc_stream_name(in));
	g = calloc(1, sizeof *g);
	if (!g)
		return dsc_error_set(e, DSC_ERR_NOMEM, ENOMEM, "%s: out of memory",
				     dsc_stream_name(out));
	g->out = out;
	g->in = in;
	g->flags = flags & DSC_SHA256_OWN;
	memcpy(g->expected, expected_hex, DSC_SHA256_HEX_LEN + 1);
	rc = dsc_stream_new_wrapper(dsc_stream_can_seek(out) ? &gate_seek_ops : &gate_ops, g,
				    dsc_stream_name(out), out, gated, e);
	if (rc != DSC_OK) {
		free(g);
		return rc;
	}
	dsc_stream_set_total(*gated, dsc_stream_total(out));
	return DSC_OK;
}

#else /* !HAVE_CRYPTO */

dsc_err dsc_stream_sha256_verify(dsc_stream *in, const char *expected_hex, struct dsc_error *e)
{
	return dsc_error_set(e, DSC_ERR_UNSUPPORTED, 0,
			     "SHA-256 is not available (built without libcrypto)");
}

dsc_err dsc_stream_open_sha256_gate(dsc_stream *out, dsc_stream *in, const char *expected_hex,
				    unsigned flags, dsc_stream **gated, struct dsc_error *e)
{
	*gated = NULL;
	return dsc_error_set(e, DSC_ERR_UNSUPPORTED, 0,
			     "SHA-256 is not available (built without libcrypto)");
}

dsc_err dsc_stream_open_sha256(dsc_stream *inner, unsigned flags, dsc_stream **out,
			       struct dsc_error *e)
{
	*out = NULL;
	return dsc_error_set(e, DSC_ERR_UNSUPPORTED, 0,
			     "%s: SHA-256 is not available (built without libcrypto)",
			     inner ? dsc_stream_name(inner) : "sha256");
}

dsc_err dsc_stream_sha256_hex(dsc_stream *s, char hex[DSC_SHA256_HEX_LEN + 1], struct dsc_error *e)
{
	hex[0] = '\0';
	return dsc_error_set(e, DSC_ERR_UNSUPPORTED, 0,
			     "SHA-256 is not available (built without libcrypto)");
}

#endif
