/* vhdx_format.c - the VHDX entry of the format table: names, probe, the
 * writer's options, the well-known GUIDs, and the reader and writer
 * classes (vhdx_read.c, vhdx_write.c).
 */
#include "vhdx.h"

/* MS-VHDX 2.2.3.2 (regions) and 2.6.2 (metadata items), on-disk order. */
const uint8_t vhdx_guid_bat[16] = {0x66, 0x77, 0xc2, 0x2d, 0x23, 0xf6, 0x00, 0x42,
				   0x9d, 0x64, 0x11, 0x5e, 0x9b, 0xfd, 0x4a, 0x08};
const uint8_t vhdx_guid_metadata[16] = {0x06, 0xa2, 0x7c, 0x8b, 0x90, 0x47, 0x9a, 0x4b,
					0xb8, 0xfe, 0x57, 0x5f, 0x05, 0x0f, 0x88, 0x6e};
const uint8_t vhdx_guid_file_params[16] = {0x37, 0x67, 0xa1, 0xca, 0x36, 0xfa, 0x43, 0x4d,
					   0xb3, 0xb6, 0x33, 0xf0, 0xaa, 0x44, 0xe7, 0x6b};
const uint8_t vhdx_guid_virtual_size[16] = {0x24, 0x42, 0xa5, 0x2f, 0x1b, 0xcd, 0x76, 0x48,
					    0xb2, 0x11, 0x5d, 0xbe, 0xd8, 0x3b, 0xf4, 0xb8};
const uint8_t vhdx_guid_page83[16] = {0xab, 0x12, 0xca, 0xbe, 0xe6, 0xb2, 0x23, 0x45,
				      0x93, 0xef, 0xc3, 0x09, 0xe0, 0x00, 0xc7, 0x46};
const uint8_t vhdx_guid_logical_sector[16] = {0x1d, 0xbf, 0x41, 0x81, 0x6f, 0xa9, 0x09, 0x47,
					      0xba, 0x47, 0xf2, 0x33, 0xa8, 0xfa, 0xab, 0x5f};
const uint8_t vhdx_guid_physical_sector[16] = {0xc7, 0x48, 0xa3, 0xcd, 0x5d, 0x44, 0x71, 0x44,
					       0x9c, 0xc9, 0xe9, 0x88, 0x52, 0x51, 0xc5, 0x56};
const uint8_t vhdx_guid_parent_locator[16] = {0x2d, 0x5f, 0xd3, 0xa8, 0x0b, 0xb3, 0x4d, 0x45,
					      0xab, 0xf7, 0xd3, 0xd8, 0x48, 0x34, 0xab, 0x0c};

static int vhdx_probe(const struct dscp_probe *p)
{
	/* MS-VHDX 2.2.1: the file type identifier opens the file. */
	if (p->head_len < 8 || memcmp(p->head, VHDX_SIGNATURE, 8))
		return DSCP_SCORE_NONE;
	return DSCP_SCORE_CERTAIN;
}

static const char *const vhdx_aliases[] = {NULL};
static const char *const vhdx_extensions[] = {".vhdx", NULL};
static const char *const vhdx_subformats[] = {"dynamic", "fixed", NULL};
static const struct dsc_option_info vhdx_options[] = {
	{"subformat", DSC_OPTION_ENUM, "dynamic",
	 "dynamic (only blocks holding data are stored) or fixed (every block stored)",
	 vhdx_subformats, 0, 0},
	{"block_size", DSC_OPTION_SIZE, "32M", "payload block size, a power of two from 1M to 256M",
	 NULL, VHDX_MIN_BLOCK, VHDX_MAX_BLOCK},
	{"log_size", DSC_OPTION_SIZE, "1M", "size of the (empty) log, a multiple of 1M up to 256M",
	 NULL, VHDX_MIB, VHDX_MAX_LOG},
	{"logical_sector_size", DSC_OPTION_UINT, "512", "logical sector size: 512 or 4096", NULL,
	 512, 4096},
	{NULL, DSC_OPTION_BOOL, NULL, NULL, NULL, 0, 0},
};

const struct dscp_format dscp_format_vhdx = {
	.info = {.name = "vhdx",
		 .description = "Hyper-V VHDX",
		 .aliases = vhdx_aliases,
		 .extensions = vhdx_extensions,
		 .flags = DSC_FMT_READ | DSC_FMT_WRITE | DSC_FMT_READ_STREAMS |
			  DSC_FMT_WRITE_NEEDS_SEEK | DSC_FMT_WRITE_TWO_PASS,
		 .options = vhdx_options},
	.probe = vhdx_probe,
	.noun = "a VHDX image",
	.reader = &dscp_vhdx_reader,
	.writer = &dscp_vhdx_writer,
};
