/* qcow2.h - qcow2 on-disk structures shared by the reader, the writer and
 * their tests.
 *
 * "facts §1" refers to docs/formats.md section 1 in the project's shared
 * notes (qemu's docs/interop/qcow2.rst and block/qcow2.h). All fields are
 * big-endian.
 */
#ifndef DSC_QCOW2_H
#define DSC_QCOW2_H

#include "internal.h"

#define QCOW2_MAGIC 0x514649fbu /* "QFI\xfb" */
#define QCOW2_V2_HEADER_LEN 72u
#define QCOW2_V3_HEADER_LEN 104u /* the minimum; qemu writes 112 */
#define QCOW2_WRITE_HEADER_LEN 112u

/* Incompatible feature bits (v3). */
#define QCOW2_INCOMPAT_DIRTY 0x1ull
#define QCOW2_INCOMPAT_CORRUPT 0x2ull
#define QCOW2_INCOMPAT_DATA_FILE 0x4ull
#define QCOW2_INCOMPAT_COMPRESSION 0x8ull
#define QCOW2_INCOMPAT_EXTL2 0x10ull
#define QCOW2_INCOMPAT_KNOWN 0x1full
#define QCOW2_COMPAT_LAZY_REFCOUNTS 0x1ull

#define QCOW2_CRYPT_NONE 0u
#define QCOW2_CRYPT_AES 1u
#define QCOW2_CRYPT_LUKS 2u

#define QCOW2_COMPRESSION_DEFLATE 0u
#define QCOW2_COMPRESSION_ZSTD 1u

/* Header extension types. */
#define QCOW2_EXT_END 0u
#define QCOW2_EXT_BACKING_FORMAT 0xe2792acau
#define QCOW2_EXT_FEATURE_TABLE 0x6803f857u
#define QCOW2_EXT_BITMAPS 0x23852875u
#define QCOW2_EXT_CRYPTO 0x0537be77u
#define QCOW2_EXT_DATA_FILE 0x44415441u

/* Table entries (facts §1, masks from qemu's qcow2.h). */
#define QCOW2_OFLAG_COPIED (1ull << 63)
#define QCOW2_OFLAG_COMPRESSED (1ull << 62)
#define QCOW2_OFLAG_ZERO 1ull
#define QCOW2_L1_OFFSET_MASK 0x00fffffffffffe00ull
#define QCOW2_L1_RESERVED 0x7f000000000001ffull
#define QCOW2_L2_OFFSET_MASK 0x00fffffffffffe00ull
#define QCOW2_L2_RESERVED 0x3f000000000001feull
#define QCOW2_REFT_OFFSET_MASK 0xfffffffffffffe00ull
#define QCOW2_SUBCLUSTERS 32u /* per cluster with extended L2 entries */

/* Named limits on what a reader accepts (qemu's, facts §1). */
#define QCOW2_MIN_CLUSTER_BITS 9u
#define QCOW2_MAX_CLUSTER_BITS 21u          /* 2 MiB */
#define QCOW2_MIN_EXTL2_CLUSTER_BITS 14u    /* extended L2 needs 16 KiB */
#define QCOW2_MAX_L1_BYTES (32u << 20)      /* 32 MiB of L1 table */
#define QCOW2_MAX_REFTABLE_BYTES (8u << 20) /* 8 MiB of refcount table */
#define QCOW2_MAX_HOST_OFFSET (1ull << 56)  /* host offsets below 2^56 */
#define QCOW2_MAX_BACKING_NAME 1023u        /* backing_file_size */
#define QCOW2_MAX_REFCOUNT_ORDER 6u         /* 64-bit refcounts */
#define QCOW2_MAX_VIRTUAL_SIZE (1ull << 61) /* qemu's QCOW_MAX_... bound */

/* Named limits of the reader's own (qcow2_read.c). */
#define QCOW2_MAX_COMPRESSED_EXTRA 512u /* compressed length <= cluster + 512 */
#define QCOW2_READ_RUN (4u << 20)       /* seekable input: bytes read at once */
#define QCOW2_READ_GAP (64u << 10)      /* ... and a gap read through, not seeked */
#define QCOW2_SKIP_READ (1u << 20)      /* ... on a URL (or 4 clusters): a seek is a request */
#define QCOW2_MIN_HOLDBACK (4u << 20)   /* forward: max(2 clusters, this) held back */
#define QCOW2_MAX_PENDING (1u << 20)    /* forward: tables + clusters mapped ahead */
#define QCOW2_POOL_BYTES (64u << 20)    /* clusters being decompressed, at most */
#define QCOW2_MAX_EXT_NAME 256u         /* bytes of a backing name quoted in a message */

/* Named limits of the writer (qcow2_write.c). */
#define QCOW2_MAX_PLAN_BYTES (64u << 20)   /* two-pass allocation bitmap */
#define QCOW2_MAX_REFCOUNT_MEM (64u << 20) /* -c: one byte per host cluster */
#define QCOW2_DEFLATE_WINDOW_BITS 12       /* qemu inflates with windowBits -12 */
#define QCOW2_ZSTD_LEVEL 3                 /* qemu's: libzstd's default level */

/* Named limits of dsc-img check (qcow2_check.c): host clusters counted
 * (two bytes and a bit each: 68 MiB for 2^25, a 2 TiB file of 64 KiB
 * clusters), snapshots, and a snapshot's extra data. */
#define QCOW2_MAX_CHECK_CLUSTERS (1u << 25)
#define QCOW2_MAX_SNAPSHOTS 65536u
#define QCOW2_MAX_SNAPSHOT_EXTRA 1024u

/* Big-endian writers for the header and the tables. */
static inline void qcow2_put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}
static inline void qcow2_put_be64(uint8_t *p, uint64_t v)
{
	qcow2_put_be32(p, (uint32_t)(v >> 32));
	qcow2_put_be32(p + 4, (uint32_t)v);
}

/* The decoded header; fields a v2 header lacks hold their v2 meaning. */
struct qcow2_header {
	uint32_t version;
	uint64_t backing_file_offset;
	uint32_t backing_file_size;
	uint32_t cluster_bits;
	uint64_t size; /* virtual size, bytes */
	uint32_t crypt_method;
	uint32_t l1_size; /* entries */
	uint64_t l1_table_offset;
	uint64_t refcount_table_offset;
	uint32_t refcount_table_clusters;
	uint32_t nb_snapshots;
	uint64_t snapshots_offset;
	uint64_t incompatible;
	uint64_t compatible;
	uint64_t autoclear;
	uint32_t refcount_order;
	uint32_t header_length;
	uint8_t compression_type;
};

/* The reader (qcow2_read.c) and writer (qcow2_write.c) of the format. */
extern const struct dscp_reader_class dscp_qcow2_reader;
extern const struct dscp_writer_class dscp_qcow2_writer;

/* dsc-img check (qcow2_check.c): count the clusters the tables of the image
 * at `base` of seekable `in` use and compare them with its refcounts. */
dsc_err dscp_qcow2_check(dsc_stream *in, uint64_t base, uint64_t file_size,
			 const struct qcow2_header *h, bool has_bitmaps,
			 struct dsc_check_report *rep, struct dsc_error *e);

#endif /* DSC_QCOW2_H */
