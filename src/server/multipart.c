/* multipart.c - one field of a multipart/form-data body, as a stream.
 *
 * The image inside a form upload is handed to the converter while it
 * arrives: a fixed window (MP_BUF) slides over the body, bytes are released
 * as soon as they cannot be the start of the delimiter "\r\n--boundary"
 * (RFC 2046 section 5.1.1), and memmem() finds the delimiter. Nothing is
 * buffered whole, in memory or on disk. The part ends (EOF) only at its
 * delimiter; a body that stops before it is an error, so a cut-off upload
 * can never convert into a short image. Parts before the wanted one are
 * skipped; multipart_finish() checks that the body closes properly.
 */
#include "config.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "server.h"

#define MP_BUF (256u * 1024u)
#define MP_BOUNDARY_MAX 70 /* RFC 2046 section 5.1.1 */
#define MP_HEADERS_MAX (16u * 1024u)
#define MP_PARTS_MAX 64

enum mp_state {
	MP_DATA,
	MP_AT_DELIM,
	MP_CLOSED
};

struct srv_multipart;

struct mp {
	dsc_stream *body;
	char field[64];
	char delim[MP_BOUNDARY_MAX + 5]; /* "\r\n--" boundary */
	size_t dlen;
	uint8_t *buf;
	size_t start, end;
	size_t clean; /* bytes from start known to hold no delimiter start */
	bool body_eof;
	enum mp_state state;
};

/* Read more of the body into the window; false at end of body. */
static dsc_err fill(struct mp *m, bool *got, struct dsc_error *e)
{
	size_t n;
	dsc_err rc;

	*got = false;
	if (m->start > 0) {
		memmove(m->buf, m->buf + m->start, m->end - m->start);
		m->end -= m->start;
		m->start = 0;
	}
	if (m->body_eof || m->end == MP_BUF)
		return DSC_OK;
	rc = dsc_read_full(m->body, m->buf + m->end, MP_BUF - m->end, &n, e);
	if (rc != DSC_OK)
		return rc;
	if (n < MP_BUF - m->end)
		m->body_eof = true;
	m->end += n;
	*got = n > 0;
	return DSC_OK;
}

/* Find the next delimiter from `start`. On success the window starts at
 * it. Bytes before it are dropped when `discard`, else left at start and
 * *before set to their count (then nothing is dropped). */
static dsc_err find_delim(struct mp *m, size_t *before, struct dsc_error *e)
{
	for (;;) {
		uint8_t *p = memmem(m->buf + m->start, m->end - m->start, m->delim, m->dlen);
		size_t avail = m->end - m->start;
		bool got;
		dsc_err rc;

		if (p != NULL) {
			*before = (size_t)(p - (m->buf + m->start));
			return DSC_OK;
		}
		if (before != NULL && avail >= m->dlen) {
			/* Everything but a possible partial delimiter at the
			 * tail can go. */
			*before = avail - (m->dlen - 1);
			m->clean = *before;
			return DSC_ERR_CANCELLED; /* "no delimiter yet" */
		}
		rc = fill(m, &got, e);
		if (rc != DSC_OK)
			return rc;
		if (!got)
			return dsc_error_set(e, DSC_ERR_TRUNCATED, 0,
					     "multipart body: ended before the "
					     "closing boundary of field '%s'",
					     m->field);
	}
}

/* Skip to the next delimiter, dropping what is before it. */
static dsc_err skip_to_delim(struct mp *m, struct dsc_error *e)
{
	for (;;) {
		size_t before;
		dsc_err rc = find_delim(m, &before, e);

		m->start += before;
		m->clean = 0;
		if (rc == DSC_OK)
			return DSC_OK;
		if (rc != DSC_ERR_CANCELLED)
			return rc;
	}
}

/* Make at least n bytes available from start; false if the body ends. */
static dsc_err need(struct mp *m, size_t n, bool *ok, struct dsc_error *e)
{
	*ok = true;
	while (m->end - m->start < n) {
		bool got;
		dsc_err rc = fill(m, &got, e);

		if (rc != DSC_OK)
			return rc;
		if (!got) {
			*ok = false;
			return DSC_OK;
		}
	}
	return DSC_OK;
}

/* The window starts at a delimiter: consume it and what follows it up to
 * the part's body. Sets *closed at the close delimiter; otherwise *is_field
 * tells whether this part is the wanted field. */
