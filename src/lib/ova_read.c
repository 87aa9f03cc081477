/* ova_read.c - OVA input: a tar of an OVF descriptor, a manifest and disks,
 * read in one pass (../shared/docs/formats.md section 5; DSP0243).
 *
 * The archive is a layer, like a compression (decompress.c): opening it
 * reads the first member, which must be the .ovf, parses it with expat
 * (bounded in size and depth; a DOCTYPE is refused, so no entity is ever
 * expanded), picks a disk (the first, or dsc_reader_opts.disk: its number,
 * ovf:diskId or file name), reads on to that disk's member (a manifest met
 * on the way is parsed; other members are skipped), and hands the member's
 * bytes on as a stream, in which the image is then detected (a
 * streamOptimized VMDK, usually; ovf:compression="gzip" is a gzip layer
 * found by its magic; ovf:chunkSize members name.000000000, .000000001, ...
 * are read one after another as one file).
 *
 * The manifest (SHA1(name)= hex, SHA256(name)= hex, SHA512 when it comes
 * before the disk) may sit after the descriptor or at the end of the
 * archive, both allowed by the OVF spec. The .ovf is kept (it is small) and
 * hashed when the manifest is read; the disk is hashed while it streams, on
 * a thread of its own (before the manifest: SHA-256, and SHA-1 too on an
 * input that cannot seek; on a file, a digest of another algorithm named
 * by a manifest at the end is computed by reading the member again); the disk stream reports its end only after the rest of the
 * archive is read and every digest checked, so a mismatch or a truncated
 * archive fails the conversion before the output is finished. Members not
 * read (other disks, a certificate) are skipped, not verified.
 */
#include "internal.h"
#include "ova.h"
#include "tar.h"

#include <expat.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <strings.h>
#if HAVE_CRYPTO
#include <openssl/evp.h>
#endif

/* Limits: the largest .ovf and manifest read, the deepest XML nesting, the
 * most File and Disk elements, the longest id or name kept. */
#define DSCP_OVF_MAX (4u << 20)
#define DSCP_OVF_MAX_DEPTH 64
#define DSCP_OVF_MAX_ITEMS 256
#define DSCP_MF_MAX (1u << 20)
#define OVA_ID_MAX 255
#define OVA_HEX_MAX 128 /* SHA-512 */

enum ova_alg {
	ALG_SHA1,
	ALG_SHA256,
	ALG_SHA512,
	ALG_N
};
static const char *const alg_name[ALG_N] = {"SHA1", "SHA256", "SHA512"};

struct ovf_file {
	char id[OVA_ID_MAX + 1], href[OVA_ID_MAX + 1];
	uint64_t size, chunk;
	bool has_size, gzip;
};

struct ovf_disk {
	char id[OVA_ID_MAX + 1], fileref[OVA_ID_MAX + 1], format[OVA_ID_MAX + 1];
	uint64_t capacity;
	unsigned unit_shift; /* capacityAllocationUnits "byte * 2^N" */
};

struct mf_entry {
	char name[OVA_ID_MAX + 1];
	enum ova_alg alg;
	char hex[OVA_HEX_MAX + 1];
};

struct ovf {
	struct ovf_file files[DSCP_OVF_MAX_ITEMS];
	struct ovf_disk disks[DSCP_OVF_MAX_ITEMS];
	size_t nf, nd;
};

/* Digests of one member while it streams, computed on a thread of their
 * own (the reader only copies blocks into a bounded queue), so that the
 * hashing overlaps the decoding: OVA_HASH_QUEUE blocks of OVA_HASH_BLOCK
 * bytes at most are in flight. */
#define OVA_HASH_BLOCK (1u << 20)
#define OVA_HASH_QUEUE 8

struct hasher {
#if HAVE_CRYPTO
	EVP_MD_CTX *md[ALG_N];
#endif
	bool on[ALG_N];
	pthread_t th;
	bool th_live;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	uint8_t *pool[OVA_HASH_QUEUE + 1]; /* every block, allocated once */
	uint8_t *free_blk[OVA_HASH_QUEUE + 1];
	size_t nfree;
	uint8_t *queue[OVA_HASH_QUEUE];
	size_t qlen[OVA_HASH_QUEUE], qhead, qcount;
	bool busy; /* the thread is hashing a block */
	bool quit;
	uint8_t *cur; /* the block being filled */
	size_t cur_len;
};

/* A member that was hashed, waiting for the manifest. */
struct done_digest {
	char name[DSCP_TAR_NAME_MAX + 1];
	char hex[ALG_N][OVA_HEX_MAX + 1];
	bool have[ALG_N];
	uint64_t off, size; /* where its bytes are in the input (a disk member) */
	bool reread;        /* they can be read again to compute another digest */
};

struct ova {
	dsc_stream *in; /* not owned */
	struct dscp_tar tar;
	struct ovf *ovf;
	char *ovf_text; /* the descriptor, kept for the manifest's digest */
	size_t ovf_len;
	char ovf_name[DSCP_TAR_NAME_MAX + 1];
	const struct ovf_file *file; /* the chosen disk's */
	struct mf_entry *mf;
	size_t nmf;
	bool have_mf;
	struct done_digest *done; /* the .ovf, then the disk's members */
	size_t ndone, done_cap;
	struct hasher h;
	bool in_member;
	uint64_t chunk_no;
	uint64_t mem_off, mem_size;     /* the disk member being read */
	struct dscp_tar_member pending; /* a header read past the disk */
	bool have_pending;
	bool finished; /* the archive was read to its end and checked */
};

