/* export_path.c - an /export path opened only if it leads inside the roots.
 *
 * The path is taken hold of without opening the file (O_PATH: no open of
 * a FIFO or device, no side effect), the kernel is asked where it really
 * is (/proc/self/fd), the roots and the file type are checked, and only
 * then is the file opened for reading through that very handle, and
 * checked to be the same inode: there is no window in which a swapped
 * symlink could lead elsewhere. A path that cannot be opened is judged by
 * where it would be, so that nothing outside the roots can be probed: an
 * outside path is 403 whether it exists or not.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "server.h"

/* Is `real` (an absolute, resolved path) inside one of the roots? */
static bool inside_roots(const char *real)
{
	int i;

	for (i = 0; i < srv_cfg.n_export_roots; i++) {
		const char *root = srv_cfg.export_roots[i];
		size_t n = strlen(root);

		if (strcmp(root, "/") == 0)
			return true;
		if (strncmp(real, root, n) == 0 && (real[n] == '/' || real[n] == '\0'))
			return true;
	}
	return false;
}

/* Is the path `full`, which could not be opened, inside the roots? */
static bool failed_path_inside(const char *full, int errnum)
{
	char *rp = realpath(full, NULL);
	bool inside = rp ? inside_roots(rp) : false;

	free(rp);
	if (!inside && errnum == ENOENT) {
		/* Judge a missing file by the directory it would be
		 * in, so that nothing outside the roots is probed. */
		char dir[PATH_MAX], *slash, *rd;

		snprintf(dir, sizeof(dir), "%s", full);
		slash = strrchr(dir, '/');
		if (slash != NULL)
			*(slash == dir ? slash + 1 : slash) = '\0';
		rd = realpath(dir, NULL);
		inside = rd ? inside_roots(rd) : false;
		free(rd);
	}
	return inside;
}

/* O_PATH of `path` (relative paths from the first root) into *pfd. */
static dsc_err open_handle(const char *path, int *pfd, struct dsc_error *e)
{
	char full[PATH_MAX];
	int n, errnum;

	if (path[0] == '/')
		n = snprintf(full, sizeof(full), "%s", path);
	else
		n = snprintf(full, sizeof(full), "%s/%s", srv_cfg.export_roots[0], path);
	if (n < 0 || (size_t)n >= sizeof(full))
		return dsc_error_set(e, DSC_ERR_INVAL, 0, "path is too long");
	*pfd = open(full, O_PATH | O_CLOEXEC);
	if (*pfd >= 0)
		return DSC_OK;
	errnum = errno;
	if (!failed_path_inside(full, errnum))
		return dsc_error_set(e, DSC_ERR_PERM, 0, "%s: outside the export roots", path);
	if (errnum == ENOENT || errnum == ENOTDIR)
		return dsc_error_set(e, DSC_ERR_NOTFOUND, errnum, "%s: no such file", path);
	if (errnum == EACCES || errnum == EPERM)
		return dsc_error_set(e, DSC_ERR_PERM, errnum, "%s: permission denied", path);
	return dsc_error_set(e, DSC_ERR_IO, errnum, "%s: %s", path, strerror(errnum));
}

/* Where the handle really leads: inside the roots, a regular file, not a
 * dot file. */
static dsc_err check_handle(int pfd, const char *path, char *real, size_t realsz, struct stat *st,
			    struct dsc_error *e)
{
	char proc[64];
	ssize_t rl;

	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", pfd);
	rl = readlink(proc, real, realsz - 1);
	if (rl <= 0 || (size_t)rl >= realsz - 1)
		return dsc_error_set(e, DSC_ERR_IO, 0, "%s: cannot resolve the path", path);
	real[rl] = '\0';
	if (!inside_roots(real))
		return dsc_error_set(e, DSC_ERR_PERM, 0, "%s: outside the export roots", path);
	if (fstat(pfd, st) != 0)
		return dsc_error_set(e, DSC_ERR_IO, errno, "%s: %s", path, strerror(errno));
	/* A directory, FIFO, socket or device: never opened. */
	if (!S_ISREG(st->st_mode))
		return dsc_error_set(e, DSC_ERR_UNSUPPORTED, 0, "%s: not a regular file", path);
	/* Dot files include the temporaries of outputs being written. */
	if (strrchr(real, '/')[1] == '.')
		return dsc_error_set(e, DSC_ERR_NOTFOUND, 0, "%s: no such file", path);
	return DSC_OK;
}

