/* vmdk_format.c - encoding and checking of VMDK sparse headers, markers and
 * the embedded text descriptor.
 *
 * Kept apart from the stream reader and writer so each piece can be unit
 * tested on its own. Validation applies the named limits of vmdk.h to every
 * field before any of them sizes a buffer or a loop.
 */
#include "vmdk.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>

void dscp_vmdk_header_decode(const uint8_t *b, struct vmdk_header *h)
{
	/* Field offsets: facts §1. */
	h->version = dscp_le32(b + 4);
	h->flags = dscp_le32(b + 8);
	h->capacity = dscp_le64(b + 12);
	h->grain_size = dscp_le64(b + 20);
	h->desc_offset = dscp_le64(b + 28);
	h->desc_size = dscp_le64(b + 36);
	h->gtes_per_gt = dscp_le32(b + 44);
	h->rgd_offset = dscp_le64(b + 48);
	h->gd_offset = dscp_le64(b + 56);
	h->overhead = dscp_le64(b + 64);
	h->unclean = b[72];
	h->compress = dscp_le16(b + 77);
}

void dscp_vmdk_header_encode(const struct vmdk_header *h, uint8_t *b)
{
	memset(b, 0, VMDK_SECTOR);
	dscp_put32(b, VMDK_MAGIC);
	dscp_put32(b + 4, h->version);
	dscp_put32(b + 8, h->flags);
	dscp_put64(b + 12, h->capacity);
	dscp_put64(b + 20, h->grain_size);
	dscp_put64(b + 28, h->desc_offset);
	dscp_put64(b + 36, h->desc_size);
	dscp_put32(b + 44, h->gtes_per_gt);
	dscp_put64(b + 48, h->rgd_offset);
	dscp_put64(b + 56, h->gd_offset);
	dscp_put64(b + 64, h->overhead);
	b[72] = h->unclean;
	/* The newline test bytes let readers detect text-mode corruption. */
	b[73] = '\n';
	b[74] = ' ';
	b[75] = '\r';
	b[76] = '\n';
	dscp_put16(b + 77, h->compress);
}

dsc_err dscp_vmdk_header_validate(const struct vmdk_header *h, const char *name,
				  struct dsc_error *e)
{
	uint32_t unknown = h->flags & VMDK_INCOMPAT_MASK & ~VMDK_INCOMPAT_KNOWN;

	if (h->version < 1 || h->version > 3)
		return dsc_error_set(e, DSC_ERR_UNSUPPORTED, 0,
				     "%s: VMDK version %" PRIu32 " is not supported (1 to 3)", name,
				     h->version);
	if (unknown)
		return dsc_error_set(e, DSC_ERR_UNSUPPORTED, 0,
				     "%s: unknown incompatible VMDK flags 0x%08" PRIx32, name,
				     unknown);
	if ((h->flags & VMDK_FLAG_COMPRESSED) && h->compress != VMDK_COMPRESS_DEFLATE)
		return dsc_error_set(e, DSC_ERR_UNSUPPORTED, 0,
				     "%s: compression algorithm %u is not supported (only deflate)",
				     name, (unsigned)h->compress);
	if (h->grain_size == 0 || (h->grain_size & (h->grain_size - 1)))
		return dsc_error_set(e, DSC_ERR_FORMAT, 0,
				     "%s: grain size %" PRIu64 " sectors is not a power of two",
				     name, h->grain_size);
	if (h->grain_size > VMDK_MAX_GRAIN_SECTORS)
		return dsc_error_set(e, DSC_ERR_LIMIT, 0,
				     "%s: grain size %" PRIu64 " sectors exceeds the limit of %u",
				     name, h->grain_size, VMDK_MAX_GRAIN_SECTORS);
	if (h->capacity == 0)
		return dsc_error_set(e, DSC_ERR_FORMAT, 0, "%s: capacity is 0 sectors", name);
	if (h->capacity > VMDK_MAX_CAPACITY_SECTORS)
		return dsc_error_set(e, DSC_ERR_LIMIT, 0,
				     "%s: capacity of %" PRIu64
				     " sectors exceeds the limit of %llu",
				     name, h->capacity,
				     (unsigned long long)VMDK_MAX_CAPACITY_SECTORS);
	if (h->gtes_per_gt == 0 || h->gtes_per_gt > VMDK_MAX_GTES_PER_GT)
		return dsc_error_set(e, DSC_ERR_FORMAT, 0,
				     "%s: %" PRIu32 " entries per grain table (1 to %u allowed)",
				     name, h->gtes_per_gt, VMDK_MAX_GTES_PER_GT);
	if (h->desc_size > VMDK_MAX_DESCRIPTOR_SECTORS)
		return dsc_error_set(e, DSC_ERR_LIMIT, 0,
				     "%s: descriptor of %" PRIu64
				     " sectors exceeds the limit of %u",
				     name, h->desc_size, VMDK_MAX_DESCRIPTOR_SECTORS);
	if (h->desc_size && (h->desc_offset == 0 || h->desc_offset > VMDK_MAX_CAPACITY_SECTORS))
		return dsc_error_set(e, DSC_ERR_FORMAT, 0,
				     "%s: descriptor at sector %" PRIu64 " is invalid", name,
				     h->desc_offset);
	return DSC_OK;
}

