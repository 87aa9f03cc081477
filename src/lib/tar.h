/* tar.h - a forward-only tar reader (ustar, pax and GNU extensions) for OVA.
 *
 * Facts (POSIX.1-2001 pax and ustar; GNU tar's manual, "Basic Tar Format"):
 * 512-byte headers, name at 0 (100 bytes), size at 124 (12 bytes, octal, or
 * base-256 when its first byte has bit 7 set: GNU, for members of 8 GiB and
 * more), checksum at 148 (8 octal digits: the sum of the header's bytes with
 * the checksum field taken as spaces), type at 156, magic at 257 ("ustar\0"
 * POSIX, "ustar  \0" GNU), prefix at 345 (155 bytes, POSIX only). Type 'x'
 * carries pax records ("LEN key=value\n") for the next member (path=,
 * size=), 'g' global ones, 'L' a GNU long name for the next member. Data is
 * padded to 512 bytes; two zero blocks end the archive.
 */
#ifndef DSC_TAR_H
#define DSC_TAR_H

#include "internal.h"

#define DSCP_TAR_BLOCK 512u
/* The longest member name kept (longer ones are refused by name). */
#define DSCP_TAR_NAME_MAX 1024u
/* The largest pax or GNU long-name record read. */
#define DSCP_TAR_EXT_MAX (64u * 1024)
/* The largest member (16 TiB): a bigger size field is refused. */
#define DSCP_TAR_MEMBER_MAX (1ull << 44)

struct dscp_tar_member {
	char name[DSCP_TAR_NAME_MAX + 1];
	uint64_t size;   /* data bytes */
	uint64_t offset; /* archive offset of the data */
	char type;       /* '0' regular (also '\0'), '5' directory, ... */
};

struct dscp_tar {
	dsc_stream *in;   /* not owned */
	const char *what; /* how messages name the archive ("OVA") */
	uint64_t pos;     /* archive offset of the next byte of `in` */
	uint64_t left;    /* data bytes of the current member not read */
	uint64_t pad;     /* padding after them */
	bool ended;       /* the end blocks (or the input's end) were met */
};

/* Start reading the archive on `in` at its current position. */
void dscp_tar_init(struct dscp_tar *t, dsc_stream *in, const char *what);
/* Skip what is left of the current member and read the next header:
 * *m is the next regular file, directory or other member (extension
 * headers are applied, not returned); *end is true at the archive's end. */
dsc_err dscp_tar_next(struct dscp_tar *t, struct dscp_tar_member *m, bool *end,
		      struct dsc_error *e);
/* Read the current member's data: *got < len only at its end (then 0);
 * the input ending first is DSC_ERR_TRUNCATED. */
dsc_err dscp_tar_read(struct dscp_tar *t, void *buf, size_t len, size_t *got, struct dsc_error *e);
/* Whether a probe's head is a ustar header with a valid checksum. */
bool dscp_tar_header_valid(const uint8_t *h);

/* Lay out a ustar header for a regular file `name` (at most 100 bytes) of
 * `size` bytes: octal below 8 GiB, GNU base-256 above (what GNU tar,
 * libarchive and Python's tarfile read), mode 0644, owner 0. */
void dscp_tar_header(uint8_t h[DSCP_TAR_BLOCK], const char *name, uint64_t size, uint64_t mtime);

#endif
