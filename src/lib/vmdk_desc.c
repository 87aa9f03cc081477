/* vmdk_desc.c - reader for VMDK descriptor files and their extents
 * (monolithicFlat, twoGbMaxExtentSparse, twoGbMaxExtentFlat, vmfs,
 * vmfsSparse).
 *
 * A descriptor is a small text file whose extent lines name the files that
 * hold the disk, in guest order ("RW 4192256 SPARSE \"d-s001.vmdk\"",
 * "RW 2048 FLAT \"d-flat.vmdk\" 0", "RW 2048 ZERO"; formats.md §4 and qemu's
 * block/vmdk.c). Extents are opened only when the caller named a directory
 * for them (dsc_stream_set_extent_dir: the CLI for a local source; _dirfd:
 * the server's /export, the directory it checked holds the file under an
 * export root), and only as plain file
 * names in that directory, opened with O_NOFOLLOW and checked to be regular
 * files: a descriptor can never make us read a file beside some other path.
 * Every line is checked at open, and every extent file opened and closed
 * once, so a bad set fails before any output; the read then opens one
 * extent at a time (one descriptor of ours at a time, whatever the count).
 * A flat extent is read in 1 MiB pieces, skipping holes; a sparse one goes
 * through the VMDK reader itself (vmdk_read.c / vmdk_sparse_read.c) on a
 * stream of its own, which has no extent directory: a descriptor naming a
 * descriptor is refused.
 */
#include "vmdk.h"

#include <ctype.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

enum ext_kind {
	EXT_FLAT,
	EXT_SPARSE,
	EXT_ZERO
};

struct vmdk_ext {
	enum ext_kind kind;
	uint64_t sectors; /* guest sectors */
	uint64_t offset;  /* flat: first sector in the file */
	uint64_t guest;   /* first guest byte */
	char file[VMDK_MAX_EXTENT_NAME + 1];
};

struct vmdk_desc {
	struct vmdk_ext *ext;
	size_t next_ext, n;
	int dirfd;
	/* The extent being read. */
	bool active;
	int fd;            /* flat */
	uint64_t flat_pos; /* flat: bytes of the extent done */
	uint64_t flat_end; /* flat: bytes of the extent */
	dsc_stream *in;    /* sparse */
	dsc_reader *sub;   /* sparse */
	uint8_t *buf;
	size_t emit_len, emit_off;
	uint64_t emit_guest;
};

static const char *rname(dsc_reader *r) { return dsc_stream_name(r->in); }

/* The simplest safe rule: a plain name in the descriptor's directory. */
static bool plain_name(const char *s)
{
	return s[0] && !strchr(s, '/') && strcmp(s, ".") && strcmp(s, "..");
}

/* Open extent `x` read-only: a regular file, no symbolic link. */
static dsc_err open_extent(dsc_reader *r, struct vmdk_desc *d, const struct vmdk_ext *x, int *fd,
			   struct dsc_error *e)
{
	struct stat st;
	int err;