static dsc_err open_part(struct mp *m, bool *closed, bool *is_field, struct dsc_error *e)
{
	char *hdr, *end, *line;
	size_t hlen;
	bool ok;
	dsc_err rc;

	*closed = false;
	*is_field = false;
	rc = need(m, m->dlen + 2, &ok, e);
	if (rc != DSC_OK)
		return rc;
	if (!ok)
		goto truncated;
	m->start += m->dlen;
	if (memcmp(m->buf + m->start, "--", 2) == 0) {
		m->start += 2;
		m->state = MP_CLOSED;
		*closed = true;
		return DSC_OK;
	}
	/* Headers end at the first empty line; cap their size. */
	for (;;) {
		uint8_t *p = memmem(m->buf + m->start, m->end - m->start, "\r\n\r\n", 4);
		bool got;

		if (p != NULL) {
			hlen = (size_t)(p - (m->buf + m->start)) + 4;
			break;
		}
		if (m->end - m->start > MP_HEADERS_MAX)
			return dsc_error_set(e, DSC_ERR_LIMIT, 0,
					     "multipart body: part headers "
					     "exceed %u bytes",
					     MP_HEADERS_MAX);
		rc = fill(m, &got, e);
		if (rc != DSC_OK)
			return rc;
		if (!got)
			goto truncated;
	}
	if (hlen > MP_HEADERS_MAX)
		return dsc_error_set(e, DSC_ERR_LIMIT, 0,
				     "multipart body: part headers exceed %u "
				     "bytes",
				     MP_HEADERS_MAX);
	hdr = strndup((const char *)m->buf + m->start, hlen);
	if (hdr == NULL)
		return dsc_error_set(e, DSC_ERR_NOMEM, 0, "multipart body: out of memory");
	m->start += hlen;
	m->clean = 0;
	/* The first line is the rest of the delimiter line (transport
	 * padding); then "Name: value" lines. */
	line = strstr(hdr, "\r\n");
	while (line != NULL && line[2] != '\0' && line[2] != '\r') {
		line += 2;
		end = strstr(line, "\r\n");
		if (end != NULL)
			*end = '\0';
		if (strncasecmp(line, "Content-Disposition:", 20) == 0) {
			const char *v = line + 20, *np;

			/* name="..." or name=token; not filename= */
			for (np = v; (np = strcasestr(np, "name=")) != NULL; np += 5) {
				if (np > v && (isalnum((unsigned char)np[-1]) || np[-1] == '*'))
					continue;
				np += 5;
				if (*np == '"') {
					const char *q = strchr(np + 1, '"');
					size_t flen = strlen(m->field);

					*is_field = q != NULL && (size_t)(q - np - 1) == flen &&
						    strncmp(np + 1, m->field, flen) == 0;
				} else {
					size_t l = strcspn(np, "; \t");

					*is_field = l == strlen(m->field) &&
						    strncmp(np, m->field, l) == 0;
				}
				break;
			}
		}
		if (end == NULL)
			break;
		*end = '\r';
		line = end;
	}
	free(hdr);
	return DSC_OK;
truncated:
	return dsc_error_set(e, DSC_ERR_TRUNCATED, 0, "multipart body: ended inside a part header");
}

static dsc_err mp_read(void *vctx, void *buf, size_t len, size_t *nread, struct dsc_error *e)
{
	struct mp *m = vctx;
	size_t n;
	dsc_err rc;

	*nread = 0;
	if (m->state != MP_DATA || len == 0)
		return DSC_OK;
	if (m->clean == 0) {
		rc = find_delim(m, &n, e);
		if (rc == DSC_OK) {
			if (n == 0) {
				m->state = MP_AT_DELIM;
				return DSC_OK;
			}
			m->clean = n;
		} else if (rc != DSC_ERR_CANCELLED) {
			return rc;
		}
	}
	n = m->clean < len ? m->clean : len;
	memcpy(buf, m->buf + m->start, n);
	m->start += n;
	m->clean -= n;
	*nread = n;
	return DSC_OK;
}

static void mp_close(void *vctx)
{
	struct mp *m = vctx;

	free(m->buf);
	free(m);
}

