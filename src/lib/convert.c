/* convert.c - the converter: reader extents into a writer.
 *
 * Pulls (offset, bytes) extents from the reader and pushes them to the
 * writer; gaps between extents are holes. Progress is reported at most
 * ten times a second, and the callback can cancel.
 *
 * A writer that must know its layout before its first byte (w->needs_plan:
 * qcow2 to a pipe) gets two passes over a seekable source: the first feeds
 * every extent to the writer's plan, then the input is seeked back to
 * where the reader started and a fresh reader of the same format feeds
 * put() as usual.
 */
#include "internal.h"

#include <time.h>

static double now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* What the progress callback needs; also the readers' tick target. */
struct progress_state {
	const struct dsc_convert_opts *opts;
	dsc_stream *in, *out;
	const dsc_reader *r;
	uint64_t disk_pos;
	uint64_t start;   /* input offset where the image starts */
	uint64_t in_base; /* input bytes of a first pass: each pass counts from 0 */
	double t0, last;
};

static bool report(struct progress_state *ps)
{
	struct dsc_progress p = {
		.in_bytes = dsc_stream_bytes(ps->in) - ps->in_base,
		.in_total = dsc_stream_total(ps->in),
		.disk_pos = ps->disk_pos,
		.capacity = dsc_reader_capacity(ps->r),
		.out_bytes = dsc_stream_bytes(ps->out),
		.seconds = now_seconds() - ps->t0,
	};

	return ps->opts->progress(ps->opts->progress_user, &p);
}

/* At most ten reports a second, whether extents flow or not. */
static bool tick(void *user)
{
	struct progress_state *ps = user;
	double t = now_seconds();

	if (t - ps->last < 0.1)
		return true;
	ps->last = t;
	return report(ps);
}

static dsc_err open_reader(dsc_stream *in, dsc_format fmt, struct progress_state *ps,
			   dsc_reader **rp, struct dsc_error *e)
{
	const struct dsc_convert_opts *opts = ps->opts;
	dsc_reader *r;
	dsc_err rc;

	struct dsc_reader_opts ro = {.disk = opts->disk};

	rc = dsc_reader_open_opts(in, fmt, &ro, rp, e);
	if (rc != DSC_OK)
		return rc;
	r = *rp;
	ps->r = r;
	r->max_capacity = opts->max_capacity;
	if (opts->progress) {
		r->tick = tick;
		r->tick_user = ps;
	}
	dsc_reader_set_threads(r, opts->threads);
	return DSC_OK;
}

/* Every extent of r into the writer: its plan, or put(); with no writer,
 * only read (a pass for the size). */
static dsc_err pass(dsc_reader *r, dsc_writer *w, bool plan, struct progress_state *ps,
		    struct dsc_error *e)
{
	const struct dsc_convert_opts *opts = ps->opts;
	struct dsc_extent ext;
	dsc_err rc;

	for (;;) {
		rc = dsc_reader_next(r, &ext, e);
		if (rc != DSC_OK)
			return rc;
		if (ext.length == 0)
			return DSC_OK;
		ps->disk_pos = ext.offset + ext.length;
		if (opts->max_capacity && ps->disk_pos > opts->max_capacity)
			return dsc_error_set(e, DSC_ERR_LIMIT, 0,
					     "%s: image exceeds the limit of %llu bytes",
					     dsc_stream_name(ps->in),
					     (unsigned long long)opts->max_capacity);
		rc = !w ? DSC_OK : plan ? dscp_writer_plan(w, &ext, e) : dsc_writer_put(w, &ext, e);
		if (rc != DSC_OK)
			return rc;
		rc = dscp_reader_tick(r, e);
		if (rc != DSC_OK)
			return rc;
	}
}

/* The capacity a first pass found, against the limit. */
static dsc_err within_limit(dsc_stream *in, const struct progress_state *ps, uint64_t cap,
			    struct dsc_error *e)
{
	if (ps->opts->max_capacity && cap > ps->opts->max_capacity)
		return dsc_error_set(e, DSC_ERR_LIMIT, 0,
				     "%s: image of %llu bytes exceeds the limit of %llu bytes",
				     dsc_stream_name(in), (unsigned long long)cap,
				     (unsigned long long)ps->opts->max_capacity);
	return DSC_OK;
}

/* After a first pass: the input goes back to the start and *rp is a fresh
 * reader, opened with the format as given (a layer found by its magic is
 * found again). */
static dsc_err restart(dsc_stream *in, dsc_reader **rp, struct progress_state *ps,
		       struct dsc_error *e)
{
	dsc_err rc;

	dsc_reader_close(*rp);
	*rp = NULL;
	ps->r = NULL;
	ps->disk_pos = 0;
	ps->in_base = dsc_stream_bytes(in);
	rc = dsc_stream_seek(in, ps->start, e);
	if (rc != DSC_OK)
		return rc;
	return open_reader(in, ps->opts->src_fmt, ps, rp, e);
}

/* The first of two passes: the writer maps the image, then the input goes
 * back to the start and *rp is a fresh reader of the same format. */
static dsc_err first_pass(dsc_stream *in, dsc_reader **rp, dsc_writer *w, struct progress_state *ps,
			  struct dsc_error *e)
{
	uint64_t cap, size;
	dsc_err rc;

