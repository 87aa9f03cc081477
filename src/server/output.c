/* output.c - an output file in outdir, committed only after a last check.
 *
 * The library's atomic file (dsc_stream_create_file: temporary + fsync +
 * rename on finish) is wrapped in a pass-through stream whose finish op
 * first runs a hook: the routes use it to read the rest of the request
 * body or URL and require that it ended cleanly and matched its expected
 * SHA-256 (a VMDK stream stops at its end-of-stream marker, before the body
 * does). Only then is the file renamed into place.
 *
 *   converter -> hook wrapper -> atomic file
 *
 * No digest of the output is taken: its cost would follow the capacity
 * (every hole hashed as zeros), not the bytes received. The reply's sha256
 * is the source's (routes.c).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server.h"

struct srv_output {
	dsc_stream *file; /* the atomic file */
	out_prefinish_fn hook;
	void *hook_user;
};

static dsc_err out_write(void *vctx, const void *buf, size_t len, size_t *nwritten,
			 struct dsc_error *e)
{
	struct srv_output *o = vctx;
	dsc_err rc = dsc_write_all(o->file, buf, len, e);

	*nwritten = rc == DSC_OK ? len : 0;
	return rc;
}

static dsc_err out_seek(void *vctx, uint64_t off, struct dsc_error *e)
{
	struct srv_output *o = vctx;

	return dsc_stream_seek(o->file, off, e);
}

static dsc_err out_set_size(void *vctx, uint64_t size, bool allocate, struct dsc_error *e)
{
	struct srv_output *o = vctx;

	return dsc_stream_set_size(o->file, size, allocate, e);
}

static dsc_err out_finish(void *vctx, struct dsc_error *e)
{
	struct srv_output *o = vctx;
	dsc_err rc;

	if (o->hook != NULL) {
		rc = o->hook(o->hook_user, e);
		if (rc != DSC_OK)
			return rc;
	}
	return dsc_stream_finish(o->file, e);
}

static void out_close(void *vctx)
{
	struct srv_output *o = vctx;

	dsc_stream_close(o->file);
	o->file = NULL;
}

static const struct dsc_stream_ops out_ops = {
	.name = "output",
	.write = out_write,
	.seek = out_seek,
	.set_size = out_set_size,
	.finish = out_finish,
	.close = out_close,
};

dsc_err output_create(const char *dir, const char *name, bool overwrite, out_prefinish_fn hook,
		      void *hook_user, struct srv_output **op, dsc_stream **out,
		      struct dsc_error *e)
{
	struct srv_output *o;
	dsc_stream *wrap = NULL;
	char path[4096];
	dsc_err rc;

	*out = NULL;
	*op = NULL;
	if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, name) >= sizeof(path))
		return dsc_error_set(e, DSC_ERR_INVAL, 0, "%s: output path too long", name);
	o = calloc(1, sizeof(*o));
	if (o == NULL)
		return dsc_error_set(e, DSC_ERR_NOMEM, 0, "%s: out of memory", path);
	o->hook = hook;
	o->hook_user = hook_user;
	rc = dsc_stream_create_file(path, overwrite ? DSC_CREATE_REPLACE : 0, &o->file, e);
	if (rc != DSC_OK)
		goto fail;
	rc = dsc_stream_new(&out_ops, o, path, &wrap, e);
	if (rc != DSC_OK)
		goto fail;
	*op = o;
	*out = wrap;
	return DSC_OK;
fail:
	dsc_stream_close(o->file);
	free(o);
	return rc;
}

/* The srv_output itself outlives its streams: the caller frees it. */
void output_free(struct srv_output *o) { free(o); }

const char *output_temp_path(const struct srv_output *o)
{
	return o != NULL && o->file != NULL ? dsc_stream_temp_path(o->file) : NULL;
}
