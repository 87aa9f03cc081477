/* test_err.c - unit tests of the error codes and struct dsc_error.
 *
 * Every code must have a distinct name and text (a new enum value left out
 * of a switch shows up here as NULL or a duplicate), the first recorded
 * error must win, and errno values map to the codes the CLI and the server
 * turn into exit codes and HTTP statuses.
 */
#include "testutil.h"

#include <errno.h>

#define LAST_CODE DSC_ERR_INTEGRITY

static void test_names_distinct(void)
{
	int a, b;

	for (a = DSC_OK; a <= LAST_CODE; a++) {
		const char *s = dsc_strerror((dsc_err)a), *n = dsc_err_name((dsc_err)a);
		ASSERT(s != NULL);
		ASSERT(n != NULL);
		if (!s || !n)
			continue;
		ASSERT(*s != '\0');
		ASSERT(*n != '\0');
		for (b = DSC_OK; b < a; b++) {
			const char *s2 = dsc_strerror((dsc_err)b), *n2 = dsc_err_name((dsc_err)b);
			if (s2 && strcmp(s, s2) == 0)
				tu_fail(__FILE__, __LINE__, "codes %d and %d share text \"%s\"", a,
					b, s);
			if (n2 && strcmp(n, n2) == 0)
				tu_fail(__FILE__, __LINE__, "codes %d and %d share name \"%s\"", a,
					b, n);
		}
	}
}

static void test_names_known(void)
{
	/* The server's JSON "code" and the CLI use these identifiers. */
	ASSERT(strcmp(dsc_err_name(DSC_ERR_FORMAT), "FORMAT") == 0);
	ASSERT(strcmp(dsc_err_name(DSC_ERR_NOSPACE), "NOSPACE") == 0);
	ASSERT(strcmp(dsc_err_name(DSC_ERR_IO), "IO") == 0);
	ASSERT(strcmp(dsc_err_name(DSC_ERR_TRUNCATED), "TRUNCATED") == 0);
	ASSERT(strcmp(dsc_err_name(DSC_ERR_LIMIT), "LIMIT") == 0);
	ASSERT(strcmp(dsc_err_name(DSC_ERR_INTEGRITY), "INTEGRITY") == 0);
	ASSERT(strcmp(dsc_strerror(DSC_ERR_INTEGRITY), "unknown error") != 0);
	/* Append only: the values programs and logs already know stay put. */
	ASSERT(DSC_ERR_FORMAT == 4 && DSC_ERR_PERM == 13 && DSC_ERR_INTEGRITY == 14);
	/* A value from a newer library or a corrupted variable must not
	 * crash a caller that prints it. */
	ASSERT(dsc_strerror((dsc_err)9999) != NULL);
	ASSERT(dsc_err_name((dsc_err)9999) != NULL);
	ASSERT(dsc_strerror((dsc_err)-1) != NULL);
}

static void test_first_error_wins(void)
{
	struct dsc_error e = {0};

	ASSERT_ERR(dsc_error_set(&e, DSC_ERR_FORMAT, 0, "disk.vmdk: bad %s at %d", "marker", 42),
		   DSC_ERR_FORMAT);
	ASSERT_ERR(e.code, DSC_ERR_FORMAT);
	ASSERT(strcmp(e.message, "disk.vmdk: bad marker at 42") == 0);
	ASSERT(e.sys_errno == 0);

	ASSERT_ERR(dsc_error_set(&e, DSC_ERR_IO, EIO, "other: read failed"), DSC_ERR_IO);
	ASSERT_ERR(e.code, DSC_ERR_FORMAT);
	ASSERT(strcmp(e.message, "disk.vmdk: bad marker at 42") == 0);
	ASSERT(e.sys_errno == 0);
}

static void test_errno_recorded(void)
{
	struct dsc_error e = {0};

	dsc_error_set(&e, DSC_ERR_NOSPACE, ENOSPC, "out.raw: write failed");
	ASSERT_ERR(e.code, DSC_ERR_NOSPACE);
	ASSERT(e.sys_errno == ENOSPC);
	ASSERT(e.http_status == 0);
	ASSERT(strncmp(e.message, "out.raw: write failed", 21) == 0);
}

static void test_null_safe(void)
{
	ASSERT_ERR(dsc_error_set(NULL, DSC_ERR_LIMIT, 0, "x: %d", 1), DSC_ERR_LIMIT);
	ASSERT_ERR(dsc_error_set(NULL, DSC_ERR_NOMEM, ENOMEM, "x"), DSC_ERR_NOMEM);
}

static void test_long_message(void)
{
	struct dsc_error e = {0};
	char big[3 * DSC_ERROR_TEXT];

	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	dsc_error_set(&e, DSC_ERR_FORMAT, 0, "name: %s", big);
	ASSERT_ERR(e.code, DSC_ERR_FORMAT);
	ASSERT(memchr(e.message, '\0', sizeof(e.message)) != NULL);
	ASSERT(strncmp(e.message, "name: xxx", 9) == 0);
	ASSERT(strlen(e.message) == DSC_ERROR_TEXT - 1);
}

static void test_from_errno(void)
{
	ASSERT_ERR(dsc_err_from_errno(ENOSPC), DSC_ERR_NOSPACE);
	ASSERT_ERR(dsc_err_from_errno(ENOENT), DSC_ERR_NOTFOUND);
	ASSERT_ERR(dsc_err_from_errno(EACCES), DSC_ERR_PERM);
	ASSERT_ERR(dsc_err_from_errno(EIO), DSC_ERR_IO);
	ASSERT_ERR(dsc_err_from_errno(ENOMEM), DSC_ERR_NOMEM);
	ASSERT(dsc_err_from_errno(EINVAL) != DSC_OK);
	ASSERT(dsc_err_from_errno(EPIPE) != DSC_OK);
}

static void test_format_names(void)
{
	ASSERT(dsc_format_from_name("raw") == DSC_FORMAT_RAW);
	ASSERT(dsc_format_from_name("vmdk") == DSC_FORMAT_VMDK);
	ASSERT(dsc_format_from_name("qcow2") == DSC_FORMAT_UNKNOWN);
	ASSERT(dsc_format_from_name("") == DSC_FORMAT_UNKNOWN);
	ASSERT(dsc_format_name(DSC_FORMAT_RAW) && !strcmp(dsc_format_name(DSC_FORMAT_RAW), "raw"));
	ASSERT(dsc_format_name(DSC_FORMAT_VMDK) &&
	       !strcmp(dsc_format_name(DSC_FORMAT_VMDK), "vmdk"));
	ASSERT(dsc_version() && !strcmp(dsc_version(), PACKAGE_VERSION));
}

int main(void)
{
	TU_RUN(test_names_distinct);
	TU_RUN(test_names_known);
	TU_RUN(test_first_error_wins);
	TU_RUN(test_errno_recorded);
	TU_RUN(test_null_safe);
	TU_RUN(test_long_message);
	TU_RUN(test_from_errno);
	TU_RUN(test_format_names);
	return tu_exit();
}