	*fd = openat(d->dirfd, x->file, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (*fd < 0) {
		err = errno;
		if (err == ELOOP)
			return dsc_error_set(e, DSC_ERR_UNSUPPORTED, err,
					     "%s: extent \"%s\" is a symbolic link; extents must "
					     "be regular files in the descriptor's directory",
					     rname(r), x->file);
		return dsc_error_set(e, dsc_err_from_errno(err), err, "%s: extent \"%s\": %s",
				     rname(r), x->file, strerror(err));
	}
	if (fstat(*fd, &st) || !S_ISREG(st.st_mode)) {
		close(*fd);
		*fd = -1;
		return dsc_error_set(e, DSC_ERR_UNSUPPORTED, 0,
				     "%s: extent \"%s\" is not a regular file", rname(r), x->file);
	}
	/* Regular files ignore O_NONBLOCK; it only kept a FIFO from
	 * blocking the open. */
	fcntl(*fd, F_SETFL, fcntl(*fd, F_GETFL) & ~O_NONBLOCK);
	return DSC_OK;
}

static dsc_err bad_line(dsc_reader *r, size_t line, const char *why, struct dsc_error *e)
{
	return dsc_error_set(e, DSC_ERR_FORMAT, 0, "%s: descriptor line %zu: %s", rname(r), line,
			     why);
}

/* One extent line: ACCESS SECTORS TYPE ["FILE" [OFFSET]]. 0: not an extent
 * line; 1: *x filled; else the error. */
static int parse_line(dsc_reader *r, const char *p, size_t n, size_t line, struct vmdk_ext *x,
		      dsc_err *rc, struct dsc_error *e)
{
	char buf[VMDK_MAX_EXTENT_NAME + 128], access[16], type[16];
	unsigned long long sectors, offset = 0;
	const char *q1, *q2;
	char *end;
	int used = 0;

	if (n >= sizeof buf) {
		*rc = bad_line(r, line, "too long", e);
		return -1;
	}
	memcpy(buf, p, n);
	buf[n] = '\0';
	if (sscanf(buf, "%15s", access) != 1 ||
	    (strcmp(access, "RW") && strcmp(access, "RDONLY") && strcmp(access, "NOACCESS")))
		return 0;
	p = buf + strlen(access);
	while (*p == ' ' || *p == '\t')
		p++;
	if (!isdigit((unsigned char)*p)) {
		*rc = bad_line(r, line, "extent size is not a number", e);
		return -1;
	}
	errno = 0;
	sectors = strtoull(p, &end, 10);
	if (errno || sectors == 0 || sectors > VMDK_MAX_CAPACITY_SECTORS ||
	    (*end != ' ' && *end != '\t')) {
		*rc = bad_line(r, line, "extent size is not a number of sectors from 1 to 2^37", e);
		return -1;
	}
	if (sscanf(end, "%15s %n", type, &used) != 1) {
		*rc = bad_line(r, line, "extent line without a type", e);
		return -1;
	}
	memset(x, 0, sizeof *x);
	x->sectors = sectors;
	if (!strcmp(type, "ZERO")) {
		x->kind = EXT_ZERO;
		return 1;
	}
	if (!strcmp(type, "FLAT") || !strcmp(type, "VMFS"))
		x->kind = EXT_FLAT;
	else if (!strcmp(type, "SPARSE") || !strcmp(type, "VMFSSPARSE"))
		x->kind = EXT_SPARSE; /* the magic tells KDMV from COWD, as in qemu */
	else {
		*rc = dsc_error_set(e, DSC_ERR_UNSUPPORTED, 0,
				    "%s: descriptor line %zu: extent type %s is not supported "
				    "(FLAT, VMFS, SPARSE, VMFSSPARSE and ZERO are)",
				    rname(r), line, type);
		return -1;
	}
	q1 = strchr(end + used, '"');
	q2 = q1 ? strchr(q1 + 1, '"') : NULL;
	if (!q1 || q1 != end + used || !q2) {
		*rc = bad_line(r, line, "extent without a quoted file name", e);
		return -1;
	}
	if ((size_t)(q2 - q1 - 1) > VMDK_MAX_EXTENT_NAME) {
		*rc = bad_line(r, line, "extent file name too long", e);
		return -1;
	}
	memcpy(x->file, q1 + 1, (size_t)(q2 - q1 - 1));
	x->file[q2 - q1 - 1] = '\0';
	if (!plain_name(x->file)) {
		*rc = dsc_error_set(e, DSC_ERR_UNSUPPORTED, 0,
				    "%s: extent path \"%s\" is outside the descriptor's directory "
				    "(extents must be plain file names beside it)",
				    rname(r), x->file);
		return -1;
	}
	for (p = q2 + 1; *p == ' ' || *p == '\t'; p++)
		;
	if (*p) {
		if (x->kind != EXT_FLAT || !isdigit((unsigned char)*p)) {
			*rc = bad_line(r, line, "unexpected text after the extent file name", e);
			return -1;
		}
		errno = 0;
		offset = strtoull(p, &end, 10);
		while (*end == ' ' || *end == '\t' || *end == '\r')
			end++;
		if (errno || *end || offset > VMDK_MAX_CAPACITY_SECTORS) {
			*rc = bad_line(r, line, "flat extent offset is not a number of sectors", e);
			return -1;
		}
	}
	x->offset = offset;
	return 1;
}

/* The createType values whose extents we read (qemu's names). */
static bool known_type(const char *t)
{
	static const char *const ok[] =
		{"monolithicFlat", "monolithicSparse", "twoGbMaxExtentSparse", "twoGbMaxExtentFlat",
		 "vmfs",           "vmfsSparse",       "streamOptimized",      NULL};

	for (size_t i = 0; ok[i]; i++)
		if (!strcasecmp(t, ok[i]))
			return true;
	return false;
}

/* What dsc-img info reports of a descriptor file and its extents (qemu-img
 * info's keys; a sparse extent's grain is not read here). */
static void report_info(dsc_reader *r, const struct vmdk_desc *d, const struct vmdk_descriptor *m)
{
	static const char *const kinds[] =
		{[EXT_FLAT] = "FLAT", [EXT_SPARSE] = "SPARSE", [EXT_ZERO] = "ZERO"};
	size_t i;

	if (m->have_cid)
		dscp_info_uint(r, NULL, 0, "cid", m->cid);
	dscp_info_uint(r, NULL, 0, "parent-cid", m->parent_cid);
	dscp_info_str(r, NULL, 0, "create-type", m->create_type);
	for (i = 0; i < d->n; i++) {
		dscp_info_uint(r, "extents", i, "virtual-size", d->ext[i].sectors * VMDK_SECTOR);
		if (d->ext[i].kind != EXT_ZERO)
			dscp_info_str(r, "extents", i, "filename", d->ext[i].file);
		dscp_info_str(r, "extents", i, "format", kinds[d->ext[i].kind]);
	}
}

/* A sparse extent's grain, for info (its header is read again, and
 * checked, when the extent is read): extents[i].cluster-size, and the
 * image's cluster size from the first. */
static void report_grain(dsc_reader *r, size_t i, int fd)
{
	uint8_t h[VMDK_SECTOR];
	uint64_t grain = 0;

	if (pread(fd, h, sizeof h, 0) != (ssize_t)sizeof h)
		return;
	if (dscp_le32(h) == VMDK_MAGIC)
		grain = dscp_le64(h + 20); /* sectors */
	else if (!memcmp(h, "COWD", 4))
		grain = dscp_le32(h + 16);
	if (!grain || grain > VMDK_MAX_GRAIN_SECTORS)
		return;
	dscp_info_uint(r, "extents", i, "cluster-size", grain * VMDK_SECTOR);
	if (!r->cluster_size)
		r->cluster_size = grain * VMDK_SECTOR;
}

dsc_err dscp_vmdk_desc_open(dsc_reader *r, const uint8_t *head, size_t head_len,
			    struct vmdk_desc **out, struct dsc_error *e)
{
	int dir_fd;
	const char *dir = dscp_stream_extent_dir(r->in, &dir_fd);
	struct vmdk_descriptor meta;
	struct vmdk_desc *d;
	char *text = NULL;
	const char *p, *end, *nl;
	size_t len = head_len, got, line = 0, cap = 0;
	uint64_t total = 0;
	dsc_err rc = DSC_OK;
	int fd;