static const char *oname(const struct ova *o) { return dsc_stream_name(o->in); }

/* ---- hashing -------------------------------------------------------------- */

static void *hash_thread(void *arg)
{
	struct hasher *h = arg;
	uint8_t *b;
	size_t len;

	pthread_mutex_lock(&h->mu);
	for (;;) {
		while (!h->qcount && !h->quit)
			pthread_cond_wait(&h->cv, &h->mu);
		if (!h->qcount)
			break;
		b = h->queue[h->qhead];
		len = h->qlen[h->qhead];
		h->qhead = (h->qhead + 1) % OVA_HASH_QUEUE;
		h->qcount--;
		h->busy = true;
		pthread_mutex_unlock(&h->mu);
#if HAVE_CRYPTO
		for (size_t a = 0; a < ALG_N; a++)
			if (h->on[a])
				EVP_DigestUpdate(h->md[a], b, len);
#endif
		pthread_mutex_lock(&h->mu);
		h->busy = false;
		h->free_blk[h->nfree++] = b;
		pthread_cond_broadcast(&h->cv);
	}
	pthread_mutex_unlock(&h->mu);
	return NULL;
}

/* Queue the block being filled (waiting for room), take a free one. */
static void hash_push(struct hasher *h)
{
	pthread_mutex_lock(&h->mu);
	while (h->qcount == OVA_HASH_QUEUE || !h->nfree)
		pthread_cond_wait(&h->cv, &h->mu);
	h->queue[(h->qhead + h->qcount) % OVA_HASH_QUEUE] = h->cur;
	h->qlen[(h->qhead + h->qcount) % OVA_HASH_QUEUE] = h->cur_len;
	h->qcount++;
	h->cur = h->free_blk[--h->nfree];
	h->cur_len = 0;
	pthread_cond_broadcast(&h->cv);
	pthread_mutex_unlock(&h->mu);
}

/* Everything queued has been hashed. */
static void hash_drain(struct hasher *h)
{
	if (!h->th_live)
		return;
	if (h->cur_len)
		hash_push(h);
	pthread_mutex_lock(&h->mu);
	while (h->qcount || h->busy)
		pthread_cond_wait(&h->cv, &h->mu);
	pthread_mutex_unlock(&h->mu);
}

static dsc_err hash_begin_thread(struct ova *o, struct dsc_error *e)
{
	struct hasher *h = &o->h;
	size_t i;

	if (h->th_live)
		return DSC_OK;
	for (i = 0; i <= OVA_HASH_QUEUE; i++) {
		if (!(h->pool[i] = malloc(OVA_HASH_BLOCK)))
			return dsc_error_set(e, DSC_ERR_NOMEM, ENOMEM, "%s: out of memory",
					     oname(o));
		if (i)
			h->free_blk[h->nfree++] = h->pool[i];
	}
	h->cur = h->pool[0];
	if (pthread_mutex_init(&h->mu, NULL))
		return dsc_error_set(e, DSC_ERR_NOMEM, ENOMEM, "%s: out of memory", oname(o));
	if (pthread_cond_init(&h->cv, NULL)) {
		pthread_mutex_destroy(&h->mu);
		return dsc_error_set(e, DSC_ERR_NOMEM, ENOMEM, "%s: out of memory", oname(o));
	}
	if (pthread_create(&h->th, NULL, hash_thread, h)) {
		pthread_cond_destroy(&h->cv);
		pthread_mutex_destroy(&h->mu);
		return dsc_error_set(e, DSC_ERR_NOMEM, EAGAIN, "%s: cannot start a thread",
				     oname(o));
	}
	h->th_live = true;
	return DSC_OK;
}

static void hash_stop(struct hasher *h)
{
	size_t i;

	if (h->th_live) {
		pthread_mutex_lock(&h->mu);
		h->quit = true;
		pthread_cond_broadcast(&h->cv);
		pthread_mutex_unlock(&h->mu);
		pthread_join(h->th, NULL);
		pthread_cond_destroy(&h->cv);
		pthread_mutex_destroy(&h->mu);
		h->th_live = false;
	}
	for (i = 0; i <= OVA_HASH_QUEUE; i++)
		free(h->pool[i]);
}

static dsc_err hash_start(struct ova *o, struct dsc_error *e)
{
	size_t a;
	dsc_err rc;

	rc = hash_begin_thread(o, e);
	if (rc != DSC_OK)
		return rc;
	hash_drain(&o->h); /* the thread is idle from here */
	for (a = 0; a < ALG_N; a++) {
		size_t i;

		o->h.on[a] = false;
		if (!o->have_mf) {
			/* Before the manifest: SHA-256, which ovftool and VirtualBox
			 * write; SHA-1 too when the member cannot be read again
			 * (a pipe) should the manifest say SHA1. */
			o->h.on[a] =
				a == ALG_SHA256 || (a == ALG_SHA1 && !dsc_stream_can_seek(o->in));
			continue;
		}
		for (i = 0; i < o->nmf; i++)
			if (o->mf[i].alg == a)
				o->h.on[a] = true;
	}
#if HAVE_CRYPTO
	for (a = 0; a < ALG_N; a++) {
		const EVP_MD *md = a == ALG_SHA1   ? EVP_sha1() :
				   a == ALG_SHA256 ? EVP_sha256() :
						     EVP_sha512();

		if (!o->h.on[a])
			continue;
		if (!o->h.md[a] && !(o->h.md[a] = EVP_MD_CTX_new()))
			return dsc_error_set(e, DSC_ERR_NOMEM, ENOMEM, "%s: out of memory",
					     oname(o));
		if (EVP_DigestInit_ex(o->h.md[a], md, NULL) != 1)
			return dsc_error_set(e, DSC_ERR_IO, 0, "%s: OVA: digest setup failed",
					     oname(o));
	}
#endif
	return DSC_OK;
}

