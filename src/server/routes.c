/* routes.c - the route table and the handlers behind it.
 *
 * One table maps (method, path) to a handler; a known path with another
 * method is 405 with Allow built from the same table. Handlers validate
 * every parameter before touching the body or the disk (unknown or
 * repeated parameters are 400, a taken output name is 409 before any byte
 * is read), then join a source stream to an output stream with
 * dsc_convert(). Uploads and imports write through output.c, whose commit
 * hook reads the source to its end (and checks an expected SHA-256) before
 * the file appears (the reply carries the source's SHA-256 when asked:
 * sha256= or digest=true); exports stream to the client with the headers held
 * back until the first byte, and abort the connection if they break off
 * after that.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "server.h"

struct conv_params {
	dsc_format src;
	dsc_format dst;
	bool prealloc;
	bool overwrite;
	const char *name;   /* NULL: the route's default */
	const char *sha256; /* expected SHA-256 of the source, or NULL */
	bool digest;        /* reply with the source's SHA-256 */
	int level;          /* VMDK compression level, 0: default */
	dsc_optlist *options; /* o= / "options": the dst format's options */
};

/* ---- parameters ------------------------------------------------------- */

static bool check_known(struct srv_request *rq, const struct srv_params *p,
			const char *const *known)
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

/* "raw, vmdk": the formats that can be read (or written), from the table. */
static const char *format_list(unsigned flag, char *buf, size_t size)
{
	const struct dsc_format_info *f;
	size_t i, n = 0;

	buf[0] = '\0';
	for (i = 0; (f = dsc_format_at(i)) != NULL && n < size; i++)
		if (f->flags & flag)
			n += (size_t)snprintf(buf + n, size - n, "%s%s", n ? ", " : "", f->name);
	return buf;
}

/* src= or dst=: a format of the table that reads (src) or writes (dst);
 * empty (and "auto" for src) means the default. */
static bool get_format(struct srv_request *rq, const char *what, const char *v, dsc_format dflt,
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
	format_list(need, list, sizeof(list));
	if (*out == DSC_FORMAT_UNKNOWN)
		reply_err(rq, DSC_ERR_UNSUPPORTED, "%s format '%s' is not supported (%s%s)", what,
			    utf8_clip(q, sizeof(q), v, 64), list,
			    need == DSC_FMT_READ ? ", auto" : "");
	else
		reply_err(rq, DSC_ERR_UNSUPPORTED, "%s format '%s': %s %s is not supported%s (%s%s)",
			    what, dsc_format_name(*out), need == DSC_FMT_READ ? "reading" : "writing",
			    dsc_format_name(*out),
			    dsc_format_get(*out)->flags & (DSC_FMT_READ | DSC_FMT_WRITE) ? "" : " yet",
			    list, need == DSC_FMT_READ ? ", auto" : "");
	return false;
}

/* o=key=value,... (or the "options" object) for format dst; false after a
 * 400 reply. *out stays NULL when there are none. */
