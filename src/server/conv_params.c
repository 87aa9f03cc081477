/* conv_params.c - the parameters of a conversion request, checked.
 *
 * Uploads, imports and exports take the same parameters (src, dst, level,
 * o=, prealloc, overwrite, name, sha256, digest) from the query string or,
 * for POST /import, from JSON strings. Each getter either fills its result
 * or sends the 400 (or 415 for a format) that names the parameter and
 * returns false: a handler stops at the first false, before it has read
 * any of the body or touched the disk. The format names, readable and
 * writable formats and file extensions all come from the library's format
 * table, so a format added there is accepted here without an edit.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "server.h"

bool check_known(struct srv_request *rq, const struct srv_params *p, const char *const *known)
{
	int i, k;

	for (i = 0; i < p->n; i++) {
		for (k = 0; known[k] != NULL; k++)
			if (strcmp(p->names[i], known[k]) == 0)
				break;
		if (known[k] == NULL) {
			char list[256] = "";

			for (k = 0; known[k] != NULL; k++) {
				strncat(list, k ? ", " : "", sizeof(list) - strlen(list) - 1);
				strncat(list, known[k], sizeof(list) - strlen(list) - 1);
			}
			char q[80];

			reply_err(rq, DSC_ERR_INVAL, "unknown parameter '%s' (known: %s)",
				  utf8_clip(q, sizeof(q), p->names[i], 64), list);
			return false;
		}
	}
	return true;
}

/* src= or dst=: a format of the table that reads (src) or writes (dst);
 * empty (and "auto" for src) means the default. */
bool get_format(struct srv_request *rq, const char *what, const char *v, dsc_format dflt,
		dsc_format *out)
{
	unsigned need = dflt == DSC_FORMAT_UNKNOWN ? DSC_FMT_READ : DSC_FMT_WRITE;
	char q[80], list[256];

	if (v == NULL || *v == '\0' || (need == DSC_FMT_READ && strcmp(v, "auto") == 0)) {
		*out = dflt;
		return true;
	}
	*out = dsc_format_from_name(v);
	if (*out != DSC_FORMAT_UNKNOWN && (dsc_format_get(*out)->flags & need))
		return true;
	dsc_format_list(need, list, sizeof(list));
	if (*out == DSC_FORMAT_UNKNOWN)
		reply_err(rq, DSC_ERR_UNSUPPORTED, "%s format '%s' is not supported (%s%s)", what,
			  utf8_clip(q, sizeof(q), v, 64), list,
			  need == DSC_FMT_READ ? ", auto" : "");
	else
		reply_err(rq, DSC_ERR_UNSUPPORTED,
			  "%s format '%s': %s %s is not supported%s (%s%s)", what,
			  dsc_format_name(*out), need == DSC_FMT_READ ? "reading" : "writing",
			  dsc_format_name(*out),
			  dsc_format_get(*out)->flags & (DSC_FMT_READ | DSC_FMT_WRITE) ? "" :
											 " yet",
			  list, need == DSC_FMT_READ ? ", auto" : "");
	return false;
}

/* o=key=value,... (or the "options" object) for format dst; false after a
 * 400 reply. *out stays NULL when there are none. */
bool get_options(struct srv_request *rq, const char *text, const json_t *obj, dsc_format dst,
		 dsc_optlist **out)
{
	struct dsc_error err = {0};
	const char *key;
	json_t *v;
	char num[32];

	*out = NULL;
	if ((text == NULL || *text == '\0') && obj == NULL)
		return true;
	if (dsc_optlist_new(out, &err) != DSC_OK)
		goto fail;
	if (text != NULL && *text != '\0' && dsc_optlist_parse(*out, text, &err) != DSC_OK)
		goto fail;
	json_object_foreach((json_t *)obj, key, v)
	{
		const char *val = num;

		if (json_is_string(v))
			val = json_string_value(v);
		else if (json_is_boolean(v))
			val = json_is_true(v) ? "on" : "off";
		else
			snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		if (dsc_optlist_set(*out, key, val, &err) != DSC_OK)
			goto fail;
	}
	if (dsc_format_check_options(dst, *out, &err) == DSC_OK)
		return true;
fail:
	dsc_optlist_free(*out);
	*out = NULL;
	{
		char q[300];

		reply_err(rq, DSC_ERR_INVAL, "%s", utf8_clip(q, sizeof(q), err.message, 280));
	}
	return false;
}

