/* vhdx.h - VHDX on-disk structures and limits shared by the reader, the
 * writer and their tests.
 *
 * "MS-VHDX x.y" is a section of Microsoft's [MS-VHDX] "Virtual Hard Disk v2
 * (VHDX) File Format"; "facts §3" is docs/formats.md section 3 in the
 * project's shared notes. All fields are little-endian. A GUID is stored
 * as Microsoft lays it out: its first three groups little-endian, the last
 * eight bytes as written, so the byte arrays below are the on-disk form.
 */
#ifndef DSC_VHDX_H
#define DSC_VHDX_H

#include "internal.h"

#define VHDX_MIB (1ull << 20)

/* The header section (MS-VHDX 2.2): 1 MiB at the start of the file. */
#define VHDX_SIGNATURE "vhdxfile" /* 8 bytes at 0 (2.2.1) */
#define VHDX_HEADER_SECTION VHDX_MIB
#define VHDX_HEADER1_OFFSET 0x10000u /* 64 KiB */
#define VHDX_HEADER2_OFFSET 0x20000u /* 128 KiB */
#define VHDX_REGION1_OFFSET 0x30000u /* 192 KiB */
#define VHDX_REGION2_OFFSET 0x40000u /* 256 KiB */
#define VHDX_HEADER_CRC_LEN 4096u    /* a header's checksum covers 4 KiB (2.2.2) */
#define VHDX_REGION_LEN 0x10000u     /* a region table is 64 KiB (2.2.3) */
#define VHDX_CREATOR_LEN 512u        /* UTF-16 creator after the signature */

/* Header fields (2.2.2). */
#define VHDX_HDR_SIGNATURE 0x64616568u /* "head" */
#define VHDX_HDR_CHECKSUM 4
#define VHDX_HDR_SEQUENCE 8
#define VHDX_HDR_FILE_WRITE_GUID 16
#define VHDX_HDR_DATA_WRITE_GUID 32
#define VHDX_HDR_LOG_GUID 48
#define VHDX_HDR_LOG_VERSION 64
#define VHDX_HDR_VERSION 66
#define VHDX_HDR_LOG_LENGTH 68
#define VHDX_HDR_LOG_OFFSET 72
#define VHDX_VERSION 1u

/* Region table (2.2.3): 16-byte header, 32-byte entries. */
#define VHDX_RT_SIGNATURE 0x69676572u        /* "regi" */
#define VHDX_RT_MAX_ENTRIES 2047u            /* 2.2.3.1: EntryCount <= 2047 */
#define VHDX_RT_REQUIRED 0x1u                /* 2.2.3.2: Required bit */
extern const uint8_t vhdx_guid_bat[16];      /* 2DC27766-F623-4200-9D64-115E9BFD4A08 */
extern const uint8_t vhdx_guid_metadata[16]; /* 8B7CA206-4790-4B9A-B8FE-575F050F886E */

/* Metadata table (2.6.1): 32-byte header, 32-byte entries, in the first
 * 64 KiB of the metadata region; items follow at offsets >= 64 KiB. */
#define VHDX_MD_SIGNATURE "metadata"
#define VHDX_MD_TABLE_LEN 0x10000u
#define VHDX_MD_MAX_ENTRIES 2047u /* 2.6.1.1: EntryCount <= 2047 */
#define VHDX_MD_MAX_ITEM VHDX_MIB /* 2.6.1.2: Length <= 1 MiB */
#define VHDX_MD_IS_USER 0x1u      /* 2.6.1.2 flag bits */
#define VHDX_MD_IS_VIRTUAL_DISK 0x2u
#define VHDX_MD_IS_REQUIRED 0x4u
extern const uint8_t vhdx_guid_file_params[16];     /* CAA16737-FA36-4D43-B3B6-33F0AA44E76B */
extern const uint8_t vhdx_guid_virtual_size[16];    /* 2FA54224-CD1B-4876-B211-5DBED83BF4B8 */
extern const uint8_t vhdx_guid_page83[16];          /* BECA12AB-B2E6-4523-93EF-C309E000C746 */
extern const uint8_t vhdx_guid_logical_sector[16];  /* 8141BF1D-A96F-4709-BA47-F233A8FAAB5F */
extern const uint8_t vhdx_guid_physical_sector[16]; /* CDA348C7-445D-4471-9CC9-E9885251C556 */
extern const uint8_t vhdx_guid_parent_locator[16];  /* A8D35F2D-B30B-454D-ABF7-D3D84834AB0C */
/* File parameters (2.6.2.1): BlockSize u32, then flags. */
#define VHDX_FP_LEAVE_ALLOCATED 0x1u
#define VHDX_FP_HAS_PARENT 0x2u

