/* vhd_format.c - the VHD ("vpc") entry of the format table: names, probe,
 * writer options, and the helpers the reader (vhd_read.c) and the writer
 * (vhd_write.c) share: the CHS geometry and the virtual-size rule.
 *
 * A dynamic VHD starts with a copy of its footer; a fixed one has only the
 * footer at its end, which the probe sees on a seekable input (p->tail).
 */
#include "vhd.h"

void dscp_vhd_geometry(uint64_t sectors, uint16_t *cyls, uint8_t *heads, uint8_t *spt)
{
	uint64_t cth;

	if (sectors > VHD_MAX_GEOMETRY)
		sectors = VHD_MAX_GEOMETRY;
	if (sectors >= 65535ull * 16 * 63) {
		*spt = 255;
		*heads = 16;
		cth = sectors / 255;
	} else {
		*spt = 17;
		cth = sectors / 17;
		*heads = (uint8_t)DSC_MAX((cth + 1023) / 1024, 4);
		if (cth >= (uint64_t)*heads * 1024 || *heads > 16) {
			*spt = 31;
			*heads = 16;
			cth = sectors / 31;
		}
		if (cth >= (uint64_t)*heads * 1024) {
			*spt = 63;
			*heads = 16;
			cth = sectors / 63;
		}
	}
	*cyls = (uint16_t)(cth / *heads);
}

uint64_t dscp_vhd_footer_size(const uint8_t *f)
{
	static const char by_size[][4] = {"win ", "qem2", "d2v ", "CTXS", {'t', 'a', 'p', 0}};
	uint64_t chs = (uint64_t)dscp_be16(f + VHD_F_CYLS) * f[VHD_F_HEADS] * f[VHD_F_SPT];
	size_t i;

	if (chs == VHD_MAX_GEOMETRY)
		return dscp_be64(f + VHD_F_CUR_SIZE);
	for (i = 0; i < sizeof by_size / sizeof by_size[0]; i++)
		if (!memcmp(f + VHD_F_CREATOR_APP, by_size[i], 4))
			return dscp_be64(f + VHD_F_CUR_SIZE);
	return chs * VHD_SECTOR;
}

static bool valid_footer(const uint8_t *f, size_t len)
{
	return len >= VHD_FOOTER_LEN && !memcmp(f, VHD_COOKIE, 8) &&
	       dscp_vhd_checksum(f, VHD_FOOTER_LEN, VHD_F_CHECKSUM) ==
		       dscp_be32(f + VHD_F_CHECKSUM);
}

static int vhd_probe(const struct dscp_probe *p)
{
	if (p->head_len >= 8 && !memcmp(p->head, VHD_COOKIE, 8))
		return DSCP_SCORE_CERTAIN;
	/* A fixed disk: only a footer at the end, so it must check out. */
	if (p->tail_len >= VHD_FOOTER_LEN &&
	    valid_footer(p->tail + p->tail_len - VHD_FOOTER_LEN, VHD_FOOTER_LEN))
		return DSCP_SCORE_CERTAIN;
	return DSCP_SCORE_NONE;
}

static const char *const vhd_aliases[] = {"vpc", NULL};
static const char *const vhd_extensions[] = {".vhd", NULL};
static const char *const vhd_subformats[] = {"dynamic", "fixed", NULL};
static const struct dsc_option_info vhd_options[] = {
	{"subformat", DSC_OPTION_ENUM, "dynamic",
	 "dynamic (2 MiB blocks, zero blocks left out) or fixed (the data, then a footer)",
	 vhd_subformats, 0, 0},
	{"force_size", DSC_OPTION_BOOL, "off",
	 "keep the exact size (creator \"qem2\", maximum geometry) instead of rounding it up to "
	 "a CHS geometry",
	 NULL, 0, 0},
	{"azure", DSC_OPTION_BOOL, "off",
	 "Azure: a fixed VHD of the size rounded up to a whole MiB (implies subformat=fixed and "
	 "force_size=on)",
	 NULL, 0, 0},
	{NULL, DSC_OPTION_BOOL, NULL, NULL, NULL, 0, 0},
};

const struct dscp_format dscp_format_vhd = {
	.info = {.name = "vhd",
		 .description = "Virtual PC / Hyper-V / Azure VHD (fixed, dynamic)",
		 .aliases = vhd_aliases,
		 .extensions = vhd_extensions,
		 .flags = DSC_FMT_READ | DSC_FMT_WRITE | DSC_FMT_READ_STREAMS |
			  DSC_FMT_WRITE_TWO_PASS,
		 .options = vhd_options},
	.probe = vhd_probe,
	.noun = "a VHD image",
	.reader = &dscp_vhd_reader,
	.writer = &dscp_vhd_writer,
};
