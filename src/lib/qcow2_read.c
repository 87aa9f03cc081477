/* qcow2_read.c - the qcow2 reader (to be written). */
#include "qcow2.h"

static dsc_err qcow2_open(dsc_reader *r, struct dsc_error *e)
{
	return dsc_error_set(e, DSC_ERR_UNSUPPORTED, 0, "%s: qcow2 reading is not written yet",
			     dsc_stream_name(r->in));
}

static dsc_err qcow2_next(dsc_reader *r, struct dsc_extent *ext, struct dsc_error *e)
{
	(void)r;
	(void)ext;
	return dsc_error_set(e, DSC_ERR_UNSUPPORTED, 0, "qcow2 reading is not written yet");
}

const struct dscp_reader_class dscp_qcow2_reader = {
	.size = 1,
	.open = qcow2_open,
	.next = qcow2_next,
};
