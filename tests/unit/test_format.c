/* test_format.c - the format table, probes, options, sub-streams and queries.
 *
 * Walks the table (every entry complete, ids stable), runs each probe on the
 * signature it claims and on near misses (text and MBR sectors stay raw),
 * parses and checks option lists, and shows with a toy format that a new
 * format is one descriptor: it is probed from a table of its own and read
 * through the same framework as the real ones.
 */
#include "testutil.h"

#include <stdio.h>
#include <strings.h>
#include <unistd.h>

static void test_table_complete(void)
{
	size_t i, k, n = dsc_format_count();

	ASSERT(n >= 18);
	ASSERT(dsc_format_at(n) == NULL);
	ASSERT(dsc_format_get(DSC_FORMAT_UNKNOWN) == NULL);
	ASSERT(dsc_format_get((dsc_format)n + 1) == NULL);
	for (i = 0; i < n; i++) {
		const struct dsc_format_info *f = dsc_format_at(i);
		const struct dscp_format *d = dscp_format_at(i);

		REQUIRE(f && d && &d->info == f);
		ASSERT(f->name && *f->name);
		ASSERT(f->description && *f->description);
		ASSERT(f->aliases && f->extensions);
		/* Names and aliases resolve to the entry, in any case. */
		ASSERT(dsc_format_from_name(f->name) == i + 1);
		ASSERT(dscp_format_id(d) == i + 1);
		ASSERT(dsc_format_get((dsc_format)(i + 1)) == f);
		for (k = 0; f->aliases[k]; k++)
			ASSERT(dsc_format_from_name(f->aliases[k]) == i + 1);
		/* Every entry can be detected, and is read, written or refused
		 * by name. */
		ASSERT(d->probe != NULL);
		ASSERT(!!(f->flags & DSC_FMT_READ) == (d->reader != NULL || d->unwrap != NULL));
		/* A layer is a wrapper, read through, never a disk; only an
		 * archive (OVA) is also written. */
		if (d->unwrap)
			ASSERT((f->flags & DSC_FMT_WRAPPER) && !d->reader &&
			       (!d->writer || d->archive));
		ASSERT(!!(f->flags & DSC_FMT_WRITE) == (d->writer != NULL));
		if (d->reader) {
			ASSERT(d->reader->open && d->reader->next);
			ASSERT(f->flags & (DSC_FMT_READ_STREAMS | DSC_FMT_READ_NEEDS_SEEK));
		}
		if (d->writer)
			ASSERT(d->writer->open && d->writer->put && d->writer->finish);
		if (!d->reader && !d->writer)
			ASSERT(d->noun != NULL);
		/* A written format names the extension its outputs get. */
		if (d->writer)
			ASSERT(f->extensions[0] && f->extensions[0][0] == '.');
		for (k = 0; f->options && f->options[k].name; k++) {
			const struct dsc_option_info *o = &f->options[k];
			uint64_t v;

			ASSERT(o->help && *o->help);
			/* The default is a valid value of the option; only a
			 * text option may have none (a value derived at open). */
			ASSERT(o->default_value ? dscp_option_value(o, o->default_value, &v) :
						  o->type == DSC_OPTION_STRING);
		}
		/* Names are unique across names and aliases. */
		for (k = 0; k < i; k++)
			ASSERT(strcasecmp(dsc_format_at(k)->name, f->name));
	}
	/* dsc.h fixes these two ids. */
	ASSERT(!strcmp(dsc_format_name(DSC_FORMAT_RAW), "raw"));
	ASSERT(!strcmp(dsc_format_name(DSC_FORMAT_VMDK), "vmdk"));
	ASSERT(dsc_format_from_name("IMG") == DSC_FORMAT_RAW);
	ASSERT(dsc_format_from_name("vpc") == dsc_format_from_name("vhd"));
	ASSERT(dsc_format_from_name(NULL) == DSC_FORMAT_UNKNOWN);
	{
		char buf[256], tiny[6];

		ASSERT(!strcmp(dsc_format_list(DSC_FMT_WRITE, buf, sizeof buf),
			       "raw, vmdk, qcow2, vdi, vhdx, vhd, ova"));
		ASSERT(!strcmp(dsc_format_list(DSC_FMT_READ | DSC_FMT_WRITE, buf, sizeof buf),
			       "raw, vmdk, qcow2, vdi, vhdx, vhd, ova"));
		ASSERT(strstr(dsc_format_list(0, buf, sizeof buf), "qcow2, qcow, qed"));
		ASSERT(strlen(dsc_format_list(0, tiny, sizeof tiny)) < sizeof tiny);
		ASSERT(dsc_format_from_extension(".VMDK") == DSC_FORMAT_VMDK);
		ASSERT(dsc_format_from_extension(".img") == DSC_FORMAT_RAW);
		ASSERT(dsc_format_from_extension(".qcow2") == dsc_format_from_name("qcow2"));
		ASSERT(dsc_format_from_extension(".txt") == DSC_FORMAT_UNKNOWN);
		ASSERT(dsc_format_from_extension(NULL) == DSC_FORMAT_UNKNOWN);
	}
	ASSERT(!strcmp(dsc_format_name(999), "unknown"));
}

