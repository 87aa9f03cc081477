/* upload.c - POST (or PUT) /upload: the request body converted into outdir.
 *
 * The body is application/octet-stream (or untyped), read as it arrives
 * with or without Content-Length, or multipart/form-data whose field
 * "file" is the image (multipart.c parses it as a stream). Every parameter
 * and the output name are checked (409 when it is taken) before the first
 * byte of the body is read.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "server.h"

void h_upload(struct srv_request *rq)
{
	static const char *const known[] = {"src",       "dst",      "prealloc", "name",
					    "overwrite", "sha256",   "digest",   "level",
					    "o",         "compress", NULL};
	const char *ctype = FCGX_GetParam("CONTENT_TYPE", rq->fcgx->envp);
	struct srv_params p = {0};
	struct conv_params cp = {0};
	struct body_ctx bc;
	struct source src = {0};
	struct dsc_error err = {0};
	dsc_stream *body = NULL, *part = NULL;
	const char *name;
	char ctq[120], dflt_name[32];
	bool multipart = false;

	if (!parse_query(rq, &p))
		return;
	if (!query_conv_params(rq, &p, known, &cp))
		goto out;
	snprintf(dflt_name, sizeof(dflt_name), "upload%s", format_ext(cp.dst));
	name = cp.name ? cp.name : dflt_name;
	if (ctype == NULL || *ctype == '\0' || media_type_is(ctype, "application/octet-stream")) {
		multipart = false;
	} else if (media_type_is(ctype, "multipart/form-data")) {
		multipart = true;
	} else {
		reply_err(rq, DSC_ERR_UNSUPPORTED,
			  "content type '%s' is not supported (use "
			  "application/octet-stream or multipart/form-data "
			  "with a 'file' field)",
			  utf8_clip(ctq, sizeof(ctq), ctype, 100));
		goto out;
	}
	if (!check_free(rq, &cp, name))
		goto out;
	if (fcgx_body_stream(rq, &bc, &body, &err) != DSC_OK) {
		reply_dsc_error(rq, &err, false);
		goto out;
	}
	if (bc.length != UINT64_MAX && srv_cfg.max_capacity && !multipart &&
	    cp.src == DSC_FORMAT_RAW && bc.length > srv_cfg.max_capacity) {
		reply_err(rq, DSC_ERR_LIMIT,
			  "request body: a raw image of %llu bytes exceeds "
			  "the limit of %llu bytes",
			  (unsigned long long)bc.length, (unsigned long long)srv_cfg.max_capacity);
		goto out;
	}
	src.raw_in = body;
	src.body = &bc;
	src.in = body;
	if (multipart) {
		if (multipart_stream(body, ctype, "file", &src.mp, &part, &err) != DSC_OK) {
			if (bc.failed && !rq->client_gone)
				err.code = DSC_ERR_INVAL;
			reply_dsc_error(rq, &err, rq->client_gone);
			goto out;
		}
		src.part = part;
		src.in = part;
	}
	convert_to_outdir(rq, &src, &cp, name, false);
out:
	dsc_optlist_free(cp.options);
	dsc_stream_close(part);
	dsc_stream_close(body);
	params_free(&p);
}