static bool get_bool(struct srv_request *rq, const char *what, const char *v, bool *out)
{
	*out = false;
	if (v == NULL)
		return true;
	if (!parse_bool(v, out)) {
		char q[80];

		reply_err(rq, DSC_ERR_INVAL, "%s must be true or false, not '%s'", what,
			  utf8_clip(q, sizeof(q), v, 64));
		return false;
	}
	return true;
}

/* level=fast|default|best|1-12, as dsc-convert's -level. */
bool get_level(struct srv_request *rq, const char *v, int *out)
{
	struct dsc_error err = {0};

	*out = DSC_LEVEL_DEFAULT;
	if (v == NULL || *v == '\0') /* empty: the default, as for every parameter */
		return true;
	if (dsc_level_parse(v, out, &err) == DSC_OK)
		return true;
	reply_dsc_error(rq, &err, false);
	return false;
}

/* compress=: only for a format whose writer compresses on request. */
bool get_compress(struct srv_request *rq, const char *v, dsc_format dst, bool *out)
{
	if (!get_bool(rq, "compress", v, out))
		return false;
	if (*out && !(dsc_format_get(dst)->flags & DSC_FMT_WRITE_COMPRESSED)) {
		reply_err(rq, DSC_ERR_INVAL, "compress: %s output cannot be compressed",
			  dsc_format_name(dst));
		return false;
	}
	return true;
}

/* Fill cp from string values (query parameters or JSON strings). */
bool get_conv_params(struct srv_request *rq, const char *src, const char *dst, const char *prealloc,
		     const char *overwrite, const char *name, const char *sha256,
		     const char *digest, const char *level, const char *compress,
		     const char *options, const json_t *options_obj, struct conv_params *cp)
{
	memset(cp, 0, sizeof(*cp));
	if (!get_level(rq, level, &cp->level))
		return false;
	if (!get_format(rq, "src", src, DSC_FORMAT_UNKNOWN, &cp->src) ||
	    !get_format(rq, "dst", dst, DSC_FORMAT_RAW, &cp->dst) ||
	    !get_options(rq, options, options_obj, cp->dst, &cp->options) ||
	    !get_bool(rq, "prealloc", prealloc, &cp->prealloc) ||
	    !get_bool(rq, "overwrite", overwrite, &cp->overwrite) ||
	    !get_bool(rq, "digest", digest, &cp->digest) ||
	    !get_compress(rq, compress, cp->dst, &cp->compress))
		return false;
	if (name != NULL && !name_is_valid(name)) {
		reply_err(rq, DSC_ERR_INVAL,
			  "name must be a plain file name of 1-%d characters "
			  "from [A-Za-z0-9._-], not starting with '.'",
			  SRV_NAME_MAX);
		return false;
	}
	cp->name = name;
	if (sha256 != NULL && !dsc_sha256_hex_valid(sha256)) {
		reply_err(rq, DSC_ERR_INVAL, "sha256 must be 64 hexadecimal digits");
		return false;
	}
	cp->sha256 = sha256;
	/* Verifying a digest computes it: the reply carries it too. */
	if (sha256 != NULL)
		cp->digest = true;
	return true;
}

/* Parse the query string; false after replying 400. */
bool parse_query(struct srv_request *rq, struct srv_params *p)
{
	if (params_parse(p, rq->query))
		return true;
	reply_err(rq, DSC_ERR_INVAL,
		  "malformed query string (bad %%-escape, NUL, repeated or too many parameters)");
	return false;
}

/* The conversion parameters of /upload and GET /import from the query;
 * false after a reply. */
bool query_conv_params(struct srv_request *rq, const struct srv_params *p, const char *const *known,
		       struct conv_params *cp)
{
	return check_known(rq, p, known) &&
	       get_conv_params(rq, params_get(p, "src"), params_get(p, "dst"),
			       params_get(p, "prealloc"), params_get(p, "overwrite"),
			       params_get(p, "name"), params_get(p, "sha256"),
			       params_get(p, "digest"), params_get(p, "level"),
			       params_get(p, "compress"), params_get(p, "o"), NULL, cp);
}

bool media_type_is(const char *ctype, const char *want)
{
	size_t n = strlen(want);

	while (*ctype == ' ')
		ctype++;
	return strncasecmp(ctype, want, n) == 0 &&
	       (ctype[n] == '\0' || ctype[n] == ';' || ctype[n] == ' ');
}

/* The extension an output of format f gets: the table's first. */
const char *format_ext(dsc_format f)
{
	const struct dsc_format_info *i = dsc_format_get(f);

	return i && i->extensions && i->extensions[0] ? i->extensions[0] : ".img";
}
