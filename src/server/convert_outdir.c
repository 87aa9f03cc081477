/* convert_outdir.c - a conversion into the output directory, and its reply.
 *
 * Uploads and imports end here: a source stream (request body, multipart
 * field or URL) is converted into an atomic output (output.c) whose commit
 * hook, source_prefinish(), first reads the source to its very end and
 * checks the expected SHA-256, so that a transfer that broke off after the
 * image's last byte, or the wrong bytes, never appear as a file. The
 * worker's scoreboard slot names the temporary file meanwhile, so the
 * master can remove it if the worker is killed. The reply carries the
 * source's SHA-256 when asked (sha256= or digest=true).
 */
#include "config.h"

#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <jansson.h>

#include "server.h"

/* 409 before reading anything when the output is taken (the library
 * checks again when it commits, so a race still cannot clobber it). */
bool check_free(struct srv_request *rq, const struct conv_params *cp, const char *name)
{
	char path[PATH_MAX];
	struct stat st;

	if (cp->overwrite)
		return true;
	snprintf(path, sizeof(path), "%s/%s", srv_cfg.outdir, name);
	if (lstat(path, &st) == 0) {
		reply_err(rq, DSC_ERR_EXISTS, "%s already exists (overwrite=true replaces it)",
			  name);
		return false;
	}
	return true;
}

static dsc_err source_prefinish(void *user, struct dsc_error *e)
{
	struct source *s = user;
	uint64_t skipped;
	dsc_err rc;

	/* Read the source to its very end: a body or download that broke off
	 * after the image's last marker is still a failed transfer, and the
	 * digest covers every byte. */
	rc = dsc_stream_skip(s->in, UINT64_MAX, &skipped, e);
	if (rc == DSC_OK && s->mp != NULL)
		rc = multipart_finish(s->mp, s->part, e);
	if (rc != DSC_OK)
		return rc;
	/* An empty body or download converts into an empty raw file: refuse
	 * it rather than store a "disk" of zero bytes. */
	if (dsc_stream_bytes(s->in) == 0)
		return dsc_error_set(e, DSC_ERR_FORMAT, 0, "%s: empty, not a disk image",
				     dsc_stream_name(s->in));
	if (s->hashed != NULL) {
		rc = dsc_stream_sha256_hex(s->hashed, s->hex, e);
		if (rc != DSC_OK)
			return rc;
		if (s->expect != NULL && strcasecmp(s->hex, s->expect) != 0)
			return dsc_error_set(e, DSC_ERR_INTEGRITY, 0,
					     "%s: SHA-256 mismatch: expected "
					     "%s, got %s",
					     dsc_stream_name(s->raw_in), s->expect, s->hex);
	}
	return DSC_OK;
}

static void worker_set_temp(const char *path)
{
	struct srv_slot *slot = &srv_board->slots[srv_my_slot];

	snprintf(slot->temp, sizeof(slot->temp), "%s", path ? path : "");
}

/* Stop waiting on a URL when the web server dropped the connection (its
 * client went away): nothing else is sent on it once the request is in. */
bool connection_dropped(void *user)
{
	struct srv_request *rq = user;
	struct pollfd pfd = {.fd = rq->fcgx->ipcFd, .events = POLLIN | POLLRDHUP};

	if (poll(&pfd, 1, 0) == 1 && (pfd.revents & (POLLRDHUP | POLLHUP | POLLERR))) {
		rq->client_gone = true;
		return true;
	}
	return false;
}

static bool progress_cb(void *user, const struct dsc_progress *p)
{
	(void)p;
	return !connection_dropped(user);
}

/* Convert src->in into outdir/name and reply. Owns nothing of src. */
void convert_to_outdir(struct srv_request *rq, struct source *src, const struct conv_params *cp,
		       const char *name, bool watch_client)
{
	struct dsc_convert_opts opts = {0};
	struct dsc_convert_stats stats = {0};
	struct dsc_error err = {0};
	struct srv_output *o = NULL;
	dsc_stream *out = NULL;
	char path[PATH_MAX];
	dsc_err rc;

	if (cp->digest) {
		rc = dsc_stream_open_sha256(src->in, 0, &src->hashed, &err);
		if (rc != DSC_OK)
			goto fail;
		src->expect = cp->sha256;
		src->in = src->hashed;
	}
	rc = output_create(srv_cfg.outdir, name, cp->overwrite, source_prefinish, src, &o, &out,
			   &err);
	if (rc != DSC_OK)
		goto fail;
	worker_set_temp(output_temp_path(o));
	opts.src_fmt = cp->src;
	opts.dst_fmt = cp->dst;
	opts.prealloc = cp->prealloc;
	opts.compress = cp->compress;
	opts.level = cp->level;
	opts.options = cp->options;
	opts.threads = srv_cfg.codec_threads;
	opts.extent_name = name;
	opts.max_capacity = srv_cfg.max_capacity;
	if (watch_client) {
		opts.progress = progress_cb;
		opts.progress_user = rq;
	}
	rc = dsc_convert(src->in, out, &opts, &stats, &err);
	dsc_stream_close(out);
	worker_set_temp(NULL);
	if (rc != DSC_OK)
		goto fail;
	snprintf(path, sizeof(path), "%s/%s", srv_cfg.outdir, name);
	{
		json_t *j = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:f}", "output", path, "name",
				      name, "format", dsc_format_name(cp->dst), "writtenBytes",
				      (json_int_t)stats.bytes_written, "capacityBytes",
				      (json_int_t)stats.capacity, "readBytes",
				      (json_int_t)stats.bytes_read, "elapsedSeconds",
				      srv_json_seconds(stats.seconds));
		if (j != NULL && src->hashed != NULL)
			json_object_set_new(j, "sha256", json_string(src->hex));
		if (j != NULL && stats.src_format)
			json_object_set_new(j, "sourceFormat",
					    json_string(dsc_format_name(stats.src_format)));
		if (j != NULL && stats.src_compression)
			json_object_set_new(j, "sourceCompression",
					    json_string(dsc_format_name(stats.src_compression)));
		if (j != NULL && stats.src_archive)
			json_object_set_new(j, "sourceArchive",
					    json_string(dsc_format_name(stats.src_archive)));
		reply_json(rq, 200, j);
	}
	if (src->hashed)
		dsc_stream_close(src->hashed);
	src->hashed = NULL;
	output_free(o);
	return;
fail:
	worker_set_temp(NULL);
	output_free(o);
	if (src->hashed)
		dsc_stream_close(src->hashed);
	src->hashed = NULL;
	/* A body shorter than its Content-Length is the client's mistake. */
	if (src->body != NULL && src->body->failed && !rq->client_gone)
		err.code = DSC_ERR_INVAL;
	if (err.code == DSC_OK)
		dsc_error_set(&err, rc, 0, "%s", dsc_strerror(rc));
	reply_dsc_error(rq, &err, rq->client_gone);
}
