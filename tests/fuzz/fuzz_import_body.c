/* fuzz_import_body.c - libFuzzer harness: the JSON body of POST /import
 * (src/server/import_body.c) on arbitrary bytes.
 *
 * Checks beyond "no crash": a body that parses has a non-empty url, at most
 * IMPORT_HEADERS_MAX headers, each with a ':' and no line break (nothing a
 * client sends can split a request header), a NULL after the last one; a
 * refused body comes with a non-empty, NUL-terminated message; and parsing
 * the same bytes twice gives the same verdict.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "server.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct import_body b, b2;
	char err[400], err2[400];
	int rc, rc2;
	size_t i;

	if (size > SRV_JSON_BODY_MAX)
		return 0;
	memset(err, 'x', sizeof(err));
	rc = import_body_parse((const char *)data, size, &b, err, sizeof(err));
	if (rc == 0) {
		if (!b.url || !*b.url || b.nheaders > IMPORT_HEADERS_MAX || b.headers[b.nheaders])
			abort();
		for (i = 0; i < b.nheaders; i++)
			if (!b.headers[i] || !strchr(b.headers[i], ':') ||
			    strpbrk(b.headers[i], "\r\n"))
				abort();
	} else if (rc != -1 || !memchr(err, '\0', sizeof(err)) || !err[0]) {
		abort();
	}
	rc2 = import_body_parse((const char *)data, size, &b2, err2, sizeof(err2));
	if (rc2 != rc || (rc == 0 && b2.nheaders != b.nheaders))
		abort();
	import_body_free(&b);
	import_body_free(&b2);
	return 0;
}
