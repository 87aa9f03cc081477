/* test_err.c - unit tests of the error codes and struct dsc_error.
 *
 * Every code must have a distinct upper-case name and a distinct, non-empty
 * text, the first recorded error must win, and errno values map to the
 * codes the CLI and the server turn into exit codes and HTTP statuses.
 *
 * No last code is written down here, so codes appended to the enum later
 * are checked without editing this file, in two ways. The walk goes up from
 * DSC_OK while dsc_err_name() or dsc_strerror() still knows the code (a
 * code only one of the two switches has is caught there). And
 * tests/unit/err_codes.h, made by make from the enum in include/dsc.h, lists
 * every enumerator: each must lie inside the walk and be named after itself
 * (an appended code left out of both switches ends the walk early and is
 * caught there).
 */
#include "testutil.h"

#include <ctype.h>
#include <errno.h>

/* TU_ERR(DSC_...) for each enumerator of dsc_err, in header order. */
static const struct {
	dsc_err code;
	const char *id;
} header_codes[] = {
#define TU_ERR(c) {c, #c},
#include "tests/unit/err_codes.h"
#undef TU_ERR
};
#define N_HEADER_CODES (sizeof header_codes / sizeof header_codes[0])

/* The codes there are today: any walk must reach at least this far. */
#define KNOWN_CODES (DSC_ERR_PERM + 1)
/* Where the walk gives up if the library knew every value (it must not). */
#define WALK_CAP 1000

/* What the library answers for a value that is certainly no code. */
static const char *unknown_name, *unknown_text;

static bool is_known(int code)
{
	return strcmp(dsc_err_name((dsc_err)code), unknown_name) != 0 ||
	       strcmp(dsc_strerror((dsc_err)code), unknown_text) != 0;
}

/* The number of codes: the first value neither function knows. */
static int walk_codes(void)
{
	int n = DSC_OK;

	unknown_name = dsc_err_name((dsc_err)-1);
	unknown_text = dsc_strerror((dsc_err)-1);
	while (n < WALK_CAP && is_known(n))
		n++;
	return n;
}

static bool upper_name(const char *n)
{
	if (!isupper((unsigned char)*n))
		return false;
	for (; *n; n++)
		if (!isupper((unsigned char)*n) && !isdigit((unsigned char)*n) && *n != '_')
			return false;
	return true;
}

static void test_names_distinct(void)
{
	int ncodes = walk_codes(), a, b;

	REQUIRE(unknown_name != NULL && unknown_text != NULL);
	if (ncodes < KNOWN_CODES)
		tu_fail(__FILE__, __LINE__, "the walk stops at code %d (name %s): %d codes exist",
			ncodes, dsc_err_name((dsc_err)ncodes), KNOWN_CODES);
	if (ncodes >= WALK_CAP)
		tu_fail(__FILE__, __LINE__, "every value up to %d has a name: no unknown code",
			WALK_CAP);
	for (a = DSC_OK; a < ncodes; a++) {
		const char *s = dsc_strerror((dsc_err)a), *n = dsc_err_name((dsc_err)a);
		REQUIRE(s != NULL && n != NULL);
		/* Known to one switch only: the other one is missing its case. */
		if (strcmp(n, unknown_name) == 0 || strcmp(s, unknown_text) == 0)
			tu_fail(__FILE__, __LINE__, "code %d: name \"%s\", text \"%s\"", a, n, s);
		if (*s == '\0')
			tu_fail(__FILE__, __LINE__, "code %d (%s): empty text", a, n);
		if (!upper_name(n))
			tu_fail(__FILE__, __LINE__, "code %d: name \"%s\" is not upper case", a, n);
		for (b = DSC_OK; b < a; b++) {
			if (strcmp(s, dsc_strerror((dsc_err)b)) == 0)
				tu_fail(__FILE__, __LINE__, "codes %d and %d share text \"%s\"", a,
					b, s);
			if (strcmp(n, dsc_err_name((dsc_err)b)) == 0)
				tu_fail(__FILE__, __LINE__, "codes %d and %d share name \"%s\"", a,
					b, n);
		}
	}
}

static void test_header_codes(void)
{
	int ncodes = walk_codes();
	size_t i;

	/* Fewer means the list from include/dsc.h came out short (the enum's
	 * layout changed under the sed in Makefile.am). */
	if (N_HEADER_CODES < KNOWN_CODES)
		tu_fail(__FILE__, __LINE__, "tests/unit/err_codes.h lists %zu codes, want >= %d",
			N_HEADER_CODES, KNOWN_CODES);
	if (N_HEADER_CODES != (size_t)ncodes)
		tu_fail(__FILE__, __LINE__, "include/dsc.h has %zu codes, the library names %d",
			N_HEADER_CODES, ncodes);
	for (i = 0; i < N_HEADER_CODES; i++) {
		const char *id = header_codes[i].id, *want, *got;
		int code = (int)header_codes[i].code;

		/* Append only, never renumber: the values are 0, 1, 2, ... */
		if (code != (int)i)
			tu_fail(__FILE__, __LINE__, "%s is %d, want %zu", id, code, i);
		if (code >= ncodes)
			tu_fail(__FILE__, __LINE__,
				"%s (%d): dsc_err_name() says %s and "
				"dsc_strerror() \"%s\": missing from err.c",
				id, code, dsc_err_name((dsc_err)code), dsc_strerror((dsc_err)code));
		/* DSC_ERR_FORMAT is "FORMAT", DSC_OK "OK". */
		want = strncmp(id, "DSC_ERR_", 8) == 0 ? id + 8 : id + 4;
		got = dsc_err_name((dsc_err)code);
		if (!got || strcmp(got, want) != 0)
			tu_fail(__FILE__, __LINE__, "dsc_err_name(%s) is \"%s\", want \"%s\"", id,
				got ? got : "(null)", want);
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
	ASSERT(DSC_ERR_SEEK == 15 && strcmp(dsc_err_name(DSC_ERR_SEEK), "SEEK") == 0);
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
	ASSERT(dsc_format_from_name("nosuchformat") == DSC_FORMAT_UNKNOWN);
	ASSERT(dsc_format_from_name("") == DSC_FORMAT_UNKNOWN);
	ASSERT(dsc_format_name(DSC_FORMAT_RAW) && !strcmp(dsc_format_name(DSC_FORMAT_RAW), "raw"));
	ASSERT(dsc_format_name(DSC_FORMAT_VMDK) &&
	       !strcmp(dsc_format_name(DSC_FORMAT_VMDK), "vmdk"));
	ASSERT(dsc_version() && !strcmp(dsc_version(), PACKAGE_VERSION));
}

int main(void)
{
	TU_RUN(test_names_distinct);
	TU_RUN(test_header_codes);
	TU_RUN(test_names_known);
	TU_RUN(test_first_error_wins);
	TU_RUN(test_errno_recorded);
	TU_RUN(test_null_safe);
	TU_RUN(test_long_message);
	TU_RUN(test_from_errno);
	TU_RUN(test_format_names);
	return tu_exit();
}
