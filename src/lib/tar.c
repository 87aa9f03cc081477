/* tar.c - the forward-only tar reader of tar.h. */
#include "tar.h"

#include <inttypes.h>
#include <stdio.h>

void dscp_tar_init(struct dscp_tar *t, dsc_stream *in, const char *what)
{
	memset(t, 0, sizeof *t);
	t->in = in;
	t->what = what;
	t->pos = dsc_stream_tell(in);
}

static const char *tname(const struct dscp_tar *t) { return dsc_stream_name(t->in); }

static dsc_err tar_truncated(const struct dscp_tar *t, const char *inside, struct dsc_error *e)
{
	return dsc_error_set(e, DSC_ERR_TRUNCATED, 0,
			     "%s: truncated: the %s (tar) ends at byte %" PRIu64 " inside %s",
			     tname(t), t->what, t->pos, inside);
}

/* Read exactly len bytes of the archive, or *got < len at its end. */
static dsc_err tar_in(struct dscp_tar *t, void *buf, size_t len, size_t *got, struct dsc_error *e)
{
	dsc_err rc = dsc_read_full(t->in, buf, len, got, e);

	t->pos += *got;
	return rc;
}

static dsc_err tar_skip(struct dscp_tar *t, uint64_t n, const char *inside, struct dsc_error *e)
{
	uint64_t done;
	dsc_err rc;

	if (n == 0)
		return DSC_OK;
	rc = dsc_stream_skip(t->in, n, &done, e);
	t->pos += done;
	if (rc == DSC_OK && done < n)
		return tar_truncated(t, inside, e);
	return rc;
}

bool dscp_tar_header_valid(const uint8_t *h)
{
	unsigned long sum = 0, ssum = 0, want = 0;
	size_t i;

	if (memcmp(h + 257, "ustar", 5))
		return false;
	for (i = 0; i < DSCP_TAR_BLOCK; i++) {
		unsigned char c = i >= 148 && i < 156 ? ' ' : h[i];
		sum += c;
		ssum += (unsigned long)(long)(signed char)c;
	}
	for (i = 148; i < 156 && h[i] == ' '; i++)
		;
	if (i == 156 || h[i] < '0' || h[i] > '7')
		return false;
	for (; i < 156 && h[i] >= '0' && h[i] <= '7'; i++)
		want = want * 8 + (unsigned long)(h[i] - '0');
	/* Old tars summed signed chars; both are accepted, as GNU tar does. */
	return sum == want || ssum == want;
}

/* A numeric field: octal digits (leading spaces, ending at a space or
 * NUL), or base-256 big-endian when bit 7 of the first byte is set. */
static bool tar_number(const uint8_t *f, size_t n, uint64_t *v)
{
	size_t i = 0;

	*v = 0;
	if (f[0] & 0x80) {
		if (f[0] != 0x80)
			return false; /* negative, or more than 64 bits of size */
		for (i = 1; i < n; i++) {
			if (*v >> 56)
				return false;
			*v = *v << 8 | f[i];
		}
		return true;
	}
	while (i < n && f[i] == ' ')
		i++;
	for (; i < n && f[i] >= '0' && f[i] <= '7'; i++) {
		if (*v >> 61)
			return false;
		*v = *v * 8 + (uint64_t)(f[i] - '0');
	}
	for (; i < n; i++)
		if (f[i] != ' ' && f[i] != '\0')
			return false;
	return true;
}

/* Copy a NUL-padded field into out (at most cap bytes plus a NUL). */
static size_t field_copy(char *out, size_t cap, const uint8_t *f, size_t n)
{
	size_t len = 0;

	while (len < n && f[len])
		len++;
	if (len > cap)
		len = cap;
	memcpy(out, f, len);
	out[len] = '\0';
	return len;
}

/* Read a member's data (an extension header) whole into a NUL-ended
 * buffer, then its padding. */
static dsc_err read_ext(struct dscp_tar *t, uint64_t size, char **out, struct dsc_error *e)
{
	size_t got;
	char *buf;
	dsc_err rc;

	*out = NULL;
	if (size > DSCP_TAR_EXT_MAX)
		return dsc_error_set(e, DSC_ERR_LIMIT, 0,
				     "%s: %s (tar): an extended header of %" PRIu64
				     " bytes at byte %" PRIu64 " exceeds the limit of %u bytes",
				     tname(t), t->what, size, t->pos, DSCP_TAR_EXT_MAX);
	buf = malloc((size_t)size + 1);
	if (!buf)
		return dsc_error_set(e, DSC_ERR_NOMEM, ENOMEM, "%s: out of memory", tname(t));
	rc = tar_in(t, buf, (size_t)size, &got, e);
	if (rc == DSC_OK && got < size)
		rc = tar_truncated(t, "an extended header", e);
	if (rc == DSC_OK)
		rc = tar_skip(t, (DSCP_TAR_BLOCK - size % DSCP_TAR_BLOCK) % DSCP_TAR_BLOCK,
			      "an extended header", e);
	if (rc != DSC_OK) {
		free(buf);
		return rc;
	}
	buf[size] = '\0';
	*out = buf;
	return DSC_OK;
}

