/* utf8.c - the one UTF-8 decoder of dsc-server.
 *
 * Client text (paths, parameter values, content types) and file names may
 * be any bytes. Error messages quote them (utf8_clip, and reply.c makes
 * them valid for JSON), and Content-Disposition encodes file names
 * (disposition.c); all of them step through the text with utf8_seq(),
 * which accepts only well-formed UTF-8 (RFC 3629 section 4: no overlong
 * forms, no surrogates, nothing past U+10FFFF).
 */
#include "config.h"

#include <string.h>

#include "server.h"

size_t utf8_seq(const unsigned char *s, size_t n)
{
	unsigned char c, lo = 0x80, hi = 0xbf;
	size_t len, i;

	if (n == 0)
		return 0;
	c = s[0];
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		len = 2;
	else if (c >= 0xe0 && c <= 0xef)
		len = 3;
	else if (c >= 0xf0 && c <= 0xf4)
		len = 4;
	else
		return 0;
	if (c == 0xe0)
		lo = 0xa0; /* overlong */
	else if (c == 0xed)
		hi = 0x9f; /* surrogates */
	else if (c == 0xf0)
		lo = 0x90; /* overlong */
	else if (c == 0xf4)
		hi = 0x8f; /* past U+10FFFF */
	if (n < len || s[1] < lo || s[1] > hi)
		return 0;
	for (i = 2; i < len; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	return len;
}

const char *utf8_clip(char *buf, size_t bufsz, const char *s, size_t max)
{
	size_t len = strlen(s), i = 0, k;

	if (bufsz < 4) {
		if (bufsz > 0)
			buf[0] = '\0';
		return buf;
	}
	if (max > bufsz - 4)
		max = bufsz - 4;
	while (i < len) {
		/* A stray byte counts alone: reply.c escapes it later. */
		k = utf8_char_len(s + i, len - i);
		if (i + k > max)
			break;
		i += k;
	}
	memcpy(buf, s, i);
	if (i < len)
		memcpy(buf + i, "...", 3), i += 3;
	buf[i] = '\0';
	return buf;
}

size_t utf8_char_len(const char *s, size_t n)
{
	size_t k;

	if (n == 0)
		return 0;
	k = utf8_seq((const unsigned char *)s, n);
	return k ? k : 1;
}