	*out = NULL;
	text = malloc(VMDK_MAX_DESCRIPTOR_FILE + 1);
	if (!text)
		return dsc_error_set(e, DSC_ERR_NOMEM, ENOMEM, "%s: out of memory", rname(r));
	memcpy(text, head, head_len);
	rc = dsc_read_full(r->in, text + len, VMDK_MAX_DESCRIPTOR_FILE + 1 - len, &got, e);
	if (rc != DSC_OK)
		goto out;
	len += got;
	if (len > VMDK_MAX_DESCRIPTOR_FILE) {
		rc = dsc_error_set(e, DSC_ERR_LIMIT, 0,
				   "%s: VMDK descriptor file larger than the limit of %u bytes",
				   rname(r), VMDK_MAX_DESCRIPTOR_FILE);
		goto out;
	}
	rc = dscp_vmdk_descriptor_parse(text, len, rname(r), &meta, e);
	if (rc != DSC_OK)
		goto out;
	if (meta.has_parent && dscp_inspect_only(r, DSC_ERR_UNSUPPORTED,
						 "a VMDK delta (snapshot) disk (%s); parent "
						 "chains are not followed",
						 meta.parent))
		dscp_info_backing(r, meta.parent_hint, strlen(meta.parent_hint), NULL);
	else if (meta.has_parent) {
		rc = dsc_error_set(e, DSC_ERR_UNSUPPORTED, 0,
				   "%s: a VMDK delta (snapshot) disk (%s); parent chains are not "
				   "supported: convert the parent-free disk, or flatten the chain "
				   "first",
				   rname(r), meta.parent);
		goto out;
	}
	if (!known_type(meta.create_type)) {
		rc = dsc_error_set(e, DSC_ERR_UNSUPPORTED, 0,
				   "%s: VMDK descriptor of createType \"%s\" is not supported "
				   "(monolithicFlat, twoGbMaxExtentSparse, twoGbMaxExtentFlat, "
				   "vmfs, vmfsSparse and descriptors of sparse extents are)",
				   rname(r), meta.create_type);
		goto out;
	}
	if (!dir && dir_fd < 0) {
		rc = dsc_error_set(e, DSC_ERR_UNSUPPORTED, 0,
				   "%s: a VMDK descriptor file references extent files; send the "
				   "extent file (-flat.vmdk / -s001.vmdk ...) or a "
				   "streamOptimized/monolithicSparse image instead",
				   rname(r));
		goto out;
	}
	d = calloc(1, sizeof *d);
	if (!d) {
		rc = dsc_error_set(e, DSC_ERR_NOMEM, ENOMEM, "%s: out of memory", rname(r));
		goto out;
	}
	*out = d;
	d->dirfd = -1;
	d->fd = -1;
	for (p = text, end = text + strnlen(text, len); p < end; p = nl + 1) {
		struct vmdk_ext x;
		size_t n;
		int k;

		line++;
		nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl)
			nl = end;
		n = (size_t)(nl - p);
		if (n && p[n - 1] == '\r')
			n--;
		while (n && (*p == ' ' || *p == '\t')) {
			p++;
			n--;
		}
		if (!n || *p == '#')
			continue;
		k = parse_line(r, p, n, line, &x, &rc, e);
		if (k < 0)
			goto out;
		if (k == 0)
			continue;
		if (d->n == VMDK_MAX_EXTENTS) {
			rc = dsc_error_set(e, DSC_ERR_LIMIT, 0,
					   "%s: VMDK descriptor lists more than %u extents",
					   rname(r), VMDK_MAX_EXTENTS);
			goto out;
		}
		if (d->n == cap) {
			struct vmdk_ext *nx;

			cap = cap ? 2 * cap : 8;
			nx = realloc(d->ext, cap * sizeof *nx);
			if (!nx) {
				rc = dsc_error_set(e, DSC_ERR_NOMEM, ENOMEM, "%s: out of memory",
						   rname(r));
				goto out;
			}
			d->ext = nx;
		}
		x.guest = total * VMDK_SECTOR;
		total += x.sectors;
		if (total > VMDK_MAX_CAPACITY_SECTORS) {
			rc = dsc_error_set(e, DSC_ERR_LIMIT, 0,
					   "%s: VMDK extents add up to more than the limit of %llu "
					   "sectors",
					   rname(r), (unsigned long long)VMDK_MAX_CAPACITY_SECTORS);
			goto out;
		}
		d->ext[d->n++] = x;
	}
	report_info(r, d, &meta);
	if (!d->n) {
		rc = dsc_error_set(e, DSC_ERR_FORMAT, 0, "%s: VMDK descriptor lists no extent",
				   rname(r));
		goto out;
	}
	/* The directory the caller opened, or the one it named. */
	d->dirfd = dir_fd >= 0 ? fcntl(dir_fd, F_DUPFD_CLOEXEC, 0) :
				 open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (d->dirfd < 0) {
		rc = dsc_error_set(e, dsc_err_from_errno(errno), errno, "%s: %s",
				   dir ? dir : rname(r), strerror(errno));
		goto out;
	}
	/* Every extent file there and readable, before any output. */
	for (size_t i = 0; i < d->n; i++) {
		if (d->ext[i].kind == EXT_ZERO)
			continue;
		rc = open_extent(r, d, &d->ext[i], &fd, e);
		if (rc != DSC_OK)
			goto out;
		if (d->ext[i].kind == EXT_SPARSE)
			report_grain(r, i, fd);
		close(fd);
	}
	d->buf = malloc(DSCP_IO_CHUNK);
	if (!d->buf) {
		rc = dsc_error_set(e, DSC_ERR_NOMEM, ENOMEM, "%s: out of memory", rname(r));
		goto out;
	}
	r->capacity = total * VMDK_SECTOR;
out:
	free(text);
	return rc;
}