/* pax records "LEN key=value\n": take path= and size=. */
static dsc_err parse_pax(struct dscp_tar *t, const char *rec, size_t len, char *path,
			 bool *have_path, uint64_t *size, bool *have_size, struct dsc_error *e)
{
	size_t off = 0;

	while (off < len) {
		size_t n = 0, i = off, klen;
		const char *key, *val, *eq;

		while (i < len && rec[i] >= '0' && rec[i] <= '9' && n <= len)
			n = n * 10 + (size_t)(rec[i++] - '0');
		if (i >= len || rec[i] != ' ' || n <= i - off + 1 || n > len - off ||
		    rec[off + n - 1] != '\n')
			return dsc_error_set(
				e, DSC_ERR_FORMAT, 0,
				"%s: %s (tar): malformed pax record before byte %" PRIu64, tname(t),
				t->what, t->pos);
		key = rec + i + 1;
		eq = memchr(key, '=', (size_t)(rec + off + n - 1 - key));
		if (!eq)
			return dsc_error_set(
				e, DSC_ERR_FORMAT, 0,
				"%s: %s (tar): pax record without '=' before byte %" PRIu64,
				tname(t), t->what, t->pos);
		klen = (size_t)(eq - key);
		val = eq + 1;
		if (klen == 4 && !memcmp(key, "path", 4)) {
			size_t vlen = (size_t)(rec + off + n - 1 - val);

			if (vlen > DSCP_TAR_NAME_MAX)
				return dsc_error_set(
					e, DSC_ERR_LIMIT, 0,
					"%s: %s (tar): a member name of %zu bytes exceeds "
					"the limit of %u",
					tname(t), t->what, vlen, DSCP_TAR_NAME_MAX);
			memcpy(path, val, vlen);
			path[vlen] = '\0';
			*have_path = true;
		} else if (klen == 4 && !memcmp(key, "size", 4)) {
			uint64_t v = 0;
			const char *p = val;

			if (p == rec + off + n - 1)
				return dsc_error_set(e, DSC_ERR_FORMAT, 0,
						     "%s: %s (tar): empty pax size", tname(t),
						     t->what);
			for (; p < rec + off + n - 1; p++) {
				if (*p < '0' || *p > '9' || v > DSCP_TAR_MEMBER_MAX)
					return dsc_error_set(
						e, DSC_ERR_FORMAT, 0,
						"%s: %s (tar): bad pax size before byte "
						"%" PRIu64,
						tname(t), t->what, t->pos);
				v = v * 10 + (uint64_t)(*p - '0');
			}
			*size = v;
			*have_size = true;
		}
		off += n;
	}
	return DSC_OK;
}

