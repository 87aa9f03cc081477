/* vdi.h - VirtualBox VDI on-disk constants, named limits and what the
 * reader, the writer and their tests share.
 *
 * Sources: qemu 7.2 block/vdi.c (struct VdiHeader, vdi_open, vdi_co_check,
 * vdi_co_do_create) and VirtualBox's VDICore.h (VDIHEADER1, the image
 * types, VDI_IMAGE_BLOCK_FREE/ZERO). Checked against images qemu-img 7.2
 * makes. All fields are little-endian.
 *
 * Layout: a 512-byte header (64 bytes of text, then the fields below), the
 * block map (one u32 per block: the block's index in the data area, or
 * "free" / "zero"), then the data area, block i of it at
 * offset_data + i * block_size.
 */
#ifndef DSC_VDI_H
#define DSC_VDI_H

#include "internal.h"

#define VDI_SECTOR 512u
#define VDI_HEADER_LEN 512u /* what is read: the text and a v1.1 header */
#define VDI_TEXT_LEN 64u
#define VDI_SIGNATURE 0xbeda107fu
#define VDI_VERSION_1_1 0x00010001u
/* The pre-header text qemu writes; VirtualBox writes "<<< Oracle VM
 * VirtualBox Disk Image >>>\n" (older: innotek, Sun). Never checked. */
#define VDI_TEXT "<<< QEMU VM Virtual Disk Image >>>\n"

/* Header field offsets (qemu's VdiHeader; VirtualBox's VDIHEADER1 after
 * the 64-byte text). */
#define VDI_H_SIGNATURE 0x40
#define VDI_H_VERSION 0x44
#define VDI_H_HEADER_SIZE 0x48
#define VDI_H_TYPE 0x4c
#define VDI_H_FLAGS 0x50
#define VDI_H_DESCRIPTION 0x54 /* 256 bytes */
#define VDI_H_OFFSET_BMAP 0x154
#define VDI_H_OFFSET_DATA 0x158
#define VDI_H_CYLINDERS 0x15c /* legacy geometry, not used */
#define VDI_H_HEADS 0x160
#define VDI_H_SECTORS 0x164
#define VDI_H_SECTOR_SIZE 0x168
#define VDI_H_DISK_SIZE 0x170
#define VDI_H_BLOCK_SIZE 0x178
#define VDI_H_BLOCK_EXTRA 0x17c
#define VDI_H_BLOCKS 0x180
#define VDI_H_ALLOCATED 0x184
#define VDI_H_UUID_IMAGE 0x188
#define VDI_H_UUID_SNAP 0x198
#define VDI_H_UUID_LINK 0x1a8
#define VDI_H_UUID_PARENT 0x1b8

/* header_size: qemu writes 0x180 (the fields up to the link UUID and half
 * the parent's), VirtualBox 0x190 (VDIHEADER1PLUS); qemu does not check
 * it. We take 0x180 up to what fits the 512 bytes read. */
#define VDI_MIN_HEADER_SIZE 0x180u
#define VDI_MAX_HEADER_SIZE (VDI_HEADER_LEN - VDI_TEXT_LEN)

/* Image types (VDICore.h VDI_IMAGE_TYPE_*). */
#define VDI_TYPE_NORMAL 1u /* dynamic */
#define VDI_TYPE_FIXED 2u  /* static: every block allocated */
#define VDI_TYPE_UNDO 3u
#define VDI_TYPE_DIFF 4u

/* Block map entries (qemu VDI_UNALLOCATED / VDI_DISCARDED; VirtualBox
 * VDI_IMAGE_BLOCK_FREE / _ZERO): both read as zeros. */
#define VDI_UNALLOCATED 0xffffffffu
#define VDI_DISCARDED 0xfffffffeu

/* Block size. VirtualBox and qemu write 1 MiB, and qemu reads nothing
 * else. The header names the size, so dsc reads any power of two from
 * 4 KiB to 64 MiB (a block is read 1 MiB at a time, so memory does not
 * grow with it); these are not checked against another reader. */
#define VDI_WRITE_BLOCK (1u << 20)
#define VDI_MIN_BLOCK 4096u
#define VDI_MAX_BLOCK (64u << 20)
/* The block map is held in memory: while it is read, two of the map, its
 * inverse (4 bytes per block each) and the list of allocated blocks (8
 * bytes each), 12 bytes per block at most, then the list alone. At
 * most 8 Mi blocks (96 MiB at open), 8 TiB at 1 MiB
 * (qemu's own limit, 0x3fffffff blocks, would be a 4 GiB map). */
#define VDI_MAX_BLOCKS (8u << 20)
#define VDI_MAX_BYTES ((uint64_t)VDI_MAX_BLOCKS * VDI_WRITE_BLOCK)
/* Where the map and the data may start: nothing sane puts them past the
 * first map's worth plus 64 MiB, and a forward reader skips that far at
 * most before the first block. */
#define VDI_MAX_META_OFFSET ((uint64_t)VDI_MAX_BLOCKS * 4 + (64ull << 20))

extern const struct dscp_reader_class dscp_vdi_reader;
extern const struct dscp_writer_class dscp_vdi_writer;

#endif /* DSC_VDI_H */