static void end_extent(struct vmdk_desc *d)
{
	if (d->fd >= 0)
		close(d->fd);
	d->fd = -1;
	dsc_reader_close(d->sub);
	d->sub = NULL;
	dsc_stream_close(d->in);
	d->in = NULL;
	d->active = false;
	d->emit_len = d->emit_off = 0;
}

void dscp_vmdk_desc_free(struct vmdk_desc *d)
{
	if (!d)
		return;
	end_extent(d);
	if (d->dirfd >= 0)
		close(d->dirfd);
	free(d->ext);
	free(d->buf);
	free(d);
}

static dsc_err start_extent(dsc_reader *r, struct vmdk_desc *d, const struct vmdk_ext *x,
			    struct dsc_error *e)
{
	dsc_err rc;
	int fd;

	rc = open_extent(r, d, x, &fd, e);
	if (rc != DSC_OK)
		return rc;
	d->active = true;
	if (x->kind == EXT_FLAT) {
		d->fd = fd;
		d->flat_pos = 0;
		d->flat_end = x->sectors * VMDK_SECTOR;
		return DSC_OK;
	}
	rc = dsc_stream_open_fd(fd, x->file, DSC_FD_OWN, &d->in, e);
	if (rc != DSC_OK) {
		close(fd);
		return rc;
	}
	rc = dscp_reader_open_format(d->in, r->fmt, false, r->inspect, &d->sub, e);
	if (rc != DSC_OK)
		return rc;
	d->sub->tick = r->tick;
	d->sub->tick_user = r->tick_user;
	d->sub->threads = r->threads;
	return DSC_OK;
}