void dscp_vmdk_marker_decode(const uint8_t *b, struct vmdk_marker *m)
{
	/* Facts §2: u64 val, u32 size, then (metadata only) u32 type. */
	m->val = dscp_le64(b);
	m->size = dscp_le32(b + 8);
	m->type = m->size ? 0 : dscp_le32(b + 12);
}

void dscp_vmdk_meta_marker_encode(uint64_t val, uint32_t type, uint8_t *sector)
{
	memset(sector, 0, VMDK_SECTOR);
	dscp_put64(sector, val);
	dscp_put32(sector + 12, type);
}

/* Copy a trimmed value, dropping surrounding quotes. */
static void copy_value(char *dst, size_t size, const char *v, size_t n)
{
	while (n && isspace((unsigned char)*v)) {
		v++;
		n--;
	}
	while (n && isspace((unsigned char)v[n - 1]))
		n--;
	if (n >= 2 && v[0] == '"' && v[n - 1] == '"') {
		v++;
		n -= 2;
	}
	if (n >= size)
		n = size - 1;
	memcpy(dst, v, n);
	dst[n] = '\0';
}

/* An extent line: ACCESS SECTORS TYPE ["FILE" [OFFSET]]. Returns 0 for
 * another kind of line, 1 for an extent, -1 for an extent line whose size
 * is not a plain number within the capacity limit. */
static int parse_extent(const char *line, size_t n, struct vmdk_descriptor *d)
{
	char buf[512], access[16], number[32], type[16];
	unsigned long long sectors;
	const char *q1, *q2;
	char *end;
	int used = 0;

	if (n >= sizeof buf)
		n = sizeof buf - 1;
	memcpy(buf, line, n);
	buf[n] = '\0';
	if (sscanf(buf, "%15s %31s %15s %n", access, number, type, &used) < 3)
		return 0;
	if (strcasecmp(access, "RW") && strcasecmp(access, "RDONLY") &&
	    strcasecmp(access, "NOACCESS"))
		return 0;
	if (!isdigit((unsigned char)number[0]))
		return -1;
	errno = 0;
	sectors = strtoull(number, &end, 10);
	if (*end || errno == ERANGE || sectors > VMDK_MAX_CAPACITY_SECTORS)
		return -1;
	d->extent_sectors = sectors;
	copy_value(d->extent_type, sizeof d->extent_type, type, strlen(type));
	q1 = strchr(buf + used, '"');
	q2 = q1 ? strchr(q1 + 1, '"') : NULL;
	if (q1 && q2)
		copy_value(d->extent_file, sizeof d->extent_file, q1 + 1, (size_t)(q2 - q1 - 1));
	return 1;
}

/* A descriptor is judged by its keys, as qemu and VMware read it: lines
 * starting with '#' are comments whatever they say (producers differ in the
 * first one: "# Disk DescriptorFile", "# Disk Descriptor File", or none),
 * blank lines and lines we do not know are skipped, and the keys may come
 * in any order. Only text with no version, createType or extent line at all
 * is refused as not a descriptor (facts §4). */