static const struct dsc_stream_ops mp_ops = {
	.name = "multipart",
	.read = mp_read,
	.close = mp_close,
};

/* The boundary parameter of a multipart/form-data Content-Type. */
static bool get_boundary(const char *ctype, char *out, size_t outsz)
{
	const char *p = strcasestr(ctype, "boundary=");
	size_t n;

	if (p == NULL)
		return false;
	p += 9;
	if (*p == '"') {
		const char *q = strchr(++p, '"');

		if (q == NULL)
			return false;
		n = (size_t)(q - p);
	} else {
		n = strcspn(p, "; \t");
	}
	if (n == 0 || n > MP_BOUNDARY_MAX || n >= outsz)
		return false;
	memcpy(out, p, n);
	out[n] = '\0';
	return true;
}

dsc_err multipart_stream(dsc_stream *body, const char *content_type, const char *field,
			 struct srv_multipart **handle, dsc_stream **out, struct dsc_error *e)
{
	char boundary[MP_BOUNDARY_MAX + 1];
	struct mp *m = NULL;
	int parts = 0;
	dsc_err rc;

	*out = NULL;
	*handle = NULL;
	if (!get_boundary(content_type, boundary, sizeof(boundary)))
		return dsc_error_set(e, DSC_ERR_INVAL, 0,
				     "request: multipart/form-data without a "
				     "valid boundary (1-%d characters)",
				     MP_BOUNDARY_MAX);
	m = calloc(1, sizeof(*m));
	if (m == NULL || (m->buf = malloc(MP_BUF)) == NULL) {
		rc = dsc_error_set(e, DSC_ERR_NOMEM, 0, "multipart body: out of memory");
		goto fail;
	}
	m->body = body;
	snprintf(m->field, sizeof(m->field), "%s", field);
	m->dlen = (size_t)snprintf(m->delim, sizeof(m->delim), "\r\n--%s", boundary);
	/* The first delimiter may open the body without the CRLF: seed the
	 * window with one so that one search finds both forms. */
	memcpy(m->buf, "\r\n", 2);
	m->end = 2;
	for (;;) {
		bool closed, is_field;

		rc = skip_to_delim(m, e);
		if (rc != DSC_OK)
			goto fail;
		rc = open_part(m, &closed, &is_field, e);
		if (rc != DSC_OK)
			goto fail;
		if (closed) {
			rc = dsc_error_set(e, DSC_ERR_INVAL, 0,
					   "multipart body: no field named "
					   "'%s'",
					   field);
			goto fail;
		}
		if (is_field)
			break;
		if (++parts >= MP_PARTS_MAX) {
			rc = dsc_error_set(e, DSC_ERR_LIMIT, 0,
					   "multipart body: more than %d parts "
					   "before field '%s'",
					   MP_PARTS_MAX, field);
			goto fail;
		}
	}
	m->state = MP_DATA;
	rc = dsc_stream_new(&mp_ops, m, "multipart field", out, e);
	if (rc != DSC_OK)
		goto fail;
	*handle = (struct srv_multipart *)m;
	return DSC_OK;
fail:
	if (m != NULL)
		mp_close(m);
	return rc;
}

dsc_err multipart_finish(struct srv_multipart *handle, dsc_stream *part, struct dsc_error *e)
{
	struct mp *m = (struct mp *)handle;
	uint64_t skipped;
	int parts = 0;
	dsc_err rc;

	/* The converter may stop before the part's end (a VMDK stream ends
	 * at its end-of-stream marker): drain the rest of the field first. */
	rc = dsc_stream_skip(part, UINT64_MAX, &skipped, e);
	if (rc != DSC_OK)
		return rc;
	for (;;) {
		bool closed, is_field;

		rc = open_part(m, &closed, &is_field, e);
		if (rc != DSC_OK)
			return rc;
		if (closed)
			break;
		if (++parts >= MP_PARTS_MAX)
			return dsc_error_set(e, DSC_ERR_LIMIT, 0,
					     "multipart body: more than %d "
					     "parts",
					     MP_PARTS_MAX);
		rc = skip_to_delim(m, e);
		if (rc != DSC_OK)
			return rc;
	}
	/* The epilogue (usually just CRLF) must still arrive in full: a
	 * client that went away is an error even here. */
	return dsc_stream_skip(m->body, UINT64_MAX, &skipped, e);
}
