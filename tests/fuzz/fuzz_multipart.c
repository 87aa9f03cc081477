/* fuzz_multipart.c - libFuzzer harness: dsc-server's multipart/form-data
 * field stream (src/server/multipart.c) over a memory body.
 *
 * The first input byte picks the mode and the second the read size:
 *  - even: the rest is "Content-Type value\n" + body, parsed as it is;
 *    the field "file" is read to its end and the body finished. Only
 *    crashes, sanitizer reports and messageless errors count.
 *  - odd: a round trip. The third byte sets a boundary length and the
 *    fourth a repeat count; the boundary is taken from the input (mapped to
 *    RFC 2046 bchars) and the field content is the rest of the input
 *    repeated up to ~600 KiB, so near-delimiters straddle the parser's
 *    256 KiB window. A well-formed body (a part before the field, the
 *    field, one after, the close delimiter) is built around it and must
 *    come back exactly - unless the content itself holds the delimiter.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server.h"

static const char bchars[] = "0123456789abcdefghijklmnopqrstuvwxyz"
			     "ABCDEFGHIJKLMNOPQRSTUVWXYZ'()+_,-./:=?";

/* Parse `body` and return the content of field "file" (malloc'd) or NULL
 * when the body is refused; *finished tells whether multipart_finish
 * accepted the rest. */
static uint8_t *parse(const uint8_t *body, size_t blen, const char *ctype, size_t chunk,
		      size_t *out_len, bool *finished)
{
	struct dsc_error e = {0};
	struct srv_multipart *h = NULL;
	dsc_stream *in = NULL, *part = NULL;
	uint8_t *out = NULL, buf[4096];
	size_t len = 0, cap = 0, n;
	dsc_err rc;

	*finished = false;
	*out_len = 0;
	if (dsc_stream_open_mem(body, blen, "body", &in, &e) != DSC_OK)
		abort();
	rc = multipart_stream(in, ctype, "file", &h, &part, &e);
	if (rc != DSC_OK) {
		if (e.code != rc || !e.message[0] || part || h)
			abort();
		dsc_stream_close(in);
		return NULL;
	}
	for (;;) {
		rc = dsc_read_full(part, buf, chunk, &n, &e);
		if (rc != DSC_OK) {
			if (e.code != rc || !e.message[0])
				abort();
			break;
		}
		if (len + n > cap) {
			/* Grow geometrically: byte-sized reads of a big field. */
			uint8_t *p;

			cap = 2 * (len + n) + 4096;
			p = realloc(out, cap);
			if (!p)
				abort();
			out = p;
		}
		if (n)
			memcpy(out + len, buf, n);
		len += n;
		if (n < chunk)
			break;
	}
	if (rc == DSC_OK) {
		memset(&e, 0, sizeof e);
		rc = multipart_finish(h, part, &e);
		if (rc != DSC_OK && (e.code != rc || !e.message[0]))
			abort();
		*finished = rc == DSC_OK;
	}
	dsc_stream_close(part);
	dsc_stream_close(in);
	if (!out)
		out = malloc(1);
	*out_len = len;
	return out;
}

static void raw_mode(const uint8_t *d, size_t n, size_t chunk)
{
	const uint8_t *nl = memchr(d, '\n', n);
	char ctype[256];
	size_t clen = nl ? (size_t)(nl - d) : 0, olen;
	bool fin;
	uint8_t *o;

	if (!nl || clen >= sizeof ctype || memchr(d, '\0', clen))
		return;
	memcpy(ctype, d, clen);
	ctype[clen] = '\0';
	o = parse(nl + 1, n - clen - 1, ctype, chunk, &olen, &fin);
	free(o);
}

/* Append to a body allocated up front (big enough: see round_trip). */
static void append(uint8_t **b, size_t *len, const void *p, size_t n)
{
	memcpy(*b + *len, p, n);
	*len += n;
}

static void append_str(uint8_t **b, size_t *len, const char *s) { append(b, len, s, strlen(s)); }

static void round_trip(const uint8_t *d, size_t n, size_t chunk)
{
	char boundary[71], ctype[128], delim[80];
	size_t blen, reps, i, body_len = 0, content_at, content_len, olen, dlen;
	uint8_t *body, *o;
	const uint8_t *content, *hit;
	bool fin;

	if (n < 2)
		return;
	blen = 1 + d[0] % 70;
	reps = 1 + (size_t)d[1] * 2400 / 256;
	d += 2;
	n -= 2;
	if (n < blen)
		return;
	for (i = 0; i < blen; i++)
		boundary[i] = bchars[d[i] % (sizeof bchars - 1)];
	boundary[blen] = '\0';
	/* RFC 2046: a boundary must not end in a space (none in bchars here). */
	content = d + blen;
	content_len = n - blen;
	if (content_len * reps > 600 * 1024)
		reps = content_len ? 600 * 1024 / content_len : 1;
	if (reps == 0)
		reps = 1;
	body = malloc(content_len * reps + 1024);
	if (!body)
		abort();
	snprintf(ctype, sizeof ctype, "multipart/form-data; boundary=%s", boundary);
	dlen = (size_t)snprintf(delim, sizeof delim, "\r\n--%s", boundary);
	append_str(&body, &body_len, "preamble");
	append(&body, &body_len, delim, dlen);
	append_str(&body, &body_len, "\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\nx");
	append(&body, &body_len, delim, dlen);
	append_str(&body, &body_len,
		   "\r\nContent-Disposition: form-data; name=\"file\"; filename=\"d.vmdk\"\r\n"
		   "Content-Type: application/octet-stream\r\n\r\n");
	content_at = body_len;
	for (i = 0; i < reps; i++)
		append(&body, &body_len, content, content_len);
	append(&body, &body_len, delim, dlen);
	append_str(&body, &body_len, "\r\nContent-Disposition: form-data; name=\"after\"\r\n\r\ny");
	append(&body, &body_len, delim, dlen);
	append_str(&body, &body_len, "--\r\n");
	/* The field ends at the first delimiter after its headers. */
	hit = memmem(body + content_at, body_len - content_at, delim, dlen);
	o = parse(body, body_len, ctype, chunk, &olen, &fin);
	if (hit == body + content_at + content_len * reps) {
		if (!o || !fin || olen != content_len * reps || memcmp(o, body + content_at, olen))
			abort();
	}
	free(o);
	free(body);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t chunk;

	if (size < 2)
		return 0;
	chunk = 1 + (size_t)data[1] * 16; /* 1 to 4081 bytes per read */
	if (data[0] & 1)
		round_trip(data + 2, size - 2, chunk);
	else
		raw_mode(data + 2, size - 2, chunk);
	return 0;
}
