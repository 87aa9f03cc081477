/* vhd.h - VHD ("vpc") on-disk constants, named limits and the helpers
 * shared by the reader, the writer and their tests.
 *
 * "facts §2" refers to docs/formats.md section 2 in the project's shared
 * notes (Microsoft's VHD specification v1.0 and qemu 7.2 block/vpc.c).
 * All fields are big-endian.
 */
#ifndef DSC_VHD_H
#define DSC_VHD_H

#include "internal.h"

#define VHD_SECTOR 512u
#define VHD_FOOTER_LEN 512u /* facts §2: the footer, at EOF (and @0 if dynamic) */
#define VHD_DYN_HEADER_LEN 1024u
#define VHD_COOKIE "conectix"
#define VHD_DYN_COOKIE "cxsparse"

/* Footer field offsets (facts §2). */
#define VHD_F_FEATURES 8
#define VHD_F_VERSION 12
#define VHD_F_DATA_OFFSET 16
#define VHD_F_TIMESTAMP 24
#define VHD_F_CREATOR_APP 28
#define VHD_F_CREATOR_VER 32
#define VHD_F_CREATOR_OS 36
#define VHD_F_ORIG_SIZE 40
#define VHD_F_CUR_SIZE 48
#define VHD_F_CYLS 56
#define VHD_F_HEADS 58
#define VHD_F_SPT 59
#define VHD_F_TYPE 60
#define VHD_F_CHECKSUM 64
#define VHD_F_UUID 68

/* Dynamic header field offsets (facts §2). */
#define VHD_H_DATA_OFFSET 8
#define VHD_H_TABLE_OFFSET 16
#define VHD_H_VERSION 24
#define VHD_H_MAX_ENTRIES 28
#define VHD_H_BLOCK_SIZE 32
#define VHD_H_CHECKSUM 36

#define VHD_TYPE_FIXED 2u
#define VHD_TYPE_DYNAMIC 3u
#define VHD_TYPE_DIFF 4u

#define VHD_BAT_UNUSED 0xffffffffu

/* Largest disk: 2040 GiB in sectors (qemu 7.2 VHD_MAX_SECTORS, 0xff000000),
 * which qemu refuses above, on reading and on creation. */
#define VHD_MAX_SECTORS 0xff000000ull
#define VHD_MAX_BYTES (VHD_MAX_SECTORS * VHD_SECTOR)
/* The largest CHS geometry (65535 cylinders, 16 heads, 255 sectors per
 * track): qemu writes it with force_size and then reads current_size. */
#define VHD_CHS_MAX_C 65535u
#define VHD_CHS_MAX_H 16u
#define VHD_CHS_MAX_S 255u
#define VHD_MAX_GEOMETRY ((uint64_t)VHD_CHS_MAX_C * VHD_CHS_MAX_H * VHD_CHS_MAX_S)

/* Block size limits of a dynamic disk. The spec and every writer use
 * 2 MiB; qemu accepts any power of two from 512. We take 4 KiB to
 * 256 MiB: under 4 KiB qemu's bitmap formula gives 0 bytes where the spec
 * gives one sector, so the two would read such a file differently (and
 * nothing writes one); a block is read in chunks, but its sector bitmap is
 * held whole (256 MiB / 4096 = 64 KiB). */
#define VHD_MIN_BLOCK 4096u
#define VHD_MAX_BLOCK (256u << 20)
#define VHD_WRITE_BLOCK (2u << 20) /* what we write: qemu's and Hyper-V's */
/* The BAT is held in memory while the header is checked: at most 16 MiB
 * of it (4 Mi entries: 2040 GiB at 512 KiB blocks; qemu's and Hyper-V's
 * 2 MiB blocks need 1 044 480), then 8 bytes per allocated block. */
#define VHD_MAX_BAT_ENTRIES (4u << 20)
/* Where the dynamic header and the BAT may start: the header is 1024 B
 * and the BAT follows; nothing sane puts them past the first 64 MiB, and
 * a forward reader skips at most that far to reach them. */
#define VHD_MAX_META_OFFSET (64ull << 20)
/* A fixed VHD on a pipe: the reader holds back the last bytes it has seen
 * until the input ends, where the footer tells the virtual size: the
 * footer, and the data a CHS geometry may leave past the size qemu reads
 * (the geometry rounds down by less than one cylinder, at most 16 heads x
 * 255 sectors). It reads in chunks of VHD_PIPE_CHUNK, so the hold-back
 * costs one copy of VHD_PIPE_HOLD per chunk. */
#define VHD_PIPE_HOLD (VHD_FOOTER_LEN + VHD_CHS_MAX_H * VHD_CHS_MAX_S * VHD_SECTOR)
#define VHD_PIPE_CHUNK (8u << 20)
/* Seconds between 1970-01-01 and 2000-01-01, the VHD timestamp epoch. */
#define VHD_EPOCH 946684800ull

static inline void vhd_put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}
static inline void vhd_put32(uint8_t *p, uint32_t v)
{
	vhd_put16(p, (uint16_t)(v >> 16));
	vhd_put16(p + 2, (uint16_t)v);
}
static inline void vhd_put64(uint8_t *p, uint64_t v)
{
	vhd_put32(p, (uint32_t)(v >> 32));
	vhd_put32(p + 4, (uint32_t)v);
}

/* One's complement of the byte sum, the checksum field counted as zero
 * (facts §2); `len` is 512 for the footer, 1024 for the dynamic header. */
static inline uint32_t dscp_vhd_checksum(const uint8_t *p, size_t len, size_t field)
{
	uint32_t sum = 0;
	size_t i;

	for (i = 0; i < len; i++)
		sum += i >= field && i < field + 4 ? 0 : p[i];
	return ~sum;
}

/* The spec's CHS algorithm as qemu 7.2 computes it (facts §2). */
void dscp_vhd_geometry(uint64_t sectors, uint16_t *cyls, uint8_t *heads, uint8_t *spt);

/* The virtual size qemu 7.2 reads from a footer: current_size for the
 * creators that write it exactly ("win ", "qem2", "d2v ", "CTXS",
 * "tap\0") or with the maximum geometry, else the CHS product. */
uint64_t dscp_vhd_footer_size(const uint8_t *footer);

extern const struct dscp_reader_class dscp_vhd_reader;
extern const struct dscp_writer_class dscp_vhd_writer;

#endif /* DSC_VHD_H */
