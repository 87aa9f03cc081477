/* fuzz_two_walks.h - the body of a harness that reads an image format both
 * ways (fuzz_vhd_read.c, fuzz_vdi_read.c, fuzz_vmdk_sparse_read.c): include
 * it after defining FUZZ_FORMAT, the format's name ("vhd"). The walks and
 * what they must agree on are described in each harness.
 */
#ifndef FUZZ_FORMAT
#error "define FUZZ_FORMAT before including fuzz_two_walks.h"
#endif

/* Bounds on one run: calls, and bytes of disk produced. */
#define MAX_CALLS (1u << 16)
#define MAX_DISK_BYTES (256ull << 20)

static uint64_t scramble(uint64_t x)
{
	x ^= x >> 31;
	x *= 0x9e3779b97f4a7c15ull;
	x ^= x >> 29;
	return x;
}

struct outcome {
	dsc_err rc;
	uint64_t sectors; /* order-free sum over the non-zero sectors */
	bool capped;
};

static bool all_zero(const uint8_t *p, size_t n)
{
	while (n--)
		if (*p++)
			return false;
	return true;
}

static void walk(const uint8_t *data, size_t size, bool trickle, struct outcome *o)
{
	struct dsc_error e = {0};
	struct dsc_extent ext;
	dsc_stream *in = fuzz_stream(data, size, trickle, "fuzz." FUZZ_FORMAT);
	dsc_reader *r = NULL;
	uint64_t cap, bytes = 0, last_end = 0;
	unsigned calls = 0;
	dsc_err rc;

	memset(o, 0, sizeof *o);
	rc = dsc_reader_open(in, dsc_format_from_name(FUZZ_FORMAT), &r, &e);
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
		if (!ext.data || ext.offset >= cap || ext.length > cap - ext.offset ||
		    ext.offset % 512 || ext.length % 512)
			abort();
		if (!trickle && ext.offset < last_end)
			abort();
		last_end = ext.offset + ext.length;
		for (size_t k = 0; k < ext.length; k += 512)
			if (!all_zero(ext.data + k, 512))
				o->sectors += scramble((ext.offset + k) ^
						       fnv(FUZZ_FNV_INIT, ext.data + k, 512));
		bytes += ext.length;
		if (bytes >= MAX_DISK_BYTES) {
			o->capped = true;
			break;
		}
	}
	/* At the end the capacity is known, also on the forward walk. */
	if (rc == DSC_OK && !o->capped && dsc_reader_capacity(r) == DSC_CAPACITY_UNKNOWN)
		abort();
out:
	dsc_reader_close(r);
	dsc_stream_close(in);
	o->rc = rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct outcome a, b;

	walk(data, size, false, &a);
	walk(data, size, true, &b);
	if (a.rc == DSC_OK && b.rc == DSC_OK && !a.capped && !b.capped && a.sectors != b.sectors)
		abort(); /* the two walks read different disks */
	return 0;
}
