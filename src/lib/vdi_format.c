/* vdi_format.c - the VirtualBox VDI entry of the format table: names,
 * probe and writer options. The reader is vdi_read.c, the writer
 * vdi_write.c.
 */
#include "vdi.h"

/* The signature at byte 64 (the text before it varies by creator). */
static int vdi_probe(const struct dscp_probe *p)
{
	if (p->head_len >= VDI_H_SIGNATURE + 4 &&
	    dscp_le32(p->head + VDI_H_SIGNATURE) == VDI_SIGNATURE)
		return DSCP_SCORE_CERTAIN;
	return DSCP_SCORE_NONE;
}

static const char *const vdi_aliases[] = {NULL};
static const char *const vdi_extensions[] = {".vdi", NULL};
static const struct dsc_option_info vdi_options[] = {
	{"static", DSC_OPTION_BOOL, "off",
	 "allocate every block (a fixed VDI: the header, the map, then all the data; streams to "
	 "a pipe) instead of leaving zero blocks out (dynamic)",
	 NULL, 0, 0},
	{NULL, DSC_OPTION_BOOL, NULL, NULL, NULL, 0, 0},
};

const struct dscp_format dscp_format_vdi = {
	.info = {.name = "vdi",
		 .description = "VirtualBox disk image (dynamic, static)",
		 .aliases = vdi_aliases,
		 .extensions = vdi_extensions,
		 .flags = DSC_FMT_READ | DSC_FMT_WRITE | DSC_FMT_READ_STREAMS |
			  DSC_FMT_WRITE_TWO_PASS,
		 .options = vdi_options},
	.probe = vdi_probe,
	.noun = "a VDI image",
	.reader = &dscp_vdi_reader,
	.writer = &dscp_vdi_writer,
};