static void test_version(void)
{
	char v[32];

	snprintf(v, sizeof v, "%d.%d.%d", DSC_VERSION_MAJOR, DSC_VERSION_MINOR, DSC_VERSION_PATCH);
	ASSERT(!strcmp(v, DSC_VERSION_STRING));
	ASSERT(!strcmp(DSC_VERSION_STRING, PACKAGE_VERSION));
	ASSERT(!strcmp(dsc_version(), DSC_VERSION_STRING));
}

/* The name of what detection makes of buf (on a memory stream, so with the
 * tail when buf is large enough; `pipe` hides seeking). */
static const char *detect(const void *buf, size_t len, bool pipe)
{
	struct tu_fault_opts o;
	struct dsc_error e = {0};
	dsc_stream *s = tu_mem_stream(buf, len, "probe");
	dsc_format f = DSC_FORMAT_UNKNOWN;
	uint8_t first[8];
	size_t got = 0;

	if (pipe) {
		tu_fault_defaults(&o);
		o.no_seek = true;
		o.own_inner = true;
		s = tu_fault_stream(s, &o, "probe-pipe", NULL);
	}
	if (dsc_format_detect(s, &f, &e) != DSC_OK)
		tu_fail(__FILE__, __LINE__, "detect: %s", e.message);
	/* Detection consumes nothing. */
	if (dsc_read_full(s, first, sizeof first, &got, &e) != DSC_OK ||
	    dsc_stream_tell(s) != got || memcmp(first, buf, DSC_MIN(got, len)))
		tu_fail(__FILE__, __LINE__, "detect consumed input");
	dsc_stream_close(s);
	return dsc_format_name(f);
}

static uint8_t *sector_with(size_t len, size_t off, const void *magic, size_t n)
{
	uint8_t *b = tu_xcalloc(len);

	memcpy(b + off, magic, n);
	return b;
}

/* A zeroed input whose last 512 bytes are a VHD footer: the cookie and a
 * valid checksum (the one's complement of the byte sum, big-endian at 64). */
static uint8_t *vhd_footer_at_end(size_t len, bool good_sum)
{
	uint8_t *b = sector_with(len, len - 512, "conectix", 8), *f = b + len - 512;
	uint32_t sum = 0;
	size_t i;

	for (i = 0; i < 512; i++)
		sum += f[i];
	sum = ~sum + (good_sum ? 0 : 1);
	f[64] = (uint8_t)(sum >> 24);
	f[65] = (uint8_t)(sum >> 16);
	f[66] = (uint8_t)(sum >> 8);
	f[67] = (uint8_t)sum;
	return b;
}

static void expect(const char *want, uint8_t *b, size_t len, bool pipe, int line)
{
	const char *got = detect(b, len, pipe);

	if (strcmp(got, want))
		tu_fail(__FILE__, line, "detected %s, want %s", got, want);
	free(b);
}
#define EXPECT(want, b, len) expect(want, b, len, false, __LINE__)
#define EXPECT_PIPE(want, b, len) expect(want, b, len, true, __LINE__)

