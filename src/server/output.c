/* output.c - an output file in outdir, committed only after a last check.
 *
 * The library's atomic file (dsc_stream_create_file: temporary + fsync +
 * rename on finish) is wrapped in a pass-through stream whose finish op
 * first runs a hook: the routes use it to read the rest of the request
 * body or URL and require that it ended cleanly and matched its expected
 * SHA-256 (a VMDK stream stops at its end-of-stream marker, before the body
 * does). Only then is the file renamed into place. Outside that, the
 * library's SHA-256 write wrapper gives the digest of the file as written.
 *
 *   converter -> sha256 (DSC_SHA256_WRITE) -> hook wrapper -> atomic file
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server.h"

struct srv_output {
	dsc_stream *file;  /* the atomic file */
	dsc_stream *outer; /* what the converter writes to */
	bool hashed;
	out_prefinish_fn hook;
	void *hook_user;
	char hex[DSC_SHA256_HEX_LEN + 1];
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

/* The running digest breaks when the writer seeks back: the VMDK writer
 * patches its header at the end when the capacity was unknown at the
 * start (a raw upload), the raw writer when grains come out of order. Then
 * read the finished temporary file once more (small for a VMDK). */
static void hash_file(struct srv_output *o)
{
	const char *tmp = dsc_stream_temp_path(o->file);
	dsc_stream *f = NULL, *h = NULL;
	uint64_t n;

	o->hex[0] = '\0';
	if (tmp != NULL && dsc_stream_open_file(tmp, &f, NULL) == DSC_OK &&
	    dsc_stream_open_sha256(f, 0, &h, NULL) == DSC_OK &&
	    dsc_stream_skip(h, UINT64_MAX, &n, NULL) == DSC_OK &&
	    dsc_stream_sha256_hex(h, o->hex, NULL) != DSC_OK)
		o->hex[0] = '\0';
	dsc_stream_close(h);
	dsc_stream_close(f);
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
	/* The digest is final once the writer set the size: take it now,
	 * the caller reads it after the streams are gone. */
	if (o->hashed && dsc_stream_sha256_hex(o->outer, o->hex, NULL) != DSC_OK)
		hash_file(o);
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
	/* Without libcrypto the reply simply has no sha256. */
	if (dsc_stream_open_sha256(wrap, DSC_SHA256_WRITE | DSC_SHA256_OWN, &o->outer, NULL) ==
	    DSC_OK) {
		o->hashed = true;
	} else {
		o->outer = wrap;
	}
	*op = o;
	*out = o->outer;
	return DSC_OK;
fail:
	dsc_stream_close(o->file);
	free(o);
	return rc;
}

/* The srv_output itself outlives its streams: the caller frees it. */
void output_free(struct srv_output *o) { free(o); }

const char *output_sha256(const struct srv_output *o)
{
	return o != NULL && o->hex[0] != '\0' ? o->hex : NULL;
}

const char *output_temp_path(const struct srv_output *o)
{
	return o != NULL && o->file != NULL ? dsc_stream_temp_path(o->file) : NULL;
}