static void hash_update(struct ova *o, const void *buf, size_t len)
{
	struct hasher *h = &o->h;
	const uint8_t *p = buf;

	while (len) {
		size_t k = DSC_MIN(len, (size_t)OVA_HASH_BLOCK - h->cur_len);

		memcpy(h->cur + h->cur_len, p, k);
		h->cur_len += k;
		p += k;
		len -= k;
		if (h->cur_len == OVA_HASH_BLOCK)
			hash_push(h);
	}
}

static bool hex_equal(const char *a, const char *b)
{
	return strlen(a) == strlen(b) && !strcasecmp(a, b);
}

/* Compute digest `a` of a disk member by reading it again (a seekable
 * input whose manifest came after the member, with another algorithm than
 * the one computed), then go back to where the archive was. */
static dsc_err reread(struct ova *o, struct done_digest *d, size_t a, struct dsc_error *e)
{
#if HAVE_CRYPTO
	const EVP_MD *md = a == ALG_SHA1   ? EVP_sha1() :
			   a == ALG_SHA256 ? EVP_sha256() :
					     EVP_sha512();
	uint64_t here = dsc_stream_tell(o->in), left = d->size;
	unsigned char v[EVP_MAX_MD_SIZE];
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	uint8_t *buf = malloc(OVA_HASH_BLOCK);
	unsigned int n = 0, i;
	size_t got;
	dsc_err rc;

	rc = !ctx || !buf || EVP_DigestInit_ex(ctx, md, NULL) != 1 ?
		     dsc_error_set(e, DSC_ERR_NOMEM, ENOMEM, "%s: out of memory", oname(o)) :
		     dsc_stream_seek(o->in, d->off, e);
	while (rc == DSC_OK && left) {
		rc = dsc_read_full(o->in, buf, (size_t)DSC_MIN(left, (uint64_t)OVA_HASH_BLOCK),
				   &got, e);
		if (rc == DSC_OK && got == 0)
			rc = dsc_error_set(e, DSC_ERR_TRUNCATED, 0,
					   "%s: OVA: %s ends early when read again", oname(o),
					   d->name);
		if (rc == DSC_OK)
			EVP_DigestUpdate(ctx, buf, got);
		left -= got;
	}
	if (rc == DSC_OK)
		rc = dsc_stream_seek(o->in, here, e);
	if (rc == DSC_OK && (EVP_DigestFinal_ex(ctx, v, &n) != 1 || 2 * n > OVA_HEX_MAX))
		rc = dsc_error_set(e, DSC_ERR_IO, 0, "%s: OVA: digest failed", oname(o));
	for (i = 0; rc == DSC_OK && i < n; i++)
		snprintf(d->hex[a] + 2 * i, 3, "%02x", v[i]);
	if (rc == DSC_OK)
		d->have[a] = true;
	EVP_MD_CTX_free(ctx);
	free(buf);
	return rc;
#else
	(void)d, (void)a;
	return dsc_error_set(e, DSC_ERR_UNSUPPORTED, 0, "%s: OVA: built without libcrypto",
			     oname(o));
#endif
}

/* Compare one finished member with the manifest. */
static dsc_err check_one(struct ova *o, struct done_digest *d, struct dsc_error *e)
{
	size_t i;

	for (i = 0; i < o->nmf; i++) {
		const struct mf_entry *m = &o->mf[i];

		if (strcmp(m->name, d->name))
			continue;
		if (!d->have[m->alg] && d->reread && dsc_stream_can_seek(o->in)) {
			dsc_err rc = reread(o, d, m->alg, e);

			if (rc != DSC_OK)
				return rc;
		}
		if (!d->have[m->alg])
			return dsc_error_set(e, DSC_ERR_UNSUPPORTED, 0,
					     "%s: OVA manifest: a %s digest for %s, which can be "
					     "checked only when the manifest comes before it",
					     oname(o), alg_name[m->alg], d->name);
		if (!hex_equal(m->hex, d->hex[m->alg]))
			return dsc_error_set(e, DSC_ERR_FORMAT, 0,
					     "%s: OVA manifest: the %s of %s is %s, the manifest "
					     "says %s",
					     oname(o), alg_name[m->alg], d->name, d->hex[m->alg],
					     m->hex);
		return DSC_OK;
	}
	return dsc_error_set(e, DSC_ERR_FORMAT, 0, "%s: OVA manifest: no digest for %s", oname(o),
			     d->name);
}

/* The current member is complete: keep its digests and, with a manifest
 * already read, check them now. */
