/* export.c - GET /export: a file under the export roots, converted on the fly.
 *
 * The path is confined to the roots and opened by export_open()
 * (export_path.c). The source is probed first, so that a damaged header is
 * a clean 422 and dst=raw can announce its Content-Length (dst=qcow2 announces
 * the size its first pass computed); then the file is
 * converted straight into the response, whose headers (with the RFC 6266
 * download name, disposition.c) are held back until the first byte. A
 * conversion that fails after that cannot change its status: reply.c
 * aborts the connection instead, so the client never takes a short file for
 * a whole one.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "server.h"

/* One export, from its parameters to the last byte. */
struct export_job {
	const char *path; /* as the client gave it, for messages */
	dsc_format src, dst;
	int level;
	bool compress;
	dsc_optlist *options;
	int fd;              /* the opened source, -1 once a stream owns it */
	int dirfd;           /* its directory (O_PATH), for VMDK extents */
	char real[PATH_MAX]; /* where it really is */
	uint64_t cap;        /* its capacity, or DSC_CAPACITY_UNKNOWN */
	/* The Content-Length sent: the capacity for raw, or the size a
	 * two-pass writer (qcow2 to a pipe) knows before its first byte;
	 * UINT64_MAX when none was. */
	uint64_t announced;
	struct srv_request *rq;
	char fname[SRV_NAME_MAX + 8];
};

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
	if (dot != NULL && dot > base && dsc_format_from_extension(dot) != DSC_FORMAT_UNKNOWN) {
		/* A name that already carries an extension of the output's
		 * format is kept as it is. */
		if (dsc_format_from_extension(dot) == dst && n <= SRV_NAME_MAX) {
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

/* path=, src=, dst=, level=, o=; false after a reply. */
static bool export_params(struct srv_request *rq, const struct srv_params *p, struct export_job *x)
{
	static const char *const known[] = {"path", "src", "dst", "level", "o", "compress", NULL};

	if (!check_known(rq, p, known) ||
	    !get_format(rq, "src", params_get(p, "src"), DSC_FORMAT_UNKNOWN, &x->src) ||
	    !get_format(rq, "dst", params_get(p, "dst"), DSC_FORMAT_RAW, &x->dst) ||
	    !get_level(rq, params_get(p, "level"), &x->level) ||
	    !get_compress(rq, params_get(p, "compress"), x->dst, &x->compress) ||
	    !get_options(rq, params_get(p, "o"), NULL, x->dst, &x->options))
		return false;
	x->path = params_get(p, "path");
	if (x->path == NULL || *x->path == '\0') {
		reply_err(rq, DSC_ERR_INVAL, "/export needs a path parameter");
		return false;
	}
	return true;
}

/* A VMDK descriptor under an export root opens its extents beside it, in
 * the directory export_open_dir() checked once holds the file (inside the
 * root); the library takes them only as plain file names there. */
static dsc_err set_extent_dir(dsc_stream *in, const struct export_job *x, struct dsc_error *e)
{
	return dsc_stream_set_extent_dirfd(in, x->dirfd, e);
}

/* Probe the source for its format and capacity, so that a damaged header
 * is a clean 422 and dst=raw can announce Content-Length; then rewind. */
static dsc_err export_probe(struct export_job *x, struct dsc_error *e)
{
	dsc_stream *in = NULL;
	dsc_reader *r = NULL;
	dsc_err rc;

	rc = dsc_stream_open_fd(x->fd, x->path, 0, &in, e);
	if (rc == DSC_OK)
		rc = set_extent_dir(in, x, e);
	if (rc == DSC_OK)
		rc = dsc_reader_open(in, x->src, &r, e);
	if (rc == DSC_OK)
		x->cap = dsc_reader_capacity(r);
	dsc_reader_close(r);
	dsc_stream_close(in);
	if (rc != DSC_OK)
		return rc;
	if (srv_cfg.max_capacity && x->cap != DSC_CAPACITY_UNKNOWN && x->cap > srv_cfg.max_capacity)
		return dsc_error_set(e, DSC_ERR_LIMIT, 0,
				     "%s: image of %llu bytes exceeds the limit of %llu "
				     "bytes",
				     x->path, (unsigned long long)x->cap,
				     (unsigned long long)srv_cfg.max_capacity);
	if (lseek(x->fd, 0, SEEK_SET) != 0)
		return dsc_error_set(e, DSC_ERR_IO, errno, "%s: %s", x->path, strerror(errno));
	return DSC_OK;
}

/* Content-Disposition (and Content-Length for raw), sent with the first
 * byte of the body. */
static dsc_err export_headers(struct srv_request *rq, struct export_job *x, struct dsc_error *e)
{
	char extra[CD_LINE_MAX + 64];

	export_name(x->real, x->dst, x->fname, sizeof(x->fname));
	content_disposition(x->fname, extra, sizeof(extra));
	if (x->dst == DSC_FORMAT_RAW && x->cap != DSC_CAPACITY_UNKNOWN) {
		size_t l = strlen(extra);

		snprintf(extra + l, sizeof(extra) - l, "Content-Length: %llu\r\n",
			 (unsigned long long)x->cap);
		x->announced = x->cap;
	}
	if (!reply_defer_headers(rq, 200, "application/octet-stream", extra))
		return dsc_error_set(e, DSC_ERR_IO, 0, "%s: the response headers are too long",
				     x->path);
	return DSC_OK;
}

/* dsc_convert_opts.output_size: a writer that plans its output (qcow2 in
 * two passes) tells its exact size before the first byte, while the
 * headers are still held back: announce it. */
static void export_output_size(void *user, uint64_t bytes)
{
	struct export_job *x = user;
	struct srv_request *rq = x->rq;
	size_t l = strlen(rq->pending_extra);
	int n;

	if (rq->headers_sent || x->announced != UINT64_MAX)
		return;
	n = snprintf(rq->pending_extra + l, sizeof(rq->pending_extra) - l,
		     "Content-Length: %llu\r\n", (unsigned long long)bytes);
	if (n > 0 && (size_t)n < sizeof(rq->pending_extra) - l)
		x->announced = bytes;
	else
		rq->pending_extra[l] = '\0'; /* no room: sent without a length */
}

/* Convert the file into the response. */
static void export_stream(struct srv_request *rq, struct export_job *x)
{
	struct dsc_convert_opts opts = {0};
	struct dsc_convert_stats stats;
	struct dsc_error err = {0};
	dsc_stream *in = NULL, *out = NULL;

	if (dsc_stream_open_fd(x->fd, x->path, DSC_FD_OWN, &in, &err) != DSC_OK ||
	    set_extent_dir(in, x, &err) != DSC_OK) {
		reply_dsc_error(rq, &err, false);
		goto out;
	}
	x->fd = -1;
	if (fcgx_reply_stream(rq, &out, &err) != DSC_OK) {
		reply_dsc_error(rq, &err, false);
		goto out;
	}
	opts.src_fmt = x->src;
	opts.dst_fmt = x->dst;
	opts.threads = srv_cfg.codec_threads;
	opts.level = x->level;
	opts.options = x->options;
	opts.compress = x->compress;
	opts.extent_name = x->fname;
	opts.max_capacity = srv_cfg.max_capacity;
	opts.output_size = export_output_size;
	opts.output_size_user = x;
	if (dsc_convert(in, out, &opts, &stats, &err) != DSC_OK) {
		reply_dsc_error(rq, &err, rq->client_gone);
		goto out;
	}
	if (!rq->headers_sent) /* an empty image */
		reply_flush_pending(rq);
	if (x->announced != UINT64_MAX && rq->bytes_out != x->announced) {
		/* Never end cleanly with a length that disagrees. */
		reply_err(rq, DSC_ERR_IO, "%s: produced %llu bytes, announced %llu", x->path,
			  (unsigned long long)rq->bytes_out, (unsigned long long)x->announced);
	}
out:
	dsc_stream_close(out);
	dsc_stream_close(in);
}

void h_export(struct srv_request *rq)
{
	struct export_job x = {.fd = -1,
			       .dirfd = -1,
			       .cap = DSC_CAPACITY_UNKNOWN,
			       .announced = UINT64_MAX,
			       .rq = rq};
	struct srv_params p = {0};
	struct dsc_error err = {0};

	if (!parse_query(rq, &p))
		return;
	if (!export_params(rq, &p, &x))
		goto out;
	if (export_open(x.path, &x.fd, x.real, sizeof(x.real), &err) != DSC_OK ||
	    export_open_dir(x.fd, x.real, x.path, &x.dirfd, &err) != DSC_OK ||
	    export_probe(&x, &err) != DSC_OK || export_headers(rq, &x, &err) != DSC_OK) {
		reply_dsc_error(rq, &err, false);
		goto out;
	}
	export_stream(rq, &x);
out:
	if (x.fd >= 0)
		close(x.fd);
	if (x.dirfd >= 0)
		close(x.dirfd);
	dsc_optlist_free(x.options);
	params_free(&p);
}
