/* import_body.c - the JSON body of POST /import, parsed into plain strings.
 *
 * Kept apart from the route (no FastCGI, no replies) so that a fuzz harness
 * can run it on arbitrary bytes. The body is size-checked by the caller
 * (SRV_JSON_BODY_MAX); here every member is checked for its type, unknown
 * members are refused, and request headers for the source may carry no
 * line break, so nothing a client sends can split a header.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server.h"

static const char *const known[] = {"url",       "src",      "dst",    "prealloc", "name",
				    "overwrite", "sha256",   "digest", "headers",  "level",
				    "options",   "compress", NULL};

/* A member as a string: strings as they are, booleans as "true"/"false";
 * NULL when absent or null. *bad on another type. */
static const char *member(json_t *o, const char *key, bool *bad)
{
	json_t *v = json_object_get(o, key);

	if (v == NULL || json_is_null(v))
		return NULL;
	if (json_is_string(v))
		return json_string_value(v);
	if (json_is_boolean(v))
		return json_is_true(v) ? "true" : "false";
	*bad = true;
	return NULL;
}

/* Quote at most 64 bytes of client text, printable ASCII only. */
static void quote(char *out, size_t size, const char *s)
{
	size_t i, n = 0;

	for (i = 0; s[i] && n + 1 < size && i < 64; i++)
		out[n++] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
	out[n] = '\0';
}

static int fail(char *err, size_t errsize, const char *msg)
{
	snprintf(err, errsize, "%s", msg);
	return -1;
}

/* "options": {"key": "text" | integer | boolean, ...}, at most
 * IMPORT_OPTIONS_MAX members; values are checked against the format by
 * the route. */
static int parse_options(json_t *o, struct import_body *b, char *err, size_t errsize)
{
	const char *key;
	json_t *v;

	if (o == NULL || json_is_null(o))
		return 0;
	if (!json_is_object(o))
		return fail(err, errsize, "options must be a JSON object of option: value");
	if (json_object_size(o) > IMPORT_OPTIONS_MAX)
		return fail(err, errsize, "too many options");
	json_object_foreach(o, key, v)
	{
		if (!json_is_string(v) && !json_is_integer(v) && !json_is_boolean(v)) {
			char q[80];

			quote(q, sizeof(q), key);
			snprintf(err, errsize,
				 "option '%s' must be a string, an integer or a boolean", q);
			return -1;
		}
	}
	b->options = o;
	return 0;
}

static int parse_headers(json_t *h, struct import_body *b, char *err, size_t errsize)
{
	const char *key;
	json_t *v;
	size_t i;

	if (h == NULL || json_is_null(h))
		return 0;
	if (json_is_object(h)) {
		json_object_foreach(h, key, v)
		{
			if (!json_is_string(v) || b->nheaders >= IMPORT_HEADERS_MAX || !*key ||
			    strpbrk(key, "\r\n:") || strpbrk(json_string_value(v), "\r\n"))
				goto bad;
			if (asprintf(&b->hdr_store[b->nheaders], "%s: %s", key,
				     json_string_value(v)) < 0) {
				b->hdr_store[b->nheaders] = NULL;
				return fail(err, errsize, "out of memory");
			}
			b->headers[b->nheaders] = b->hdr_store[b->nheaders];
			b->nheaders++;
		}
		return 0;
	}
	if (json_is_array(h)) {
		json_array_foreach(h, i, v)
		{
			if (!json_is_string(v) || b->nheaders >= IMPORT_HEADERS_MAX ||
			    !strchr(json_string_value(v), ':') ||
			    strpbrk(json_string_value(v), "\r\n"))
				goto bad;
			b->headers[b->nheaders++] = json_string_value(v);
		}
		return 0;
	}
bad:
	snprintf(err, errsize,
		 "headers must be an object of strings or an array of \"Name: value\" strings "
		 "(at most %d, no line breaks)",
		 IMPORT_HEADERS_MAX);
	return -1;
}

int import_body_parse(const char *buf, size_t n, struct import_body *b, char *err, size_t errsize)
{
	json_error_t jerr;
	const char *key;
	json_t *v;
	bool bad = false;
	size_t i;

	memset(b, 0, sizeof(*b));
	b->root = json_loadb(buf, n, JSON_REJECT_DUPLICATES, &jerr);
	if (b->root == NULL || !json_is_object(b->root)) {
		char q[80];

		if (b->root == NULL)
			quote(q, sizeof(q), jerr.text);
		snprintf(err, errsize, "request body is not a JSON object: %s (line %d)",
			 b->root ? "another JSON type" : q, b->root ? 1 : jerr.line);
		return -1;
	}
	json_object_foreach(b->root, key, v)
	{
		for (i = 0; known[i] != NULL; i++)
			if (strcmp(key, known[i]) == 0)
				break;
		if (known[i] == NULL) {
			char q[80];

			quote(q, sizeof(q), key);
			snprintf(err, errsize, "unknown member '%s' in the JSON body", q);
			return -1;
		}
	}
	b->url = member(b->root, "url", &bad);
	b->src = member(b->root, "src", &bad);
	b->dst = member(b->root, "dst", &bad);
	b->prealloc = member(b->root, "prealloc", &bad);
	b->overwrite = member(b->root, "overwrite", &bad);
	b->name = member(b->root, "name", &bad);
	b->sha256 = member(b->root, "sha256", &bad);
	b->digest = member(b->root, "digest", &bad);
	b->level = member(b->root, "level", &bad);
	b->compress = member(b->root, "compress", &bad);
	if (bad)
		return fail(err, errsize,
			    "JSON members must be strings (prealloc, overwrite, digest and "
			    "compress may be booleans)");
	if (b->url == NULL || *b->url == '\0')
		return fail(err, errsize, "the JSON body needs a url");
	if (parse_options(json_object_get(b->root, "options"), b, err, errsize) != 0)
		return -1;
	return parse_headers(json_object_get(b->root, "headers"), b, err, errsize);
}

void import_body_free(struct import_body *b)
{
	size_t i;

	for (i = 0; i < IMPORT_HEADERS_MAX; i++)
		free(b->hdr_store[i]);
	json_decref(b->root);
	memset(b, 0, sizeof(*b));
}
