/* fuzz_convert.c - libFuzzer harness: dsc_convert() from memory to a memory
 * buffer, both ways, with round trips as the oracle.
 *
 * 1. The input as a VMDK stream -> raw, with a small max_capacity so a
 *    capacity bomb is refused instead of allocated. When that succeeds, the
 *    raw image must survive raw -> VMDK -> raw unchanged.
 * 2. The input as a raw disk -> VMDK -> raw must give back the input,
 *    zero padded to a whole sector (VMDK capacities count sectors), unless
 *    it starts like a compressed file (decompressed whatever is named).
 * 3. Detected (compressed inputs are decompressed), to raw.
 * A failed conversion must carry a message. Any mismatch aborts.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dsc.h"

#define MAX_CAPACITY (16u << 20)

/* Convert buf into a fresh malloc'd copy of the output. */
static dsc_err convert(const uint8_t *buf, size_t len, dsc_format from, dsc_format to,
		       uint8_t **out, size_t *out_len, struct dsc_error *e)
{
	struct dsc_convert_opts o = {0};
	struct dsc_convert_stats st;
	dsc_stream *in = NULL, *mb = NULL;
	const uint8_t *p;
	size_t n;
	dsc_err rc;

	*out = NULL;
	*out_len = 0;
	o.src_fmt = from;
	o.dst_fmt = to;
	o.threads = 1;
	o.level = DSC_LEVEL_FAST;
	o.max_capacity = MAX_CAPACITY;
	o.extent_name = "fuzz.vmdk";
	if (dsc_stream_open_mem(buf, len, "fuzz.in", &in, e) != DSC_OK ||
	    dsc_stream_new_membuf("fuzz.out", &mb, e) != DSC_OK)
		abort();
	rc = dsc_convert(in, mb, &o, &st, e);
	if (rc == DSC_OK) {
		dsc_stream_mem_buffer(mb, &p, &n);
		*out = malloc(n ? n : 1);
		if (!*out)
			abort();
		if (n)
			memcpy(*out, p, n);
		*out_len = n;
		if (to == DSC_FORMAT_RAW && st.capacity != n)
			abort();
	} else if (e->code != rc || !e->message[0]) {
		abort();
	}
	dsc_stream_close(mb);
	dsc_stream_close(in);
	return rc;
}

/* Whether buf starts like a compressed file (gzip, xz, zstd, bzip2) or a
 * tar (OVA): such an input is unwrapped whatever format is named, so it
 * is no raw disk to round-trip. */
static int compressed(const uint8_t *buf, size_t len)
{
	struct dsc_error e = {0};
	const struct dsc_format_info *f;
	dsc_stream *in = NULL;
	dsc_format fmt = DSC_FORMAT_UNKNOWN;

	if (dsc_stream_open_mem(buf, len, "fuzz.in", &in, &e) != DSC_OK)
		abort();
	if (dsc_format_detect(in, &fmt, &e) != DSC_OK)
		fmt = DSC_FORMAT_UNKNOWN;
	dsc_stream_close(in);
	f = dsc_format_get(fmt);
	return f && (f->flags & DSC_FMT_WRAPPER) && (f->flags & DSC_FMT_READ);
}

/* raw -> VMDK -> raw must give `raw` back, padded to a sector. */
static void round_trip(const uint8_t *raw, size_t len)
{
	struct dsc_error e = {0};
	uint8_t *vmdk, *back;
	size_t vlen, blen, padded = (len + 511) / 512 * 512;

	if (compressed(raw, len))
		return;

	if (convert(raw, len, DSC_FORMAT_RAW, DSC_FORMAT_VMDK, &vmdk, &vlen, &e) != DSC_OK) {
		/* Only an empty disk may be refused (no zero-sector VMDK). */
		if (len != 0)
			abort();
		return;
	}
	memset(&e, 0, sizeof e);
	if (convert(vmdk, vlen, DSC_FORMAT_VMDK, DSC_FORMAT_RAW, &back, &blen, &e) != DSC_OK)
		abort();
	if (blen != padded || memcmp(back, raw, len))
		abort();
	for (size_t i = len; i < blen; i++)
		if (back[i])
			abort();
	free(back);
	free(vmdk);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dsc_error e = {0};
	uint8_t *raw;
	size_t rlen;

	if (convert(data, size, DSC_FORMAT_VMDK, DSC_FORMAT_RAW, &raw, &rlen, &e) == DSC_OK) {
		if (rlen <= MAX_CAPACITY / 4)
			round_trip(raw, rlen);
		free(raw);
	}
	round_trip(data, size);
	/* Detection: every probe sees the input (head, and the tail of this
	 * seekable memory stream); whatever wins must convert or fail cleanly. */
	memset(&e, 0, sizeof e);
	if (convert(data, size, DSC_FORMAT_UNKNOWN, DSC_FORMAT_RAW, &raw, &rlen, &e) == DSC_OK)
		free(raw);
	return 0;
}