static bool get_options(struct srv_request *rq, const char *text, const json_t *obj, dsc_format dst,
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
static bool get_level(struct srv_request *rq, const char *v, int *out)
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

/* Fill cp from string values (query parameters or JSON strings). */
static bool get_conv_params(struct srv_request *rq, const char *src, const char *dst,
			    const char *prealloc, const char *overwrite, const char *name,
			    const char *sha256, const char *digest, const char *level,
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
	    !get_bool(rq, "digest", digest, &cp->digest))
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
static bool parse_query(struct srv_request *rq, struct srv_params *p)
{
	if (params_parse(p, rq->query))
		return true;
	reply_err(rq, DSC_ERR_INVAL,
		    "malformed query string (bad %%-escape, NUL, repeated or too many parameters)");
	return false;
}

/* The conversion parameters of /upload and GET /import from the query;
 * false after a reply. */
static bool query_conv_params(struct srv_request *rq, const struct srv_params *p,
			      const char *const *known, struct conv_params *cp)
{
	return check_known(rq, p, known) &&
	       get_conv_params(rq, params_get(p, "src"), params_get(p, "dst"),
			       params_get(p, "prealloc"), params_get(p, "overwrite"),
			       params_get(p, "name"), params_get(p, "sha256"), params_get(p, "digest"),
			       params_get(p, "level"), params_get(p, "o"), NULL, cp);
}

/* 409 before reading anything when the output is taken (the library
 * checks again when it commits, so a race still cannot clobber it). */
static bool check_free(struct srv_request *rq, const struct conv_params *cp, const char *name)
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

/* The extension an output of format f gets: the table's first. */
static const char *format_ext(dsc_format f)
{
	const struct dsc_format_info *i = dsc_format_get(f);

	return i && i->extensions && i->extensions[0] ? i->extensions[0] : ".img";
}

/* An extension any format of the table uses (".vmdk", ".img", ".qcow2"...). */
static bool known_ext(const char *dot)
{
	const struct dsc_format_info *f;
	size_t i, k;

	for (i = 0; (f = dsc_format_at(i)) != NULL; i++)
		for (k = 0; f->extensions && f->extensions[k]; k++)
			if (strcasecmp(dot, f->extensions[k]) == 0)
				return true;
	return false;
}

/* ---- converting into outdir ------------------------------------------- */

/* What the commit hook must check before the output appears. */
struct source {
	dsc_stream *raw_in; /* request body or URL stream */
	struct body_ctx *body;
	struct srv_multipart *mp;
	dsc_stream *part;   /* multipart field, or NULL */
	dsc_stream *hashed; /* SHA-256 read wrapper, or NULL */
	const char *expect; /* expected SHA-256, or NULL */
	dsc_stream *in;     /* what the converter reads */
	char hex[DSC_SHA256_HEX_LEN + 1]; /* the source's digest, once read */
};

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
			return dsc_error_set(e, DSC_ERR_FORMAT, 0,
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
static bool connection_dropped(void *user)
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
static void convert_to_outdir(struct srv_request *rq, struct source *src,
			      const struct conv_params *cp, const char *name, bool watch_client)
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
		json_t *j =
			json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:f}", "output", path, "name",
				  name, "format", dsc_format_name(cp->dst), "writtenBytes",
				  (json_int_t)stats.bytes_written, "capacityBytes",
				  (json_int_t)stats.capacity, "readBytes",
				  (json_int_t)stats.bytes_read, "elapsedSeconds", stats.seconds);
		if (j != NULL && src->hashed != NULL)
			json_object_set_new(j, "sha256", json_string(src->hex));
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

/* ---- /upload ---------------------------------------------------------- */

static bool media_type_is(const char *ctype, const char *want)
{
	size_t n = strlen(want);

	while (*ctype == ' ')
		ctype++;
	return strncasecmp(ctype, want, n) == 0 &&
	       (ctype[n] == '\0' || ctype[n] == ';' || ctype[n] == ' ');
}

static void h_upload(struct srv_request *rq)
{
	static const char *const known[] = {"src",    "dst",    "prealloc", "name", "overwrite",
					    "sha256", "digest", "level",    "o",    NULL};
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
			    (unsigned long long)bc.length,
			    (unsigned long long)srv_cfg.max_capacity);
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

/* ---- /import ---------------------------------------------------------- */

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
	if (dsc_stream_open_url(url, &uo, &in, &err) != DSC_OK) {
		reply_dsc_error(rq, &err, rq->client_gone);
		return;
	}
	src.raw_in = in;
	src.in = in;
	convert_to_outdir(rq, &src, cp, name, true);
	dsc_stream_close(in);
}

static void h_import_get(struct srv_request *rq)
{
	static const char *const known[] = {"url",       "src",    "dst",    "prealloc", "name",
					    "overwrite", "sha256", "digest", "level",    "o",
					    NULL};
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

static void h_import_post(struct srv_request *rq)
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
			     ib.digest, ib.level, NULL, ib.options, &cp))
		goto out;
	do_import(rq, ib.url, &cp, ib.nheaders ? ib.headers : NULL);
out:
	dsc_optlist_free(cp.options);
	import_body_free(&ib);
	free(buf);
	dsc_stream_close(body);
}

/* ---- /export ---------------------------------------------------------- */

/* Is `real` (an absolute, resolved path) inside one of the roots? */
static bool inside_roots(const char *real)
{
	int i;

	for (i = 0; i < srv_cfg.n_export_roots; i++) {
		const char *root = srv_cfg.export_roots[i];
		size_t n = strlen(root);

		if (strcmp(root, "/") == 0)
			return true;
		if (strncmp(real, root, n) == 0 && (real[n] == '/' || real[n] == '\0'))
			return true;
	}
	return false;
}

/* Bytes of percent-encoding filename*= may take (RFC 8187 value without
 * the UTF-8'' prefix): a long non-ASCII name takes 9 bytes a character. */
#define CD_ENC_MAX 512
/* The longest Content-Disposition line content_disposition() writes. */
#define CD_LINE_MAX (80 + SRV_NAME_MAX + CD_ENC_MAX)

static bool attr_char(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       (c != '\0' && strchr("!#$&+-.^_`|~", c) != NULL);
}

