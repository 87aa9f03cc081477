/* fuzz_ova_read.c - libFuzzer harness: the OVA layer (tar reader, OVF
 * parser, manifest checks) and what it hands on.
 *
 * Each input is listed (dsc_ova_list), then read as an OVA to its end or
 * its first error, over a memory stream and over the trickle stream of
 * fuzz_stream.h (a few bytes a read, no seeks), choosing the first disk
 * and then the second. A failure must carry a message; extents must lie
 * inside the capacity once it is known; at a clean end the capacity is
 * known; the run is bounded in calls and disk bytes. A crash, a sanitizer
 * report, a hang or an abort() is a bug.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dsc.h"
#include "fuzz_stream.h"

#define MAX_CALLS (1u << 16)
#define MAX_DISK_BYTES (64ull << 20)

static void walk(const uint8_t *data, size_t size, bool trickle, const char *disk)
{
	struct dsc_reader_opts ro = {.disk = disk};
	struct dsc_error e = {0};
	struct dsc_extent ext;
	dsc_stream *in = fuzz_stream(data, size, trickle, "fuzz.ova");
	dsc_reader *r = NULL;
	uint64_t cap, bytes = 0;
	unsigned calls = 0;
	dsc_err rc;

	rc = dsc_reader_open_opts(in, dsc_format_from_name("ova"), &ro, &r, &e);
	if (rc != DSC_OK) {
		if (r || e.code != rc || !e.message[0])
			abort();
		goto out;
	}
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
		cap = dsc_reader_capacity(r);
		if (!ext.data || ext.offset >= cap || ext.length > cap - ext.offset)
			abort();
		bytes += ext.length;
		if (bytes >= MAX_DISK_BYTES)
			break;
	}
	if (rc == DSC_OK && bytes < MAX_DISK_BYTES &&
	    dsc_reader_capacity(r) == DSC_CAPACITY_UNKNOWN)
		abort();
out:
	dsc_reader_close(r);
	dsc_stream_close(in);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dsc_ova_disk disks[4];
	struct dsc_error e = {0};
	dsc_stream *in = fuzz_stream(data, size, false, "fuzz.ova");
	size_t n = 0;

	if (dsc_ova_list(in, disks, 4, &n, &e) != DSC_OK) {
		if (!e.message[0])
			abort();
	} else if (n > 4) {
		abort();
	}
	dsc_stream_close(in);
	walk(data, size, false, NULL);
	walk(data, size, true, NULL);
	walk(data, size, false, "2");
	return 0;
}