static dsc_err hash_end(struct ova *o, const char *name, struct dsc_error *e)
{
	struct done_digest *d;

	if (o->ndone == o->done_cap) {
		size_t cap = o->done_cap ? 2 * o->done_cap : 4;
		struct done_digest *n = realloc(o->done, cap * sizeof *n);

		if (!n)
			return dsc_error_set(e, DSC_ERR_NOMEM, ENOMEM, "%s: out of memory",
					     oname(o));
		o->done = n;
		o->done_cap = cap;
	}
	hash_drain(&o->h);
	d = &o->done[o->ndone++];
	memset(d, 0, sizeof *d);
	snprintf(d->name, sizeof d->name, "%s", name);
	d->off = o->mem_off;
	d->size = o->mem_size;
	d->reread = true;
#if HAVE_CRYPTO
	for (size_t a = 0; a < ALG_N; a++) {
		unsigned char md[EVP_MAX_MD_SIZE];
		unsigned int n = 0, i;

		if (!o->h.on[a])
			continue;
		if (EVP_DigestFinal_ex(o->h.md[a], md, &n) != 1 || 2 * n > OVA_HEX_MAX)
			return dsc_error_set(e, DSC_ERR_IO, 0, "%s: OVA: digest failed", oname(o));
		for (i = 0; i < n; i++)
			snprintf(d->hex[a] + 2 * i, 3, "%02x", md[i]);
		d->have[a] = true;
	}
#endif
	if (o->have_mf)
		return check_one(o, d, e);
	return DSC_OK;
}

/* ---- the manifest ----------------------------------------------------------- */

/* The descriptor against the manifest: it was kept whole, so any of the
 * manifest's algorithms can be computed now. */
static dsc_err check_ovf(struct ova *o, struct dsc_error *e)
{
	struct done_digest d = {0};

	snprintf(d.name, sizeof d.name, "%s", o->ovf_name);
#if HAVE_CRYPTO
	for (size_t a = 0; a < ALG_N; a++) {
		const EVP_MD *md = a == ALG_SHA1   ? EVP_sha1() :
				   a == ALG_SHA256 ? EVP_sha256() :
						     EVP_sha512();
		unsigned char v[EVP_MAX_MD_SIZE];
		unsigned int n = 0, i;

		if (EVP_Digest(o->ovf_text, o->ovf_len, v, &n, md, NULL) != 1 ||
		    2 * n > OVA_HEX_MAX)
			return dsc_error_set(e, DSC_ERR_IO, 0, "%s: OVA: digest failed", oname(o));
		for (i = 0; i < n; i++)
			snprintf(d.hex[a] + 2 * i, 3, "%02x", v[i]);
		d.have[a] = true;
	}
#endif
	return check_one(o, &d, e);
}

static dsc_err parse_mf(struct ova *o, const char *text, size_t len, struct dsc_error *e)
{
	size_t off = 0, line = 0;

	o->have_mf = true;
	while (off < len) {
		const char *s = text + off, *nl = memchr(s, '\n', len - off), *p, *q, *end;
		struct mf_entry m = {0};
		size_t a, n;

		end = nl ? nl : text + len;
		off = (size_t)(end - text) + 1;
		line++;
		while (end > s && (end[-1] == '\r' || end[-1] == ' ' || end[-1] == '\t'))
			end--;
		if (end == s)
			continue;
		for (a = 0; a < ALG_N; a++) {
			n = strlen(alg_name[a]);
			if ((size_t)(end - s) > n && !strncasecmp(s, alg_name[a], n) &&
			    (s[n] == '(' || s[n] == ' '))
				break;
		}
		if (a == ALG_N)
			return dsc_error_set(e, DSC_ERR_FORMAT, 0,
					     "%s: OVA manifest line %zu is not SHA1(...)=, "
					     "SHA256(...)= or SHA512(...)=",
					     oname(o), line);
		p = s + strlen(alg_name[a]);
		while (p < end && *p == ' ')
			p++;
		q = p < end && *p == '(' ? p + 1 : NULL;
		p = q ? memchr(q, ')', (size_t)(end - q)) : NULL;
		if (!p || (size_t)(p - q) > OVA_ID_MAX)
			return dsc_error_set(
				e, DSC_ERR_FORMAT, 0,
				"%s: OVA manifest line %zu: no file name in parentheses", oname(o),
				line);
		memcpy(m.name, q, (size_t)(p - q));
		p++;
		while (p < end && *p == ' ')
			p++;
		if (p == end || *p != '=')
			return dsc_error_set(e, DSC_ERR_FORMAT, 0,
					     "%s: OVA manifest line %zu: no '=' after the name",
					     oname(o), line);
		p++;
		while (p < end && *p == ' ')
			p++;
		n = (size_t)(end - p);
		if (n == 0 || n > OVA_HEX_MAX || strspn(p, "0123456789abcdefABCDEF") < n)
			return dsc_error_set(e, DSC_ERR_FORMAT, 0,
					     "%s: OVA manifest line %zu: the digest is not hex",
					     oname(o), line);
		memcpy(m.hex, p, n);
		m.alg = (enum ova_alg)a;
		if (o->nmf >= 2 * DSCP_OVF_MAX_ITEMS)
			return dsc_error_set(e, DSC_ERR_LIMIT, 0,
					     "%s: OVA manifest: more than %u entries", oname(o),
					     2 * DSCP_OVF_MAX_ITEMS);
		{
			struct mf_entry *nm = realloc(o->mf, (o->nmf + 1) * sizeof *nm);

			if (!nm)
				return dsc_error_set(e, DSC_ERR_NOMEM, ENOMEM, "%s: out of memory",
						     oname(o));
			o->mf = nm;
		}
		o->mf[o->nmf++] = m;
	}
	/* Whatever was read before it is checked now. */
	for (size_t i = 0; i < o->ndone; i++) {
		dsc_err rc = check_one(o, &o->done[i], e);

		if (rc != DSC_OK)
			return rc;
	}
	return check_ovf(o, e);
}

