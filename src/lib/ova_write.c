/* ova_write.c - OVA output: an OVF 1.0 descriptor, one streamOptimized
 * VMDK and a SHA-256 manifest, in that tar order (the manifest at the end,
 * which DSP0243 allows, so every digest is computed while the bytes pass).
 *
 * The VMSystem is the minimal one VMware's and VirtualBox's importers take
 * (facts doc section 5; open-vmdk's mkova.sh is the reference layout): a
 * virtual hardware family vmx-10, -o cpus= CPUs, -o memory= MiB of memory,
 * one disk on an LSI Logic SCSI controller, -o os= the guest type
 * (vmw:osType), -o name= the machine's name (default: the output's name).
 *
 * The VMDK's size is known only at its end. On a seekable output the tar
 * header of the VMDK member is written as a placeholder and written again
 * at the end, and the OVF's ovf:size is a fixed-width number patched in
 * place (the OVF is hashed after that, for the manifest). On a pipe (or an
 * /export) the VMDK is cut into ovf:chunkSize members of DSCP_OVA_CHUNK
 * bytes (NAME-disk1.vmdk.000000000, ...), each buffered whole, so memory
 * stays one chunk; the manifest lists every chunk, as ovftool does.
 */
#include "internal.h"
#include "ova.h"
#include "tar.h"

#include <inttypes.h>
#include <stdio.h>
#include <time.h>
#if HAVE_CRYPTO
#include <openssl/evp.h>
#endif

/* The chunk of a VMDK written to an unseekable output. */
#define DSCP_OVA_CHUNK (16u << 20)
/* Width of the patched ovf:size (up to 10^20 - 1 bytes). */
#define OVA_SIZE_DIGITS 20
#define OVA_NAME_MAX 64

struct ova_writer {
	dsc_writer *vmdk;   /* writes into `member` */
	dsc_stream *member; /* the VMDK member (or its chunks) */
	char name[OVA_NAME_MAX + 1];
	char disk_name[OVA_NAME_MAX + 32];
	char *ovf;               /* the descriptor text */
	size_t ovf_len, size_at; /* ovf:size digits at ovf + size_at (seekable) */
	uint64_t ovf_data_at;    /* output offset of the OVF's data */
	uint64_t vmdk_hdr_at;    /* output offset of the VMDK member's header */
	uint64_t vmdk_bytes;     /* VMDK bytes written so far */
	bool seekable;
	/* chunked: the chunk being filled */
	uint8_t *chunk;
	size_t chunk_len;
	uint64_t chunk_no;
	char *mf; /* the manifest being built */
	size_t mf_len, mf_cap;
#if HAVE_CRYPTO
	EVP_MD_CTX *md; /* the VMDK (seekable) or the current chunk */
#endif
	dsc_stream *out; /* the OVA's output (the writer's) */
	uint64_t mtime;
	struct dsc_error err; /* a failure inside the member stream */
};

static const char *wname(const dsc_writer *w) { return dsc_stream_name(w->out); }

static dsc_err nomem(const dsc_writer *w, struct dsc_error *e)
{
	return dsc_error_set(e, DSC_ERR_NOMEM, ENOMEM, "%s: out of memory", wname(w));
}

static dsc_err mf_add(struct ova_writer *o, const char *name, const char *hex, struct dsc_error *e)
{
	size_t need = strlen(name) + strlen(hex) + 16;

	if (o->mf_len + need > o->mf_cap) {
		size_t cap = (o->mf_len + need) * 2;
		char *n = realloc(o->mf, cap);

		if (!n)
			return dsc_error_set(e, DSC_ERR_NOMEM, ENOMEM, "out of memory");
		o->mf = n;
		o->mf_cap = cap;
	}
	o->mf_len += (size_t)snprintf(o->mf + o->mf_len, o->mf_cap - o->mf_len, "SHA256(%s)= %s\n",
				      name, hex);
	return DSC_OK;
}

