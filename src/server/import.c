/* import.c - GET and POST /import: a URL converted into outdir.
 *
 * GET takes the URL and the conversion parameters in its query; POST in a
 * JSON body (import_body.c, at most SRV_JSON_BODY_MAX bytes), which can
 * also carry request headers for the source and the output format's
 * options. The download is a libdsc URL stream under the server's address
 * policy, retries and idle timeout; it is cancelled when the web server
 * drops the connection (the client gave up waiting).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server.h"

/* The URL's last path segment with the destination's extension, when that
 * is a valid name; else "import" + extension. */
static void default_import_name(const char *url, dsc_format dst, char *out, size_t outsz)
{
	const char *p = strstr(url, "://"), *seg, *end, *dot;
	char base[SRV_NAME_MAX + 1];
	size_t n;

	p = p ? p + 3 : url;
	end = p + strcspn(p, "?#");
	seg = end;
	while (seg > p && seg[-1] != '/')
		seg--;
	if (seg == p) /* only a host */
		seg = end;
	n = (size_t)(end - seg);
	dot = memrchr(seg, '.', n);
	if (dot != NULL && dot > seg)
		n = (size_t)(dot - seg);
	if (n == 0 || n >= sizeof(base) - 6) {
		snprintf(out, outsz, "import%s", format_ext(dst));
		return;
	}
	memcpy(base, seg, n);
	base[n] = '\0';
	snprintf(out, outsz, "%s%s", base, format_ext(dst));
	if (!name_is_valid(out))
		snprintf(out, outsz, "import%s", format_ext(dst));
}

static void do_import(struct srv_request *rq, const char *url, const struct conv_params *cp,
		      const char *const *headers)
{
	struct dsc_url_opts uo;
	struct dsc_error err = {0};
	struct source src = {0};
	dsc_stream *in = NULL;
	char name[SRV_NAME_MAX + 8];

	if (cp->name)
		snprintf(name, sizeof(name), "%s", cp->name);
	else
		default_import_name(url, cp->dst, name, sizeof(name));
	if (!check_free(rq, cp, name))
		return;
	dsc_url_opts_init(&uo);
	uo.headers = headers;
	uo.policy = srv_policy;
	uo.retries = srv_cfg.import_retries;
	uo.idle_timeout = srv_cfg.import_idle_timeout;
	uo.cancel = connection_dropped;
	uo.cancel_user = rq;
	/* sha256= proves the bytes (source_prefinish), so a source without
	 * ETag or Last-Modified may be resumed; digest=true proves nothing. */
	uo.resume_without_validator = cp->sha256 != NULL;
	if (dsc_stream_open_url(url, &uo, &in, &err) != DSC_OK) {
		reply_dsc_error(rq, &err, rq->client_gone);
		return;
	}
	src.raw_in = in;
	src.in = in;
	convert_to_outdir(rq, &src, cp, name, true);
	dsc_stream_close(in);
}

void h_import_get(struct srv_request *rq)
{
	static const char *const known[] = {"url",   "src",       "dst",      "prealloc",
					    "name",  "overwrite", "sha256",   "digest",
					    "level", "o",         "compress", NULL};
	struct srv_params p = {0};
	struct conv_params cp = {0};
	const char *url;

	if (!parse_query(rq, &p))
		return;
	if (!query_conv_params(rq, &p, known, &cp))
		goto out;
	url = params_get(&p, "url");
	if (url == NULL || *url == '\0') {
		reply_err(rq, DSC_ERR_INVAL, "/import needs a url parameter");
		goto out;
	}
	do_import(rq, url, &cp, NULL);
out:
	dsc_optlist_free(cp.options);
	params_free(&p);
}

void h_import_post(struct srv_request *rq)
{
	const char *ctype = FCGX_GetParam("CONTENT_TYPE", rq->fcgx->envp);
	struct dsc_error err = {0};
	struct import_body ib = {0};
	struct body_ctx bc;
	struct conv_params cp = {0};
	dsc_stream *body = NULL;
	char *buf = NULL, msg[400];
	char ctq[120];
	size_t n = 0;

	if (rq->query != NULL && *rq->query != '\0') {
		reply_err(rq, DSC_ERR_INVAL,
			  "POST /import takes its parameters in a JSON body, "
			  "not the query string");
		return;
	}
	if (ctype != NULL && *ctype != '\0' && !media_type_is(ctype, "application/json")) {
		reply_err(rq, DSC_ERR_UNSUPPORTED,
			  "content type '%s' is not supported (use "
			  "application/json)",
			  utf8_clip(ctq, sizeof(ctq), ctype, 100));
		return;
	}
	if (fcgx_body_stream(rq, &bc, &body, &err) != DSC_OK) {
		reply_dsc_error(rq, &err, false);
		return;
	}
	if (bc.length != UINT64_MAX && bc.length > SRV_JSON_BODY_MAX) {
		reply_err(rq, DSC_ERR_LIMIT, "JSON body of %llu bytes exceeds %u bytes",
			  (unsigned long long)bc.length, SRV_JSON_BODY_MAX);
		goto out;
	}
	buf = malloc(SRV_JSON_BODY_MAX + 1);
	if (buf == NULL) {
		reply_err(rq, DSC_ERR_NOMEM, "out of memory");
		goto out;
	}
	if (dsc_read_full(body, buf, SRV_JSON_BODY_MAX + 1, &n, &err) != DSC_OK) {
		if (bc.failed && !rq->client_gone)
			err.code = DSC_ERR_INVAL;
		reply_dsc_error(rq, &err, rq->client_gone);
		goto out;
	}
	if (n > SRV_JSON_BODY_MAX) {
		reply_err(rq, DSC_ERR_LIMIT, "JSON body exceeds %u bytes", SRV_JSON_BODY_MAX);
		goto out;
	}
	if (import_body_parse(buf, n, &ib, msg, sizeof(msg)) != 0) {
		reply_err(rq, DSC_ERR_INVAL, "%s", msg);
		goto out;
	}
	if (!get_conv_params(rq, ib.src, ib.dst, ib.prealloc, ib.overwrite, ib.name, ib.sha256,
			     ib.digest, ib.level, ib.compress, NULL, ib.options, &cp))
		goto out;
	do_import(rq, ib.url, &cp, ib.nheaders ? ib.headers : NULL);
out:
	dsc_optlist_free(cp.options);
	import_body_free(&ib);
	free(buf);
	dsc_stream_close(body);
}
