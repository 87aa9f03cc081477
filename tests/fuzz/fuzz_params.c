/* fuzz_params.c - libFuzzer harness: dsc-server's query / form parameter
 * parsing (src/server/params.c): params_parse, params_get, parse_bool and
 * name_is_valid on arbitrary strings.
 *
 * Checks beyond "no crash": a parsed query has at most 32 distinct,
 * non-empty names, each found again by params_get with its own value; a
 * name that name_is_valid() accepts is a plain file name (no '/', not "."
 * or "..", no NUL, at most 255 bytes), so an output can never leave the
 * server's directory.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server.h"

static void check_name(const char *s)
{
	if (!name_is_valid(s))
		return;
	if (!*s || strchr(s, '/') || !strcmp(s, ".") || !strcmp(s, "..") ||
	    strlen(s) > SRV_NAME_MAX)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct srv_params p;
	char *s = malloc(size + 1);
	bool b;
	int i, j;

	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	check_name(s);
	(void)parse_bool(s, &b);
	if (params_parse(&p, s)) {
		if (p.n < 0 || p.n > 32)
			abort();
		for (i = 0; i < p.n; i++) {
			if (!p.names[i] || !p.values[i] || !p.names[i][0])
				abort();
			if (params_get(&p, p.names[i]) != p.values[i])
				abort();
			for (j = 0; j < i; j++)
				if (!strcmp(p.names[i], p.names[j]))
					abort();
			check_name(p.values[i]);
			(void)parse_bool(p.values[i], &b);
		}
		params_free(&p);
	}
	free(s);
	return 0;
}