#if HAVE_CRYPTO
static void md_hex(EVP_MD_CTX *md, char hex[65])
{
	unsigned char v[EVP_MAX_MD_SIZE];
	unsigned int n = 0;

	EVP_DigestFinal_ex(md, v, &n);
	for (unsigned int i = 0; i < n && i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", v[i]);
}
#endif

static dsc_err sha256_of(const void *buf, size_t len, char hex[65], struct dsc_error *e)
{
#if HAVE_CRYPTO
	unsigned char v[EVP_MAX_MD_SIZE];
	unsigned int n = 0;

	if (EVP_Digest(buf, len, v, &n, EVP_sha256(), NULL) != 1)
		return dsc_error_set(e, DSC_ERR_IO, 0, "OVA: SHA-256 failed");
	for (unsigned int i = 0; i < n && i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", v[i]);
	return DSC_OK;
#else
	(void)buf, (void)len, (void)hex;
	return dsc_error_set(e, DSC_ERR_UNSUPPORTED, 0,
			     "OVA output needs SHA-256 for its manifest (built without libcrypto)");
#endif
}

static const uint8_t zeros[DSCP_TAR_BLOCK];

/* A whole member: header, data, padding. */
static dsc_err put_member(struct ova_writer *o, const char *name, const void *data, size_t len,
			  struct dsc_error *e)
{
	uint8_t h[DSCP_TAR_BLOCK];
	dsc_err rc;

	dscp_tar_header(h, name, len, o->mtime);
	rc = dsc_write_all(o->out, h, sizeof h, e);
	if (rc == DSC_OK && len)
		rc = dsc_write_all(o->out, data, len, e);
	if (rc == DSC_OK && len % DSCP_TAR_BLOCK)
		rc = dsc_write_all(o->out, zeros, DSCP_TAR_BLOCK - len % DSCP_TAR_BLOCK, e);
	return rc;
}

/* Write the chunk buffered so far as member NAME.%09u, with its digest. */
static dsc_err flush_chunk(struct ova_writer *o, struct dsc_error *e)
{
	char member[OVA_NAME_MAX + 48], hex[65] = "";
	dsc_err rc;

	snprintf(member, sizeof member, "%s.%09" PRIu64, o->disk_name, o->chunk_no);
	rc = sha256_of(o->chunk, o->chunk_len, hex, e);
	if (rc == DSC_OK)
		rc = put_member(o, member, o->chunk, o->chunk_len, e);
	if (rc == DSC_OK)
		rc = mf_add(o, member, hex, e);
	o->chunk_no++;
	o->chunk_len = 0;
	return rc;
}

/* ---- the member stream the VMDK writer writes into ---------------------- */

static dsc_err member_write(void *ctx, const void *buf, size_t len, size_t *nwritten,
			    struct dsc_error *e)
{
	struct ova_writer *o = ctx;
	const uint8_t *p = buf;
	dsc_err rc;

	*nwritten = 0;
	if (o->seekable) {
		rc = dsc_write_all(o->out, buf, len, e);
		if (rc != DSC_OK)
			return rc;
#if HAVE_CRYPTO
		EVP_DigestUpdate(o->md, buf, len);
#endif
		o->vmdk_bytes += len;
		*nwritten = len;
		return DSC_OK;
	}
	while (*nwritten < len) {
		size_t k = DSC_MIN(len - *nwritten, (size_t)DSCP_OVA_CHUNK - o->chunk_len);

		memcpy(o->chunk + o->chunk_len, p + *nwritten, k);
		o->chunk_len += k;
		*nwritten += k;
		o->vmdk_bytes += k;
		if (o->chunk_len == DSCP_OVA_CHUNK) {
			rc = flush_chunk(o, e);
			if (rc != DSC_OK)
				return rc;
		}
	}
	return DSC_OK;
}

static dsc_err member_finish(void *ctx, struct dsc_error *e)
{
	(void)ctx, (void)e;
	return DSC_OK; /* the OVA writer completes the archive */
}

static void member_close(void *ctx) { (void)ctx; }

static const struct dsc_stream_ops member_ops = {
	.name = "ova-member",
	.write = member_write,
	.finish = member_finish,
	.close = member_close,
};

/* ---- the descriptor ---------------------------------------------------------- */

static bool name_ok(const char *s)
{
	size_t n = strlen(s);

	return n >= 1 && n <= OVA_NAME_MAX &&
	       strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklm"
			 "nopqrstuvwxyz0123456789._-") == n &&
	       s[0] != '.';
}

static dsc_err make_ovf(dsc_writer *w, struct ova_writer *o, uint64_t cap, struct dsc_error *e)
{
	const char *os = dscp_writer_option(w, "os");
	uint64_t cpus = dscp_writer_option_uint(w, "cpus"),
		 mem = dscp_writer_option_uint(w, "memory");
	char size_attr[64] = "";
	int n;

	if (!name_ok(os))
		return dsc_error_set(e, DSC_ERR_INVAL, 0,
				     "ova: os '%.64s' is not a guest type name ([A-Za-z0-9._-])",
				     os);
	if (o->seekable)
		snprintf(size_attr, sizeof size_attr, " ovf:size=\"%0*u\"", OVA_SIZE_DIGITS, 0u);
	else
		snprintf(size_attr, sizeof size_attr, " ovf:chunkSize=\"%u\"", DSCP_OVA_CHUNK);
	n = asprintf(
		&o->ovf,
		"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		"<!-- written by dsc-convert -->\n"
		"<Envelope vmw:buildId=\"build-0\" xmlns=\"http://schemas.dmtf.org/ovf/envelope/1\" "
		"xmlns:cim=\"http://schemas.dmtf.org/wbem/wscim/1/common\" "
		"xmlns:ovf=\"http://schemas.dmtf.org/ovf/envelope/1\" "
		"xmlns:rasd=\"http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/"
		"CIM_ResourceAllocationSettingData\" "
		"xmlns:vmw=\"http://www.vmware.com/schema/ovf\" "
		"xmlns:vssd=\"http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/"
		"CIM_VirtualSystemSettingData\" "
		"xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\">\n"
		"  <References>\n"
		"    <File ovf:href=\"%s\" ovf:id=\"file1\"%s/>\n"
		"  </References>\n"
		"  <DiskSection>\n"
		"    <Info>Virtual disk information</Info>\n"
		"    <Disk ovf:capacity=\"%" PRIu64 "\" ovf:capacityAllocationUnits=\"byte\" "
		"ovf:diskId=\"vmdisk1\" ovf:fileRef=\"file1\" "
		"ovf:format=\"http://www.vmware.com/interfaces/specifications/"
		"vmdk.html#streamOptimized\"/>\n"
		"  </DiskSection>\n"
		"  <VirtualSystem ovf:id=\"%s\">\n"
		"    <Info>A virtual machine</Info>\n"
		"    <Name>%s</Name>\n"
		"    <OperatingSystemSection ovf:id=\"1\" vmw:osType=\"%s\">\n"
		"      <Info>The kind of installed guest operating system</Info>\n"
		"    </OperatingSystemSection>\n"
		"    <VirtualHardwareSection>\n"
		"      <Info>Virtual hardware requirements</Info>\n"
		"      <System>\n"
		"        <vssd:ElementName>Virtual Hardware Family</vssd:ElementName>\n"
		"        <vssd:InstanceID>0</vssd:InstanceID>\n"
		"        <vssd:VirtualSystemIdentifier>%s</vssd:VirtualSystemIdentifier>\n"
		"        <vssd:VirtualSystemType>vmx-10</vssd:VirtualSystemType>\n"
		"      </System>\n"
		"      <Item>\n"
		"        <rasd:AllocationUnits>hertz * 10^6</rasd:AllocationUnits>\n"
		"        <rasd:Description>Number of Virtual CPUs</rasd:Description>\n"
		"        <rasd:ElementName>%" PRIu64 " virtual CPU(s)</rasd:ElementName>\n"
		"        <rasd:InstanceID>1</rasd:InstanceID>\n"
		"        <rasd:ResourceType>3</rasd:ResourceType>\n"
		"        <rasd:VirtualQuantity>%" PRIu64 "</rasd:VirtualQuantity>\n"
		"      </Item>\n"
		"      <Item>\n"
		"        <rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits>\n"
		"        <rasd:Description>Memory Size</rasd:Description>\n"
		"        <rasd:ElementName>%" PRIu64 "MB of memory</rasd:ElementName>\n"
		"        <rasd:InstanceID>2</rasd:InstanceID>\n"
		"        <rasd:ResourceType>4</rasd:ResourceType>\n"
		"        <rasd:VirtualQuantity>%" PRIu64 "</rasd:VirtualQuantity>\n"
		"      </Item>\n"
		"      <Item>\n"
		"        <rasd:Address>0</rasd:Address>\n"
		"        <rasd:Description>SCSI Controller</rasd:Description>\n"
		"        <rasd:ElementName>SCSI Controller 0</rasd:ElementName>\n"
		"        <rasd:InstanceID>3</rasd:InstanceID>\n"
		"        <rasd:ResourceSubType>lsilogic</rasd:ResourceSubType>\n"
		"        <rasd:ResourceType>6</rasd:ResourceType>\n"
		"      </Item>\n"
		"      <Item>\n"
		"        <rasd:AddressOnParent>0</rasd:AddressOnParent>\n"
		"        <rasd:ElementName>Hard Disk 1</rasd:ElementName>\n"
		"        <rasd:HostResource>ovf:/disk/vmdisk1</rasd:HostResource>\n"
		"        <rasd:InstanceID>4</rasd:InstanceID>\n"
		"        <rasd:Parent>3</rasd:Parent>\n"
		"        <rasd:ResourceType>17</rasd:ResourceType>\n"
		"      </Item>\n"
		"    </VirtualHardwareSection>\n"
		"  </VirtualSystem>\n"
		"</Envelope>\n",
		o->disk_name, size_attr, cap, o->name, o->name, os, o->name, cpus, cpus, mem, mem);
	if (n < 0) {
		o->ovf = NULL;
		return nomem(w, e);
	}
	o->ovf_len = (size_t)n;
	if (o->seekable) {
		const char *at = strstr(o->ovf, " ovf:size=\"");

		o->size_at = (size_t)(at - o->ovf) + strlen(" ovf:size=\"");
	}
	return DSC_OK;
}

/* ---- the writer ---------------------------------------------------------------- */

static dsc_err ova_open(dsc_writer *w, struct dsc_error *e)
{
	struct ova_writer *o = w->impl;
	struct dsc_writer_opts vo = w->opts;
	const char *name = dscp_writer_option(w, "name");
	char ovf_name[OVA_NAME_MAX + 8];
	uint8_t h[DSCP_TAR_BLOCK];
	dsc_err rc;

	o->out = w->out;
	o->mtime = (uint64_t)time(NULL);
	if (w->opts.compress)
		return dsc_error_set(e, DSC_ERR_UNSUPPORTED, 0,
				     "%s: an OVA's VMDK is always compressed (no -c)", wname(w));
	if (w->opts.capacity == DSC_CAPACITY_UNKNOWN)
		return dsc_error_set(e, DSC_ERR_UNSUPPORTED, 0,
				     "%s: an OVA's descriptor needs the disk size before the data, "
				     "and the input's size is unknown (a raw pipe): use a file as "
				     "input",
				     wname(w));
	if (name && *name) {
		if (!name_ok(name))
			return dsc_error_set(
				e, DSC_ERR_INVAL, 0,
				"ova: name '%.64s' must be 1 to 64 of A-Z a-z 0-9 . _ - "
				"(not starting with '.')",
				name);
		snprintf(o->name, sizeof o->name, "%s", name);
	} else {
		/* The output's own name without its extension, else "disk". */
		const char *b = w->opts.extent_name ? w->opts.extent_name : dsc_stream_name(w->out);
		const char *slash = strrchr(b, '/');
		size_t i, n;

		b = slash ? slash + 1 : b;
		n = strcspn(b, ".");
		for (i = 0; i < n && i < OVA_NAME_MAX; i++)
			o->name[i] = strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
					    "0123456789_-",
					    b[i]) && b[i] ?
					     b[i] :
					     '_';
		o->name[i] = '\0';
		if (!name_ok(o->name) || !strcmp(o->name, "stdout"))
			snprintf(o->name, sizeof o->name, "disk");
	}
	snprintf(o->disk_name, sizeof o->disk_name, "%s-disk1.vmdk", o->name);
	snprintf(ovf_name, sizeof ovf_name, "%s.ovf", o->name);
	o->seekable = dsc_stream_can_seek(w->out);
	if (!o->seekable && !(o->chunk = malloc(DSCP_OVA_CHUNK)))
		return nomem(w, e);
#if HAVE_CRYPTO
	if (!(o->md = EVP_MD_CTX_new()) || EVP_DigestInit_ex(o->md, EVP_sha256(), NULL) != 1)
		return nomem(w, e);
#else
	return dsc_error_set(
		e, DSC_ERR_UNSUPPORTED, 0,
		"%s: OVA output needs SHA-256 for its manifest (built without libcrypto)",
		wname(w));
#endif
	rc = make_ovf(w, o, w->opts.capacity, e);
	if (rc != DSC_OK)
		return rc;
	/* The descriptor: its header, then its text (patched at the end when
	 * seekable), then the VMDK member's header (a placeholder). */
	dscp_tar_header(h, ovf_name, o->ovf_len, o->mtime);
	rc = dsc_write_all(w->out, h, sizeof h, e);
	o->ovf_data_at = dsc_stream_tell(w->out);
	if (rc == DSC_OK)
		rc = dsc_write_all(w->out, o->ovf, o->ovf_len, e);
	if (rc == DSC_OK && o->ovf_len % DSCP_TAR_BLOCK)
		rc = dsc_write_all(w->out, zeros, DSCP_TAR_BLOCK - o->ovf_len % DSCP_TAR_BLOCK, e);
	if (rc == DSC_OK && !o->seekable) {
		char hex[65] = "";

		rc = sha256_of(o->ovf, o->ovf_len, hex, e);
		if (rc == DSC_OK)
			rc = mf_add(o, ovf_name, hex, e);
	}
	if (rc == DSC_OK && o->seekable) {
		o->vmdk_hdr_at = dsc_stream_tell(w->out);
		dscp_tar_header(h, o->disk_name, 0, o->mtime);
		rc = dsc_write_all(w->out, h, sizeof h, e);
	}
	if (rc != DSC_OK)
		return rc;
	rc = dsc_stream_new(&member_ops, o, dsc_stream_name(w->out), &o->member, e);
	if (rc != DSC_OK)
		return rc;
	vo.extent_name = o->disk_name;
	vo.options = NULL;
	return dsc_writer_open(o->member, DSC_FORMAT_VMDK, &vo, &o->vmdk, e);
}

