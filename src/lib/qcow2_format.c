/* qcow2_format.c - the qcow2 entry of the format table: names, probe,
 * writer options, and the reader and writer classes (qcow2_read.c,
 * qcow2_write.c).
 */
#include "qcow2.h"

static int qcow2_probe(const struct dscp_probe *p)
{
	uint32_t version;

	if (p->head_len < 8 || dscp_be32(p->head) != QCOW2_MAGIC)
		return DSCP_SCORE_NONE;
	version = dscp_be32(p->head + 4);
	/* Version 1 is the obsolete qcow, its own (probe-only) entry. */
	return version >= 2 ? DSCP_SCORE_CERTAIN : DSCP_SCORE_NONE;
}

static const char *const qcow2_aliases[] = {NULL};
static const char *const qcow2_extensions[] = {".qcow2", ".qcow2c", NULL};
static const char *const qcow2_compat[] = {"1.1", "v3", "0.10", "v2", NULL};
static const char *const qcow2_ctypes[] = {"zlib", "zstd", NULL};
static const struct dsc_option_info qcow2_options[] = {
	{"compat", DSC_OPTION_ENUM, "1.1", "qcow2 version written: 1.1 (v3) or 0.10 (v2)",
	 qcow2_compat, 0, 0},
	{"cluster_size", DSC_OPTION_SIZE, "65536", "cluster size, a power of two from 512 to 2M",
	 NULL, 512, 2u << 20},
	{"compression_type", DSC_OPTION_ENUM, "zlib",
	 "codec of compressed clusters (-c): zlib (deflate) or zstd (needs compat=1.1)",
	 qcow2_ctypes, 0, 0},
	{"refcount_bits", DSC_OPTION_UINT, "16",
	 "width of a refcount entry, a power of two from 1 to 64 (compat=0.10: 16)", NULL, 1, 64},
	{NULL, DSC_OPTION_BOOL, NULL, NULL, NULL, 0, 0},
};

const struct dscp_format dscp_format_qcow2 = {
	.info = {.name = "qcow2",
		 .description = "QEMU copy-on-write v2/v3",
		 .aliases = qcow2_aliases,
		 .extensions = qcow2_extensions,
		 .flags = DSC_FMT_READ | DSC_FMT_WRITE | DSC_FMT_READ_STREAMS |
			  DSC_FMT_WRITE_NEEDS_SEEK | DSC_FMT_WRITE_TWO_PASS |
			  DSC_FMT_WRITE_COMPRESSED,
		 .options = qcow2_options},
	.probe = qcow2_probe,
	.noun = "a qcow2 image",
	.reader = &dscp_qcow2_reader,
	.writer = &dscp_qcow2_writer,
};