static void test_probes(void)
{
	const size_t L = 8192;
	uint8_t *b;

	EXPECT("vmdk", sector_with(L, 0, "KDMV", 4), L);
	EXPECT("vmdk", sector_with(L, 0, "COWD", 4), L);
	EXPECT("qcow2", sector_with(L, 0, "QFI\xfb\0\0\0\3", 8), L);
	EXPECT("qcow2", sector_with(L, 0, "QFI\xfb\0\0\0\2", 8), L);
	EXPECT("qcow", sector_with(L, 0, "QFI\xfb\0\0\0\1", 8), L);
	EXPECT("qed", sector_with(L, 0, "QED\0", 4), L);
	EXPECT("vdi", sector_with(L, 64, "\x7f\x10\xda\xbe", 4), L);
	EXPECT("vhdx", sector_with(L, 0, "vhdxfile", 8), L);
	EXPECT("vhd", sector_with(L, 0, "conectix", 8), L);
	/* A fixed VHD: only the footer, at the end of a seekable input. */
	EXPECT("vhd", vhd_footer_at_end(L, true), L);
	EXPECT("raw", vhd_footer_at_end(L, false), L);
	EXPECT_PIPE("raw", vhd_footer_at_end(L, true), L);
	EXPECT("parallels", sector_with(L, 0, "WithoutFreeSpace\2\0\0\0", 20), L);
	EXPECT("parallels", sector_with(L, 0, "WithouFreSpacExt\2\0\0\0", 20), L);
	EXPECT("raw", sector_with(L, 0, "WithoutFreeSpace\7\0\0\0", 20), L);
	EXPECT("luks", sector_with(L, 0, "LUKS\xba\xbe\0\2", 8), L);
	EXPECT("raw", sector_with(L, 0, "LUKS\xba\xbe\0\7", 8), L);
	EXPECT("dmg", sector_with(L, L - 512, "koly\0\0\0\4\0\0\2\0", 12), L);
	EXPECT_PIPE("raw", sector_with(L, L - 512, "koly\0\0\0\4\0\0\2\0", 12), L);
	EXPECT("bochs", sector_with(L, 0, "Bochs Virtual HD Image", 22), L);
	EXPECT("gzip", sector_with(L, 0, "\x1f\x8b\x08\x00", 4), L);
	EXPECT("raw", sector_with(L, 0, "\x1f\x8b\x08\xe0", 4), L);
	EXPECT("xz",
	       sector_with(L, 0,
			   "\xfd"
			   "7zXZ\0",
			   6),
	       L);
	EXPECT("zstd", sector_with(L, 0, "\x28\xb5\x2f\xfd", 4), L);
	EXPECT("zstd", sector_with(L, 0, "\x5a\x2a\x4d\x18", 4), L);
	EXPECT("bzip2", sector_with(L, 0, "BZh91AY&SY", 10), L);
	EXPECT("raw", sector_with(L, 0, "BZh0", 4), L);

	/* tar: ustar at 257 and a valid checksum. */
	b = sector_with(L, 0, "disk.ovf", 8);
	memcpy(b + 257, "ustar\00000", 8);
	{
		unsigned sum = 0;
		size_t i;

		memset(b + 148, ' ', 8);
		for (i = 0; i < 512; i++)
			sum += b[i];
		snprintf((char *)b + 148, 8, "%06o", sum);
	}
	EXPECT("ova", b, L);
	b = sector_with(L, 257, "ustar\00000", 8); /* checksum left wrong */
	EXPECT("raw", b, L);

	/* Text descriptors are judged by their keys. */
	EXPECT("vmdk",
	       (uint8_t *)strdup(
		       "# Disk Descriptor File\nversion=1\ncreateType=\"monolithicFlat\"\n"
		       "RW 2048 FLAT \"d-flat.vmdk\" 0\n"),
	       strlen("# Disk Descriptor File\nversion=1\ncreateType=\"monolithicFlat\"\n"
		      "RW 2048 FLAT \"d-flat.vmdk\" 0\n"));
	b = tu_xcalloc(L);
	strcpy((char *)b, "\r\n\r\ncreateType = \"twoGbMaxExtentSparse\"\r\nRDONLY 4192256 SPARSE "
			  "\"s001.vmdk\"\r\n");
	EXPECT("vmdk", b, L);
	/* Text that is no descriptor, and an MBR, stay raw. */
	b = tu_xcalloc(L);
	memset(b, 'A', L);
	memcpy(b, "# Disk DescriptorFile\nhello\n", 28);
	EXPECT("raw", b, L);
	b = tu_xcalloc(L);
	strcpy((char *)b, "createType is a word in this README\nversion control\n");
	memset(b + 60, 'x', L - 60);
	EXPECT("raw", b, L);
	b = sector_with(L, 0, "\xeb\x63\x90", 3);
	b[510] = 0x55;
	b[511] = 0xaa;
	EXPECT("raw", b, L);
	EXPECT("raw", tu_xcalloc(L), L);
	/* Inputs shorter than a probe's window. */
	EXPECT("raw", tu_xcalloc(1), 0);
	EXPECT("raw", sector_with(3, 0, "QFI", 3), 3);
	EXPECT("raw", sector_with(L, 0, "QFI\xfb\0\0\0\0", 8), L);
}