dsc_err dscp_tar_next(struct dscp_tar *t, struct dscp_tar_member *m, bool *end, struct dsc_error *e)
{
	uint8_t h[DSCP_TAR_BLOCK];
	char xpath[DSCP_TAR_NAME_MAX + 1];
	bool have_path = false, have_size = false;
	uint64_t xsize = 0;
	size_t got;
	dsc_err rc;

	*end = false;
	memset(m, 0, sizeof *m);
	if (t->ended) {
		*end = true;
		return DSC_OK;
	}
	rc = tar_skip(t, t->left + t->pad, "a member", e);
	if (rc != DSC_OK)
		return rc;
	t->left = t->pad = 0;
	for (;;) {
		uint64_t hdr_at = t->pos, size;
		char *ext = NULL;
		bool posix;

		rc = tar_in(t, h, sizeof h, &got, e);
		if (rc != DSC_OK)
			return rc;
		if (got == 0) {
			/* No end blocks: taken as the end, as tar does. */
			t->ended = *end = true;
			return DSC_OK;
		}
		if (got < sizeof h)
			return tar_truncated(t, "a header", e);
		{
			size_t i = 0;

			while (i < sizeof h && h[i] == 0)
				i++;
			if (i == sizeof h) {
				t->ended = *end = true;
				return DSC_OK;
			}
		}
		if (!dscp_tar_header_valid(h))
			return dsc_error_set(e, DSC_ERR_FORMAT, 0,
					     "%s: %s (tar): the header at byte %" PRIu64
					     " is not a ustar header with a valid checksum",
					     tname(t), t->what, hdr_at);
		if (!tar_number(h + 124, 12, &size) || size > DSCP_TAR_MEMBER_MAX)
			return dsc_error_set(e, DSC_ERR_LIMIT, 0,
					     "%s: %s (tar): the member size in the header at byte "
					     "%" PRIu64
					     " is malformed or over the limit of %llu bytes",
					     tname(t), t->what, hdr_at,
					     (unsigned long long)DSCP_TAR_MEMBER_MAX);
		posix = !memcmp(h + 257, "ustar\0", 6);
		switch (h[156]) {
		case 'x':
		case 'g':
		case 'L':
			rc = read_ext(t, size, &ext, e);
			if (rc != DSC_OK)
				return rc;
			if (h[156] == 'x')
				rc = parse_pax(t, ext, (size_t)size, xpath, &have_path, &xsize,
					       &have_size, e);
			else if (h[156] == 'L') {
				size_t n = strnlen(ext, (size_t)size);

				if (n > DSCP_TAR_NAME_MAX)
					rc = dsc_error_set(
						e, DSC_ERR_LIMIT, 0,
						"%s: %s (tar): a member name of %zu bytes "
						"exceeds the limit of %u",
						tname(t), t->what, n, DSCP_TAR_NAME_MAX);
				else {
					memcpy(xpath, ext, n);
					xpath[n] = '\0';
					have_path = true;
				}
			}
			free(ext);
			if (rc != DSC_OK)
				return rc;
			continue;
		default: break;
		}
		if (have_path) {
			memcpy(m->name, xpath, strlen(xpath) + 1);
		} else {
			size_t n = 0;

			if (posix && h[345]) {
				n = field_copy(m->name, 155, h + 345, 155);
				m->name[n++] = '/';
			}
			field_copy(m->name + n, 100, h, 100);
		}
		if (have_size && xsize > DSCP_TAR_MEMBER_MAX)
			return dsc_error_set(e, DSC_ERR_LIMIT, 0,
					     "%s: %s (tar): the pax size of the member at byte "
					     "%" PRIu64 " is over the limit of %llu bytes",
					     tname(t), t->what, hdr_at,
					     (unsigned long long)DSCP_TAR_MEMBER_MAX);
		m->size = have_size ? xsize : size;
		m->type = h[156] ? (char)h[156] : '0';
		m->offset = t->pos;
		/* Links and devices carry no data whatever the size says. */
		if (m->type == '1' || m->type == '2' || m->type == '3' || m->type == '4' ||
		    m->type == '5' || m->type == '6')
			m->size = 0;
		t->left = m->size;
		t->pad = (DSCP_TAR_BLOCK - m->size % DSCP_TAR_BLOCK) % DSCP_TAR_BLOCK;
		return DSC_OK;
	}
}

dsc_err dscp_tar_read(struct dscp_tar *t, void *buf, size_t len, size_t *got, struct dsc_error *e)
{
	size_t want = (size_t)DSC_MIN((uint64_t)len, t->left);
	dsc_err rc;

	*got = 0;
	if (want == 0)
		return DSC_OK;
	rc = tar_in(t, buf, want, got, e);
	if (rc != DSC_OK)
		return rc;
	t->left -= *got;
	if (*got < want)
		return tar_truncated(t, "a member's data", e);
	return DSC_OK;
}

void dscp_tar_header(uint8_t h[DSCP_TAR_BLOCK], const char *name, uint64_t size, uint64_t mtime)
{
	unsigned long sum = 0;
	size_t i;

	memset(h, 0, DSCP_TAR_BLOCK);
	memcpy(h, name, DSC_MIN(strlen(name), (size_t)100));
	memcpy(h + 100, "0000644", 7);
	memcpy(h + 108, "0000000", 7);
	memcpy(h + 116, "0000000", 7);
	if (size < (1ull << 33)) {
		snprintf((char *)h + 124, 12, "%011llo", (unsigned long long)size);
	} else {
		h[124] = 0x80;
		for (i = 0; i < 8; i++)
			h[135 - i] = (uint8_t)(size >> (8 * i));
	}
	snprintf((char *)h + 136, 12, "%011llo", (unsigned long long)(mtime & 077777777777ull));
	h[156] = '0';
	memcpy(h + 257, "ustar", 6); /* with its NUL */
	memcpy(h + 263, "00", 2);
	memset(h + 148, ' ', 8);
	for (i = 0; i < DSCP_TAR_BLOCK; i++)
		sum += h[i];
	snprintf((char *)h + 148, 8, "%06lo", sum);
	h[155] = ' ';
}