dsc_err dscp_vmdk_descriptor_parse(const char *text, size_t len, const char *name,
				   struct vmdk_descriptor *d, struct dsc_error *e)
{
	static const char bom[] = "\xef\xbb\xbf";
	struct vmdk_descriptor later;
	const char *p = text, *end, *nl, *eq;
	size_t n, lines = 0;
	bool have_extent = false, have_version = false;

	memset(d, 0, sizeof *d);
	d->parent_cid = UINT32_MAX;
	/* The text ends at the first NUL (the rest of its sectors is padding). */
	end = memchr(text, '\0', len);
	if (!end)
		end = text + len;
	/* A UTF-8 byte order mark, as some editors save the text. */
	if ((size_t)(end - p) >= sizeof bom - 1 && !memcmp(p, bom, sizeof bom - 1))
		p += sizeof bom - 1;
	for (; p < end; p = nl + 1) {
		if (++lines > VMDK_MAX_DESCRIPTOR_LINES)
			return dsc_error_set(e, DSC_ERR_LIMIT, 0,
					     "%s: descriptor has more than %u lines", name,
					     VMDK_MAX_DESCRIPTOR_LINES);
		nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl)
			nl = end;
		n = (size_t)(nl - p);
		if (n && p[n - 1] == '\r')
			n--;
		while (n && isspace((unsigned char)*p)) {
			p++;
			n--;
		}
		if (n == 0 || *p == '#')
			continue;
		/* Extent lines first: a file name may hold an '='. Only the
		 * first extent is kept; later ones are checked all the same. */
		{
			int r = parse_extent(p, n, have_extent ? &later : d);

			if (r < 0)
				return dsc_error_set(
					e, DSC_ERR_FORMAT, 0,
					"%s: descriptor line %zu: extent size is not a "
					"number of sectors up to %llu",
					name, lines, (unsigned long long)VMDK_MAX_CAPACITY_SECTORS);
			if (r > 0) {
				have_extent = true;
				continue;
			}
		}
		eq = memchr(p, '=', n);
		if (eq) {
			size_t klen = (size_t)(eq - p);

			while (klen && isspace((unsigned char)p[klen - 1]))
				klen--;
			if (klen == 10 && !strncasecmp(p, "createType", 10))
				copy_value(d->create_type, sizeof d->create_type, eq + 1,
					   n - (size_t)(eq + 1 - p));
			else if (klen == 7 && !strncasecmp(p, "version", 7))
				have_version = true;
			else if (klen == 3 && !strncasecmp(p, "CID", 3)) {
				char v[16];

				copy_value(v, sizeof v, eq + 1, n - (size_t)(eq + 1 - p));
				d->have_cid = true;
				d->cid = (uint32_t)strtoul(v, NULL, 16);
			}
			if (klen == 9 && !strncasecmp(p, "parentCID", 9)) {
				char v[16];

				copy_value(v, sizeof v, eq + 1, n - (size_t)(eq + 1 - p));
				d->parent_cid = (uint32_t)strtoul(v, NULL, 16);
			}
			if (klen == 18 && !strncasecmp(p, "parentFileNameHint", 18))
				copy_value(d->parent_hint, sizeof d->parent_hint, eq + 1,
					   n - (size_t)(eq + 1 - p));
			else if ((klen == 9 && !strncasecmp(p, "parentCID", 9)) ||
				 (klen == 18 && !strncasecmp(p, "parentFileNameHint", 18))) {
				char v[40];

				copy_value(v, sizeof v, eq + 1, n - (size_t)(eq + 1 - p));
				if (klen == 18 || strcasecmp(v, "ffffffff")) {
					d->has_parent = true;
					snprintf(d->parent, sizeof d->parent, "%s %.40s",
						 klen == 18 ? "parentFileNameHint" : "parentCID",
						 v);
				}
			}
		}
	}
	if (!d->create_type[0] && !have_version && !have_extent)
		return dsc_error_set(e, DSC_ERR_FORMAT, 0,
				     "%s: the embedded descriptor is not a VMDK descriptor (no "
				     "version, createType or extent line)",
				     name);
	if (!d->create_type[0])
		return dsc_error_set(e, DSC_ERR_FORMAT, 0, "%s: descriptor has no createType",
				     name);
	return DSC_OK;
}

