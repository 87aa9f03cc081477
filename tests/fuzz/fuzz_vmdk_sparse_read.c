/* fuzz_vmdk_sparse_read.c - libFuzzer harness: the VMDK readers' two walks
 * of a hosted sparse extent (monolithicSparse, vmdk_sparse_read.c).
 *
 * Each input is read to its end or to the first error twice: over a memory
 * stream, which seeks (the grain directory walked in guest order, each
 * table compared with its redundant copy), and over the "trickle" stream of
 * fuzz_stream.h, which cannot seek and returns a few bytes a read (tables
 * first, then grains in file order). Every extent must lie inside the
 * capacity and be sector-aligned; the seekable walk must ascend; a failure
 * carries a message. When both walks succeed they must describe the same
 * disk: a sum over the non-zero 512-byte sectors, which neither order nor
 * splitting changes. Seeds: qemu-img's monolithicSparse images and the ms-*
 * cases of tests/hostile/gen_vmdk_sparse.py (seeds.sh). A crash, a
 * sanitizer report, a hang or an abort() is a bug.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dsc.h"
#include "fuzz_stream.h"

#define FUZZ_FORMAT "vmdk"
#include "fuzz_two_walks.h"
