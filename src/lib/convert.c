/* convert.c - the one-pass converter: reader extents into a writer.
 *
 * Pulls (offset, bytes) extents from the reader and pushes them to the
 * writer; gaps between extents are holes. Progress is reported at most
 * ten times a second, and the callback can cancel.
 */
#include "internal.h"

#include <time.h>

static double now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static bool report(const struct dsc_convert_opts *o, dsc_stream *in, dsc_stream *out,
		   const dsc_reader *r, uint64_t disk_pos, double t0)
{
	struct dsc_progress p = {
		.in_bytes = dsc_stream_bytes(in),
		.in_total = dsc_stream_total(in),
		.disk_pos = disk_pos,
		.capacity = dsc_reader_capacity(r),
		.out_bytes = dsc_stream_bytes(out),
		.seconds = now_seconds() - t0,
	};

	return o->progress(o->progress_user, &p);
}

dsc_err dsc_convert(dsc_stream *in, dsc_stream *out, const struct dsc_convert_opts *opts,
		    struct dsc_convert_stats *stats, struct dsc_error *e)
{
	struct dsc_convert_opts defaults = {0};
	struct dsc_writer_opts wo = {0};
	struct dsc_extent ext;
	dsc_reader *r = NULL;
	dsc_writer *w = NULL;
	uint64_t cap, pos = 0;
	double t0 = now_seconds(), last = t0, t;
	dsc_err rc;

	if (stats)
		memset(stats, 0, sizeof *stats);
	if (!opts)
		opts = &defaults;
	rc = dsc_reader_open(in, opts->src_fmt, &r, e);
	if (rc != DSC_OK)
		goto out;
	dsc_reader_set_threads(r, opts->threads);
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
	rc = dsc_writer_open(out, opts->dst_fmt ? opts->dst_fmt : DSC_FORMAT_RAW, &wo, &w, e);
	if (rc != DSC_OK)
		goto out;
	for (;;) {
		rc = dsc_reader_next(r, &ext, e);
		if (rc != DSC_OK)
			goto out;
		if (ext.length == 0)
			break;
		pos = ext.offset + ext.length;
		if (opts->max_capacity && pos > opts->max_capacity) {
			rc = dsc_error_set(e, DSC_ERR_LIMIT, 0,
					   "%s: image exceeds the limit of %llu bytes",
					   dsc_stream_name(in),
					   (unsigned long long)opts->max_capacity);
			goto out;
		}
		rc = dsc_writer_put(w, &ext, e);
		if (rc != DSC_OK)
			goto out;
		if (opts->progress && (t = now_seconds()) - last >= 0.1) {
			last = t;
			if (!report(opts, in, out, r, pos, t0)) {
				rc = dsc_error_set(e, DSC_ERR_CANCELLED, 0, "%s: conversion cancelled",
						   dsc_stream_name(in));
				goto out;
			}
		}
	}
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
	if (opts->progress)
		report(opts, in, out, r, cap, t0);
	if (stats) {
		stats->bytes_read = dsc_stream_bytes(in);
		stats->bytes_written = dsc_stream_bytes(out);
		/* The size of the image written: VMDK counts whole sectors. */
		stats->capacity = opts->dst_fmt == DSC_FORMAT_VMDK ? (cap + 511) / 512 * 512 : cap;
		stats->seconds = now_seconds() - t0;
	}
out:
	dsc_writer_close(w);
	dsc_reader_close(r);
	return rc;
}
