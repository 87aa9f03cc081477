/* disposition.c - the Content-Disposition header of an /export (RFC 6266).
 *
 * A download name may be any bytes a file name can hold. The header
 * carries it twice: filename="..." is a plain ASCII fallback (one '_' for
 * each character it cannot carry, quotes and backslashes included) for old
 * clients, and filename*=UTF-8''... is the name percent-encoded as RFC 8187
 * section 3.2 says, for the rest. The encoded form is capped (CD_ENC_MAX,
 * server.h) by shortening the stem at a character boundary, so the header
 * always fits the reply's header buffer.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "server.h"

/* attr-char of RFC 8187 section 3.2.1: sent as it is, all else as %XX. */
static bool attr_char(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       (c != '\0' && strchr("!#$&+-.^_`|~", c) != NULL);
}

static size_t enc_len(const char *s, size_t n)
{
	size_t i, k = 0;

	for (i = 0; i < n; i++)
		k += attr_char((unsigned char)s[i]) ? 1 : 3;
	return k;
}

static size_t percent_encode(const char *s, size_t n, char *out)
{
	static const char hexd[] = "0123456789ABCDEF";
	size_t i, k = 0;

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (attr_char(c)) {
			out[k++] = (char)c;
		} else {
			out[k++] = '%';
			out[k++] = hexd[c >> 4];
			out[k++] = hexd[c & 15];
		}
	}
	return k;
}

/* RFC 6266: a plain ASCII fallback and the UTF-8 name (RFC 8187). The
 * fallback writes one '_' for each character it cannot carry. When the
 * encoded name would pass CD_ENC_MAX bytes, its stem is shortened at a
 * character boundary (the extension is kept). `out` has room for
 * CD_LINE_MAX + 1 bytes. */
void content_disposition(const char *fname, char *out, size_t outsz)
{
	char ascii[SRV_NAME_MAX + 1], enc[CD_ENC_MAX + 1];
	const char *dot = strrchr(fname, '.');
	size_t i, a = 0, k, len = strlen(fname), stem, ext_enc;

	for (i = 0; fname[i] != '\0' && a < sizeof(ascii) - 1;) {
		unsigned char c = (unsigned char)fname[i];

		ascii[a++] =
			(c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '%' || c == ';') ?
				'_' :
				(char)c;
		i += utf8_char_len(fname + i, len - i);
	}
	ascii[a] = '\0';

	if (dot == NULL || dot == fname || len - (size_t)(dot - fname) > 16)
		dot = fname + len;
	stem = (size_t)(dot - fname);
	ext_enc = enc_len(dot, len - stem); /* at most 48 */
	/* The longest stem prefix, in whole characters, that fits. */
	for (i = 0, k = 0; i < stem;) {
		size_t n = utf8_char_len(fname + i, len - i);

		if (i + n > stem || k + enc_len(fname + i, n) + ext_enc > CD_ENC_MAX)
			break;
		k += enc_len(fname + i, n);
		i += n;
	}
	k = percent_encode(fname, i, enc);
	k += percent_encode(dot, len - stem, enc + k);
	enc[k] = '\0';
	snprintf(out, outsz,
		 "Content-Disposition: attachment; filename=\"%s\"; "
		 "filename*=UTF-8''%s\r\n",
		 ascii, enc);
}
