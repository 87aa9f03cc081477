/* reader.c - format dispatch for readers and writers, and detection.
 *
 * Detection reads the first sector and pushes it back, so it works on
 * pipes and sockets as well as files.
 */
#include "vmdk.h"

dsc_format dsc_format_from_name(const char *name)
{
	if (!name)
		return DSC_FORMAT_UNKNOWN;
	if (!strcasecmp(name, "raw") || !strcasecmp(name, "img"))
		return DSC_FORMAT_RAW;
	if (!strcasecmp(name, "vmdk"))
		return DSC_FORMAT_VMDK;
	return DSC_FORMAT_UNKNOWN;
}

const char *dsc_format_name(dsc_format f)
{
	switch (f) {
	case DSC_FORMAT_RAW: return "raw";
	case DSC_FORMAT_VMDK: return "vmdk";
	case DSC_FORMAT_UNKNOWN: break;
	}
	return "unknown";
}

static dsc_err detect(dsc_stream *in, dsc_format *fmt, struct dsc_error *e)
{
	uint8_t magic[4];
	size_t got;
	dsc_err rc;

	rc = dsc_read_full(in, magic, sizeof magic, &got, e);
	if (rc != DSC_OK)
		return rc;
	rc = dsc_stream_unread(in, magic, got, e);
	if (rc != DSC_OK)
		return rc;
	*fmt = got == sizeof magic && dscp_le32(magic) == VMDK_MAGIC ? DSC_FORMAT_VMDK
								     : DSC_FORMAT_RAW;
	return DSC_OK;
}

dsc_err dsc_reader_open(dsc_stream *in, dsc_format fmt, dsc_reader **out, struct dsc_error *e)
{
	dsc_err rc;

	*out = NULL;
	if (!in)
		return dsc_error_set(e, DSC_ERR_INVAL, 0, "reader: no input stream");
	if (fmt == DSC_FORMAT_UNKNOWN) {
		rc = detect(in, &fmt, e);
		if (rc != DSC_OK)
			return rc;
	}
	switch (fmt) {
	case DSC_FORMAT_RAW:
		return dscp_raw_reader_open(in, out, e);
	case DSC_FORMAT_VMDK:
		return dscp_vmdk_reader_open(in, out, e);
	case DSC_FORMAT_UNKNOWN:
		break;
	}
	return dsc_error_set(e, DSC_ERR_INVAL, 0, "%s: unknown input format", dsc_stream_name(in));
}

dsc_err dsc_reader_next(dsc_reader *r, struct dsc_extent *ext, struct dsc_error *e)
{
	struct dsc_error local = {0};
	dsc_err rc;

	if (r->failed == DSC_OK) {
		rc = r->ops->next(r, ext, &local);
		if (rc == DSC_OK)
			return DSC_OK;
		/* Readers are sticky like streams: asking again after an error
		 * must not skip the bad part and report a clean end. */
		r->failed = rc;
		r->failure = local;
	}
	memset(ext, 0, sizeof *ext);
	if (e && e->code == DSC_OK)
		*e = r->failure;
	return r->failed;
}

dsc_err dscp_reader_tick(dsc_reader *r, struct dsc_error *e)
{
	if (r->tick && !r->tick(r->tick_user))
		return dsc_error_set(e, DSC_ERR_CANCELLED, 0, "%s: conversion cancelled",
				     dsc_stream_name(r->in));
	return DSC_OK;
}

uint64_t dsc_reader_capacity(const dsc_reader *r) { return r->capacity; }
dsc_format dsc_reader_format(const dsc_reader *r) { return r->format; }
void dsc_reader_set_threads(dsc_reader *r, unsigned threads) { r->threads = threads; }

void dsc_reader_close(dsc_reader *r)
{
	if (!r)
		return;
	r->ops->close(r);
	free(r);
}

dsc_err dsc_writer_open(dsc_stream *out, dsc_format fmt, const struct dsc_writer_opts *opts,
			dsc_writer **w, struct dsc_error *e)
{
	struct dsc_writer_opts defaults = {.capacity = DSC_CAPACITY_UNKNOWN};

	*w = NULL;
	if (!out)
		return dsc_error_set(e, DSC_ERR_INVAL, 0, "writer: no output stream");
	if (!opts)
		opts = &defaults;
	switch (fmt) {
	case DSC_FORMAT_RAW:
		return dscp_raw_writer_open(out, opts, w, e);
	case DSC_FORMAT_VMDK:
		return dscp_vmdk_writer_open(out, opts, w, e);
	case DSC_FORMAT_UNKNOWN:
		break;
	}
	return dsc_error_set(e, DSC_ERR_INVAL, 0, "%s: unknown output format",
			     dsc_stream_name(out));
}

dsc_err dsc_writer_put(dsc_writer *w, const struct dsc_extent *ext, struct dsc_error *e)
{
	dsc_err rc;

	if (w->finished || w->failed)
		return dsc_error_set(e, DSC_ERR_INVAL, 0, "%s: writer is %s", dsc_stream_name(w->out),
				     w->finished ? "finished" : "failed");
	if (ext->length == 0)
		return DSC_OK;
	rc = w->ops->put(w, ext, e);
	if (rc != DSC_OK)
		w->failed = true;
	return rc;
}

dsc_err dsc_writer_finish(dsc_writer *w, uint64_t capacity, struct dsc_error *e)
{
	dsc_err rc;

	if (w->finished || w->failed)
		return dsc_error_set(e, DSC_ERR_INVAL, 0, "%s: writer is %s", dsc_stream_name(w->out),
				     w->finished ? "finished" : "failed");
	if (capacity == DSC_CAPACITY_UNKNOWN)
		return dsc_error_set(e, DSC_ERR_INVAL, 0, "%s: capacity unknown at finish",
				     dsc_stream_name(w->out));
	rc = w->ops->finish(w, capacity, e);
	if (rc != DSC_OK)
		w->failed = true;
	else
		w->finished = true;
	return rc;
}

void dsc_writer_close(dsc_writer *w)
{
	if (!w)
		return;
	w->ops->close(w);
	free(w);
}
