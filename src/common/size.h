/* size.h - the size syntax both programs take ("4T", "512M", "1GiB").
 *
 * Shared by dsc-convert and dsc-server (compiled into each; not part of
 * libdsc, which parses no command lines).
 */
#ifndef DSC_COMMON_SIZE_H
#define DSC_COMMON_SIZE_H

#include <stdbool.h>
#include <stdint.h>

/* A decimal number of bytes with an optional binary suffix K, M, G, T or P
 * (either case; "KB"/"KiB" forms too): "4T", "512M", "1GiB", "1000000".
 * False, leaving *out alone, when s does not start with a digit, has
 * anything else after the number, or is larger than UINT64_MAX bytes. */
bool size_parse(const char *s, uint64_t *out);

#endif /* DSC_COMMON_SIZE_H */