static dsc_err ova_put(dsc_writer *w, const struct dsc_extent *ext, struct dsc_error *e)
{
	struct ova_writer *o = w->impl;

	return dsc_writer_put(o->vmdk, ext, e);
}

static dsc_err ova_finish(dsc_writer *w, uint64_t capacity, struct dsc_error *e)
{
	struct ova_writer *o = w->impl;
	char ovf_name[OVA_NAME_MAX + 8], mf_name[OVA_NAME_MAX + 8], hex[65] = "";
	uint8_t h[DSCP_TAR_BLOCK];
	uint64_t end;
	dsc_err rc;

	rc = dsc_writer_finish(o->vmdk, capacity, e);
	if (rc != DSC_OK)
		return rc;
	snprintf(ovf_name, sizeof ovf_name, "%s.ovf", o->name);
	snprintf(mf_name, sizeof mf_name, "%s.mf", o->name);
	if (o->seekable) {
		char digits[OVA_SIZE_DIGITS + 1];

		end = dsc_stream_tell(w->out);
		/* The VMDK's real header, its size in the OVF, then on. */
		dscp_tar_header(h, o->disk_name, o->vmdk_bytes, o->mtime);
		rc = dsc_stream_seek(w->out, o->vmdk_hdr_at, e);
		if (rc == DSC_OK)
			rc = dsc_write_all(w->out, h, sizeof h, e);
		snprintf(digits, sizeof digits, "%0*" PRIu64, OVA_SIZE_DIGITS, o->vmdk_bytes);
		memcpy(o->ovf + o->size_at, digits, OVA_SIZE_DIGITS);
		if (rc == DSC_OK)
			rc = dsc_stream_seek(w->out, o->ovf_data_at + o->size_at, e);
		if (rc == DSC_OK)
			rc = dsc_write_all(w->out, digits, OVA_SIZE_DIGITS, e);
		if (rc == DSC_OK)
			rc = dsc_stream_seek(w->out, end, e);
		if (rc == DSC_OK && o->vmdk_bytes % DSCP_TAR_BLOCK)
			rc = dsc_write_all(w->out, zeros,
					   DSCP_TAR_BLOCK - o->vmdk_bytes % DSCP_TAR_BLOCK, e);
		if (rc == DSC_OK)
			rc = sha256_of(o->ovf, o->ovf_len, hex, e);
		if (rc == DSC_OK)
			rc = mf_add(o, ovf_name, hex, e);
#if HAVE_CRYPTO
		if (rc == DSC_OK) {
			md_hex(o->md, hex);
			rc = mf_add(o, o->disk_name, hex, e);
		}
#endif
	} else if (o->chunk_len || o->chunk_no == 0) {
		rc = flush_chunk(o, e);
	}
	if (rc == DSC_OK)
		rc = put_member(o, mf_name, o->mf, o->mf_len, e);
	if (rc == DSC_OK)
		rc = dsc_write_all(w->out, zeros, sizeof zeros, e);
	if (rc == DSC_OK)
		rc = dsc_write_all(w->out, zeros, sizeof zeros, e);
	if (rc != DSC_OK)
		return rc;
	w->file_size = dsc_stream_tell(w->out);
	return dsc_stream_finish(w->out, e);
}