/* A known format without a reader is refused by name, before any extent. */
static void test_refusal(void)
{
	static const uint8_t qcow2[16] = "QFI\xfb\0\0\0\3";
	static const uint8_t qcow1[16] = "QFI\xfb\0\0\0\1";
	struct dsc_error e = {0};
	dsc_reader *r = (dsc_reader *)1;
	dsc_stream *s = tu_mem_stream(qcow1, sizeof qcow1, "disk.img");

	ASSERT_ERR(dsc_reader_open(s, DSC_FORMAT_UNKNOWN, &r, &e), DSC_ERR_UNSUPPORTED);
	ASSERT(r == NULL);
	ASSERT(!strcmp(e.message, "disk.img: a qcow (version 1) image; qcow is not supported yet"));
	dsc_stream_close(s);

	/* qcow2 has a reader now: 16 bytes are a header cut short. */
	memset(&e, 0, sizeof e);
	r = (dsc_reader *)1;
	s = tu_mem_stream(qcow2, sizeof qcow2, "disk.img");
	ASSERT_ERR(dsc_reader_open(s, DSC_FORMAT_UNKNOWN, &r, &e), DSC_ERR_TRUNCATED);
	ASSERT(r == NULL);
	ASSERT(strstr(e.message, "disk.img: truncated: input ends at byte 16"));
	dsc_stream_close(s);

	memset(&e, 0, sizeof e);
	s = tu_mem_stream("LUKS\xba\xbe\0\1", 8, "secret.img");
	ASSERT_ERR(dsc_reader_open(s, DSC_FORMAT_UNKNOWN, &r, &e), DSC_ERR_UNSUPPORTED);
	ASSERT(!strcmp(e.message,
		       "secret.img: a LUKS-encrypted image; encrypted images are not supported"));
	dsc_stream_close(s);

	/* -src-fmt raw reads the same bytes as a raw disk. */
	memset(&e, 0, sizeof e);
	s = tu_mem_stream(qcow2, sizeof qcow2, "disk.img");
	ASSERT_OK(dsc_reader_open(s, DSC_FORMAT_RAW, &r, &e), &e);
	ASSERT(r && dsc_reader_capacity(r) == sizeof qcow2);
	dsc_reader_close(r);
	dsc_stream_close(s);

	/* A descriptor's createType is its key line's, not a comment's. */
	{
		static const char d[] =
			"# createType=\"fake\"\nversion=1\nddb.createTypeX = \"no\"\n"
			"createType = \"twoGbMaxExtentFlat\"\nRW 8 FLAT \"x.vmdk\" 0\n";
		char ct[64];

		ASSERT(dscp_vmdk_text_descriptor((const uint8_t *)d, sizeof d - 1, ct, sizeof ct));
		ASSERT(!strcmp(ct, "twoGbMaxExtentFlat"));
	}
	/* A raw pipe that ends in a DMG trailer fails at its end. */
	memset(&e, 0, sizeof e);
	{
		uint8_t *img = sector_with(8192, 8192 - 512, "koly\0\0\0\4\0\0\2\0", 12);
		struct tu_fault_opts fo;
		struct dsc_extent x;
		dsc_err rc;

		tu_fault_defaults(&fo);
		fo.no_seek = true;
		fo.own_inner = true;
		s = tu_fault_stream(tu_mem_stream(img, 8192, "d"), &fo, "stdin", NULL);
		REQUIRE_OK(dsc_reader_open(s, DSC_FORMAT_UNKNOWN, &r, &e), &e);
		while ((rc = dsc_reader_next(r, &x, &e)) == DSC_OK && x.length)
			;
		ASSERT_ERR(rc, DSC_ERR_UNSUPPORTED);
		ASSERT(strstr(e.message, "ends with a DMG trailer"));
		dsc_reader_close(r);
		dsc_stream_close(s);
		free(img);
	}

	/* Writing a probe-only format. */
	memset(&e, 0, sizeof e);
	{
		dsc_writer *w = (dsc_writer *)1;
		dsc_stream *out = NULL;

		REQUIRE_OK(dsc_stream_new_membuf("x.qed", &out, &e), &e);
		ASSERT_ERR(dsc_writer_open(out, dsc_format_from_name("qed"), NULL, &w, &e),
			   DSC_ERR_UNSUPPORTED);
		ASSERT(w == NULL);
		ASSERT(strstr(e.message, "writing qed is not supported"));
		dsc_stream_close(out);
	}
}

