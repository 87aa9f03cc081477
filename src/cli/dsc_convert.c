/* dsc_convert.c - the dsc-convert program: the converter's command line. */
#include "config.h"

#include "cli.h"

int main(int argc, char **argv) { return convert_main(argc, argv); }
