/* info.c - GET /info?path= and POST /info: what an image is, as JSON.
 *
 * The reply is `dsc-img info --output=json --header-only`'s object
 * (info_json.c): only the image's headers and tables are read, never its
 * data, and nothing is written. GET names a file under the export roots
 * (confined and opened as /export opens it); POST sends the image as the
 * request body (application/octet-stream or multipart/form-data with a
 * "file" field), of which only what the header needs is read: the reply
 * goes out before the rest of the body, which the web server discards.
 * A backing file the image names is reported, never opened.
 */
#include "config.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "info_json.h"
#include "server.h"

/* Open a reader on `in` (inspecting) and reply with its facts. */
static void info_reply(struct srv_request *rq, dsc_stream *in, dsc_format src, const char *name,
		       int64_t actual, bool client_side)
{
	struct dsc_reader_opts ro = {.inspect = true};
	struct dsc_error err = {0};
	dsc_reader *r = NULL;
	json_t *j;

	if (dsc_reader_open_opts(in, src, &ro, &r, &err) != DSC_OK) {
		reply_dsc_error(rq, &err, client_side && rq->client_gone);
		return;
	}
	j = info_json(r, name, actual, NULL);
	dsc_reader_close(r);
	if (!j) {
		reply_err(rq, DSC_ERR_NOMEM, "out of memory");
		return;
	}
	reply_json(rq, 200, j);
}

void h_info_get(struct srv_request *rq)
{
	static const char *const known[] = {"path", "src", NULL};
	struct srv_params p = {0};
	struct dsc_error err = {0};
	dsc_stream *in = NULL;
	dsc_format src;
	const char *path;
	char real[PATH_MAX];
	int fd = -1, dirfd = -1;
	int64_t actual = -1;
	struct stat st;

	if (!parse_query(rq, &p))
		return;
	if (!check_known(rq, &p, known) ||
	    !get_format(rq, "src", params_get(&p, "src"), DSC_FORMAT_UNKNOWN, &src))
		goto out;
	path = params_get(&p, "path");
	if (path == NULL || *path == '\0') {
		reply_err(rq, DSC_ERR_INVAL, "/info needs a path parameter (or POST the image)");
		goto out;
	}
	if (export_open(path, &fd, real, sizeof(real), &err) != DSC_OK ||
	    export_open_dir(fd, real, path, &dirfd, &err) != DSC_OK) {
		reply_dsc_error(rq, &err, false);
		goto out;
	}
	if (fstat(fd, &st) == 0)
		actual = (int64_t)st.st_blocks * 512;
	if (dsc_stream_open_fd(fd, path, DSC_FD_OWN, &in, &err) != DSC_OK) {
		reply_dsc_error(rq, &err, false);
		goto out;
	}
	fd = -1; /* the stream owns it */
	if (dsc_stream_set_extent_dirfd(in, dirfd, &err) != DSC_OK) {
		reply_dsc_error(rq, &err, false);
		goto out;
	}
	info_reply(rq, in, src, path, actual, false);
out:
	dsc_stream_close(in);
	if (fd >= 0)
		close(fd);
	if (dirfd >= 0)
		close(dirfd);
	params_free(&p);
}

void h_info_post(struct srv_request *rq)
{
	static const char *const known[] = {"src", NULL};
	const char *ctype = FCGX_GetParam("CONTENT_TYPE", rq->fcgx->envp);
	struct srv_params p = {0};
	struct dsc_error err = {0};
	struct body_ctx bc;
	struct srv_multipart *mp = NULL; /* closed with the part */
	dsc_stream *body = NULL, *part = NULL;
	dsc_format src;
	char ctq[120];

	if (!parse_query(rq, &p))
		return;
	if (!check_known(rq, &p, known) ||
	    !get_format(rq, "src", params_get(&p, "src"), DSC_FORMAT_UNKNOWN, &src))
		goto out;
	if (ctype != NULL && *ctype != '\0' && !media_type_is(ctype, "application/octet-stream") &&
	    !media_type_is(ctype, "multipart/form-data")) {
		reply_err(rq, DSC_ERR_UNSUPPORTED,
			  "content type '%s' is not supported (use application/octet-stream or "
			  "multipart/form-data with a 'file' field)",
			  utf8_clip(ctq, sizeof(ctq), ctype, 100));
		goto out;
	}
	if (fcgx_body_stream(rq, &bc, &body, &err) != DSC_OK) {
		reply_dsc_error(rq, &err, false);
		goto out;
	}
	if (ctype != NULL && media_type_is(ctype, "multipart/form-data")) {
		if (multipart_stream(body, ctype, "file", &mp, &part, &err) != DSC_OK) {
			if (bc.failed && !rq->client_gone)
				err.code = DSC_ERR_INVAL;
			reply_dsc_error(rq, &err, rq->client_gone);
			goto out;
		}
	}
	info_reply(rq, part ? part : body, src, "request body", -1, true);
out:
	dsc_stream_close(part);
	dsc_stream_close(body);
	params_free(&p);
}
