/* err.c - error codes, their names, and the first-error-wins detail record.
 *
 * Every boundary (CLI, server) maps dsc_err once; these switches have no
 * default so that -Wswitch flags a code added to the enum but not here.
 */
#include "internal.h"

#include <stdarg.h>
#include <stdio.h>

const char *dsc_strerror(dsc_err code)
{
	switch (code) {
	case DSC_OK: return "success";
	case DSC_ERR_NOMEM: return "out of memory";
	case DSC_ERR_INVAL: return "invalid argument";
	case DSC_ERR_IO: return "input/output error";
	case DSC_ERR_FORMAT: return "malformed image";
	case DSC_ERR_UNSUPPORTED: return "unsupported image variant";
	case DSC_ERR_LIMIT: return "value exceeds a limit";
	case DSC_ERR_REMOTE: return "remote source failed";
	case DSC_ERR_CANCELLED: return "cancelled";
	case DSC_ERR_EXISTS: return "destination exists";
	case DSC_ERR_TRUNCATED: return "truncated input";
	case DSC_ERR_NOSPACE: return "no space left on device";
	case DSC_ERR_NOTFOUND: return "no such file";
	case DSC_ERR_PERM: return "permission denied";
	case DSC_ERR_INTEGRITY: return "checksum mismatch";
	case DSC_ERR_SEEK: return "needs a seekable stream";
	}
	return "unknown error";
}

const char *dsc_err_name(dsc_err code)
{
	switch (code) {
	case DSC_OK: return "OK";
	case DSC_ERR_NOMEM: return "NOMEM";
	case DSC_ERR_INVAL: return "INVAL";
	case DSC_ERR_IO: return "IO";
	case DSC_ERR_FORMAT: return "FORMAT";
	case DSC_ERR_UNSUPPORTED: return "UNSUPPORTED";
	case DSC_ERR_LIMIT: return "LIMIT";
	case DSC_ERR_REMOTE: return "REMOTE";
	case DSC_ERR_CANCELLED: return "CANCELLED";
	case DSC_ERR_EXISTS: return "EXISTS";
	case DSC_ERR_TRUNCATED: return "TRUNCATED";
	case DSC_ERR_NOSPACE: return "NOSPACE";
	case DSC_ERR_NOTFOUND: return "NOTFOUND";
	case DSC_ERR_PERM: return "PERM";
	case DSC_ERR_INTEGRITY: return "INTEGRITY";
	case DSC_ERR_SEEK: return "SEEK";
	}
	return "UNKNOWN";
}

dsc_err dsc_error_set(struct dsc_error *e, dsc_err code, int sys_errno, const char *fmt, ...)
{
	va_list ap;

	if (!e || e->code != DSC_OK || code == DSC_OK)
		return code;
	e->code = code;
	e->sys_errno = sys_errno;
	va_start(ap, fmt);
	vsnprintf(e->message, sizeof e->message, fmt, ap);
	va_end(ap);
	return code;
}

dsc_err dsc_err_from_errno(int errnum)
{
	switch (errnum) {
	case ENOSPC:
	case EDQUOT:
	case EFBIG: return DSC_ERR_NOSPACE;
	case ENOENT:
	case ENOTDIR: return DSC_ERR_NOTFOUND;
	case EACCES:
	case EPERM:
	case EROFS: return DSC_ERR_PERM;
	case EEXIST: return DSC_ERR_EXISTS;
	case ENOMEM: return DSC_ERR_NOMEM;
	case EINVAL: return DSC_ERR_INVAL;
	default: return DSC_ERR_IO;
	}
}

const char *dsc_version(void) { return PACKAGE_VERSION; }

const char *dscp_basename(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash ? slash + 1 : path;
}

bool dscp_is_zero(const void *buf, size_t n)
{
	const unsigned char *p = buf;
	size_t i;

	/* Most data grains differ from zero in their first bytes: check those
	 * cheaply before the word-wise scan over the rest. */
	for (i = 0; i < n && i < 16; i++)
		if (p[i])
			return false;
	if (n <= 16)
		return true;
	/* The first 16 bytes are zero, so comparing the buffer with itself
	 * shifted by 16 checks every remaining byte against zero. */
	return memcmp(p, p + 16, n - 16) == 0;
}
