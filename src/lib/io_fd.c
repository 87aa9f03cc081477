/* io_fd.c - the file-descriptor stream backend and atomic file creation.
 *
 * One backend serves regular files, pipes, sockets and ttys. Seeking, hole
 * detection (SEEK_DATA) and resizing are offered only for regular files, so
 * a reader or writer that needs them asks dsc_stream_can_seek() and falls
 * back to a forward-only path otherwise.
 *
 * dsc_stream_create_file() writes to a temporary file beside the target and
 * renames it into place in finish(); close() before finish() unlinks it. A
 * failed conversion therefore leaves nothing behind and never clobbers an
 * existing file.
 *
 * Such a file is also written behind: after every WB_WINDOW bytes written,
 * the range they span (the window) is handed to the disk (sync_file_range,
 * no wait) and the window before it, by now on disk, is dropped from the
 * page cache. A conversion then keeps two or three windows of the output in
 * memory whatever the image size, the disk works while the codec does, the
 * final fsync has little left to do, and the page cache of other programs
 * is not evicted by a 100 GiB output. Windows count bytes, not offsets: a
 * sparse output waits on the disk once per 8 MiB of data, not per hole, and
 * writes that go backwards are covered too. Durability still comes from
 * that fsync alone.
 */
#include "internal.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

/* Characters of the target's name kept in its temporary's name. */
#define TEMP_BASE_MAX 200
/* Write-behind window of an atomic output file. */
#define WB_WINDOW (8u << 20)

struct fd_ctx {
	int fd;
	bool own;
	bool regular;
	char *name;     /* for messages */
	char *tmp_path; /* atomic output: the temporary file */
	char *final_path;
	unsigned create_flags;
	bool finished;
	/* Write-behind (atomic outputs only): the file offset; the bytes
	 * written into the current window and the range they span; the
	 * range of the previous window, submitted and still cached. */
	bool write_behind;
	uint64_t off, win_bytes;
	uint64_t win_lo, win_hi, prev_lo, prev_hi;
};

static dsc_err fd_errno(struct fd_ctx *c, int err, const char *what, struct dsc_error *e)
{
	return dsc_error_set(e, dsc_err_from_errno(err), err, "%s: %s: %s", c->name, what,
			     strerror(err));
}

static dsc_err fd_read(void *ctx, void *buf, size_t len, size_t *nread, struct dsc_error *e)
{
	struct fd_ctx *c = ctx;
	ssize_t n;

	for (;;) {
		n = read(c->fd, buf, len);
		if (n >= 0)
			break;
		if (errno != EINTR)
			return fd_errno(c, errno, "read error", e);
	}
	*nread = (size_t)n;
	return DSC_OK;
}

/* After n more bytes written at c->off: once a window holds WB_WINDOW
 * bytes, start its writeback, then wait for the previous one and drop it
 * from the cache. A failed writeback is an error here: sync_file_range
 * consumes it, so the final fsync would not see it again. A file system
 * without sync_file_range just loses the optimization. */
static dsc_err write_behind(struct fd_ctx *c, uint64_t n, struct dsc_error *e)
{
#if defined(HAVE_SYNC_FILE_RANGE) && defined(HAVE_POSIX_FADVISE)
	if (n == 0)
		return DSC_OK;
	if (c->win_bytes == 0 || c->off < c->win_lo)
		c->win_lo = c->off;
	c->off += n;
	if (c->off > c->win_hi)
		c->win_hi = c->off;
	c->win_bytes += n;
	if (c->win_bytes < WB_WINDOW)
		return DSC_OK;
	if (sync_file_range(c->fd, (off_t)c->win_lo, (off_t)(c->win_hi - c->win_lo),
			    SYNC_FILE_RANGE_WRITE) < 0)
		goto failed;
	if (c->prev_hi > c->prev_lo) {
		off_t from = (off_t)c->prev_lo, len = (off_t)(c->prev_hi - c->prev_lo);

		if (sync_file_range(c->fd, from, len,
				    SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
					    SYNC_FILE_RANGE_WAIT_AFTER) < 0)
			goto failed;
		(void)posix_fadvise(c->fd, from, len, POSIX_FADV_DONTNEED);
	}
	c->prev_lo = c->win_lo;
	c->prev_hi = c->win_hi;
	c->win_bytes = 0;
	c->win_hi = 0;
	return DSC_OK;
failed:
	if (errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP || errno == ESPIPE) {
		c->write_behind = false;
		return DSC_OK;
	}
	return fd_errno(c, errno, "write error", e);
#else
	(void)n;
	(void)e;
	c->write_behind = false;
	return DSC_OK;
#endif
}

static dsc_err fd_write(void *ctx, const void *buf, size_t len, size_t *nwritten,
			struct dsc_error *e)
{
	struct fd_ctx *c = ctx;
	ssize_t n;