/* Open the checked handle for reading; it must still be the same file. */
static dsc_err reopen_handle(int pfd, const char *path, const struct stat *st, int *fd,
			     struct dsc_error *e)
{
	char proc[64];
	struct stat st2;
	int errnum;

	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", pfd);
	*fd = open(proc, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (*fd < 0) {
		errnum = errno;
		if (errnum == EACCES || errnum == EPERM)
			return dsc_error_set(e, DSC_ERR_PERM, errnum, "%s: permission denied",
					     path);
		return dsc_error_set(e, DSC_ERR_IO, errnum, "%s: %s", path, strerror(errnum));
	}
	if (fstat(*fd, &st2) != 0 || st2.st_dev != st->st_dev || st2.st_ino != st->st_ino ||
	    !S_ISREG(st2.st_mode)) {
		close(*fd);
		*fd = -1;
		return dsc_error_set(e, DSC_ERR_IO, 0, "%s: the file changed while being opened",
				     path);
	}
	return DSC_OK;
}

/* The directory that holds the opened file `fd` (resolved path `real`),
 * taken hold of once (O_PATH) for the extents of a VMDK descriptor, and
 * checked as the file was: inside the roots, and holding that very inode
 * under its name, so that no path is looked up again later. */
dsc_err export_open_dir(int fd, const char *real, const char *path, int *dirfd, struct dsc_error *e)
{
	const char *slash = strrchr(real, '/');
	char dir[PATH_MAX], proc[64], where[PATH_MAX];
	struct stat fst, dst;
	ssize_t rl;

	*dirfd = -1;
	if (!slash || (size_t)(slash - real) >= sizeof(dir) - 1)
		return dsc_error_set(e, DSC_ERR_IO, 0, "%s: no directory", path);
	memcpy(dir, real, (size_t)(slash - real) + 1);
	dir[slash - real + 1] = '\0';
	*dirfd = open(dir, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (*dirfd < 0)
		return dsc_error_set(e, dsc_err_from_errno(errno), errno, "%s: its directory: %s",
				     path, strerror(errno));
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", *dirfd);
	rl = readlink(proc, where, sizeof(where) - 1);
	if (rl > 0 && (size_t)rl < sizeof(where) - 1)
		where[rl] = '\0';
	if (rl <= 0 || (size_t)rl >= sizeof(where) - 1 || !inside_roots(where) || fstat(fd, &fst) ||
	    fstatat(*dirfd, slash + 1, &dst, AT_SYMLINK_NOFOLLOW) || fst.st_dev != dst.st_dev ||
	    fst.st_ino != dst.st_ino) {
		close(*dirfd);
		*dirfd = -1;
		return dsc_error_set(e, DSC_ERR_IO, 0,
				     "%s: the file's directory changed while being opened", path);
	}
	return DSC_OK;
}

dsc_err export_open(const char *path, int *fd, char *real, size_t realsz, struct dsc_error *e)
{
	struct stat st;
	int pfd = -1;
	dsc_err rc;

	*fd = -1;
	rc = open_handle(path, &pfd, e);
	if (rc == DSC_OK)
		rc = check_handle(pfd, path, real, realsz, &st, e);
	if (rc == DSC_OK)
		rc = reopen_handle(pfd, path, &st, fd, e);
	if (pfd >= 0)
		close(pfd);
	return rc;
}
