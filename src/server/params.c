/* params.c - query strings, booleans and output names.
 *
 * Parameters arrive percent-encoded in QUERY_STRING. Parsing is strict: a
 * bad escape, an encoded NUL, a repeated name or too many fields make the
 * whole request a 400, because guessing which of two `name=` values the
 * client meant is how files end up in the wrong place.
 */
#include "config.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "server.h"

#define PARAMS_MAX ((int)(sizeof(((struct srv_params *)0)->names) / sizeof(char *)))

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decode [s, s+n) into a new string; NULL on a bad escape or %00. */
static char *decode(const char *s, size_t n)
{
	char *out = malloc(n + 1), *o = out;
	size_t i;

	if (out == NULL)
		return NULL;
	for (i = 0; i < n; i++) {
		if (s[i] == '+') {
			*o++ = ' ';
		} else if (s[i] == '%') {
			int hi, lo;

			if (i + 2 >= n)
				goto bad;
			hi = hexval((unsigned char)s[i + 1]);
			lo = hexval((unsigned char)s[i + 2]);
			if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
				goto bad;
			*o++ = (char)(hi * 16 + lo);
			i += 2;
		} else {
			*o++ = s[i];
		}
	}
	*o = '\0';
	return out;
bad:
	free(out);
	return NULL;
}

bool params_parse(struct srv_params *p, const char *query)
{
	const char *s = query ? query : "";

	memset(p, 0, sizeof(*p));
	if (strlen(s) > SRV_QUERY_MAX)
		return false;
	while (*s != '\0') {
		const char *amp = strchr(s, '&');
		size_t len = amp ? (size_t)(amp - s) : strlen(s);
		const char *eq = memchr(s, '=', len);
		char *name, *value;
		int i;

		if (len > 0) {
			if (p->n >= PARAMS_MAX)
				goto bad;
			name = decode(s, eq ? (size_t)(eq - s) : len);
			value = eq ? decode(eq + 1, len - (size_t)(eq - s) - 1) : strdup("");
			if (name == NULL || value == NULL || name[0] == '\0') {
				free(name);
				free(value);
				goto bad;
			}
			for (i = 0; i < p->n; i++)
				if (strcmp(p->names[i], name) == 0)
					break;
			if (i < p->n) {
				free(name);
				free(value);
				goto bad;
			}
			p->names[p->n] = name;
			p->values[p->n] = value;
			p->n++;
		}
		s += len;
		if (*s == '&')
			s++;
	}
	return true;
bad:
	params_free(p);
	return false;
}

const char *params_get(const struct srv_params *p, const char *name)
{
	int i;

	for (i = 0; i < p->n; i++)
		if (strcmp(p->names[i], name) == 0)
			return p->values[i];
	return NULL;
}

void params_free(struct srv_params *p)
{
	int i;

	for (i = 0; i < p->n; i++) {
		free(p->names[i]);
		free(p->values[i]);
	}
	p->n = 0;
}

bool parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = {"true", "1", "yes", "on"};
	static const char *const no[] = {"false", "0", "no", "off", ""};
	size_t i;

	for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
		if (strcasecmp(s, yes[i]) == 0) {
			*out = true;
			return true;
		}
	for (i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		if (strcasecmp(s, no[i]) == 0) {
			*out = false;
			return true;
		}
	return false;
}

/* A plain file name: [A-Za-z0-9._-], not starting with '.', 1..255 bytes.
 * Anything else is refused, never rewritten. */
bool name_is_valid(const char *name)
{
	size_t i, n = strlen(name);

	if (n == 0 || n > SRV_NAME_MAX || name[0] == '.')
		return false;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)name[i];

		if (!(isascii(c) && (isalnum(c) || c == '.' || c == '_' || c == '-')))
			return false;
	}
	return true;
}