/* The next non-zero run of 64 KiB units in the flat buffer. */
static bool emit_piece(struct vmdk_desc *d, struct dsc_extent *ext)
{
	size_t u, start;

	while (d->emit_off < d->emit_len) {
		u = DSC_MIN(DSCP_ZERO_UNIT, d->emit_len - d->emit_off);
		if (!dscp_is_zero(d->buf + d->emit_off, u))
			break;
		d->emit_off += u;
	}
	if (d->emit_off >= d->emit_len)
		return false;
	start = d->emit_off;
	while (d->emit_off < d->emit_len) {
		u = DSC_MIN(DSCP_ZERO_UNIT, d->emit_len - d->emit_off);
		if (dscp_is_zero(d->buf + d->emit_off, u))
			break;
		d->emit_off += u;
	}
	ext->offset = d->emit_guest + start;
	ext->length = d->emit_off - start;
	ext->data = d->buf + start;
	return true;
}

/* Next piece of a flat extent; false in *more at its end. A file shorter
 * than its extent reads as zeros past its end, as qemu reads it. */
static dsc_err flat_next(dsc_reader *r, struct vmdk_desc *d, const struct vmdk_ext *x, bool *more,
			 struct dsc_error *e)
{
	uint64_t at = x->offset * VMDK_SECTOR + d->flat_pos;
	off_t data;
	ssize_t n;
	size_t want;

	*more = false;
	if (d->flat_pos >= d->flat_end)
		return DSC_OK;
	/* Skip the holes of a sparse flat file. */
	data = lseek(d->fd, (off_t)at, SEEK_DATA);
	if (data < 0 && errno == ENXIO)
		return DSC_OK;
	if (data > (off_t)at) {
		uint64_t skip = ((uint64_t)data - at) / VMDK_SECTOR * VMDK_SECTOR;

		d->flat_pos += skip;
		at += skip;
		if (d->flat_pos >= d->flat_end)
			return DSC_OK;
	}
	want = (size_t)DSC_MIN((uint64_t)DSCP_IO_CHUNK, d->flat_end - d->flat_pos);
	do
		n = pread(d->fd, d->buf, want, (off_t)at);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return dsc_error_set(e, dsc_err_from_errno(errno), errno,
				     "%s: extent \"%s\" at byte %" PRIu64 ": %s", rname(r), x->file,
				     at, strerror(errno));
	if (n == 0)
		return DSC_OK;
	d->emit_guest = x->guest + d->flat_pos;
	d->emit_len = (size_t)n;
	d->emit_off = 0;
	d->flat_pos += (uint64_t)n;
	*more = true;
	return DSC_OK;
}

dsc_err dscp_vmdk_desc_next(dsc_reader *r, struct vmdk_desc *d, struct dsc_extent *ext,
			    struct dsc_error *e)
{
	const struct vmdk_ext *x;
	bool more;
	dsc_err rc;

	memset(ext, 0, sizeof *ext);
	for (;;) {
		if (emit_piece(d, ext))
			return DSC_OK;
		if (d->next_ext >= d->n)
			return DSC_OK;
		x = &d->ext[d->next_ext];
		if (x->kind == EXT_ZERO) {
			d->next_ext++;
			continue;
		}
		rc = dscp_reader_tick(r, e);
		if (rc == DSC_OK && !d->active)
			rc = start_extent(r, d, x, e);
		if (rc != DSC_OK)
			return rc;
		if (x->kind == EXT_FLAT) {
			rc = flat_next(r, d, x, &more, e);
			if (rc != DSC_OK)
				return rc;
			if (!more) {
				end_extent(d);
				d->next_ext++;
			}
			continue;
		}
		rc = dsc_reader_next(d->sub, ext, e);
		if (rc != DSC_OK)
			return rc;
		if (ext->length && ext->offset < x->sectors * VMDK_SECTOR) {
			/* Only the part of the extent the line gives it. */
			ext->length = (size_t)DSC_MIN((uint64_t)ext->length,
						      x->sectors * VMDK_SECTOR - ext->offset);
			ext->offset += x->guest;
			return DSC_OK;
		}
		if (!ext->length) {
			end_extent(d);
			d->next_ext++;
		}
	}
}
