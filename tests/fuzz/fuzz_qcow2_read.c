/* fuzz_qcow2_read.c - libFuzzer harness: the qcow2 reader, both walks.
 *
 * Each input is read to the end or the first error three times: over a
 * memory stream, which seeks (the guest-order walk), with decompression
 * inline (threads 1) and on the pool (threads 2); and over a "trickle"
 * stream that cannot seek and returns 1 to 13 bytes a read (the forward,
 * file-order walk). The two seekable runs must agree exactly: result code,
 * extents and bytes (an FNV-1a digest in order). The forward run may refuse
 * what the seekable one reads (an image that is not stream-ordered), and
 * its extents come in file order; when both succeed they must describe the
 * same disk: a digest summed over the non-zero 512-byte sectors, which
 * neither order nor splitting changes. Every extent lies inside the
 * capacity and is sector-aligned (seekable: ascending); a failure carries
 * a message. Then the refcount check of dsc-img check runs over the
 * tables. A crash, a sanitizer report, a hang or an abort()
 * here is a bug in libdsc.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dsc.h"
#include "fuzz_stream.h"

/* Bounds on one run: calls, and bytes of disk (a 128 KiB input can name
 * millions of 2 MiB compressed clusters that all point at one stream). */
#define MAX_CALLS (1u << 16)
#define MAX_DISK_BYTES (256ull << 20)

struct outcome {
	dsc_err rc;
	uint64_t ordered; /* digest of the extents in order */
	uint64_t sectors; /* sum over non-zero sectors: order-free */
	bool capped;      /* stopped at MAX_DISK_BYTES */
};

static void read_all(const uint8_t *data, size_t size, unsigned threads, bool trickle,
		     struct outcome *o)
{
	struct dsc_error e = {0};
	struct dsc_extent ext;
	dsc_stream *in = NULL;
	dsc_reader *r = NULL;
	uint64_t cap, h = FUZZ_FNV_INIT, sum = 0, bytes = 0, last_end = 0;
	unsigned calls = 0;
	dsc_err rc;

	memset(o, 0, sizeof *o);
	in = fuzz_stream(data, size, trickle, "fuzz.qcow2");
	rc = dsc_reader_open(in, dsc_format_from_name("qcow2"), &r, &e);
	if (rc != DSC_OK) {
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
		if (!ext.data || ext.offset >= cap || ext.length > cap - ext.offset ||
		    ext.offset % 512 || ext.length % 512)
			abort();
		/* The seekable walk goes in ascending order, never back. */
		if (!trickle && ext.offset < last_end)
			abort();
		last_end = ext.offset + ext.length;
		h = fnv(h, &ext.offset, sizeof ext.offset);
		h = fnv(h, &ext.length, sizeof ext.length);
		h = fnv(h, ext.data, ext.length);
		sum += fuzz_sector_sum(&ext);
		bytes += ext.length;
		if (bytes >= MAX_DISK_BYTES) {
			o->capped = true;
			break;
		}
	}
out:
	dsc_reader_close(r);
	dsc_stream_close(in);
	o->rc = rc;
	o->ordered = h;
	o->sectors = sum;
}

/* dsc-img check: the refcount check over the tables (an inspecting reader,
 * so a backing file or a corrupt mark does not stop it). It ends in a
 * counted result or an error with a message; the image end it reports
 * lies inside the file, rounded up to a cluster. */
static void check_tables(const uint8_t *data, size_t size)
{
	struct dsc_reader_opts ro = {.inspect = true};
	struct dsc_check_report rep = {0};
	struct dsc_error e = {0};
	dsc_stream *in = fuzz_stream(data, size, false, "fuzz.qcow2");
	dsc_reader *r = NULL;
	dsc_err rc = dsc_reader_open_opts(in, dsc_format_from_name("qcow2"), &ro, &r, &e);

	if (rc == DSC_OK) {
		uint64_t cs = dsc_reader_cluster_size(r);

		rc = dsc_reader_check(r, &rep, &e);
		if (rc != DSC_OK && (e.code != rc || !e.message[0]))
			abort();
		if (rc == DSC_OK &&
		    (!rep.checked || !cs || rep.image_end_offset > (size + cs - 1) / cs * cs))
			abort();
	}
	dsc_reader_close(r);
	dsc_stream_close(in);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct outcome a, b, c;

	read_all(data, size, 1, false, &a);
	read_all(data, size, 2, false, &b);
	if (a.rc != b.rc || a.ordered != b.ordered)
		abort(); /* the thread pool changed the outcome */
	read_all(data, size, 1, true, &c);
	if (a.rc == DSC_OK && c.rc == DSC_OK && !a.capped && !c.capped && a.sectors != c.sectors)
		abort(); /* the two walks read different disks */
	check_tables(data, size);
	return 0;
}
