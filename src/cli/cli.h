/* cli.h - what dsc-convert and dsc-img share. */
#ifndef DSC_CLI_H
#define DSC_CLI_H

#include "dsc.h"

/* dsc-convert's whole command line (argv[0] is the program); the exit
 * status. dsc-img convert runs it too. */
int convert_main(int argc, char **argv);

/* Open a source as both programs take it: "-" (stdin), an http(s) URL
 * (with `url`'s settings) or a local file, whose directory is where a
 * VMDK descriptor's extents are looked for. */
dsc_err cli_open_source(const char *src, const struct dsc_url_opts *url, dsc_stream **in,
			struct dsc_error *err);

#endif