size_t dscp_vmdk_descriptor_build(char *buf, size_t size, uint64_t capacity_sectors,
				  const char *extent_file, uint32_t cid, const char *long_cid_hex32)
{
	return dscp_vmdk_descriptor_build_ddb(buf, size, capacity_sectors, extent_file, cid,
					      long_cid_hex32, "lsilogic", 4);
}

size_t dscp_vmdk_descriptor_build_ddb(char *buf, size_t size, uint64_t capacity_sectors,
				      const char *extent_file, uint32_t cid,
				      const char *long_cid_hex32, const char *adapter,
				      unsigned hwversion)
{
	return dscp_vmdk_descriptor_build_type(buf, size, capacity_sectors, extent_file, cid,
					       long_cid_hex32, adapter, hwversion,
					       "streamOptimized");
}

size_t dscp_vmdk_descriptor_build_type(char *buf, size_t size, uint64_t capacity_sectors,
				       const char *extent_file, uint32_t cid,
				       const char *long_cid_hex32, const char *adapter,
				       unsigned hwversion, const char *create_type)
{
	/* Geometry as VMware writes it: 255 heads, 63 sectors; an IDE disk
	 * has 16 heads (facts §4; qemu does the same). */
	unsigned heads = strcmp(adapter, "ide") ? 255 : 16;
	uint64_t cyl = capacity_sectors / (heads * 63);
	int n;

	if (cyl > 65535)
		cyl = 65535;
	if (cyl == 0)
		cyl = 1;
	n = snprintf(buf, size,
		     "# Disk DescriptorFile\n"
		     "version=1\n"
		     "encoding=\"UTF-8\"\n"
		     "CID=%08" PRIx32 "\n"
		     "parentCID=ffffffff\n"
		     "createType=\"%s\"\n"
		     "\n"
		     "# Extent description\n"
		     "RW %" PRIu64 " SPARSE \"%s\"\n"
		     "\n"
		     "# The Disk Data Base\n"
		     "#DDB\n"
		     "\n"
		     "ddb.virtualHWVersion = \"%u\"\n"
		     "ddb.geometry.cylinders = \"%" PRIu64 "\"\n"
		     "ddb.geometry.heads = \"%u\"\n"
		     "ddb.geometry.sectors = \"63\"\n"
		     "ddb.adapterType = \"%s\"\n"
		     "ddb.toolsVersion = \"2147483647\"\n"
		     "ddb.longContentID = \"%s\"\n",
		     cid, create_type, capacity_sectors, extent_file, hwversion, cyl, heads,
		     adapter, long_cid_hex32);
	if (n < 0 || (size_t)n >= size)
		return 0;
	return (size_t)n;
}

/* ---- the format ----------------------------------------------------------- */

static bool starts_line(const char *p, const char *end, const char *word)
{
	size_t n = strlen(word);

	return (size_t)(end - p) >= n && !strncmp(p, word, n);
}

/* "key = value": the key, blanks, then '='. */
static bool key_line(const char *p, const char *end, const char *key)
{
	if (!starts_line(p, end, key))
		return false;
	for (p += strlen(key); p < end && (*p == ' ' || *p == '\t'); p++)
		;
	return p < end && *p == '=';
}

/* A text descriptor (facts §4): the first comment line differs between
 * producers, so it is judged by its keys. It must look like text, name a
 * createType, and either a version line or an extent line
 * ("RW 2048 FLAT \"disk-flat.vmdk\" 0"). */
static int probe_descriptor(const uint8_t *buf, size_t len)
{
	static const char *const access[] = {"RW ", "RDONLY ", "NOACCESS ", NULL};
	const char *p = (const char *)buf, *end = p + len, *eol;
	bool create = false, version = false, extent = false;
	size_t i, k;

	for (i = 0; i < len; i++)
		if (buf[i] == 0 ||
		    (buf[i] < 0x20 && buf[i] != '\n' && buf[i] != '\r' && buf[i] != '\t'))
			break;
	/* Text up to the end of what was read, or up to NUL padding. */
	if (i < len && buf[i] != 0)
		return DSCP_SCORE_NONE;
	end = p + i;
	for (; p < end; p = eol + 1) {
		eol = memchr(p, '\n', (size_t)(end - p));
		if (!eol)
			eol = end;
		while (p < eol && (*p == ' ' || *p == '\t'))
			p++;
		if (key_line(p, eol, "createType"))
			create = true;
		else if (key_line(p, eol, "version"))
			version = true;
		for (k = 0; access[k]; k++)
			if (starts_line(p, eol, access[k]) && p + strlen(access[k]) < eol &&
			    p[strlen(access[k])] >= '0' && p[strlen(access[k])] <= '9')
				extent = true;
		if (eol == end)
			break;
	}
	if (create && (extent || version))
		return DSCP_SCORE_CERTAIN;
	return DSCP_SCORE_NONE;
}