static void test_optlist(void)
{
	struct dsc_error e = {0};
	dsc_optlist *l = NULL;

	REQUIRE_OK(dsc_optlist_new(&l, &e), &e);
	ASSERT_OK(dsc_optlist_parse(l, "subformat=streamOptimized,adapter_type=ide", &e), &e);
	ASSERT(dsc_optlist_count(l) == 2);
	ASSERT(!strcmp(dsc_optlist_get(l, "adapter_type"), "ide"));
	ASSERT(!strcmp(dsc_optlist_key(l, 0), "subformat"));
	ASSERT(dsc_optlist_key(l, 2) == NULL && dsc_optlist_value(l, 2) == NULL);
	/* A key given again replaces its value; ",," is a comma. */
	ASSERT_OK(dsc_optlist_parse(l, "adapter_type=lsilogic,note=a,,b,,", &e), &e);
	ASSERT(dsc_optlist_count(l) == 3);
	ASSERT(!strcmp(dsc_optlist_get(l, "adapter_type"), "lsilogic"));
	ASSERT(!strcmp(dsc_optlist_get(l, "note"), "a,b,"));
	ASSERT(!strcmp(dsc_optlist_value(l, 2), "a,b,"));
	/* Malformed text adds nothing. */
	memset(&e, 0, sizeof e);
	ASSERT_ERR(dsc_optlist_parse(l, "hwversion=6,oops", &e), DSC_ERR_INVAL);
	ASSERT(strstr(e.message, "'oops' is not key=value"));
	ASSERT(dsc_optlist_get(l, "hwversion") == NULL);
	memset(&e, 0, sizeof e);
	ASSERT_ERR(dsc_optlist_parse(l, "=x", &e), DSC_ERR_INVAL);
	memset(&e, 0, sizeof e);
	ASSERT_ERR(dsc_optlist_parse(l, "", &e), DSC_ERR_INVAL);
	memset(&e, 0, sizeof e);
	ASSERT_ERR(dsc_optlist_parse(l, "a=1,", &e), DSC_ERR_INVAL);
	memset(&e, 0, sizeof e);
	ASSERT_ERR(dsc_optlist_parse(l, "a b=1", &e), DSC_ERR_INVAL);
	ASSERT(dsc_optlist_count(l) == 3);
	dsc_optlist_free(l);
	dsc_optlist_free(NULL);
	ASSERT(dsc_optlist_count(NULL) == 0 && dsc_optlist_get(NULL, "x") == NULL);

	/* Bounded: at most 64 entries. */
	REQUIRE_OK(dsc_optlist_new(&l, &e), &e);
	{
		char key[16];
		int i;

		for (i = 0; i < 64; i++) {
			snprintf(key, sizeof key, "k%d", i);
			ASSERT_OK(dsc_optlist_set(l, key, "v", &e), &e);
		}
		memset(&e, 0, sizeof e);
		ASSERT_ERR(dsc_optlist_set(l, "one_more", "v", &e), DSC_ERR_LIMIT);
		ASSERT_OK(dsc_optlist_set(l, "k3", "w", &e), &e);
	}
	dsc_optlist_free(l);
}

static void check_opts(dsc_format f, const char *text, dsc_err want, const char *msg, int line)
{
	struct dsc_error e = {0};
	dsc_optlist *l = NULL;
	dsc_err got;

	dsc_optlist_new(&l, &e);
	if (dsc_optlist_parse(l, text, &e) != DSC_OK) {
		tu_fail(__FILE__, line, "parse %s: %s", text, e.message);
		dsc_optlist_free(l);
		return;
	}
	got = dsc_format_check_options(f, l, &e);
	if (got != want || (msg && !strstr(e.message, msg)))
		tu_fail(__FILE__, line, "%s: %s (%s), want %s with \"%s\"", text, dsc_err_name(got),
			e.message, dsc_err_name(want), msg ? msg : "");
	dsc_optlist_free(l);
}
#define CHECK_OPTS(f, t, want, msg) check_opts(f, t, want, msg, __LINE__)

