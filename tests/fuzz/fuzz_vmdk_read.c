/* fuzz_vmdk_read.c - libFuzzer harness: the VMDK stream reader.
 *
 * Each input is read three times, to the end or the first error: over a
 * memory stream with the decompression inline (threads 1), through the
 * thread pool (threads 2), and over a "trickle" stream whose reads return
 * 1 to 13 bytes at a time (threads 1). The three runs must agree exactly:
 * the same extents (offset, length, bytes: an FNV-1a digest) and the same
 * result code. Every extent must lie inside the reported capacity; a
 * failure must carry a message. A crash, a sanitizer report, a hang or an
 * abort() here is a bug in libdsc.
 * A header with neither the compressed nor the markers flag goes to the
 * monolithicSparse reader, whose seekable and forward walks may rightly
 * differ (guest against file order, the redundant tables compared only
 * when it can seek): for those only the first two runs must agree, and
 * fuzz_vmdk_sparse_read.c compares the walks its own way.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dsc.h"
#include "fuzz_stream.h"

/* Upper bound on dsc_reader_next() calls: an input of the fuzzer's maximum
 * length cannot hold more grain markers than sectors. */
#define MAX_CALLS (1u << 16)

/* Read everything; returns the result code, *digest covers the extents. */
static dsc_err read_all(const uint8_t *data, size_t size, unsigned threads, bool trickle,
			uint64_t *digest)
{
	struct dsc_error e = {0};
	struct dsc_extent ext;
	dsc_stream *in = NULL;
	dsc_reader *r = NULL;
	uint64_t cap, h = FUZZ_FNV_INIT;
	unsigned calls = 0;
	dsc_err rc;

	in = fuzz_stream(data, size, trickle, "fuzz.vmdk");
	rc = dsc_reader_open(in, DSC_FORMAT_VMDK, &r, &e);
	if (rc != DSC_OK) {
		/* A failure must say what is wrong and leave no reader. */
		if (r || e.code != rc || !e.message[0])
			abort();
		goto out;
	}
	dsc_reader_set_threads(r, threads);
	cap = dsc_reader_capacity(r);
	h = fnv(h, &cap, sizeof cap);
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
		if (!ext.data || ext.offset >= cap || ext.length > cap - ext.offset)
			abort();
		/* Every byte is read, so ASan sees any access past the grain. */
		h = fnv(h, &ext.offset, sizeof ext.offset);
		h = fnv(h, &ext.length, sizeof ext.length);
		h = fnv(h, ext.data, ext.length);
	}
out:
	dsc_reader_close(r);
	dsc_stream_close(in);
	*digest = h;
	return rc;
}

/* "KDMV" and neither VMDK_FLAG_COMPRESSED (bit 16) nor VMDK_FLAG_MARKERS
 * (bit 17) in the flags at byte 8: what vmdk_read.c hands to the sparse
 * reader. */
static bool hosted_sparse(const uint8_t *data, size_t size)
{
	uint32_t flags;

	if (size < 12 || memcmp(data, "KDMV", 4) != 0)
		return false;
	flags = (uint32_t)data[8] | (uint32_t)data[9] << 8 | (uint32_t)data[10] << 16 |
		(uint32_t)data[11] << 24;
	return (flags & (3u << 16)) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t d1, d2, d3;
	dsc_err r1, r2, r3;

	r1 = read_all(data, size, 1, false, &d1);
	r2 = read_all(data, size, 2, false, &d2);
	r3 = read_all(data, size, 1, true, &d3);
	if (r1 != r2 || d1 != d2)
		abort(); /* the thread pool changed the outcome */
	if (hosted_sparse(data, size))
		return 0;
	if (r1 != r3 || d1 != d3)
		abort(); /* short reads changed the outcome */
	return 0;
}