static void ova_close(dsc_writer *w)
{
	struct ova_writer *o = w->impl;

	dsc_writer_close(o->vmdk);
	dsc_stream_close(o->member);
#if HAVE_CRYPTO
	EVP_MD_CTX_free(o->md);
#endif
	free(o->chunk);
	free(o->ovf);
	free(o->mf);
}

const struct dscp_writer_class dscp_ova_writer = {
	.size = sizeof(struct ova_writer),
	.open = ova_open,
	.put = ova_put,
	.finish = ova_finish,
	.close = ova_close,
};

const struct dsc_option_info dscp_ova_options[] = {
	{"name", DSC_OPTION_STRING, NULL,
	 "the virtual machine's name, also the members' (default: the output's name)", NULL, 0, 0},
	{"cpus", DSC_OPTION_UINT, "1", "virtual CPUs", NULL, 1, 128},
	{"memory", DSC_OPTION_UINT, "1024", "memory in MiB", NULL, 4, 4194304},
	{"os", DSC_OPTION_STRING, "otherGuest64",
	 "guest type (vmw:osType: otherGuest64, otherLinux64Guest, ubuntu64Guest, "
	 "windows9_64Guest, ...)",
	 NULL, 0, 0},
	{NULL, DSC_OPTION_BOOL, NULL, NULL, NULL, 0, 0},
};
