/* test_vmdk_format.c - unit tests of the VMDK header, descriptor and marker
 * codecs (src/lib/vmdk_format.c).
 *
 * Byte offsets are checked against facts §1 directly, not only through a
 * decode of our own encode, so a symmetric mistake in both cannot pass.
 * Validation must refuse each out-of-range field on its own, starting from
 * a header that passes, and name the stream in its message.
 */
#include "testutil.h"

static void vmware_header(struct vmdk_header *h)
{
	memset(h, 0, sizeof(*h));
	h->version = 3;
	h->flags = 0x30001;
	h->capacity = 2048;
	h->grain_size = 128;
	h->desc_offset = 1;
	h->desc_size = 1;
	h->gtes_per_gt = 512;
	h->rgd_offset = 0;
	h->gd_offset = VMDK_GD_AT_END;
	h->overhead = 128;
	h->unclean = 0;
	h->compress = 1;
}

/* As dumped from qemu-img 7.2 -o subformat=streamOptimized (200000 bytes). */
static void qemu_header(struct vmdk_header *h)
{
	memset(h, 0, sizeof(*h));
	h->version = 3;
	h->flags = 0x30003;
	h->capacity = 391;
	h->grain_size = 128;
	h->desc_offset = 1;
	h->desc_size = 20;
	h->gtes_per_gt = 512;
	h->rgd_offset = 21;
	h->gd_offset = 26;
	h->overhead = 128;
	h->compress = 1;
}

static void test_header_layout(void)
{
	struct vmdk_header h = {0};
	uint8_t b[512];

	h.version = 3;
	h.flags = 0x30001;
	h.capacity = 0x0102030405060708ull;
	h.grain_size = 0x1112131415161718ull;
	h.desc_offset = 0x2122232425262728ull;
	h.desc_size = 0x3132333435363738ull;
	h.gtes_per_gt = 0x41424344;
	h.rgd_offset = 0x5152535455565758ull;
	h.gd_offset = 0x6162636465666768ull;
	h.overhead = 0x7172737475767778ull;
	h.unclean = 1;
	h.compress = 0x8182;
	memset(b, 0xEE, sizeof(b));
	dscp_vmdk_header_encode(&h, b);
	ASSERT(memcmp(b, "KDMV", 4) == 0);
	ASSERT(dscp_le32(b + 4) == 3);
	ASSERT(dscp_le32(b + 8) == 0x30001);
	ASSERT(dscp_le64(b + 12) == 0x0102030405060708ull);
	ASSERT(b[12] == 0x08 && b[19] == 0x01);
	ASSERT(dscp_le64(b + 20) == 0x1112131415161718ull);
	ASSERT(dscp_le64(b + 28) == 0x2122232425262728ull);
	ASSERT(dscp_le64(b + 36) == 0x3132333435363738ull);
	ASSERT(dscp_le32(b + 44) == 0x41424344);
	ASSERT(dscp_le64(b + 48) == 0x5152535455565758ull);
	ASSERT(dscp_le64(b + 56) == 0x6162636465666768ull);
	ASSERT(dscp_le64(b + 64) == 0x7172737475767778ull);
	ASSERT(b[72] == 1);
	ASSERT(b[73] == '\n' && b[74] == ' ' && b[75] == '\r' && b[76] == '\n');
	ASSERT(dscp_le16(b + 77) == 0x8182);
	ASSERT(dscp_is_zero(b + 79, 512 - 79));
}

static void test_header_round_trip(void)
{
	struct vmdk_header h, d;
	uint8_t b[512];

	vmware_header(&h);
	dscp_vmdk_header_encode(&h, b);
	memset(&d, 0xAB, sizeof(d));
	dscp_vmdk_header_decode(b, &d);
	ASSERT(d.version == 3 && d.flags == 0x30001);
	ASSERT_EQ_U64(d.capacity, 2048);
	ASSERT_EQ_U64(d.grain_size, 128);
	ASSERT_EQ_U64(d.desc_offset, 1);
	ASSERT_EQ_U64(d.desc_size, 1);
	ASSERT(d.gtes_per_gt == 512);
	ASSERT_EQ_U64(d.rgd_offset, 0);
	ASSERT_EQ_U64(d.gd_offset, VMDK_GD_AT_END);
	ASSERT_EQ_U64(d.overhead, 128);
	ASSERT(d.unclean == 0 && d.compress == 1);

	qemu_header(&h);
	h.unclean = 1;
	dscp_vmdk_header_encode(&h, b);
	dscp_vmdk_header_decode(b, &d);
	ASSERT(d.flags == 0x30003 && d.desc_size == 20 && d.rgd_offset == 21 && d.gd_offset == 26 &&
	       d.capacity == 391 && d.unclean == 1);
}