	for (;;) {
		n = write(c->fd, buf, len);
		if (n >= 0)
			break;
		if (errno != EINTR)
			return fd_errno(c, errno, "write error", e);
	}
	*nwritten = (size_t)n;
	if (c->write_behind)
		return write_behind(c, (uint64_t)n, e);
	return DSC_OK;
}

static dsc_err fd_seek(void *ctx, uint64_t off, struct dsc_error *e)
{
	struct fd_ctx *c = ctx;

	if (off > INT64_MAX || lseek(c->fd, (off_t)off, SEEK_SET) < 0)
		return fd_errno(c, off > INT64_MAX ? EOVERFLOW : errno, "seek error", e);
	c->off = off;
	return DSC_OK;
}

static dsc_err fd_next_data(void *ctx, uint64_t off, uint64_t *data_off, struct dsc_error *e)
{
	struct fd_ctx *c = ctx;
	off_t r, cur;

	cur = lseek(c->fd, 0, SEEK_CUR);
	r = lseek(c->fd, (off_t)off, SEEK_DATA);
	if (r < 0) {
		int err = errno;

		if (cur >= 0)
			lseek(c->fd, cur, SEEK_SET);
		if (err == ENXIO) { /* no data after off */
			*data_off = UINT64_MAX;
			return DSC_OK;
		}
		return DSC_ERR_UNSUPPORTED;
	}
	*data_off = (uint64_t)r;
	if (cur >= 0 && lseek(c->fd, cur, SEEK_SET) < 0)
		return fd_errno(c, errno, "seek error", e);
	return DSC_OK;
}

static dsc_err fd_set_size(void *ctx, uint64_t size, bool allocate, struct dsc_error *e)
{
	struct fd_ctx *c = ctx;
	int err;

	if (size > INT64_MAX)
		return fd_errno(c, EFBIG, "cannot set size", e);
	if (allocate) {
		err = posix_fallocate(c->fd, 0, (off_t)size);
		if (err)
			return fd_errno(c, err, "cannot allocate space", e);
	}
	if (ftruncate(c->fd, (off_t)size) < 0)
		return fd_errno(c, errno, "cannot set size", e);
	return DSC_OK;
}

/* fsync the directory holding `path`, so a rename survives a crash. */
static void sync_dir_of(const char *path)
{
	char *dir = strdup(path);
	char *slash;
	int fd;

	if (!dir)
		return;
	slash = strrchr(dir, '/');
	if (slash == dir)
		slash[1] = '\0';
	else if (slash)
		*slash = '\0';
	else
		strcpy(dir, ".");
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
	free(dir);
}

static dsc_err fd_finish(void *ctx, struct dsc_error *e)
{
	struct fd_ctx *c = ctx;

	if (!c->tmp_path || c->finished)
		return DSC_OK;
	if (fsync(c->fd) < 0)
		return fd_errno(c, errno, "cannot flush to disk", e);
	if (c->create_flags & DSC_CREATE_REPLACE) {
		if (rename(c->tmp_path, c->final_path) < 0)
			return fd_errno(c, errno, "cannot rename into place", e);
	} else {
		/* link() fails with EEXIST instead of replacing: no clobbering
		 * even when two requests race for one name. */
		if (link(c->tmp_path, c->final_path) < 0)
			return fd_errno(c, errno,
					errno == EEXIST ? "already exists" :
							  "cannot move into place",
					e);
		unlink(c->tmp_path);
	}
	c->finished = true;
	sync_dir_of(c->final_path);
	return DSC_OK;
}

static void fd_close(void *ctx)
{
	struct fd_ctx *c = ctx;

	if (c->tmp_path && !c->finished)
		unlink(c->tmp_path);
	if (c->own && c->fd >= 0)
		close(c->fd);
	free(c->name);
	free(c->tmp_path);
	free(c->final_path);
	free(c);
}

static const void *fd_query(void *ctx, int what) { return what == DSCP_Q_FILE ? ctx : NULL; }

static const struct dsc_stream_ops fd_stream_ops = {
	.name = "fd",
	.read = fd_read,
	.write = fd_write,
	.close = fd_close,
	.query = fd_query,
};

static const struct dsc_stream_ops fd_file_ops = {
	.name = "file",
	.read = fd_read,
	.write = fd_write,
	.seek = fd_seek,
	.next_data = fd_next_data,
	.set_size = fd_set_size,
	.finish = fd_finish,
	.close = fd_close,
	.query = fd_query,
};

static dsc_err fd_wrap(int fd, const char *name, bool own, struct fd_ctx **ctxp, dsc_stream **out,
		       struct dsc_error *e)
{
	struct fd_ctx *c;
	struct stat st;
	dsc_err rc;

