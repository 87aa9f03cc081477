/* vmdk.h - VMDK sparse extent structures shared by the stream reader, the
 * writer and their tests.
 *
 * Section numbers ("facts §N") refer to docs/vmdk-stream-optimized.md in the
 * project's shared notes, which summarise VMware's Virtual Disk Format 5.0
 * and what qemu, VirtualBox and libvmdk actually accept.
 */
#ifndef DSC_VMDK_H
#define DSC_VMDK_H

#include "internal.h"

#define VMDK_SECTOR 512u
#define VMDK_MAGIC 0x564D444Bu    /* "KDMV" read as LE u32, facts §1 */
#define VMDK_GD_AT_END UINT64_MAX /* gdOffset meaning "see footer", §1 */

/* Header flags, facts §1. Bits 16-31 are incompatible: unknown ones are
 * rejected. */
#define VMDK_FLAG_NL_TEST 0x1u
#define VMDK_FLAG_RGD 0x2u
#define VMDK_FLAG_ZERO_GTE 0x4u
#define VMDK_FLAG_COMPRESSED 0x10000u
#define VMDK_FLAG_MARKERS 0x20000u
#define VMDK_INCOMPAT_MASK 0xFFFF0000u
#define VMDK_INCOMPAT_KNOWN (VMDK_FLAG_COMPRESSED | VMDK_FLAG_MARKERS)
#define VMDK_COMPRESS_DEFLATE 1

/* What we write, facts §1 and §3. */
#define VMDK_WRITE_VERSION 3
#define VMDK_WRITE_FLAGS (VMDK_FLAG_NL_TEST | VMDK_FLAG_COMPRESSED | VMDK_FLAG_MARKERS)
#define VMDK_GRAIN_SECTORS 128u    /* 64 KiB */
#define VMDK_GTES_PER_GT 512u      /* one table covers 32 MiB */
#define VMDK_OVERHEAD_SECTORS 128u /* where VMware starts the markers */

/* Named limits on what a reader accepts (every value comes from input). */
#define VMDK_MAX_GRAIN_SECTORS 2048u           /* 1 MiB grains; producers use 128 */
#define VMDK_MAX_GTES_PER_GT 512u              /* qemu rejects more */
#define VMDK_MAX_CAPACITY_SECTORS (1ull << 37) /* 64 TiB */
#define VMDK_MAX_DESCRIPTOR_SECTORS 2048u      /* 1 MiB of descriptor text */
#define VMDK_MAX_DESCRIPTOR_LINES 4096u
/* A hosted sparse extent's grain directory: 16 MiB of entries, 128 TiB of
 * 64 KiB grains at 512 entries per table (more than the capacity limit). */
#define VMDK_MAX_GD_ENTRIES (1u << 22)
/* Grains listed in memory when a sparse extent is read from a forward-only
 * input (16 bytes each: 128 MiB; 512 GiB of 64 KiB grains). A seekable
 * input needs one table at a time. */
#define VMDK_MAX_STREAM_GRAINS (1u << 23)
/* A descriptor file (vmdk_desc.c): qemu's are under 1 KiB; a 64 TiB
 * twoGbMaxExtent set has 32768 extent lines of about 40 bytes. */
#define VMDK_MAX_DESCRIPTOR_FILE (4u << 20)
#define VMDK_MAX_EXTENTS 32768u   /* 64 TiB (the capacity limit) in 2 GiB extents */
#define VMDK_MAX_EXTENT_NAME 255u /* NAME_MAX of Linux */

/* The ESX Server 2 sparse extent (COWD; vmfsSparse / VMFSSPARSE), from
 * VMware's cow_ext.h: a 2048-byte little-endian header (magic, version,
 * flags, capacity, granularity, directory sector, directory entries, free
 * sector, then a root's geometry or a child's parent file name), a grain
 * directory of 32-bit table sectors, tables of 4096 32-bit grain sectors
 * (0: unallocated). Read through the hosted sparse reader. */
