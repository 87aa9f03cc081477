/* probe.c - read a VMDK stream or a qcow2 image to its end and print the
 * outcome's error name (tests/hostile/run.sh).
 *
 *   probe FILE THREADS [FORMAT]   prints "OK" or "<NAME> <message>" (NAME
 *                        from dsc_err_name(): FORMAT, TRUNCATED, LIMIT...);
 *                        FORMAT is a format name (default vmdk); "-" as
 *                        FILE reads stdin (a pipe: the forward-only path)
 *
 * dsc-convert prints messages, not codes; the hostile cases expect a named
 * error, so this reads the input with the library's VMDK reader alone (no
 * writer: whatever the reader lets through is the converter's business,
 * which run.sh checks through dsc-convert itself). Exit 0 whatever the
 * outcome; only a crash or an abort is a failure here.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dsc.h"

int main(int argc, char **argv)
{
	struct dsc_error e = {0};
	struct dsc_extent ext;
	dsc_stream *in = NULL;
	dsc_reader *r = NULL;
	uint64_t cap;
	dsc_err rc;

	if (argc != 3 && argc != 4) {
		fprintf(stderr, "usage: probe FILE THREADS [FORMAT]\n");
		return 2;
	}
	rc = strcmp(argv[1], "-") ? dsc_stream_open_file(argv[1], &in, &e) :
				    dsc_stream_open_fd(0, "stdin", 0, &in, &e);
	if (rc == DSC_OK)
		rc = dsc_reader_open(in, argc == 4 ? dsc_format_from_name(argv[3]) : DSC_FORMAT_VMDK,
				     &r, &e);
	if (rc == DSC_OK) {
		dsc_reader_set_threads(r, (unsigned)atoi(argv[2]));
		cap = dsc_reader_capacity(r);
		while ((rc = dsc_reader_next(r, &ext, &e)) == DSC_OK && ext.length) {
			if (ext.offset >= cap || ext.length > cap - ext.offset) {
				printf("BUG extent %llu+%zu outside the capacity %llu\n",
				       (unsigned long long)ext.offset, ext.length,
				       (unsigned long long)cap);
				return 1;
			}
		}
	}
	if (rc == DSC_OK)
		printf("OK\n");
	else
		printf("%s %s\n", dsc_err_name(rc), e.message);
	dsc_reader_close(r);
	dsc_stream_close(in);
	return 0;
}