	*out = NULL;
	if (ctxp)
		*ctxp = NULL;
	if (fstat(fd, &st) < 0)
		return dsc_error_set(e, dsc_err_from_errno(errno), errno, "%s: %s", name,
				     strerror(errno));
	c = calloc(1, sizeof *c);
	if (!c || !(c->name = strdup(name))) {
		free(c);
		return dsc_error_set(e, DSC_ERR_NOMEM, ENOMEM, "%s: out of memory", name);
	}
	c->fd = fd;
	c->own = own;
	/* An O_APPEND fd ignores seeks: treat it as forward-only. */
	c->regular = S_ISREG(st.st_mode) && !(fcntl(fd, F_GETFL) & O_APPEND);
	rc = dsc_stream_new(c->regular ? &fd_file_ops : &fd_stream_ops, c, name, out, e);
	if (rc != DSC_OK) {
		c->own = false;
		fd_close(c);
		return rc;
	}
	if (c->regular) {
		off_t cur = lseek(fd, 0, SEEK_CUR);

		(*out)->pos = cur > 0 ? (uint64_t)cur : 0;
		dsc_stream_set_total(*out, (uint64_t)st.st_size);
	}
	if (ctxp)
		*ctxp = c;
	return DSC_OK;
}

const char *dsc_stream_temp_path(const dsc_stream *s)
{
	const struct fd_ctx *c;

	c = s ? dscp_stream_query(s, DSCP_Q_FILE) : NULL;
	return c && !c->finished ? c->tmp_path : NULL;
}

dsc_err dsc_stream_open_fd(int fd, const char *name, unsigned flags, dsc_stream **out,
			   struct dsc_error *e)
{
	return fd_wrap(fd, name ? name : "fd", flags & DSC_FD_OWN, NULL, out, e);
}

dsc_err dsc_stream_open_file(const char *path, dsc_stream **out, struct dsc_error *e)
{
	struct stat st;
	dsc_err rc;
	int fd;

	*out = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return dsc_error_set(e, dsc_err_from_errno(errno), errno, "%s: %s", path,
				     strerror(errno));
	if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
		close(fd);
		return dsc_error_set(e, DSC_ERR_INVAL, EISDIR, "%s: is a directory", path);
	}
	rc = fd_wrap(fd, path, true, NULL, out, e);
	if (rc != DSC_OK)
		close(fd);
	return rc;
}

dsc_err dsc_stream_create_file(const char *path, unsigned flags, dsc_stream **out,
			       struct dsc_error *e)
{
	const char *base = dscp_basename(path);
	struct fd_ctx *c = NULL;
	char *tmp = NULL;
	size_t dirlen = (size_t)(base - path);
	struct stat st;
	int tries;
	dsc_err rc;
	int fd;

	*out = NULL;
	if (!*base || !strcmp(base, ".") || !strcmp(base, ".."))
		return dsc_error_set(e, DSC_ERR_INVAL, EISDIR, "%s: not a file name", path);
	if (stat(path, &st) == 0) {
		if (S_ISDIR(st.st_mode))
			return dsc_error_set(e, DSC_ERR_INVAL, EISDIR, "%s: is a directory", path);
		if (!(flags & DSC_CREATE_REPLACE))
			return dsc_error_set(e, DSC_ERR_EXISTS, EEXIST, "%s: already exists", path);
	}
	tmp = malloc(dirlen + strlen(base) + 16);
	if (!tmp)
		return dsc_error_set(e, DSC_ERR_NOMEM, ENOMEM, "%s: out of memory", path);
	/* O_EXCL with mode 0666 gives the file the mode a plain creat() would
	 * (umask applies) without touching the process umask. */
	for (tries = 0;; tries++) {
		uint32_t r = 0;

		if (getrandom(&r, sizeof r, 0) != (ssize_t)sizeof r)
			r = (uint32_t)getpid() ^ (uint32_t)tries * 2654435761u;
		/* "." + base + ".xxxxxxxx" must stay within NAME_MAX (255). */
		sprintf(tmp, "%.*s.%.*s.%08x", (int)dirlen, path, TEMP_BASE_MAX, base, (unsigned)r);
		fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
		if (fd >= 0 || errno != EEXIST || tries >= 100)
			break;
	}
	if (fd < 0) {
		rc = dsc_error_set(e, dsc_err_from_errno(errno), errno, "%s: cannot create: %s",
				   path, strerror(errno));
		free(tmp);
		return rc;
	}
	rc = fd_wrap(fd, path, true, &c, out, e);
	if (rc != DSC_OK) {
		close(fd);
		unlink(tmp);
		free(tmp);
		return rc;
	}
	c->tmp_path = tmp;
	c->create_flags = flags;
	c->write_behind = true;
	c->final_path = strdup(path);
	if (!c->final_path) {
		dsc_stream_close(*out);
		*out = NULL;
		return dsc_error_set(e, DSC_ERR_NOMEM, ENOMEM, "%s: out of memory", path);
	}
	return DSC_OK;
}