#define VMDK_COWD_HEADER_SECTORS 4u /* COWDISK_DEFAULT_ROOTOFF */
#define VMDK_COWD_GTES_PER_GT 4096u /* COW_NUM_LEAF_ENTRIES */
#define VMDK_COWD_FLAG_ROOT 0x1u    /* clear: a child (redo log) of a parent */
#define VMDK_COWD_PARENT_OFF 32u    /* child: parentFileName[1024] */
#define VMDK_COWD_PARENT_LEN 1024u

/* Metadata marker types, facts §2. */
enum vmdk_marker_type {
	VMDK_MARKER_EOS = 0,
	VMDK_MARKER_GT = 1,
	VMDK_MARKER_GD = 2,
	VMDK_MARKER_FOOTER = 3,
	VMDK_MARKER_SKIP = 4, /* seen in vSphere exports; marker sector only */
};

/* The decoded 512-byte sparse extent header, facts §1. */
struct vmdk_header {
	uint32_t version;
	uint32_t flags;
	uint64_t capacity;    /* sectors */
	uint64_t grain_size;  /* sectors */
	uint64_t desc_offset; /* sectors */
	uint64_t desc_size;   /* sectors */
	uint32_t gtes_per_gt;
	uint64_t rgd_offset;
	uint64_t gd_offset;
	uint64_t overhead; /* sectors */
	uint8_t unclean;
	uint16_t compress;
};

/* Decode without validation. buf holds 512 bytes. */
void dscp_vmdk_header_decode(const uint8_t *buf, struct vmdk_header *h);
/* Encode into 512 bytes (zero padded), with the newline-test bytes. */
void dscp_vmdk_header_encode(const struct vmdk_header *h, uint8_t *buf);
/* Check every field against the format and the named limits. `name`
 * prefixes the message. */
dsc_err dscp_vmdk_header_validate(const struct vmdk_header *h, const char *name,
				  struct dsc_error *e);

/* A marker sector, facts §2. A grain marker has size > 0. */
struct vmdk_marker {
	uint64_t val;  /* grain: LBA in sectors; metadata: sectors that follow */
	uint32_t size; /* grain: compressed bytes; metadata: 0 */
	uint32_t type; /* metadata only */
};
void dscp_vmdk_marker_decode(const uint8_t *buf, struct vmdk_marker *m);
/* Encode a metadata marker into a full zeroed sector. */
void dscp_vmdk_meta_marker_encode(uint64_t val, uint32_t type, uint8_t *sector);

/* What we need from an embedded descriptor, facts §4. */
struct vmdk_descriptor {
	char create_type[64];
	uint64_t extent_sectors; /* from the first extent line, 0 if none */
	char extent_type[16];    /* SPARSE, FLAT, ... */
	char extent_file[256];
	/* parentCID other than ffffffff, or a parentFileNameHint: a delta
	 * (snapshot) disk; its value, for the message. */
	bool has_parent;
	char parent[64];
	/* For dsc-img info: CID and parentCID (ffffffff: none) as read, and
	 * the parentFileNameHint. */
	bool have_cid;
	uint32_t cid, parent_cid;
	char parent_hint[256];
};
/* Parse `len` bytes of descriptor text (NUL padding allowed). */
dsc_err dscp_vmdk_descriptor_parse(const char *text, size_t len, const char *name,
				   struct vmdk_descriptor *d, struct dsc_error *e);
/* Write a streamOptimized descriptor into buf (NUL terminated); returns
 * the text length, or 0 if buf is too small. cid and long_cid are random. */
size_t dscp_vmdk_descriptor_build(char *buf, size_t size, uint64_t capacity_sectors,
				  const char *extent_file, uint32_t cid,
				  const char *long_cid_hex32);

/* Like dscp_vmdk_descriptor_build, with the DDB's adapter type ("ide",
 * "lsilogic", ...) and virtual hardware version. */
