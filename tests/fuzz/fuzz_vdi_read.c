/* fuzz_vdi_read.c - libFuzzer harness: the VDI reader, both walks.
 *
 * Each input is read to its end or to the first error twice: over a memory
 * stream, which seeks (blocks in guest order), and over the "trickle"
 * stream of fuzz_stream.h, which cannot seek and returns a few bytes a read
 * (blocks in file order, so out of guest order when the map says so).
 * Every extent must lie inside the capacity, which is known at open, and be
 * sector-aligned; the seekable walk must ascend; a failure carries a
 * message. When both walks succeed they must describe the same disk: a sum
 * over the non-zero 512-byte sectors, which neither order nor splitting
 * changes. A crash, a sanitizer report, a hang or an abort() is a bug.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dsc.h"
#include "fuzz_stream.h"

#define FUZZ_FORMAT "vdi"
#include "fuzz_two_walks.h"