static void test_check_options(void)
{
	struct dsc_error e = {0};

	CHECK_OPTS(DSC_FORMAT_VMDK, "subformat=streamOptimized,adapter_type=IDE,hwversion=6",
		   DSC_OK, NULL);
	CHECK_OPTS(
		DSC_FORMAT_VMDK, "foo=1", DSC_ERR_INVAL,
		"vmdk: unknown option 'foo' (vmdk options: subformat, adapter_type, hwversion, zeroed_grain)");
	CHECK_OPTS(DSC_FORMAT_VMDK, "subformat=monolithicFlat", DSC_ERR_INVAL,
		   "option subformat: 'monolithicFlat' is not one of streamOptimized");
	CHECK_OPTS(DSC_FORMAT_VMDK, "hwversion=3", DSC_ERR_INVAL, "from 4 to 99");
	CHECK_OPTS(DSC_FORMAT_VMDK, "hwversion=6x", DSC_ERR_INVAL, "hwversion");
	CHECK_OPTS(DSC_FORMAT_VMDK, "hwversion=99999999999999999999999", DSC_ERR_INVAL,
		   "hwversion");
	CHECK_OPTS(DSC_FORMAT_RAW, "preallocation=falloc", DSC_OK, NULL);
	CHECK_OPTS(DSC_FORMAT_RAW, "preallocation=full", DSC_ERR_INVAL, "one of off, falloc");
	CHECK_OPTS(DSC_FORMAT_RAW, "subformat=fixed", DSC_ERR_INVAL, "raw options: preallocation");
	ASSERT_OK(dsc_format_check_options(DSC_FORMAT_RAW, NULL, &e), &e);
	ASSERT_ERR(dsc_format_check_options(999, NULL, &e), DSC_ERR_INVAL);
}

/* Option values as the writer sees them: sizes, booleans and defaults. */
static void test_option_values(void)
{
	static const struct dsc_option_info size = {"s", DSC_OPTION_SIZE, "64k", "h", NULL,
						    512, 2u << 20};
	static const struct dsc_option_info flag = {"b", DSC_OPTION_BOOL, "off", "h", NULL, 0, 0};
	uint64_t v;

	ASSERT(dscp_option_value(&size, "64k", &v) && v == 65536);
	ASSERT(dscp_option_value(&size, "2M", &v) && v == 2u << 20);
	ASSERT(dscp_option_value(&size, "512", &v) && v == 512);
	ASSERT(dscp_option_value(&size, "1kb", &v) && v == 1024);
	ASSERT(!dscp_option_value(&size, "4M", &v));
	ASSERT(!dscp_option_value(&size, "256", &v));
	ASSERT(!dscp_option_value(&size, "1x", &v));
	ASSERT(!dscp_option_value(&size, "", &v));
	ASSERT(!dscp_option_value(&size, "-1", &v));
	ASSERT(dscp_option_value(&flag, "on", &v) && v == 1);
	ASSERT(dscp_option_value(&flag, "FALSE", &v) && v == 0);
	ASSERT(!dscp_option_value(&flag, "maybe", &v));
}