static void expect_reject(const struct vmdk_header *h, const char *what, int line)
{
	struct dsc_error e = {0};
	dsc_err err = dscp_vmdk_header_validate(h, "bad.vmdk", &e);

	if (err != DSC_ERR_FORMAT && err != DSC_ERR_UNSUPPORTED && err != DSC_ERR_LIMIT)
		tu_fail(__FILE__, line, "validate accepted %s (got %s)", what, dsc_err_name(err));
	else if (!strstr(e.message, "bad.vmdk"))
		tu_fail(__FILE__, line, "message for %s lacks the name: \"%s\"", what, e.message);
}

static void expect_limit(const struct vmdk_header *h, const char *what, int line)
{
	struct dsc_error e = {0};
	dsc_err err = dscp_vmdk_header_validate(h, "big.vmdk", &e);

	/* A value over a named cap is LIMIT; one that is simply impossible
	 * may be FORMAT. Either way never OK. */
	if (err != DSC_ERR_LIMIT && err != DSC_ERR_FORMAT)
		tu_fail(__FILE__, line, "validate gave %s for %s", dsc_err_name(err), what);
	else if (!strstr(e.message, "big.vmdk"))
		tu_fail(__FILE__, line, "message for %s lacks the name: \"%s\"", what, e.message);
}