/* Read the current member whole (at most max bytes) into a NUL-ended
 * buffer. */
static dsc_err read_member(struct ova *o, const struct dscp_tar_member *m, size_t max, char **out,
			   struct dsc_error *e)
{
	size_t got;
	char *buf;
	dsc_err rc;

	*out = NULL;
	if (m->size > max)
		return dsc_error_set(e, DSC_ERR_LIMIT, 0,
				     "%s: OVA member %s of %" PRIu64
				     " bytes exceeds the limit of %zu bytes",
				     oname(o), m->name, m->size, max);
	buf = malloc((size_t)m->size + 1);
	if (!buf)
		return dsc_error_set(e, DSC_ERR_NOMEM, ENOMEM, "%s: out of memory", oname(o));
	rc = dscp_tar_read(&o->tar, buf, (size_t)m->size, &got, e);
	if (rc != DSC_OK) {
		free(buf);
		return rc;
	}
	buf[got] = '\0';
	*out = buf;
	return DSC_OK;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);

	return n >= k && !strcasecmp(s + n - k, suffix);
}

static dsc_err read_mf_member(struct ova *o, const struct dscp_tar_member *m, struct dsc_error *e)
{
	char *text;
	dsc_err rc;

	if (o->have_mf)
		return DSC_OK; /* one manifest: a second is skipped */
	rc = read_member(o, m, DSCP_MF_MAX, &text, e);
	if (rc != DSC_OK)
		return rc;
	rc = parse_mf(o, text, strlen(text), e);
	free(text);
	return rc;
}

/* ---- the OVF descriptor -------------------------------------------------------- */

struct xml_state {
	struct ovf *ovf;
	XML_Parser p;
	unsigned depth;
	const char *why; /* set when the parse was stopped */
	char whybuf[128];
};

static const char *local_name(const char *n)
{
	const char *bar = strrchr(n, '|');

	return bar ? bar + 1 : n;
}

static void stop(struct xml_state *x, const char *why)
{
	if (!x->why)
		x->why = why;
	XML_StopParser(x->p, XML_FALSE);
}

static bool parse_u64(const char *s, uint64_t *v)
{
	uint64_t n = 0;

	if (!*s)
		return false;
	for (; *s; s++) {
		if (*s < '0' || *s > '9' || n > (UINT64_MAX - 9) / 10)
			return false;
		n = n * 10 + (uint64_t)(*s - '0');
	}
	*v = n;
	return true;
}

static void copy_attr(char *dst, const char *v, struct xml_state *x)
{
	if (strlen(v) > OVA_ID_MAX) {
		stop(x, "an attribute longer than 255 bytes");
		return;
	}
	strcpy(dst, v);
}

static void XMLCALL on_start(void *ud, const XML_Char *name, const XML_Char **attr)
{
	struct xml_state *x = ud;
	const char *ln = local_name(name);
	size_t i;

	if (++x->depth > DSCP_OVF_MAX_DEPTH) {
		stop(x, "nested deeper than 64 elements");
		return;
	}
	if (!strcmp(ln, "File")) {
		struct ovf_file *f;

		if (x->ovf->nf >= DSCP_OVF_MAX_ITEMS) {
			stop(x, "more than 256 File elements");
			return;
		}
		f = &x->ovf->files[x->ovf->nf++];
		for (i = 0; attr[i]; i += 2) {
			const char *a = local_name(attr[i]), *v = attr[i + 1];

			if (!strcmp(a, "id"))
				copy_attr(f->id, v, x);
			else if (!strcmp(a, "href"))
				copy_attr(f->href, v, x);
			else if (!strcmp(a, "size"))
				f->has_size = parse_u64(v, &f->size);
			else if (!strcmp(a, "chunkSize") && !parse_u64(v, &f->chunk))
				stop(x, "a chunkSize that is not a number");
			else if (!strcmp(a, "compression")) {
				if (!strcmp(v, "gzip"))
					f->gzip = true;
				else if (strcmp(v, "identity") && *v)
					stop(x, "an ovf:compression other than gzip");
			}
		}
	} else if (!strcmp(ln, "Disk")) {
		struct ovf_disk *d;

		if (x->ovf->nd >= DSCP_OVF_MAX_ITEMS) {
			stop(x, "more than 256 Disk elements");
			return;
		}
		d = &x->ovf->disks[x->ovf->nd++];
		for (i = 0; attr[i]; i += 2) {
			const char *a = local_name(attr[i]), *v = attr[i + 1];

			if (!strcmp(a, "diskId"))
				copy_attr(d->id, v, x);
			else if (!strcmp(a, "fileRef"))
				copy_attr(d->fileref, v, x);
			else if (!strcmp(a, "format"))
				copy_attr(d->format, v, x);
			else if (!strcmp(a, "capacity"))
				parse_u64(v, &d->capacity);
			else if (!strcmp(a, "capacityAllocationUnits")) {
				unsigned sh = 0;

				/* "byte", or "byte * 2^N" (DSP0004 programmatic units) */
				if (sscanf(v, "byte * 2^%u", &sh) == 1 && sh < 64)
					d->unit_shift = sh;
			}
		}
	}
}

static void XMLCALL on_end(void *ud, const XML_Char *name)
{
	struct xml_state *x = ud;

	(void)name;
	x->depth--;
}

