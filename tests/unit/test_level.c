/* test_level.c - unit tests of dsc_level_parse(), the compression level
 * that dsc-convert -level and dsc-server level= take.
 *
 * The names and every number of 1-12 are accepted and give the level
 * dsc_writer_opts.level wants; anything else (empty, out of range, signs,
 * spaces, trailing text, long digit runs that would overflow a naive
 * parser) is DSC_ERR_INVAL with a message quoting the text, and leaves the
 * default in *level.
 */
#include "testutil.h"

#include <stdio.h>

static void test_names(void)
{
	struct dsc_error e = {0};
	int level = -1;

	ASSERT_OK(dsc_level_parse("fast", &level, &e), &e);
	ASSERT(level == DSC_LEVEL_FAST);
	ASSERT_OK(dsc_level_parse("default", &level, &e), &e);
	ASSERT(level == DSC_LEVEL_DEFAULT);
	ASSERT_OK(dsc_level_parse("best", &level, &e), &e);
	ASSERT(level == DSC_LEVEL_BEST);
}

static void test_numbers(void)
{
	struct dsc_error e = {0};
	char text[8];
	int n, level;

	for (n = 1; n <= 12; n++) {
		snprintf(text, sizeof(text), "%d", n);
		level = -1;
		ASSERT_OK(dsc_level_parse(text, &level, &e), &e);
		ASSERT(level == n);
	}
	ASSERT_OK(dsc_level_parse("09", &level, &e), &e);
	ASSERT(level == 9);
}

static void test_refused(void)
{
	static const char *const bad[] = {
		"",    "0",   "13",  "-1",   "+5",   " 5",      "5 ",
		"5x",  "1.5", "0x5", "FAST", "Best", "fastest", "99999999999999999999999",
		"12a",
	};
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct dsc_error e = {0};
		int level = 7;

		ASSERT_ERR(dsc_level_parse(bad[i], &level, &e), DSC_ERR_INVAL);
		ASSERT(e.code == DSC_ERR_INVAL);
		ASSERT(level == DSC_LEVEL_DEFAULT);
		ASSERT(strstr(e.message, "fast, default, best or 1-12") != NULL);
		ASSERT(strstr(e.message, bad[i]) != NULL);
	}
	/* A NULL error struct is allowed, as everywhere. */
	{
		int level;

		ASSERT_ERR(dsc_level_parse("13", &level, NULL), DSC_ERR_INVAL);
	}
}

int main(void)
{
	TU_RUN(test_names);
	TU_RUN(test_numbers);
	TU_RUN(test_refused);
	return tu_exit();
}