/* A VMDK written with options carries them in its descriptor. */
static void test_vmdk_options(void)
{
	struct dsc_error e = {0};
	struct dsc_writer_opts o = {.capacity = 1u << 20};
	dsc_optlist *l = NULL;
	dsc_stream *out = NULL;
	dsc_writer *w = NULL;
	const uint8_t *data;
	size_t len;

	REQUIRE_OK(dsc_optlist_new(&l, &e), &e);
	REQUIRE_OK(dsc_optlist_parse(l, "adapter_type=IDE,hwversion=6", &e), &e);
	o.options = l;
	REQUIRE_OK(dsc_stream_new_membuf("o.vmdk", &out, &e), &e);
	REQUIRE_OK(dsc_writer_open(out, DSC_FORMAT_VMDK, &o, &w, &e), &e);
	ASSERT_OK(dsc_writer_finish(w, 1u << 20, &e), &e);
	dsc_stream_mem_buffer(out, &data, &len);
	REQUIRE(len > 1024);
	ASSERT(memmem(data, 1024, "ddb.adapterType = \"ide\"", 23));
	ASSERT(memmem(data, 1024, "ddb.geometry.heads = \"16\"", 25));
	ASSERT(memmem(data, 1024, "ddb.virtualHWVersion = \"6\"", 26));
	dsc_writer_close(w);
	dsc_stream_close(out);

	/* A bad option fails the open, before a byte is written. */
	REQUIRE_OK(dsc_optlist_parse(l, "hwversion=1", &e), &e);
	REQUIRE_OK(dsc_stream_new_membuf("o.vmdk", &out, &e), &e);
	ASSERT_ERR(dsc_writer_open(out, DSC_FORMAT_VMDK, &o, &w, &e), DSC_ERR_INVAL);
	ASSERT(w == NULL);
	dsc_stream_mem_buffer(out, &data, &len);
	ASSERT(len == 0);
	dsc_stream_close(out);
	dsc_optlist_free(l);
}

static void test_sub_stream(void)
{
	uint8_t *src = tu_pattern(10000, TU_RANDOM, 9), buf[8000];
	struct dsc_error e = {0};
	dsc_stream *in = tu_mem_stream(src, 10000, "archive"), *sub = NULL;
	size_t got;
	uint64_t skipped;

	REQUIRE_OK(dsc_stream_skip(in, 1000, &skipped, &e), &e);
	REQUIRE_OK(dsc_stream_open_sub(in, 5000, 0, &sub, &e), &e);
	ASSERT(dsc_stream_total(sub) == 5000);
	ASSERT(dsc_stream_caps(sub) & DSC_STREAM_SEEK);
	ASSERT(!(dsc_stream_caps(sub) & DSC_STREAM_WRITE));
	ASSERT_OK(dsc_read_full(sub, buf, sizeof buf, &got, &e), &e);
	ASSERT(got == 5000 && !memcmp(buf, src + 1000, 5000));
	ASSERT(dsc_stream_tell(in) == 6000);
	/* Seeks stay inside the part. */
	ASSERT_OK(dsc_stream_seek(sub, 4000, &e), &e);
	ASSERT_OK(dsc_read_full(sub, buf, 10, &got, &e), &e);
	ASSERT(got == 10 && !memcmp(buf, src + 5000, 10));
	dsc_stream_close(sub);

	/* The inner stream ending first is a truncation, never a short part. */
	memset(&e, 0, sizeof e);
	REQUIRE_OK(dsc_stream_seek(in, 9000, &e), &e);
	REQUIRE_OK(dsc_stream_open_sub(in, 5000, DSC_SUB_OWN, &sub, &e), &e);
	ASSERT_ERR(dsc_read_full(sub, buf, sizeof buf, &got, &e), DSC_ERR_TRUNCATED);
	ASSERT(strstr(e.message, "truncated"));
	dsc_stream_close(sub); /* closes `in` too */
	free(src);
}

/* Queries go through wrappers: the temporary file of an atomic output is
 * still found behind a SHA-256 writer. */