/* Length of the UTF-8 sequence starting at s (1 for a stray byte). */
static size_t seq_len(const char *s)
{
	unsigned char c = (unsigned char)s[0];
	size_t n = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1, i;

	for (i = 1; i < n; i++)
		if (((unsigned char)s[i] & 0xc0) != 0x80)
			return 1;
	return n;
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
static void content_disposition(const char *fname, char *out, size_t outsz)
{
	char ascii[SRV_NAME_MAX + 1], enc[CD_ENC_MAX + 1];
	const char *dot = strrchr(fname, '.');
	size_t i, a = 0, k, len = strlen(fname), stem, ext_enc;

	for (i = 0; fname[i] != '\0' && a < sizeof(ascii) - 1;) {
		unsigned char c = (unsigned char)fname[i];

		ascii[a++] = (c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '%' ||
			      c == ';') ?
				     '_' :
				     (char)c;
		i += seq_len(fname + i);
	}
	ascii[a] = '\0';

	if (dot == NULL || dot == fname || len - (size_t)(dot - fname) > 16)
		dot = fname + len;
	stem = (size_t)(dot - fname);
	ext_enc = enc_len(dot, len - stem); /* at most 48 */
	/* The longest stem prefix, in whole characters, that fits. */
	for (i = 0, k = 0; i < stem;) {
		size_t n = seq_len(fname + i);

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

/* The format whose extensions include `dot`, else DSC_FORMAT_UNKNOWN. */
static dsc_format dsc_format_from_ext(const char *dot)
{
	const struct dsc_format_info *f;
	size_t i, k;

	for (i = 0; (f = dsc_format_at(i)) != NULL; i++)
		for (k = 0; f->extensions && f->extensions[k]; k++)
			if (strcasecmp(dot, f->extensions[k]) == 0)
				return (dsc_format)(i + 1);
	return DSC_FORMAT_UNKNOWN;
}

/* The download name: the source's base name with the destination's
 * extension (an extension of any known format is replaced). */
static void export_name(const char *real, dsc_format dst, char *out, size_t outsz)
{
	const char *base = strrchr(real, '/');
	const char *dot;
	size_t n;

	base = base ? base + 1 : real;
	n = strlen(base);
	dot = strrchr(base, '.');
	if (dot != NULL && dot > base && known_ext(dot)) {
		/* A name that already carries an extension of the output's
		 * format is kept as it is. */
		if (dsc_format_from_ext(dot) == dst && n <= SRV_NAME_MAX) {
			snprintf(out, outsz, "%.*s", SRV_NAME_MAX, base);
			return;
		}
		n = (size_t)(dot - base);
	}
	if (n > SRV_NAME_MAX - 5) {
		n = SRV_NAME_MAX - 5;
		/* Do not cut a UTF-8 character in two. */
		while (n > 0 && ((unsigned char)base[n] & 0xc0) == 0x80)
			n--;
	}
	snprintf(out, outsz, "%.*s%s", (int)n, base, format_ext(dst));
}

static void h_export(struct srv_request *rq)
{
	static const char *const known[] = {"path", "src", "dst", "level", "o", NULL};
	struct srv_params p = {0};
	struct dsc_error err = {0};
	struct dsc_convert_opts opts = {0};
	struct dsc_convert_stats stats;
	dsc_stream *in = NULL, *out = NULL;
	dsc_reader *r = NULL;
	dsc_format src, dst;
	dsc_optlist *options = NULL;
	int level;
	char full[PATH_MAX], real[PATH_MAX], proc[64], fname[SRV_NAME_MAX + 8];
	char extra[CD_LINE_MAX + 64];
	const char *path;
	uint64_t cap;
	struct stat st;
	ssize_t rl;
	int fd = -1, pfd = -1, n;

	if (!parse_query(rq, &p))
		return;
	if (!check_known(rq, &p, known) ||
	    !get_format(rq, "src", params_get(&p, "src"), DSC_FORMAT_UNKNOWN, &src) ||
	    !get_format(rq, "dst", params_get(&p, "dst"), DSC_FORMAT_RAW, &dst) ||
	    !get_level(rq, params_get(&p, "level"), &level) ||
	    !get_options(rq, params_get(&p, "o"), NULL, dst, &options))
		goto out;
	path = params_get(&p, "path");
	if (path == NULL || *path == '\0') {
		reply_err(rq, DSC_ERR_INVAL, "/export needs a path parameter");
		goto out;
	}
	/* Relative paths are taken from the first export root. */
	if (path[0] == '/')
		n = snprintf(full, sizeof(full), "%s", path);
	else
		n = snprintf(full, sizeof(full), "%s/%s", srv_cfg.export_roots[0], path);
	if (n < 0 || (size_t)n >= sizeof(full)) {
		reply_err(rq, DSC_ERR_INVAL, "path is too long");
		goto out;
	}
	/* Take hold of the path without opening the file (O_PATH: no open
	 * of a FIFO or device, no side effect), ask the kernel where it
	 * really is, check the roots and the file type, and only then open it
	 * for reading through that very handle: no window in which a swapped
	 * symlink could lead elsewhere. */
	pfd = open(full, O_PATH | O_CLOEXEC);
	if (pfd < 0) {
		int errnum = errno;
		char *rp = realpath(full, NULL);
		bool inside = rp ? inside_roots(rp) : false;

		free(rp);
		if (!inside && errnum == ENOENT) {
			/* Judge a missing file by the directory it would be
			 * in, so that nothing outside the roots is probed. */
			char dir[PATH_MAX], *slash, *rd;

			snprintf(dir, sizeof(dir), "%s", full);
			slash = strrchr(dir, '/');
			if (slash != NULL)
				*(slash == dir ? slash + 1 : slash) = '\0';
			rd = realpath(dir, NULL);
			inside = rd ? inside_roots(rd) : false;
			free(rd);
		}
		if (!inside)
			reply_err(rq, DSC_ERR_PERM, "%s: outside the export roots", path);
		else if (errnum == ENOENT || errnum == ENOTDIR)
			reply_err(rq, DSC_ERR_NOTFOUND, "%s: no such file", path);
		else if (errnum == EACCES || errnum == EPERM)
			reply_err(rq, DSC_ERR_PERM, "%s: permission denied", path);
		else
			reply_err(rq, DSC_ERR_IO, "%s: %s", path, strerror(errnum));
		goto out;
	}
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", pfd);
	rl = readlink(proc, real, sizeof(real) - 1);
	if (rl <= 0 || (size_t)rl >= sizeof(real) - 1) {
		reply_err(rq, DSC_ERR_IO, "%s: cannot resolve the path", path);
		goto out;
	}
	real[rl] = '\0';
	if (!inside_roots(real)) {
		reply_err(rq, DSC_ERR_PERM, "%s: outside the export roots", path);
		goto out;
	}
	if (fstat(pfd, &st) != 0) {
		reply_err(rq, DSC_ERR_IO, "%s: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		/* A directory, FIFO, socket or device: never opened. */
		reply_err(rq, DSC_ERR_UNSUPPORTED, "%s: not a regular file", path);
		goto out;
	}
	/* Dot files include the temporaries of outputs being written. */
	if (strrchr(real, '/')[1] == '.') {
		reply_err(rq, DSC_ERR_NOTFOUND, "%s: no such file", path);
		goto out;
	}
	fd = open(proc, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		int errnum = errno;

		if (errnum == EACCES || errnum == EPERM)
			reply_err(rq, DSC_ERR_PERM, "%s: permission denied", path);
		else
			reply_err(rq, DSC_ERR_IO, "%s: %s", path, strerror(errnum));
		goto out;
	}
	{
		struct stat st2;

		if (fstat(fd, &st2) != 0 || st2.st_dev != st.st_dev || st2.st_ino != st.st_ino ||
		    !S_ISREG(st2.st_mode)) {
			reply_err(rq, DSC_ERR_IO, "%s: the file changed while being opened", path);
			goto out;
		}
	}
	close(pfd);
	pfd = -1;

	/* Probe the source for its format and capacity, so that a damaged
	 * header is a clean 422 and dst=raw can announce Content-Length. */
	if (dsc_stream_open_fd(fd, path, 0, &in, &err) != DSC_OK ||
	    dsc_reader_open(in, src, &r, &err) != DSC_OK) {
		reply_dsc_error(rq, &err, false);
		goto out;
	}
	cap = dsc_reader_capacity(r);
	src = dsc_reader_format(r);
	dsc_reader_close(r);
	r = NULL;
	dsc_stream_close(in);
	in = NULL;
	if (srv_cfg.max_capacity && cap != DSC_CAPACITY_UNKNOWN && cap > srv_cfg.max_capacity) {
		reply_err(rq, DSC_ERR_LIMIT,
			    "%s: image of %llu bytes exceeds the limit of %llu "
			    "bytes",
			    path, (unsigned long long)cap,
			    (unsigned long long)srv_cfg.max_capacity);
		goto out;
	}
	if (lseek(fd, 0, SEEK_SET) != 0) {
		reply_err(rq, DSC_ERR_IO, "%s: %s", path, strerror(errno));
		goto out;
	}
	export_name(real, dst, fname, sizeof(fname));
	content_disposition(fname, extra, sizeof(extra));
	if (dst == DSC_FORMAT_RAW && cap != DSC_CAPACITY_UNKNOWN) {
		size_t l = strlen(extra);

		snprintf(extra + l, sizeof(extra) - l, "Content-Length: %llu\r\n",
			 (unsigned long long)cap);
	}
	if (!reply_defer_headers(rq, 200, "application/octet-stream", extra)) {
		reply_err(rq, DSC_ERR_IO, "%s: the response headers are too long", path);
		goto out;
	}
	if (dsc_stream_open_fd(fd, path, DSC_FD_OWN, &in, &err) != DSC_OK) {
		reply_dsc_error(rq, &err, false);
		goto out;
	}
	fd = -1;
	if (fcgx_reply_stream(rq, &out, &err) != DSC_OK) {
		reply_dsc_error(rq, &err, false);
		goto out;
	}
	opts.src_fmt = src;
	opts.dst_fmt = dst;
	opts.threads = srv_cfg.codec_threads;
	opts.level = level;
	opts.options = options;
	opts.extent_name = fname;
	opts.max_capacity = srv_cfg.max_capacity;
	if (dsc_convert(in, out, &opts, &stats, &err) != DSC_OK) {
		reply_dsc_error(rq, &err, rq->client_gone);
		goto out;
	}
	if (!rq->headers_sent) /* an empty image */
		reply_flush_pending(rq);
	if (dst == DSC_FORMAT_RAW && cap != DSC_CAPACITY_UNKNOWN && rq->bytes_out != cap) {
		/* Never end cleanly with a length that disagrees. */
		reply_err(rq, DSC_ERR_IO, "%s: produced %llu bytes, announced %llu", path,
			    (unsigned long long)rq->bytes_out, (unsigned long long)cap);
	}
out:
	dsc_reader_close(r);
	dsc_stream_close(out);
	dsc_stream_close(in);
	if (fd >= 0)
		close(fd);
	if (pfd >= 0)
		close(pfd);
	dsc_optlist_free(options);
	params_free(&p);
}

/* ---- /status ---------------------------------------------------------- */

static void h_status(struct srv_request *rq)
{
	int i, alive = 0, busy = 0;
	json_t *j;

	if (rq->query != NULL && *rq->query != '\0') {
		reply_err(rq, DSC_ERR_INVAL, "/status takes no parameters");
		return;
	}
	for (i = 0; i < SRV_MAX_SLOTS; i++) {
		if (srv_board->slots[i].pid == 0)
			continue;
		alive++;
		/* This request's own worker counts as busy. */
		if (srv_board->slots[i].busy)
			busy++;
	}
	j = json_pack("{s:i, s:i, s:i, s:I, s:f, s:i, s:s}", "poolSize", srv_board->pool_size,
		      "workers", alive, "busyWorkers", busy, "requestsServed",
		      (json_int_t)__atomic_load_n(&srv_board->served, __ATOMIC_RELAXED),
		      "uptimeSeconds", srv_now() - srv_board->start, "masterPid",
		      (int)srv_board->master_pid, "version", dsc_version());
	reply_json(rq, 200, j);
}

/* ---- the table -------------------------------------------------------- */

struct route {
	const char *method;
	const char *path;
	void (*handler)(struct srv_request *rq);
};

static const struct route routes[] = {
	/* PUT is an upload too: `curl -T FILE URL` sends it, and so do
	 * clients written for ovirt-imageio. */
	{"POST", "/upload", h_upload},      {"PUT", "/upload", h_upload},
	{"GET", "/import", h_import_get},   {"POST", "/import", h_import_post},
	{"GET", "/export", h_export},       {"GET", "/status", h_status},
};

void routes_dispatch(struct srv_request *rq)
{
	char allow[64] = "", q[216];
	size_t i;

	for (i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
		if (strcmp(routes[i].path, rq->path) != 0)
			continue;
		if (strcmp(routes[i].method, rq->method) == 0) {
			routes[i].handler(rq);
			return;
		}
		if (allow[0] != '\0')
			strncat(allow, ", ", sizeof(allow) - strlen(allow) - 1);
		strncat(allow, routes[i].method, sizeof(allow) - strlen(allow) - 1);
	}
	if (allow[0] != '\0')
		reply_method_not_allowed(rq, allow);
	else
		reply_err(rq, DSC_ERR_NOTFOUND, "no route for %s",
			    utf8_clip(q, sizeof(q), rq->path, 200));
}
