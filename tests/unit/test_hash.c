/* test_hash.c - unit tests of the SHA-256 streams: the read and write
 * wrappers, dsc_stream_sha256_verify() and the gate that holds an output's
 * finish until the input's digest is checked.
 *
 * Digests are compared with libcrypto's one-shot SHA256 on the same bytes
 * and with the FIPS 180-2 test vectors. Inputs are read in 1-byte pieces
 * and through injected errors; the write wrapper is fed the seek/resize
 * pattern of the raw writer and must hash the file as it lands.
 */
#include "testutil.h"

#if HAVE_CRYPTO

#include <openssl/sha.h>

static void ref_hex(const void *buf, size_t len, char hex[65])
{
	unsigned char md[SHA256_DIGEST_LENGTH];
	size_t i;

	SHA256(buf, len, md);
	for (i = 0; i < sizeof md; i++)
		sprintf(hex + 2 * i, "%02x", md[i]);
}

/* Read everything through s in pieces of `step`. */
static dsc_err drain(dsc_stream *s, size_t step, uint64_t *total, struct dsc_error *e)
{
	uint8_t buf[4096];
	size_t n;
	dsc_err rc;

	*total = 0;
	for (;;) {
		rc = dsc_read_full(s, buf, DSC_MIN(step, sizeof buf), &n, e);
		if (rc != DSC_OK)
			return rc;
		*total += n;
		if (n == 0)
			return DSC_OK;
	}
}

