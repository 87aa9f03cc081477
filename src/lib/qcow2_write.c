/* qcow2_write.c - the qcow2 writer (to be written). */
#include "qcow2.h"

static dsc_err qcow2_wopen(dsc_writer *w, struct dsc_error *e)
{
	return dsc_error_set(e, DSC_ERR_UNSUPPORTED, 0, "%s: qcow2 writing is not written yet",
			     dsc_stream_name(w->out));
}

static dsc_err qcow2_put(dsc_writer *w, const struct dsc_extent *ext, struct dsc_error *e)
{
	(void)w;
	(void)ext;
	return dsc_error_set(e, DSC_ERR_UNSUPPORTED, 0, "qcow2 writing is not written yet");
}

static dsc_err qcow2_finish(dsc_writer *w, uint64_t capacity, struct dsc_error *e)
{
	(void)w;
	(void)capacity;
	return dsc_error_set(e, DSC_ERR_UNSUPPORTED, 0, "qcow2 writing is not written yet");
}

const struct dscp_writer_class dscp_qcow2_writer = {
	.size = 1,
	.open = qcow2_wopen,
	.put = qcow2_put,
	.finish = qcow2_finish,
};