static void XMLCALL on_doctype(void *ud, const XML_Char *name, const XML_Char *sysid,
			       const XML_Char *pubid, int has_internal)
{
	(void)name, (void)sysid, (void)pubid, (void)has_internal;
	stop(ud, "a DOCTYPE (refused: no DTD or entity is read)");
}

static void XMLCALL on_entity(void *ud, const XML_Char *name, int is_param, const XML_Char *value,
			      int value_len, const XML_Char *base, const XML_Char *sysid,
			      const XML_Char *pubid, const XML_Char *notation)
{
	(void)name, (void)is_param, (void)value, (void)value_len, (void)base, (void)sysid,
		(void)pubid, (void)notation;
	stop(ud, "an entity declaration");
}

static dsc_err parse_ovf(const char *who, const char *mname, const char *text, size_t len,
			 struct ovf *ovf, struct dsc_error *e)
{
	struct xml_state x = {.ovf = ovf};
	enum XML_Status st;
	dsc_err rc = DSC_OK;

	x.p = XML_ParserCreateNS(NULL, '|');
	if (!x.p)
		return dsc_error_set(e, DSC_ERR_NOMEM, ENOMEM, "%s: out of memory", who);
	XML_SetUserData(x.p, &x);
	XML_SetElementHandler(x.p, on_start, on_end);
	XML_SetStartDoctypeDeclHandler(x.p, on_doctype);
	XML_SetEntityDeclHandler(x.p, on_entity);
	XML_SetParamEntityParsing(x.p, XML_PARAM_ENTITY_PARSING_NEVER);
	st = XML_Parse(x.p, text, (int)len, XML_TRUE);
	if (x.why)
		rc = dsc_error_set(e, DSC_ERR_FORMAT, 0, "%s: OVF descriptor %s: %s (line %lu)",
				   who, mname, x.why, (unsigned long)XML_GetCurrentLineNumber(x.p));
	else if (st != XML_STATUS_OK)
		rc = dsc_error_set(e, DSC_ERR_FORMAT, 0,
				   "%s: OVF descriptor %s is not well-formed XML: %s (line %lu)",
				   who, mname, XML_ErrorString(XML_GetErrorCode(x.p)),
				   (unsigned long)XML_GetCurrentLineNumber(x.p));
	XML_ParserFree(x.p);
	if (rc == DSC_OK && ovf->nd == 0)
		rc = dsc_error_set(e, DSC_ERR_FORMAT, 0,
				   "%s: OVF descriptor %s names no disk (no Disk element)", who,
				   mname);
	return rc;
}

static const struct ovf_file *file_of(const struct ovf *ovf, const struct ovf_disk *d)
{
	for (size_t i = 0; i < ovf->nf; i++)
		if (!strcmp(ovf->files[i].id, d->fileref))
			return &ovf->files[i];
	return NULL;
}

/* Read the first member, which must be the .ovf, and parse it. */
static dsc_err read_ovf(struct ova *o, struct dsc_error *e)
{
	struct dscp_tar_member m;
	bool end;
	char *text;
	dsc_err rc;

	rc = dscp_tar_next(&o->tar, &m, &end, e);
	if (rc != DSC_OK)
		return rc;
	if (end || m.type != '0' || !ends_with(m.name, ".ovf"))
		return dsc_error_set(
			e, DSC_ERR_FORMAT, 0,
			"%s: not an OVA: the first member of the tar is %s%s%s, not an "
			".ovf descriptor (a plain tar: extract the disk on the way in: "
			"tar -xOf FILE DISK | dsc-convert -src - ...)",
			oname(o), end ? "" : "\"", end ? "missing" : m.name, end ? "" : "\"");
	rc = read_member(o, &m, DSCP_OVF_MAX, &text, e);
	if (rc != DSC_OK)
		return rc;
	o->ovf_text = text;
	o->ovf_len = (size_t)m.size;
	snprintf(o->ovf_name, sizeof o->ovf_name, "%s", m.name);
	o->ovf = calloc(1, sizeof *o->ovf);
	if (!o->ovf)
		return dsc_error_set(e, DSC_ERR_NOMEM, ENOMEM, "%s: out of memory", oname(o));
	return parse_ovf(oname(o), m.name, text, (size_t)m.size, o->ovf, e);
}

/* ---- choosing and streaming the disk ------------------------------------------- */

static dsc_err choose(struct ova *o, const char *sel, struct dsc_error *e)
{
	const struct ovf_disk *d = NULL;
	uint64_t n;
	size_t i;

	if (!sel || !*sel) {
		d = &o->ovf->disks[0];
	} else if (parse_u64(sel, &n)) {
		if (n < 1 || n > o->ovf->nd)
			return dsc_error_set(e, DSC_ERR_INVAL, 0,
					     "%s: OVA disk %s: the OVF has %zu disk%s (1 to %zu)",
					     oname(o), sel, o->ovf->nd, o->ovf->nd == 1 ? "" : "s",
					     o->ovf->nd);
		d = &o->ovf->disks[n - 1];
	} else {
		for (i = 0; i < o->ovf->nd && !d; i++) {
			const struct ovf_file *f = file_of(o->ovf, &o->ovf->disks[i]);

			if (!strcmp(o->ovf->disks[i].id, sel) || (f && !strcmp(f->href, sel)))
				d = &o->ovf->disks[i];
		}
		if (!d)
			return dsc_error_set(e, DSC_ERR_INVAL, 0,
					     "%s: OVA disk \"%.64s\": no disk of the OVF has that "
					     "ovf:diskId or file",
					     oname(o), sel);
	}
	o->file = file_of(o->ovf, d);
	if (!o->file || !o->file->href[0])
		return dsc_error_set(e, DSC_ERR_FORMAT, 0,
				     "%s: OVF disk %s refers to file \"%.64s\", which References "
				     "does not list",
				     oname(o), d->id, d->fileref);
	return DSC_OK;
}

