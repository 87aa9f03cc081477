/* fuzz_vhdx_read.c - libFuzzer harness: the VHDX reader, seekable and
 * forward-only.
 *
 * A VHDX is at least a few MiB (a 1 MiB header section, then 1 MiB-aligned
 * regions), far more than a fuzz input, so the input is a compact form that
 * the harness lays out into a sparse image:
 *   byte 0        flags: bit 0 recompute both header checksums, bit 1 the
 *                 region table's, bit 2 that of a log entry at the start
 *                 of the first piece (so mutations get past the CRC-32C)
 *   next 512      the file identifier at 0 ("vhdxfile", creator)
 *   next 2x4096   header 1 at 64 KiB, header 2 at 128 KiB
 *   next 4096     the region table's first 4 KiB, at 192 KiB and 256 KiB
 *   the rest      CHUNK-byte pieces, piece k at (1 + k) MiB: with qemu's
 *                 layout, the log, the BAT, the metadata, then blocks
 * tests/fuzz/seeds.sh turns small qemu-img images into this form.
 *
 * Each image is read to the end or the first error from a memory stream
 * (seeks: guest order) and from a trickle stream (1 to 13 bytes a read, no
 * seek: file order). Every extent lies inside the capacity; a failure
 * carries a message; when both runs succeed they read the same disk (a
 * digest over non-zero 512-byte sectors, independent of order). A crash, a
 * sanitizer report, a hang or an abort() here is a bug in libdsc.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crc32c.h"
#include "dsc.h"
#include "fuzz_stream.h"

#define MIB (1u << 20)
#define CHUNK (16u << 10)
#define MAX_CHUNKS 16u
#define MAX_CALLS (1u << 20)

static void fix_crc(uint8_t *p, size_t len)
{
	uint32_t c;

	memset(p + 4, 0, 4);
	c = dscp_crc32c(0, p, len);
	p[4] = (uint8_t)c;
	p[5] = (uint8_t)(c >> 8);
	p[6] = (uint8_t)(c >> 16);
	p[7] = (uint8_t)(c >> 24);
}

/* Lay the compact input out; NULL when it is too short to mean anything. */
static uint8_t *layout(const uint8_t *d, size_t n, size_t *len)
{
	const size_t head = 1 + 512 + 2 * 4096 + 4096;
	size_t chunks, i;
	uint8_t *img;

	if (n < head)
		return NULL;
	chunks = (n - head + CHUNK - 1) / CHUNK;
	if (chunks > MAX_CHUNKS)
		chunks = MAX_CHUNKS;
	*len = (size_t)MIB * (1 + chunks);
	if (!(img = calloc(1, *len)))
		abort();
	memcpy(img, d + 1, 512);
	memcpy(img + 0x10000, d + 513, 4096);
	memcpy(img + 0x20000, d + 513 + 4096, 4096);
	memcpy(img + 0x30000, d + 513 + 8192, 4096);
	if (d[0] & 1) {
		fix_crc(img + 0x10000, 4096);
		fix_crc(img + 0x20000, 4096);
	}
	if (d[0] & 2)
		fix_crc(img + 0x30000, 0x10000);
	memcpy(img + 0x40000, img + 0x30000, 0x10000);
	for (i = 0; i < chunks; i++) {
		size_t off = head + i * CHUNK, k = n - off < CHUNK ? n - off : CHUNK;

		memcpy(img + (size_t)MIB * (1 + i), d + off, k);
	}
	if ((d[0] & 4) && chunks) {
		uint8_t *le = img + MIB;
		uint32_t n = (uint32_t)le[8] | (uint32_t)le[9] << 8 | (uint32_t)le[10] << 16 |
			     (uint32_t)le[11] << 24;

		if (n >= 64 && n <= CHUNK)
			fix_crc(le, n);
	}
	/* The last chunk's end is the file's: a cut image stays cut. */
	if (chunks && n - head < chunks * CHUNK)
		*len = (size_t)MIB * chunks + (n - head - (chunks - 1) * CHUNK);
	return img;
}

struct outcome {
	dsc_err rc;
	uint64_t sectors;
};

static void read_all(const uint8_t *img, size_t len, bool trickle, struct outcome *o)
{
	struct dsc_error e = {0};
	struct dsc_extent ext;
	dsc_stream *in = fuzz_stream(img, len, trickle, "fuzz.vhdx");
	dsc_reader *r = NULL;
	uint64_t cap, sum = 0, last_end = 0;
	unsigned calls = 0;
	dsc_err rc;

	rc = dsc_reader_open(in, dsc_format_from_name("vhdx"), &r, &e);
	if (rc != DSC_OK) {
		if (r || e.code != rc || !e.message[0])
			abort();
		goto out;
	}
	cap = dsc_reader_capacity(r);
	for (;;) {
		rc = dsc_reader_next(r, &ext, &e);
		if (rc != DSC_OK) {
			if (e.code != rc || !e.message[0])
				abort();
			break;
		}
		if (ext.length == 0)
			break;
		if (++calls > MAX_CALLS)
			abort();
		if (!ext.data || ext.offset >= cap || ext.length > cap - ext.offset ||
		    ext.offset % 512 || ext.length % 512)
			abort();
		if (!trickle && ext.offset < last_end)
			abort(); /* the seekable walk is in guest order */
		last_end = ext.offset + ext.length;
		sum += fuzz_sector_sum(&ext);
	}
out:
	dsc_reader_close(r);
	dsc_stream_close(in);
	o->rc = rc;
	o->sectors = sum;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct outcome a, b;
	size_t len;
	uint8_t *img = layout(data, size, &len);

	if (!img)
		return 0;
	read_all(img, len, false, &a);
	read_all(img, len, true, &b);
	if (a.rc == DSC_OK && b.rc == DSC_OK && a.sectors != b.sectors)
		abort(); /* the two walks read different disks */
	free(img);
	return 0;
}
