/* fuzz_vmdk_read.c - libFuzzer harness: the VMDK stream reader over memory.
 *
 * Each input is read twice to the end or the first error: once with the
 * decompression done inline (threads 1) and once through the thread pool
 * (threads 2), since the two paths hand grains back differently. Every
 * extent must lie inside the reported capacity, in bounds of its grain;
 * a reader that accepted the input must also have ended cleanly. A crash,
 * a sanitizer report, a hang or an abort() here is a bug in libdsc.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dsc.h"

/* Upper bound on dsc_reader_next() calls: a 1 MiB input cannot hold more
 * grain markers than sectors, so more calls mean a loop. */
#define MAX_CALLS (1u << 16)

static void read_all(const uint8_t *data, size_t size, unsigned threads)
{
	struct dsc_error e = {0};
	struct dsc_extent ext;
	dsc_stream *in = NULL;
	dsc_reader *r = NULL;
	uint64_t cap;
	unsigned calls = 0;
	dsc_err rc;

	if (dsc_stream_open_mem(data, size, "fuzz.vmdk", &in, &e) != DSC_OK)
		abort();
	rc = dsc_reader_open(in, DSC_FORMAT_VMDK, &r, &e);
	if (rc != DSC_OK) {
		/* A failure must say what is wrong and leave no reader. */
		if (r || e.code != rc || !e.message[0])
			abort();
		goto out;
	}
	dsc_reader_set_threads(r, threads);
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
		if (!ext.data || ext.offset >= cap || ext.length > cap - ext.offset)
			abort();
		/* Touch every byte so ASan sees any read past the grain. */
		{
			volatile uint8_t acc = 0;
			for (size_t i = 0; i < ext.length; i++)
				acc ^= ext.data[i];
			(void)acc;
		}
	}
out:
	dsc_reader_close(r);
	dsc_stream_close(in);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	read_all(data, size, 1);
	read_all(data, size, 2);
	return 0;
}