/* The member name of chunk `k` of the disk's file, or its own name. */
static void member_name(const struct ova *o, uint64_t k, char *buf, size_t size)
{
	if (o->file->chunk)
		snprintf(buf, size, "%s.%09" PRIu64, o->file->href, k);
	else
		snprintf(buf, size, "%s", o->file->href);
}

static dsc_err start_member(struct ova *o, const struct dscp_tar_member *m, struct dsc_error *e)
{
	if (m->type != '0')
		return dsc_error_set(e, DSC_ERR_FORMAT, 0,
				     "%s: OVA member %s is not a regular file", oname(o), m->name);
	if (!o->file->chunk && o->file->has_size && m->size != o->file->size)
		return dsc_error_set(e, DSC_ERR_FORMAT, 0,
				     "%s: OVA member %s holds %" PRIu64
				     " bytes, the OVF's ovf:size says %" PRIu64,
				     oname(o), m->name, m->size, o->file->size);
	if (o->file->chunk && m->size > o->file->chunk)
		return dsc_error_set(e, DSC_ERR_FORMAT, 0,
				     "%s: OVA member %s holds %" PRIu64
				     " bytes, more than the OVF's ovf:chunkSize %" PRIu64,
				     oname(o), m->name, m->size, o->file->chunk);
	o->in_member = true;
	o->mem_off = m->offset;
	o->mem_size = m->size;
	return hash_start(o, e);
}

/* Read on to the disk's (first) member; a manifest on the way is read. */
static dsc_err seek_disk(struct ova *o, struct dsc_error *e)
{
	char want[OVA_ID_MAX + 16];
	struct dscp_tar_member m;
	bool end;
	dsc_err rc;

	member_name(o, 0, want, sizeof want);
	for (;;) {
		rc = dscp_tar_next(&o->tar, &m, &end, e);
		if (rc != DSC_OK)
			return rc;
		if (end)
			return dsc_error_set(e, DSC_ERR_FORMAT, 0,
					     "%s: OVA: the disk's file %s is not in the archive",
					     oname(o), want);
		if (!strcmp(m.name, want))
			return start_member(o, &m, e);
		if (m.type == '0' && ends_with(m.name, ".mf")) {
			rc = read_mf_member(o, &m, e);
			if (rc != DSC_OK)
				return rc;
		}
	}
}

/* A chunk the manifest lists but the archive did not have in its place
 * (the disk would be silently short). */
static dsc_err check_chunks(struct ova *o, struct dsc_error *e)
{
	size_t hl = strlen(o->file->href), i, k;

	if (!o->file->chunk)
		return DSC_OK;
	for (i = 0; i < o->nmf; i++) {
		const char *n = o->mf[i].name;
		bool seen = false;

		if (strncmp(n, o->file->href, hl) || n[hl] != '.' || strlen(n + hl + 1) != 9 ||
		    strspn(n + hl + 1, "0123456789") != 9)
			continue;
		for (k = 0; k < o->ndone && !seen; k++)
			seen = !strcmp(o->done[k].name, n);
		if (!seen)
			return dsc_error_set(
				e, DSC_ERR_FORMAT, 0,
				"%s: OVA: the manifest lists %s, which does not follow "
				"chunk %09" PRIu64 " of %s in the archive",
				oname(o), n, o->chunk_no, o->file->href);
	}
	return DSC_OK;
}

/* After the disk: read the rest of the archive (a manifest at its end),
 * then check every digest kept. */
static dsc_err finish_archive(struct ova *o, struct dsc_error *e)
{
	struct dscp_tar_member m;
	bool end = false;
	dsc_err rc;

	for (;;) {
		if (o->have_pending) { /* a header read past the last chunk */
			m = o->pending;
			o->have_pending = false;
		} else {
			rc = dscp_tar_next(&o->tar, &m, &end, e);
			if (rc != DSC_OK)
				return rc;
			if (end)
				break;
		}
		if (m.type == '0' && ends_with(m.name, ".mf")) {
			rc = read_mf_member(o, &m, e);
			if (rc != DSC_OK)
				return rc;
		}
	}
	o->finished = true;
	return check_chunks(o, e);
}

static dsc_err ova_read(void *ctx, void *buf, size_t len, size_t *nread, struct dsc_error *e)
{
	struct ova *o = ctx;
	char name[OVA_ID_MAX + 16];
	struct dscp_tar_member m;
	size_t got;
	bool end;
	dsc_err rc;

	*nread = 0;
	while (!o->finished && len > 0) {
		if (!o->in_member)
			return finish_archive(o, e);
		rc = dscp_tar_read(&o->tar, buf, len, &got, e);
		if (rc != DSC_OK)
			return rc;
		if (got) {
			hash_update(o, buf, got);
			*nread = got;
			return DSC_OK;
		}
		member_name(o, o->chunk_no, name, sizeof name);
		o->in_member = false;
		rc = hash_end(o, name, e);
		if (rc != DSC_OK)
			return rc;
		if (!o->file->chunk)
			continue;
		/* The next chunk, if the next member is it. */
		rc = dscp_tar_next(&o->tar, &m, &end, e);
		if (rc != DSC_OK)
			return rc;
		if (end) {
			o->finished = true;
			break;
		}
		member_name(o, o->chunk_no + 1, name, sizeof name);
		if (strcmp(m.name, name)) {
			o->pending = m;
			o->have_pending = true;
			continue;
		}
		o->chunk_no++;
		rc = start_member(o, &m, e);
		if (rc != DSC_OK)
			return rc;
	}
	return DSC_OK;
}