size_t dscp_vmdk_descriptor_build_ddb(char *buf, size_t size, uint64_t capacity_sectors,
				      const char *extent_file, uint32_t cid,
				      const char *long_cid_hex32, const char *adapter,
				      unsigned hwversion);

/* The same for another createType ("monolithicSparse"). */
size_t dscp_vmdk_descriptor_build_type(char *buf, size_t size, uint64_t capacity_sectors,
				       const char *extent_file, uint32_t cid,
				       const char *long_cid_hex32, const char *adapter,
				       unsigned hwversion, const char *create_type);

/* True when buf holds a VMDK text descriptor (judged by its keys, not its
 * first comment); its createType value (or "unknown") goes to create_type. */
bool dscp_vmdk_text_descriptor(const uint8_t *buf, size_t len, char *create_type, size_t size);

/* The hosted sparse (monolithicSparse) reader, vmdk_sparse_read.c: open
 * with the validated header, the stream offset of the header (base), the
 * image byte the stream is at (pos) and the first sector after the header
 * and descriptor (meta_end). *out is set even on failure (free it). */
struct vmdk_sparse;
dsc_err dscp_vmdk_sparse_open(dsc_reader *r, const struct vmdk_header *h, uint64_t base,
			      uint64_t pos, uint64_t meta_end, struct vmdk_sparse **out,
			      struct dsc_error *e);
dsc_err dscp_vmdk_sparse_next(dsc_reader *r, struct vmdk_sparse *s, struct dsc_extent *ext,
			      struct dsc_error *e);
void dscp_vmdk_sparse_free(struct vmdk_sparse *s);

/* Descriptor files (vmdk_desc.c): open with the first head_len bytes
 * already read; the extents open in dscp_stream_extent_dir(r->in). *out is
 * set even on failure (free it). */
struct vmdk_desc;
dsc_err dscp_vmdk_desc_open(dsc_reader *r, const uint8_t *head, size_t head_len,
			    struct vmdk_desc **out, struct dsc_error *e);
dsc_err dscp_vmdk_desc_next(dsc_reader *r, struct vmdk_desc *d, struct dsc_extent *ext,
			    struct dsc_error *e);
void dscp_vmdk_desc_free(struct vmdk_desc *d);

/* The monolithicSparse writer (vmdk_sparse_write.c), driven by the VMDK
 * writer for -o subformat=monolithicSparse. *out is set even on failure
 * (free it). */
struct vmdk_sparse_writer;
dsc_err dscp_vmdk_sparse_wopen(dsc_writer *w, struct vmdk_sparse_writer **out,
			       const char *extent_name, uint32_t cid, const char *long_cid,
			       const char *adapter, unsigned hwversion, struct dsc_error *e);
dsc_err dscp_vmdk_sparse_put(dsc_writer *w, struct vmdk_sparse_writer *s,
			     const struct dsc_extent *ext, struct dsc_error *e);
dsc_err dscp_vmdk_sparse_finish(dsc_writer *w, struct vmdk_sparse_writer *s, uint64_t capacity,
				struct dsc_error *e);
dsc_err dscp_vmdk_sparse_plan(dsc_writer *w, struct vmdk_sparse_writer *s,
			      const struct dsc_extent *ext, struct dsc_error *e);
dsc_err dscp_vmdk_sparse_plan_done(dsc_writer *w, struct vmdk_sparse_writer *s, uint64_t capacity,
				   uint64_t *file_size, struct dsc_error *e);
void dscp_vmdk_sparse_wfree(struct vmdk_sparse_writer *s);

/* The reader (vmdk_read.c) and writer (vmdk_write.c) of the format. */
extern const struct dscp_reader_class dscp_vmdk_reader;
extern const struct dscp_writer_class dscp_vmdk_writer;

#endif /* DSC_VMDK_H */