bool dscp_vmdk_text_descriptor(const uint8_t *buf, size_t len, char *create_type, size_t size)
{
	const char *p = (const char *)buf, *end, *q, *eol;
	size_t n;

	if (probe_descriptor(buf, len) != DSCP_SCORE_CERTAIN)
		return false;
	snprintf(create_type, size, "unknown");
	end = p + strnlen(p, len);
	/* The value of the first line that is the createType key itself
	 * (not a comment or a longer key that contains the word). */
	for (q = p; q < end; q = eol + 1) {
		const char *v;

		eol = memchr(q, '\n', (size_t)(end - q));
		if (!eol)
			eol = end;
		while (q < eol && (*q == ' ' || *q == '\t'))
			q++;
		if (!key_line(q, eol, "createType"))
			continue;
		for (v = q + 10; v < eol && (*v == ' ' || *v == '\t' || *v == '=' || *v == '"');
		     v++)
			;
		for (n = 0;
		     v + n < eol && n + 1 < size && v[n] != '"' && v[n] != '\r' && v[n] != ' '; n++)
			;
		if (n) {
			memcpy(create_type, v, n);
			create_type[n] = '\0';
		}
		break;
	}
	return true;
}

static int vmdk_probe(const struct dscp_probe *p)
{
	if (p->head_len >= 4 && (dscp_le32(p->head) == VMDK_MAGIC || !memcmp(p->head, "COWD", 4)))
		return DSCP_SCORE_CERTAIN;
	return probe_descriptor(p->head, p->head_len);
}

static const char *const vmdk_aliases[] = {NULL};
static const char *const vmdk_extensions[] = {".vmdk", NULL};
static const char *const vmdk_subformats[] = {"streamOptimized", "monolithicSparse", NULL};
static const char *const vmdk_adapters[] = {"ide", "buslogic", "lsilogic", "legacyESX", NULL};
static const struct dsc_option_info vmdk_options[] = {
	{"subformat", DSC_OPTION_ENUM, "streamOptimized",
	 "VMDK variant written (streamOptimized: compressed grains, streams to a pipe; "
	 "monolithicSparse: uncompressed grains, to a pipe in two passes)",
	 vmdk_subformats, 0, 0},
	{"adapter_type", DSC_OPTION_ENUM, "lsilogic",
	 "virtual controller named in the descriptor (ide: 16-head geometry)", vmdk_adapters, 0, 0},
	{"hwversion", DSC_OPTION_UINT, "4", "ddb.virtualHWVersion of the descriptor", NULL, 4, 99},
	{"zeroed_grain", DSC_OPTION_BOOL, "off",
	 "monolithicSparse: version 2 header with the zeroed-grain flag (as qemu-img)", NULL, 0, 0},
	{NULL, DSC_OPTION_BOOL, NULL, NULL, NULL, 0, 0},
};

const struct dscp_format dscp_format_vmdk = {
	.info = {.name = "vmdk",
		 .description =
			 "VMware VMDK (streamOptimized, monolithicSparse; reads descriptor files)",
		 .aliases = vmdk_aliases,
		 .extensions = vmdk_extensions,
		 .flags = DSC_FMT_READ | DSC_FMT_WRITE | DSC_FMT_READ_STREAMS |
			  DSC_FMT_WRITE_NEEDS_CAPACITY | DSC_FMT_WRITE_COMPRESSED,
		 .options = vmdk_options},
	.probe = vmdk_probe,
	.noun = "a VMDK image",
	.reader = &dscp_vmdk_reader,
	.writer = &dscp_vmdk_writer,
};