static void test_query_through_wrappers(void)
{
	char dir[] = "/tmp/dsc-test-format-XXXXXX", path[64];
	struct dsc_error e = {0};
	dsc_stream *f = NULL, *h = NULL;
	const char *tmp;

	REQUIRE(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/out.img", dir);
	REQUIRE_OK(dsc_stream_create_file(path, 0, &f, &e), &e);
	tmp = dsc_stream_temp_path(f);
	ASSERT(tmp != NULL);
	if (dsc_stream_open_sha256(f, DSC_SHA256_WRITE | DSC_SHA256_OWN, &h, &e) == DSC_OK) {
		ASSERT(dsc_stream_temp_path(h) == tmp);
		ASSERT(dsc_stream_caps(h) & DSC_STREAM_FINISH);
		dsc_stream_close(h);
	} else {
		dsc_stream_close(f); /* a build without libcrypto */
	}
	ASSERT(access(path, F_OK) != 0);
	rmdir(dir);
	/* Not a file: no temporary, no memory buffer behind a file. */
	ASSERT(dsc_stream_temp_path(NULL) == NULL);
}

/* ---- a toy format ---------------------------------------------------------
 *
 * All a new format needs: a probe, a reader class and one descriptor. The
 * toy image is "TOY1", an 8-byte little-endian capacity, then the disk's
 * bytes. */
struct toy_reader {
	uint8_t buf[4096];
	uint64_t pos;
};

static int toy_probe(const struct dscp_probe *p)
{
	return p->head_len >= 12 && !memcmp(p->head, "TOY1", 4) ? DSCP_SCORE_CERTAIN :
								  DSCP_SCORE_NONE;
}

static dsc_err toy_open(dsc_reader *r, struct dsc_error *e)
{
	uint8_t h[12];
	dsc_err rc = dsc_read_full(r->in, h, sizeof h, NULL, e);

	if (rc == DSC_OK)
		r->capacity = dscp_le64(h + 4);
	return rc;
}

static dsc_err toy_next(dsc_reader *r, struct dsc_extent *x, struct dsc_error *e)
{
	struct toy_reader *t = r->impl;
	size_t got;
	dsc_err rc = dsc_read_full(r->in, t->buf, sizeof t->buf, &got, e);

	x->offset = t->pos;
	x->length = got;
	x->data = t->buf;
	t->pos += got;
	return rc;
}

static const struct dscp_reader_class toy_reader = {.size = sizeof(struct toy_reader),
						    .open = toy_open,
						    .next = toy_next};
static const char *const toy_names[] = {NULL};
static const struct dscp_format toy_format = {
	.info = {.name = "toy",
		 .description = "a test format",
		 .aliases = toy_names,
		 .extensions = toy_names,
		 .flags = DSC_FMT_READ | DSC_FMT_READ_STREAMS},
	.probe = toy_probe,
	.reader = &toy_reader,
};

static void test_toy_format(void)
{
	const struct dscp_format *table[] = {dscp_format_by_id(DSC_FORMAT_RAW), &toy_format};
	uint8_t img[12 + 10000], *disk = img + 12;
	struct dscp_probe p = {.head = img, .head_len = sizeof img, .total = sizeof img};
	struct dsc_error e = {0};
	struct dsc_extent x;
	dsc_stream *in, *out = NULL;
	dsc_reader *r = NULL;
	dsc_writer *w = NULL;
	const uint8_t *data;
	size_t len;
	int score;

	memcpy(img, "TOY1", 4);
	dscp_put64(img + 4, 10000);
	tu_fill(disk, 10000, TU_RANDOM, 5);
	/* Probed from its own table: the toy wins over raw's fallback. */
	ASSERT(dscp_probe_table(table, 2, &p, &score) == &toy_format);
	ASSERT(score == DSCP_SCORE_CERTAIN);
	p.head_len = 4;
	ASSERT(dscp_probe_table(table, 2, &p, &score) == table[0] && score == DSCP_SCORE_FALLBACK);

	/* Read by the framework like any format, into the real raw writer. */
	in = tu_mem_stream(img, sizeof img, "disk.toy");
	REQUIRE_OK(dscp_reader_open_format(in, &toy_format, true, false, &r, &e), &e);
	ASSERT(dsc_reader_capacity(r) == 10000);
	REQUIRE_OK(dsc_stream_new_membuf("disk.raw", &out, &e), &e);
	REQUIRE_OK(dsc_writer_open(out, DSC_FORMAT_RAW, NULL, &w, &e), &e);
	for (;;) {
		REQUIRE_OK(dsc_reader_next(r, &x, &e), &e);
		if (!x.length)
			break;
		REQUIRE_OK(dsc_writer_put(w, &x, &e), &e);
	}
	ASSERT_OK(dsc_writer_finish(w, dsc_reader_capacity(r), &e), &e);
	dsc_stream_mem_buffer(out, &data, &len);
	ASSERT(len == 10000 && !memcmp(data, disk, 10000));
	dsc_writer_close(w);
	dsc_reader_close(r);
	dsc_stream_close(out);
	dsc_stream_close(in);
}

int main(void)
{
	TU_RUN(test_table_complete);
	TU_RUN(test_version);
	TU_RUN(test_probes);
	TU_RUN(test_refusal);
	TU_RUN(test_optlist);
	TU_RUN(test_check_options);
	TU_RUN(test_option_values);
	TU_RUN(test_vmdk_options);
	TU_RUN(test_sub_stream);
	TU_RUN(test_query_through_wrappers);
	TU_RUN(test_toy_format);
	return tu_exit();
}