#define REJECT(field, value)                                       \
	do {                                                       \
		struct vmdk_header h_;                             \
		vmware_header(&h_);                                \
		h_.field = (value);                                \
		expect_reject(&h_, #field " = " #value, __LINE__); \
	} while (0)
#define LIMIT(field, value)                                       \
	do {                                                      \
		struct vmdk_header h_;                            \
		vmware_header(&h_);                               \
		h_.field = (value);                               \
		expect_limit(&h_, #field " = " #value, __LINE__); \
	} while (0)

static void test_validate_accepts(void)
{
	struct dsc_error e = {0};
	struct vmdk_header h;
	uint32_t v;

	vmware_header(&h);
	ASSERT_OK(dscp_vmdk_header_validate(&h, "ok.vmdk", &e), &e);
	qemu_header(&h);
	ASSERT_OK(dscp_vmdk_header_validate(&h, "qemu.vmdk", &e), &e);
	for (v = 1; v <= 3; v++) {
		vmware_header(&h);
		h.version = v;
		ASSERT_OK(dscp_vmdk_header_validate(&h, "ok.vmdk", &e), &e);
	}
	/* The largest values the limits allow. */
	vmware_header(&h);
	h.grain_size = VMDK_MAX_GRAIN_SECTORS;
	ASSERT_OK(dscp_vmdk_header_validate(&h, "ok.vmdk", &e), &e);
	vmware_header(&h);
	h.capacity = VMDK_MAX_CAPACITY_SECTORS;
	ASSERT_OK(dscp_vmdk_header_validate(&h, "ok.vmdk", &e), &e);
	vmware_header(&h);
	h.grain_size = 8; /* 4 KiB grains: small, but legal */
	ASSERT_OK(dscp_vmdk_header_validate(&h, "ok.vmdk", &e), &e);
	vmware_header(&h);
	h.flags |= VMDK_FLAG_ZERO_GTE; /* compatible bit */
	ASSERT_OK(dscp_vmdk_header_validate(&h, "ok.vmdk", &e), &e);
}

static void test_validate_rejects(void)
{
	REJECT(version, 0);
	REJECT(version, 4);
	REJECT(version, 0xFFFFFFFFu);
	REJECT(flags, 0x30001u | 0x40000u);
	REJECT(flags, 0x30001u | 0x80000000u);
	REJECT(compress, 0);
	REJECT(compress, 2);
	REJECT(grain_size, 0);
	REJECT(grain_size, 3);
	REJECT(grain_size, 129);
	LIMIT(grain_size, VMDK_MAX_GRAIN_SECTORS * 2);
	LIMIT(grain_size, 1ull << 40);
	LIMIT(capacity, VMDK_MAX_CAPACITY_SECTORS + 1);
	LIMIT(capacity, UINT64_MAX);
	LIMIT(desc_size, VMDK_MAX_DESCRIPTOR_SECTORS + 1);
	LIMIT(desc_size, UINT64_MAX);
	REJECT(gtes_per_gt, 0);
	LIMIT(gtes_per_gt, 513);
	LIMIT(gtes_per_gt, 0xFFFFFFFFu);
}

static void test_validate_null_error(void)
{
	struct vmdk_header h;

	vmware_header(&h);
	h.version = 9;
	ASSERT(dscp_vmdk_header_validate(&h, "x", NULL) != DSC_OK);
}

/* A stream whose magic is wrong is refused when opened as VMDK. */
static void test_bad_magic_via_reader(void)
{
	struct vmdk_header h;
	uint8_t img[512 * 130];
	struct dsc_error e = {0};
	dsc_stream *s;
	dsc_reader *r = (dsc_reader *)1;
	dsc_err err;

	memset(img, 0, sizeof(img));
	vmware_header(&h);
	dscp_vmdk_header_encode(&h, img);
	memcpy(img, "KDMW", 4);
	s = tu_mem_stream(img, sizeof(img), "magic.vmdk");
	err = dsc_reader_open(s, DSC_FORMAT_VMDK, &r, &e);
	if (err == DSC_OK) {
		struct dsc_extent x;
		err = dsc_reader_next(r, &x, &e);
		dsc_reader_close(r);
	} else {
		ASSERT(r == NULL);
	}
	ASSERT_ERR(err, DSC_ERR_FORMAT);
	ASSERT(strstr(e.message, "magic.vmdk") != NULL);
	dsc_stream_close(s);
}

static const char vmware_desc[] = "# Disk DescriptorFile\n"
				  "version=1\n"
				  "encoding=\"UTF-8\"\n"
				  "CID=9c6d3f1a\n"
				  "parentCID=ffffffff\n"
				  "createType=\"streamOptimized\"\n"
				  "\n"
				  "# Extent description\n"
				  "RW 41943040 SPARSE \"disk-1.vmdk\"\n"
				  "\n"
				  "# The Disk Data Base\n"
				  "#DDB\n"
				  "\n"
				  "ddb.adapterType = \"lsilogic\"\n"
				  "ddb.geometry.cylinders = \"2610\"\n"
				  "ddb.geometry.heads = \"255\"\n"
				  "ddb.geometry.sectors = \"63\"\n"
				  "ddb.longContentID = \"8f3a2bd6c8e81d6a1a4c7f2e9c6d3f1a\"\n"
				  "ddb.toolsInstallType = \"4\"\n"
				  "ddb.toolsVersion = \"12352\"\n"
				  "ddb.uuid = \"60 00 C2 9b 69 2f c9 76-74 c4 07 9e 10 87 3b f9\"\n"
				  "ddb.virtualHWVersion = \"14\"\n";

static void check_desc(const char *text, size_t len, const char *ctype, uint64_t sectors,
		       const char *etype, const char *file, int line)
{
	struct vmdk_descriptor d;
	struct dsc_error e = {0};
	dsc_err err;

	memset(&d, 0x55, sizeof(d));
	err = dscp_vmdk_descriptor_parse(text, len, "d.vmdk", &d, &e);
	if (err != DSC_OK) {
		tu_fail(__FILE__, line, "parse: %s (%s)", dsc_err_name(err), e.message);
		return;
	}
	if (strcasecmp(d.create_type, ctype) != 0)
		tu_fail(__FILE__, line, "createType \"%.64s\" != \"%s\"", d.create_type, ctype);
	if (d.extent_sectors != sectors)
		tu_fail(__FILE__, line, "extent sectors %llu != %llu",
			(unsigned long long)d.extent_sectors, (unsigned long long)sectors);
	if (strcasecmp(d.extent_type, etype) != 0)
		tu_fail(__FILE__, line, "extent type \"%.16s\" != \"%s\"", d.extent_type, etype);
	if (strcmp(d.extent_file, file) != 0)
		tu_fail(__FILE__, line, "extent file \"%.256s\" != \"%s\"", d.extent_file, file);
}

static char *replace_all(const char *s, const char *from, const char *to)
{
	size_t fl = strlen(from), tl = strlen(to), n = 0;
	const char *p;
	char *out, *o;

	for (p = s; (p = strstr(p, from)); p += fl)
		n++;
	out = tu_xmalloc(strlen(s) + n * tl + 1);
	for (o = out, p = s;;) {
		const char *q = strstr(p, from);
		if (!q)
			break;
		memcpy(o, p, (size_t)(q - p));
		o += q - p;
		memcpy(o, to, tl);
		o += tl;
		p = q + fl;
	}
	strcpy(o, p);
	return out;
}

static void test_descriptor_parse(void)
{
	char *t, pad[1536];

	check_desc(vmware_desc, strlen(vmware_desc), "streamOptimized", 41943040, "SPARSE",
		   "disk-1.vmdk", __LINE__);

	t = replace_all(vmware_desc, "\n", "\r\n");
	check_desc(t, strlen(t), "streamOptimized", 41943040, "SPARSE", "disk-1.vmdk", __LINE__);
	free(t);

	/* Unquoted values and spaces around '='. */
	t = replace_all(vmware_desc, "createType=\"streamOptimized\"",
			"createType = streamOptimized");
	check_desc(t, strlen(t), "streamOptimized", 41943040, "SPARSE", "disk-1.vmdk", __LINE__);
	free(t);

	/* Case differences in keys and keywords. */
	t = replace_all(vmware_desc, "createType=\"streamOptimized\"",
			"CREATETYPE=\"STREAMOPTIMIZED\"");
	{
		char *t2 = replace_all(t, "RW 41943040 SPARSE", "rw 41943040 sparse");
		check_desc(t2, strlen(t2), "streamOptimized", 41943040, "SPARSE", "disk-1.vmdk",
			   __LINE__);
		free(t2);
	}
	free(t);

	/* NUL padding to the descriptor's sectors (as read from a file). */
	memset(pad, 0, sizeof(pad));
	memcpy(pad, vmware_desc, strlen(vmware_desc));
	check_desc(pad, sizeof(pad), "streamOptimized", 41943040, "SPARSE", "disk-1.vmdk",
		   __LINE__);

	/* No trailing newline on the last line. */
	t = replace_all(vmware_desc, "ddb.virtualHWVersion = \"14\"\n",
			"ddb.virtualHWVersion = \"14\"");
	check_desc(t, strlen(t), "streamOptimized", 41943040, "SPARSE", "disk-1.vmdk", __LINE__);
	free(t);

	/* A file name with spaces. */
	t = replace_all(vmware_desc, "disk-1.vmdk", "my disk (1).vmdk");
	check_desc(t, strlen(t), "streamOptimized", 41943040, "SPARSE", "my disk (1).vmdk",
		   __LINE__);
	free(t);
}

/* Other producers' descriptors: judged by their keys, whatever the
 * comments say (issue 12). Each variant must parse to the same values. */
static void test_descriptor_producers(void)
{
	static const char reordered[] = "RW 41943040 SPARSE \"disk-1.vmdk\"\n"
					"createType=\"streamOptimized\"\n"
					"ddb.adapterType = \"lsilogic\"\n"
					"CID=9c6d3f1a\n"
					"version=1\n";
	char *t, *t2;

	/* Another first comment (with a space, as one producer writes it). */
	t = replace_all(vmware_desc, "# Disk DescriptorFile\n", "# Disk Descriptor File\n");
	check_desc(t, strlen(t), "streamOptimized", 41943040, "SPARSE", "disk-1.vmdk", __LINE__);
	/* ... with CRLF line ends. */
	t2 = replace_all(t, "\n", "\r\n");
	check_desc(t2, strlen(t2), "streamOptimized", 41943040, "SPARSE", "disk-1.vmdk", __LINE__);
	free(t2);
	free(t);

	/* Any comment, or several, first. */
	t = replace_all(vmware_desc, "# Disk DescriptorFile\n",
			"# Generated by some tool 1.0\n#\n   # indented comment\n");
	check_desc(t, strlen(t), "streamOptimized", 41943040, "SPARSE", "disk-1.vmdk", __LINE__);
	free(t);

	/* No first comment at all. */
	t = replace_all(vmware_desc, "# Disk DescriptorFile\n", "");
	check_desc(t, strlen(t), "streamOptimized", 41943040, "SPARSE", "disk-1.vmdk", __LINE__);
	free(t);

	/* No comments anywhere. */
	t = replace_all(vmware_desc, "# Disk DescriptorFile\n", "");
	t2 = replace_all(t, "# Extent description\n", "");
	free(t);
	t = replace_all(t2, "# The Disk Data Base\n#DDB\n", "");
	free(t2);
	ASSERT(strchr(t, '#') == NULL);
	check_desc(t, strlen(t), "streamOptimized", 41943040, "SPARSE", "disk-1.vmdk", __LINE__);
	free(t);

	/* Blank lines (empty, spaces, tabs, CR alone) before and between. */
	t = replace_all(vmware_desc, "\n", "\n\n \t\n\r\n");
	t2 = tu_xmalloc(strlen(t) + 8);
	strcpy(t2, "\n  \r\n\t\n");
	strcat(t2, t);
	check_desc(t2, strlen(t2), "streamOptimized", 41943040, "SPARSE", "disk-1.vmdk", __LINE__);
	free(t2);
	free(t);

	/* Keys in another order: the extent first, version last. */
	check_desc(reordered, strlen(reordered), "streamOptimized", 41943040, "SPARSE",
		   "disk-1.vmdk", __LINE__);
	t = replace_all(reordered, "\n", "\r\n");
	check_desc(t, strlen(t), "streamOptimized", 41943040, "SPARSE", "disk-1.vmdk", __LINE__);
	free(t);

	/* A UTF-8 byte order mark before the first line. */
	t = tu_xmalloc(strlen(vmware_desc) + 4);
	strcpy(t, "\xef\xbb\xbf");
	strcat(t, vmware_desc);
	check_desc(t, strlen(t), "streamOptimized", 41943040, "SPARSE", "disk-1.vmdk", __LINE__);
	free(t);

	/* An '=' in the extent's file name does not make it a key line. */
	t = replace_all(vmware_desc, "disk-1.vmdk", "a=b.vmdk");
	check_desc(t, strlen(t), "streamOptimized", 41943040, "SPARSE", "a=b.vmdk", __LINE__);
	free(t);

	/* A line that is no comment, key or extent is skipped. */
	t = replace_all(vmware_desc, "#DDB\n", "#DDB\nsomething else\n");
	check_desc(t, strlen(t), "streamOptimized", 41943040, "SPARSE", "disk-1.vmdk", __LINE__);
	free(t);
}

static void test_descriptor_rejects(void)
{
	struct vmdk_descriptor d;
	struct dsc_error e = {0};
	char *t;

	/* Text, but not a descriptor: no version, createType or extent. */
	{
		static const char *notdesc[] = {
			"hello world\n",
			"# Disk DescriptorFile\n# only comments\n\n",
			"\n\n\r\n   \n",
			"ddb.adapterType = \"lsilogic\"\nCID=12345678\n",
		};
		size_t i;

		for (i = 0; i < sizeof(notdesc) / sizeof(notdesc[0]); i++) {
			memset(&e, 0, sizeof(e));
			ASSERT_ERR(dscp_vmdk_descriptor_parse(notdesc[i], strlen(notdesc[i]),
							      "notdesc.vmdk", &d, &e),
				   DSC_ERR_FORMAT);
			ASSERT(strstr(e.message, "notdesc.vmdk: ") == e.message);
			ASSERT(strstr(e.message, "not a VMDK descriptor") != NULL);
		}
	}

	/* A descriptor without createType: we cannot tell what it is. */
	t = replace_all(vmware_desc, "createType=\"streamOptimized\"\n", "");
	memset(&e, 0, sizeof(e));
	ASSERT_ERR(dscp_vmdk_descriptor_parse(t, strlen(t), "notype.vmdk", &d, &e), DSC_ERR_FORMAT);
	ASSERT(strstr(e.message, "notype.vmdk: descriptor has no createType") != NULL);
	free(t);

	/* Binary garbage. */
	{
		uint8_t *g = tu_pattern(512, TU_RANDOM, 77);
		memset(&e, 0, sizeof(e));
		ASSERT_ERR(dscp_vmdk_descriptor_parse((const char *)g, 512, "g.vmdk", &d, &e),
			   DSC_ERR_FORMAT);
		free(g);
	}

	/* Empty (all NUL). */
	{
		char z[512] = {0};
		memset(&e, 0, sizeof(e));
		ASSERT_ERR(dscp_vmdk_descriptor_parse(z, sizeof(z), "z.vmdk", &d, &e),
			   DSC_ERR_FORMAT);
		ASSERT(strstr(e.message, "not a VMDK descriptor") != NULL);
		ASSERT_ERR(dscp_vmdk_descriptor_parse(z, 0, "z.vmdk", &d, NULL), DSC_ERR_FORMAT);
	}
}

static void test_descriptor_many_lines(void)
{
	/* A valid descriptor followed by more key lines than
	 * VMDK_MAX_DESCRIPTOR_LINES: the named limit must stop the parser. */
	static const char line[] = "ddb.k = \"1\"\n";
	size_t count = VMDK_MAX_DESCRIPTOR_LINES + 10, i, len = strlen(vmware_desc);
	char *t = tu_xmalloc(len + count * (sizeof(line) - 1) + 1);
	struct vmdk_descriptor d;
	struct dsc_error e = {0};
	dsc_err err;

	memcpy(t, vmware_desc, len);
	for (i = 0; i < count; i++, len += sizeof(line) - 1)
		memcpy(t + len, line, sizeof(line) - 1);
	t[len] = '\0';
	err = dscp_vmdk_descriptor_parse(t, len, "lines.vmdk", &d, &e);
	ASSERT(err == DSC_ERR_LIMIT || err == DSC_ERR_FORMAT);
	ASSERT(strstr(e.message, "lines.vmdk") != NULL);
	/* Just under the limit is fine. */
	len = strlen(vmware_desc) + (VMDK_MAX_DESCRIPTOR_LINES - 40) * (sizeof(line) - 1);
	t[len] = '\0';
	memset(&e, 0, sizeof(e));
	ASSERT_OK(dscp_vmdk_descriptor_parse(t, len, "lines.vmdk", &d, &e), &e);
	free(t);
}

static void test_descriptor_build(void)
{
	char buf[4096], small[10];
	size_t n;

	n = dscp_vmdk_descriptor_build(buf, sizeof(buf), 12345, "out-disk.vmdk", 0xdeadbeef,
				       "0123456789abcdef0123456789abcdef");
	ASSERT(n > 0 && n < sizeof(buf));
	ASSERT(strlen(buf) == n);
	ASSERT(strncmp(buf, "# Disk DescriptorFile\n", 22) == 0);
	ASSERT(strstr(buf, "\n# Extent description\n") != NULL);
	ASSERT(strstr(buf, "\nRW 12345 SPARSE \"out-disk.vmdk\"\n") != NULL);
	ASSERT(strstr(buf, "CID=deadbeef\n") != NULL);
	ASSERT(strstr(buf, "parentCID=ffffffff\n") != NULL);
	ASSERT(strstr(buf, "createType=\"streamOptimized\"") != NULL);
	ASSERT(strstr(buf, "ddb.longContentID = \"0123456789abcdef0123456789abcdef\"") != NULL);
	ASSERT(strstr(buf, "ddb.toolsVersion = \"2147483647\"") != NULL);
	ASSERT(strstr(buf, "ddb.adapterType = \"lsilogic\"") != NULL);
	ASSERT(strchr(buf, '\r') == NULL);
	/* Fits the one sector VMware uses. */
	ASSERT(n <= 512);
	check_desc(buf, n, "streamOptimized", 12345, "SPARSE", "out-disk.vmdk", __LINE__);

	ASSERT(dscp_vmdk_descriptor_build(small, sizeof(small), 1, "x.vmdk", 1,
					  "0123456789abcdef0123456789abcdef") == 0);
}

static void test_markers(void)
{
	uint8_t sec[512];
	struct vmdk_marker m;

	memset(sec, 0, sizeof(sec));
	dscp_put64(sec, 0x123456789aull);
	dscp_put32(sec + 8, 65562);
	sec[12] = 0x78;
	sec[13] = 0x9c;
	dscp_vmdk_marker_decode(sec, &m);
	ASSERT_EQ_U64(m.val, 0x123456789aull);
	ASSERT(m.size == 65562);

	memset(sec, 0xEE, sizeof(sec));
	dscp_vmdk_meta_marker_encode(4, VMDK_MARKER_GT, sec);
	ASSERT(dscp_le64(sec) == 4 && dscp_le32(sec + 8) == 0 && dscp_le32(sec + 12) == 1);
	ASSERT(dscp_is_zero(sec + 16, 496));
	dscp_vmdk_marker_decode(sec, &m);
	ASSERT(m.val == 4 && m.size == 0 && m.type == VMDK_MARKER_GT);

	dscp_vmdk_meta_marker_encode(0, VMDK_MARKER_EOS, sec);
	ASSERT(dscp_is_zero(sec, 512));
	dscp_vmdk_marker_decode(sec, &m);
	ASSERT(m.val == 0 && m.size == 0 && m.type == VMDK_MARKER_EOS);

	dscp_vmdk_meta_marker_encode(1, VMDK_MARKER_FOOTER, sec);
	dscp_vmdk_marker_decode(sec, &m);
	ASSERT(m.val == 1 && m.size == 0 && m.type == 3);

	dscp_vmdk_meta_marker_encode(7, VMDK_MARKER_GD, sec);
	dscp_vmdk_marker_decode(sec, &m);
	ASSERT(m.val == 7 && m.size == 0 && m.type == 2);
}

static void test_descriptor_odd_extents(void)
{
	static const char *bad[] = {
		"RW 99999999999999999999999 SPARSE \"x.vmdk\"", /* over 2^64 */
		"RW -5 SPARSE \"x.vmdk\"",
		"RW 12abc SPARSE \"x.vmdk\"",
	};
	struct vmdk_descriptor d;
	struct dsc_error e = {0};
	char name[400], *t, *line;
	size_t i;
	dsc_err err;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		t = replace_all(vmware_desc, "RW 41943040 SPARSE \"disk-1.vmdk\"", bad[i]);
		memset(&e, 0, sizeof(e));
		err = dscp_vmdk_descriptor_parse(t, strlen(t), "odd.vmdk", &d, &e);
		if (err != DSC_ERR_FORMAT && err != DSC_ERR_LIMIT)
			tu_fail(__FILE__, __LINE__, "\"%s\": %s, extent sectors %llu", bad[i],
				dsc_err_name(err), (unsigned long long)d.extent_sectors);
		free(t);
	}

	/* A file name longer than the struct holds: no overflow; refused or
	 * cut, but always terminated. */
	memset(name, 'n', 300);
	name[300] = '\0';
	line = tu_xmalloc(512);
	snprintf(line, 512, "RW 8 SPARSE \"%s\"", name);
	t = replace_all(vmware_desc, "RW 41943040 SPARSE \"disk-1.vmdk\"", line);
	err = dscp_vmdk_descriptor_parse(t, strlen(t), "odd.vmdk", &d, NULL);
	if (err == DSC_OK)
		ASSERT(memchr(d.extent_file, '\0', sizeof(d.extent_file)) != NULL);
	else
		ASSERT(err == DSC_ERR_FORMAT || err == DSC_ERR_LIMIT);
	free(t);
	free(line);

	/* UTF-8 names survive build and parse. */
	{
		char buf[2048];
		size_t n = dscp_vmdk_descriptor_build(buf, sizeof(buf), 64, "диск é.vmdk", 7,
						      "0123456789abcdef0123456789abcdef");
		ASSERT(n > 0);
		check_desc(buf, n, "streamOptimized", 64, "SPARSE", "диск é.vmdk", __LINE__);
	}
}

int main(void)
{
	TU_RUN(test_header_layout);
	TU_RUN(test_header_round_trip);
	TU_RUN(test_validate_accepts);
	TU_RUN(test_validate_rejects);
	TU_RUN(test_validate_null_error);
	TU_RUN(test_bad_magic_via_reader);
	TU_RUN(test_descriptor_parse);
	TU_RUN(test_descriptor_producers);
	TU_RUN(test_descriptor_rejects);
	TU_RUN(test_descriptor_many_lines);
	TU_RUN(test_descriptor_build);
	TU_RUN(test_descriptor_odd_extents);
	TU_RUN(test_markers);
	return tu_exit();
}