	if (!dsc_stream_can_seek(in))
		return dsc_error_set(e, DSC_ERR_SEEK, 0,
				     "%s: %s to a pipe needs a seekable source (two passes) or a "
				     "regular file as output",
				     dsc_stream_name(w->out), w->fmt->info.name);
	rc = pass(*rp, w, true, ps, e);
	cap = dsc_reader_capacity(*rp);
	if (rc == DSC_OK)
		rc = within_limit(in, ps, cap, e);
	if (rc == DSC_OK)
		rc = dscp_writer_plan_done(w, cap, &size, e);
	if (rc != DSC_OK)
		return rc;
	if (ps->opts->output_size)
		ps->opts->output_size(ps->opts->output_size_user, size);
	return restart(in, rp, ps, e);
}

/* A compressed raw image tells its size only at its end, and some writers
 * need it first (a VMDK to a pipe, a dynamic VHD, a VDI). When the input
 * can seek, a first pass decompresses it to learn the size; the input then
 * goes back to the start and *rp is a fresh reader. */
static dsc_err size_pass(dsc_stream *in, dsc_reader **rp, struct progress_state *ps, uint64_t *cap,
			 struct dsc_error *e)
{
	dsc_err rc = pass(*rp, NULL, false, ps, e);

	*cap = dsc_reader_capacity(*rp);
	if (rc == DSC_OK)
		rc = within_limit(in, ps, *cap, e);
	return rc != DSC_OK ? rc : restart(in, rp, ps, e);
}

dsc_err dsc_convert(dsc_stream *in, dsc_stream *out, const struct dsc_convert_opts *opts,
		    struct dsc_convert_stats *stats, struct dsc_error *e)
{
	struct dsc_error first = {0};
	struct dsc_convert_opts defaults = {0};
	struct dsc_writer_opts wo = {0};
	dsc_reader *r = NULL;
	dsc_writer *w = NULL;
	struct progress_state ps = {.opts = opts, .in = in, .out = out};
	uint64_t cap, written = 0, cap_out = 0;
	dsc_err rc;

	if (stats)
		memset(stats, 0, sizeof *stats);
	if (!opts)
		opts = &defaults;
	ps.opts = opts;
	ps.t0 = ps.last = now_seconds();
	ps.start = dsc_stream_tell(in);
	rc = open_reader(in, opts->src_fmt, &ps, &r, e);
	if (rc != DSC_OK)
		goto out;
	cap = dsc_reader_capacity(r);
	if (opts->max_capacity && cap != DSC_CAPACITY_UNKNOWN && cap > opts->max_capacity) {
		rc = dsc_error_set(e, DSC_ERR_LIMIT, 0,
				   "%s: image of %llu bytes exceeds the limit of %llu bytes",
				   dsc_stream_name(in), (unsigned long long)cap,
				   (unsigned long long)opts->max_capacity);
		goto out;
	}
	wo.capacity = cap;
	wo.prealloc = opts->prealloc;
	wo.level = opts->level;
	wo.threads = opts->threads;
	wo.extent_name = opts->extent_name;
	wo.options = opts->options;
	wo.compress = opts->compress;
	rc = dsc_writer_open(out, opts->dst_fmt ? opts->dst_fmt : DSC_FORMAT_RAW, &wo, &w, &first);
	/* Writers refuse an unknown size as DSC_ERR_UNSUPPORTED; a bad option
	 * (DSC_ERR_INVAL) or a failed write is not worth a pass. */
	if (rc == DSC_ERR_UNSUPPORTED && cap == DSC_CAPACITY_UNKNOWN && r->layers[0] &&
	    dsc_stream_can_seek(in) && dsc_stream_bytes(out) == 0 && dsc_stream_tell(out) == 0) {
		rc = size_pass(in, &r, &ps, &cap, e);
		if (rc != DSC_OK)
			goto out;
		wo.capacity = cap;
		memset(&first, 0, sizeof first);
		rc = dsc_writer_open(out, opts->dst_fmt ? opts->dst_fmt : DSC_FORMAT_RAW, &wo, &w,
				     &first);
	}
	if (rc != DSC_OK) {
		if (e && e->code == DSC_OK)
			*e = first;
		goto out;
	}
	if (w->needs_plan) {
		rc = first_pass(in, &r, w, &ps, e);
		if (rc != DSC_OK)
			goto out;
	} else if (w->output_size && opts->output_size) {
		opts->output_size(opts->output_size_user, w->output_size);
	}
	rc = pass(r, w, false, &ps, e);
	if (rc != DSC_OK)
		goto out;
	cap = dsc_reader_capacity(r);
	if (opts->max_capacity && cap > opts->max_capacity) {
		rc = dsc_error_set(e, DSC_ERR_LIMIT, 0,
				   "%s: image of %llu bytes exceeds the limit of %llu bytes",
				   dsc_stream_name(in), (unsigned long long)cap,
				   (unsigned long long)opts->max_capacity);
		goto out;
	}
	rc = dsc_writer_finish(w, cap, e);
	if (rc != DSC_OK)
		goto out;
	written = w->file_size;
	cap_out = w->image_size;
	if (opts->progress) {
		ps.disk_pos = cap;
		report(&ps);
	}
	if (stats) {
		stats->bytes_read = dsc_stream_bytes(in);
		stats->bytes_written = written;
		stats->capacity = cap_out;
		stats->seconds = now_seconds() - ps.t0;
		stats->src_format = dsc_reader_format(r);
		stats->src_compression = dsc_reader_compression(r);
		stats->src_archive = dsc_reader_archive(r);
	}
out:
	dsc_writer_close(w);
	dsc_reader_close(r);
	return rc;
}