/* BAT entries (2.5.1): state in bits 0-2, FileOffsetMB in bits 20-63. */
#define VHDX_BAT_STATE_MASK 0x7ull
#define VHDX_BAT_OFFSET_MASK 0xfffffffffff00000ull
#define VHDX_PAYLOAD_NOT_PRESENT 0u
#define VHDX_PAYLOAD_UNDEFINED 1u
#define VHDX_PAYLOAD_ZERO 2u
#define VHDX_PAYLOAD_UNMAPPED 3u
#define VHDX_PAYLOAD_UNMAPPED_V095 5u /* qemu's vhdx.h: draft 0.95 value */
#define VHDX_PAYLOAD_FULLY_PRESENT 6u
#define VHDX_PAYLOAD_PARTIALLY_PRESENT 7u /* differencing disks only */
/* A sector-bitmap entry follows every chunk_ratio payload entries, with
 * chunk_ratio = 2^23 * logical sector size / block size (2.5). */
#define VHDX_CHUNK_SECTORS (1ull << 23)

/* Log entry header (2.3.1.1). */
#define VHDX_LOG_SIGNATURE 0x65676f6cu /* "loge" */

/* Log replay into memory (vhdx_log.c): patches the reader lays over what
 * it reads, in replay order. */
struct vhdx_patch {
	uint64_t off, len;
	uint8_t *data; /* 4 KiB of a data descriptor; NULL: zeros */
};
struct vhdx_log {
	struct vhdx_patch *p;
	size_t n, cap;
	uint64_t flushed, last; /* the head entry's FlushedFileOffset, LastFileOffset */
	uint64_t seq;           /* its sequence number */
	uint64_t entries;       /* entries replayed */
};
/* Find the active sequence of the log (len bytes, a copy of the log
 * region) written under log GUID `guid` and turn it into patches. FORMAT
 * (why says what) when there is none; NOMEM. */
dsc_err vhdx_log_plan(const uint8_t *log, uint64_t len, const uint8_t guid[16],
		      struct vhdx_log *out, char *why, size_t cap);
/* Lay the patches over buf, which holds file bytes [off, off + len). */
void vhdx_log_apply(const struct vhdx_log *l, uint64_t off, uint8_t *buf, size_t len);
/* The file size after the replay: LastFileOffset or the last patch's end. */
uint64_t vhdx_log_end(const struct vhdx_log *l);
void vhdx_log_free(struct vhdx_log *l);

/* Named limits on what the reader accepts. */
#define VHDX_MAX_LOG_BYTES (64u << 20)    /* ours: a log replayed in memory */
#define VHDX_LOG_SCAN_FACTOR 4u           /* ours: log bytes checked <= 4 x its size */
#define VHDX_MAX_LOG_GROWTH (64ull << 20) /* ours: how far a replayed log may extend the file */
#define VHDX_MAX_LOG_PATCHES 65536u       /* ours: descriptors replayed */
#define VHDX_MIN_BLOCK VHDX_MIB           /* 2.6.2.1: 1 MiB .. 256 MiB */
#define VHDX_MAX_BLOCK (256u << 20)
#define VHDX_MAX_VIRTUAL_SIZE (64ull << 40) /* 2.6.2.2: 64 TiB */
#define VHDX_MAX_BAT_BYTES (64u << 20)      /* ours: 8 Mi entries (64 TiB at 8 MiB blocks) */
#define VHDX_MAX_METADATA_BYTES (8u << 20)  /* ours: table + items read, at most */
#define VHDX_MAX_FILE_OFFSET (1ull << 60)   /* ours: no region or block beyond 1 EiB */
#define VHDX_READ_CHUNK (4u << 20)          /* payload bytes read at once */
#define VHDX_TICK_ENTRIES 65536u            /* BAT entries scanned between ticks */

/* Writer defaults (issue 14; qemu's DEFAULT_LOG_SIZE). */
#define VHDX_DEFAULT_BLOCK (32u << 20)
#define VHDX_DEFAULT_LOG VHDX_MIB
#define VHDX_MAX_LOG (256u << 20) /* ours: the largest log_size= taken */

/* The reader (vhdx_read.c) and writer (vhdx_write.c) of the format. */
extern const struct dscp_reader_class dscp_vhdx_reader;
extern const struct dscp_writer_class dscp_vhdx_writer;

#endif /* DSC_VHDX_H */