static void ova_free(struct ova *o)
{
	if (!o)
		return;
	hash_stop(&o->h);
#if HAVE_CRYPTO
	for (size_t a = 0; a < ALG_N; a++)
		EVP_MD_CTX_free(o->h.md[a]);
#endif
	free(o->ovf);
	free(o->ovf_text);
	free(o->mf);
	free(o->done);
	free(o);
}

static void ova_close(void *ctx) { ova_free(ctx); }

static const struct dsc_stream_ops ova_ops = {
	.name = "ova",
	.read = ova_read,
	.close = ova_close,
};

static dsc_err ova_begin(dsc_stream *in, struct ova **out, struct dsc_error *e)
{
	struct ova *o;
	dsc_err rc;

	*out = NULL;
	o = calloc(1, sizeof *o);
	if (!o)
		return dsc_error_set(e, DSC_ERR_NOMEM, ENOMEM, "%s: out of memory",
				     dsc_stream_name(in));
	o->in = in;
	dscp_tar_init(&o->tar, in, "OVA");
	rc = read_ovf(o, e);
	if (rc != DSC_OK) {
		ova_free(o);
		return rc;
	}
	*out = o;
	return DSC_OK;
}

static dsc_err ova_unwrap(dsc_stream *in, const struct dsc_reader_opts *opts, dsc_stream **out,
			  struct dsc_error *e)
{
	struct ova *o;
	char name[512];
	dsc_err rc;

	*out = NULL;
	rc = ova_begin(in, &o, e);
	if (rc == DSC_OK)
		rc = choose(o, opts ? opts->disk : NULL, e);
	if (rc == DSC_OK)
		rc = seek_disk(o, e);
	if (rc == DSC_OK) {
		snprintf(name, sizeof name, "%s (%s)", dsc_stream_name(in), o->file->href);
		rc = dsc_stream_new(&ova_ops, o, name, out, e);
	}
	if (rc != DSC_OK)
		ova_free(o);
	return rc;
}

dsc_err dsc_ova_list(dsc_stream *in, struct dsc_ova_disk *disks, size_t max, size_t *n,
		     struct dsc_error *e)
{
	const struct dscp_format *layer;
	dsc_stream *plain = NULL;
	struct ova *o;
	size_t i;
	dsc_err rc;

	*n = 0;
	/* An .ova.gz (.xz, ...): the OVA inside the compression. */
	rc = dscp_find_layer(in, &layer, e);
	if (rc != DSC_OK)
		return rc;
	if (layer && !layer->archive) {
		rc = layer->unwrap(in, NULL, &plain, e);
		if (rc != DSC_OK)
			return rc;
		in = plain;
	}
	rc = ova_begin(in, &o, e);
	if (rc != DSC_OK) {
		dsc_stream_close(plain);
		return rc;
	}
	for (i = 0; i < o->ovf->nd && i < max; i++) {
		const struct ovf_disk *d = &o->ovf->disks[i];
		const struct ovf_file *f = file_of(o->ovf, d);
		struct dsc_ova_disk *out = &disks[i];
		const char *fmt = strrchr(d->format, '#');

		memset(out, 0, sizeof *out);
		snprintf(out->id, sizeof out->id, "%s", d->id);
		snprintf(out->file, sizeof out->file, "%s", f ? f->href : "");
		snprintf(out->format, sizeof out->format, "%s", fmt ? fmt + 1 : d->format);
		out->capacity = d->unit_shift && d->capacity > UINT64_MAX >> d->unit_shift ?
					0 :
					d->capacity << d->unit_shift;
		out->file_size = f && f->has_size ? f->size : 0;
		out->chunk_size = f ? f->chunk : 0;
		out->gzip = f && f->gzip;
	}
	*n = i;
	ova_free(o);
	dsc_stream_close(plain);
	return DSC_OK;
}

/* ---- the format table's entry ------------------------------------------------------ */

static int probe_ova(const struct dscp_probe *p)
{
	return p->head_len >= DSCP_TAR_BLOCK && dscp_tar_header_valid(p->head) ?
		       DSCP_SCORE_CERTAIN :
		       DSCP_SCORE_NONE;
}

const struct dscp_format dscp_format_ova = {
	.info = {.name = "ova",
		 .description =
			 "OVA appliance (tar of OVF + disks; writes one streamOptimized VMDK)",
		 .aliases = (const char *const[]){"tar", NULL},
		 .extensions = (const char *const[]){".ova", ".tar", NULL},
		 .flags = DSC_FMT_WRAPPER | DSC_FMT_READ | DSC_FMT_READ_STREAMS | DSC_FMT_WRITE |
			  DSC_FMT_WRITE_NEEDS_CAPACITY | DSC_FMT_WRITE_COMPRESSED,
		 .options = dscp_ova_options},
	.probe = probe_ova,
	.noun = "an OVA (tar) archive",
	.unwrap = ova_unwrap,
	.writer = &dscp_ova_writer,
	.archive = true,
};