static void test_vectors(void)
{
	static const struct {
		const char *in, *hex;
	} v[] = {
		{"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
		{"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
		{"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
		 "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
	};
	size_t i;

	for (i = 0; i < sizeof v / sizeof *v; i++) {
		struct dsc_error e = {0};
		dsc_stream *h = NULL;
		char hex[DSC_SHA256_HEX_LEN + 1];
		uint64_t n;

		REQUIRE_OK(dsc_stream_open_sha256(tu_mem_stream(v[i].in, strlen(v[i].in), "v"),
						  DSC_SHA256_OWN, &h, &e),
			   &e);
		ASSERT_OK(drain(h, 1, &n, &e), &e);
		ASSERT_EQ_U64(n, strlen(v[i].in));
		ASSERT_OK(dsc_stream_sha256_hex(h, hex, &e), &e);
		ASSERT(strcmp(hex, v[i].hex) == 0);
		/* Asking twice gives the same answer. */
		ASSERT_OK(dsc_stream_sha256_hex(h, hex, &e), &e);
		ASSERT(strcmp(hex, v[i].hex) == 0);
		dsc_stream_close(h);
	}
}

static void test_read_wrapper(void)
{
	size_t len = 3 * 65536 + 17;
	uint8_t *data = tu_pattern(len, TU_SPARSE, 7);
	struct tu_fault_opts fo;
	struct dsc_error e = {0};
	dsc_stream *h = NULL, *inner;
	char want[65], hex[DSC_SHA256_HEX_LEN + 1];
	uint64_t n, data_off;

	ref_hex(data, len, want);
	tu_fault_defaults(&fo);
	fo.max_io = 1;
	fo.own_inner = true;
	inner = tu_fault_stream(tu_mem_stream(data, len, "disk.raw"), &fo, "disk.raw", NULL);
	ASSERT(dsc_stream_can_seek(inner));
	REQUIRE_OK(dsc_stream_open_sha256(inner, DSC_SHA256_OWN, &h, &e), &e);
	/* Hole detection and seeking are hidden: every byte is read. */
	ASSERT(!dsc_stream_can_seek(h));
	ASSERT_ERR(dsc_stream_next_data(h, 0, &data_off, NULL), DSC_ERR_UNSUPPORTED);
	ASSERT_EQ_U64(dsc_stream_total(h), len);
	ASSERT(strcmp(dsc_stream_name(h), "disk.raw") == 0);
	ASSERT_OK(drain(h, 1000, &n, &e), &e);
	ASSERT_EQ_U64(n, len);
	ASSERT_OK(dsc_stream_sha256_hex(h, hex, &e), &e);
	ASSERT(strcmp(hex, want) == 0);
	dsc_stream_close(h);

	/* Pushed-back bytes are hashed once. */
	REQUIRE_OK(dsc_stream_open_sha256(tu_mem_stream(data, len, "d"), DSC_SHA256_OWN, &h, &e),
		   &e);
	{
		uint8_t head[512];
		ASSERT_OK(dsc_read_full(h, head, sizeof head, NULL, &e), &e);
		ASSERT_OK(dsc_stream_unread(h, head, sizeof head, &e), &e);
	}
	ASSERT_OK(drain(h, 4096, &n, &e), &e);
	ASSERT_EQ_U64(n, len);
	ASSERT_OK(dsc_stream_sha256_hex(h, hex, &e), &e);
	ASSERT(strcmp(hex, want) == 0);
	dsc_stream_close(h);
	free(data);
}

static void test_read_error(void)
{
	uint8_t data[10000];
	struct tu_fault_opts fo;
	struct dsc_error e = {0};
	dsc_stream *h = NULL;
	uint64_t n;

	memset(data, 0xab, sizeof data);
	tu_fault_defaults(&fo);
	fo.fail_at = 5000;
	fo.fail_code = DSC_ERR_IO;
	fo.own_inner = true;
	REQUIRE_OK(dsc_stream_open_sha256(tu_fault_stream(tu_mem_stream(data, sizeof data, "x"),
							  &fo, "x", NULL),
					  DSC_SHA256_OWN, &h, &e),
		   &e);
	ASSERT_ERR(drain(h, 777, &n, &e), DSC_ERR_IO);
	ASSERT(e.code == DSC_ERR_IO);
	/* Sticky: the wrapper keeps failing. */
	ASSERT_ERR(drain(h, 777, &n, NULL), DSC_ERR_IO);
	dsc_stream_close(h);
}

static void test_write_wrapper(void)
{
	struct dsc_error e = {0};
	dsc_stream *mb = NULL, *h = NULL;
	const uint8_t *img;
	size_t img_len;
	char want[65], hex[DSC_SHA256_HEX_LEN + 1];

	/* The raw writer's pattern: data, a seek over a hole, data, a final
	 * size past the last byte. */
	REQUIRE_OK(dsc_stream_new_membuf("out.raw", &mb, &e), &e);
	REQUIRE_OK(dsc_stream_open_sha256(mb, DSC_SHA256_WRITE | DSC_SHA256_OWN, &h, &e), &e);
	ASSERT(dsc_stream_can_seek(h));
	ASSERT_OK(dsc_write_all(h, "abc", 3, &e), &e);
	ASSERT_OK(dsc_stream_seek(h, 100000, &e), &e);
	ASSERT_OK(dsc_write_all(h, "x", 1, &e), &e);
	ASSERT_OK(dsc_stream_set_size(h, 300000, false, &e), &e);
	ASSERT_OK(dsc_stream_finish(h, &e), &e);
	dsc_stream_mem_buffer(mb, &img, &img_len);
	ASSERT_EQ_U64(img_len, 300000);
	ref_hex(img, img_len, want);
	ASSERT_OK(dsc_stream_sha256_hex(h, hex, &e), &e);
	ASSERT(strcmp(hex, want) == 0);
	/* A backward seek: the digest is refused, never wrong. */
	ASSERT_OK(dsc_stream_seek(h, 0, &e), &e);
	ASSERT_OK(dsc_write_all(h, "A", 1, &e), &e);
	ASSERT_ERR(dsc_stream_sha256_hex(h, hex, NULL), DSC_ERR_UNSUPPORTED);
	dsc_stream_close(h);

	/* Over an unseekable output the wrapper cannot seek either. */
	{
		struct tu_fault_opts fo;
		tu_fault_defaults(&fo);
		fo.no_seek = true;
		fo.own_inner = true;
		REQUIRE_OK(dsc_stream_new_membuf("pipe", &mb, &e), &e);
		REQUIRE_OK(dsc_stream_open_sha256(tu_fault_stream(mb, &fo, "pipe", NULL),
						  DSC_SHA256_WRITE | DSC_SHA256_OWN, &h, &e),
			   &e);
		ASSERT(!dsc_stream_can_seek(h));
		dsc_stream_close(h);
	}
}

static void test_misuse(void)
{
	struct dsc_error e = {0};
	dsc_stream *m = tu_mem_stream("abc", 3, "m"), *h = NULL;
	char hex[DSC_SHA256_HEX_LEN + 1];

	ASSERT_ERR(dsc_stream_sha256_hex(m, hex, &e), DSC_ERR_INVAL);
	ASSERT_ERR(dsc_stream_sha256_verify(m, "00", NULL), DSC_ERR_INVAL);
	ASSERT_ERR(dsc_stream_open_sha256(NULL, 0, &h, NULL), DSC_ERR_INVAL);
	ASSERT(h == NULL);
	dsc_stream_close(m);
	ASSERT(dsc_sha256_hex_valid(
		"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
	ASSERT(dsc_sha256_hex_valid(
		"E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855"));
	ASSERT(!dsc_sha256_hex_valid(
		"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85"));
	ASSERT(!dsc_sha256_hex_valid(
		"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b8555"));
	ASSERT(!dsc_sha256_hex_valid(
		"g3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
	ASSERT(!dsc_sha256_hex_valid(NULL));
}

/* An output that counts finish() calls. */
struct counting {
	size_t written;
	int finished;
};

static dsc_err count_write(void *ctx, const void *buf, size_t len, size_t *n, struct dsc_error *e)
{
	((struct counting *)ctx)->written += len;
	*n = len;
	return DSC_OK;
}

static dsc_err count_finish(void *ctx, struct dsc_error *e)
{
	((struct counting *)ctx)->finished++;
	return DSC_OK;
}

static void count_close(void *ctx) {}

static const struct dsc_stream_ops counting_ops = {
	.name = "counting",
	.write = count_write,
	.finish = count_finish,
	.close = count_close,
};

static void test_verify_and_gate(void)
{
	size_t len = 200000;
	uint8_t *data = tu_pattern(len, TU_RANDOM, 3);
	struct counting cnt = {0};
	struct dsc_error e = {0};
	dsc_stream *in = NULL, *out = NULL, *g = NULL;
	char want[65], bad[65];
	uint8_t buf[1000];

	ref_hex(data, len, want);
	memcpy(bad, want, sizeof bad);
	bad[10] = bad[10] == '0' ? '1' : '0';

	/* A reader that stops early: verify reads the rest. */
	REQUIRE_OK(dsc_stream_open_sha256(tu_mem_stream(data, len, "in"), DSC_SHA256_OWN, &in, &e),
		   &e);
	ASSERT_OK(dsc_read_full(in, buf, sizeof buf, NULL, &e), &e);
	REQUIRE_OK(dsc_stream_new(&counting_ops, &cnt, "out", &out, &e), &e);
	REQUIRE_OK(dsc_stream_open_sha256_gate(out, in, want, DSC_SHA256_OWN, &g, &e), &e);
	ASSERT_OK(dsc_write_all(g, buf, sizeof buf, &e), &e);
	ASSERT_EQ_U64(cnt.written, sizeof buf);
	ASSERT_OK(dsc_stream_finish(g, &e), &e);
	ASSERT(cnt.finished == 1);
	dsc_stream_close(g);
	dsc_stream_close(in);

	/* Mismatch: finish fails and the inner output is never finished. */
	memset(&cnt, 0, sizeof cnt);
	REQUIRE_OK(dsc_stream_open_sha256(tu_mem_stream(data, len, "in"), DSC_SHA256_OWN, &in, &e),
		   &e);
	REQUIRE_OK(dsc_stream_new(&counting_ops, &cnt, "out", &out, &e), &e);
	REQUIRE_OK(dsc_stream_open_sha256_gate(out, in, bad, DSC_SHA256_OWN, &g, &e), &e);
	ASSERT_ERR(dsc_stream_finish(g, &e), DSC_ERR_INTEGRITY);
	ASSERT(strstr(e.message, "in: SHA-256 mismatch: expected ") != NULL);
	ASSERT(strstr(e.message, want) != NULL);
	ASSERT(cnt.finished == 0);
	dsc_stream_close(g);
	dsc_stream_close(in);

	/* Bad expectations are refused up front. */
	REQUIRE_OK(dsc_stream_open_sha256(tu_mem_stream(data, len, "in"), DSC_SHA256_OWN, &in, &e),
		   &e);
	REQUIRE_OK(dsc_stream_new(&counting_ops, &cnt, "out", &out, &e), &e);
	ASSERT_ERR(dsc_stream_open_sha256_gate(out, in, "xyz", 0, &g, NULL), DSC_ERR_INVAL);
	ASSERT_ERR(dsc_stream_open_sha256_gate(out, out, want, 0, &g, NULL), DSC_ERR_INVAL);
	ASSERT(g == NULL);
	dsc_stream_close(out);
	dsc_stream_close(in);
	free(data);
}

/* The whole converter behind the gate: a VMDK source that the reader
 * leaves before its end still has every byte checked. */
static void test_convert_gated(void)
{
	size_t len = 5 * 65536 + 1000, vlen;
	uint8_t *raw = tu_pattern(len, TU_COMPRESSIBLE, 9), *vmdk = NULL, *plus;
	struct dsc_error e = {0};
	dsc_stream *in = NULL, *mb = NULL, *g = NULL;
	struct dsc_convert_opts co = {.dst_fmt = DSC_FORMAT_RAW};
	struct dsc_convert_stats st;
	char want[65];

	vmdk = tu_vmdk_from_raw(raw, len - len % 512, &vlen);
	/* Bytes after the EOS marker: no reader looks at them, the hash does. */
	plus = tu_xmalloc(vlen + 3);
	memcpy(plus, vmdk, vlen);
	memcpy(plus + vlen, "END", 3);
	ref_hex(plus, vlen + 3, want);

	REQUIRE_OK(dsc_stream_open_sha256(tu_mem_stream(plus, vlen + 3, "d.vmdk"), DSC_SHA256_OWN,
					  &in, &e),
		   &e);
	REQUIRE_OK(dsc_stream_new_membuf("d.raw", &mb, &e), &e);
	REQUIRE_OK(dsc_stream_open_sha256_gate(mb, in, want, DSC_SHA256_OWN, &g, &e), &e);
	ASSERT_OK(dsc_convert(in, g, &co, &st, &e), &e);
	ASSERT_EQ_U64(st.capacity, len - len % 512);
	dsc_stream_close(g);
	dsc_stream_close(in);

	/* One flipped byte after the EOS marker fails the conversion. */
	plus[vlen + 1] ^= 1;
	memset(&e, 0, sizeof e);
	REQUIRE_OK(dsc_stream_open_sha256(tu_mem_stream(plus, vlen + 3, "d.vmdk"), DSC_SHA256_OWN,
					  &in, &e),
		   &e);
	REQUIRE_OK(dsc_stream_new_membuf("d.raw", &mb, &e), &e);
	REQUIRE_OK(dsc_stream_open_sha256_gate(mb, in, want, DSC_SHA256_OWN, &g, &e), &e);
	ASSERT_ERR(dsc_convert(in, g, &co, &st, &e), DSC_ERR_INTEGRITY);
	ASSERT(strstr(e.message, "SHA-256 mismatch") != NULL);
	dsc_stream_close(g);
	dsc_stream_close(in);
	free(plus);
	free(vmdk);
	free(raw);
}

int main(void)
{
	TU_RUN(test_vectors);
	TU_RUN(test_read_wrapper);
	TU_RUN(test_read_error);
	TU_RUN(test_write_wrapper);
	TU_RUN(test_misuse);
	TU_RUN(test_verify_and_gate);
	TU_RUN(test_convert_gated);
	return tu_exit();
}

#else

int main(void)
{
	tu_skip("built without libcrypto");
	return tu_exit();
}

#endif
