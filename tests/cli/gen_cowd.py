#!/usr/bin/env python3
"""gen_cowd.py - write a VMware ESX Server 2 sparse extent (COWD) from a raw
image, for tests/cli/vmdk_sparse.sh (qemu-img reads COWD but cannot write
it).

usage: gen_cowd.py RAW OUT [--grain SECTORS] [--order guest|reverse|tables-last]
                           [--child PARENT] [--gd-entries N] [--cut BYTES]

Layout (VMware's cow_ext.h): a 2048-byte header (magic "COWD", version 1,
flags, capacity and granularity in sectors, grain directory sector and
entries, free sector, geometry or a child's parent name), the grain
directory at sector 4, then every grain table (4096 little-endian 32-bit
sector numbers; 0 = unallocated) and the non-zero grains. --order reverse
stores the grains last-first (out of guest order); tables-last puts the
tables after the grains, as VMware allocates them on demand. --cut drops
the file's last BYTES (a file ending inside its last grain).
"""
import argparse
import struct

S = 512
LEAF = 4096


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('raw')
    ap.add_argument('out')
    ap.add_argument('--grain', type=int, default=1)
    ap.add_argument('--order', default='guest', choices=('guest', 'reverse', 'tables-last'))
    ap.add_argument('--child')
    ap.add_argument('--gd-entries', type=int)
    ap.add_argument('--cut', type=int, default=0)
    a = ap.parse_args()

    data = open(a.raw, 'rb').read()
    cap = (len(data) + S - 1) // S
    gb = a.grain * S
    ngr = (cap + a.grain - 1) // a.grain
    ngt = (ngr + LEAF - 1) // LEAF
    gd_n = a.gd_entries if a.gd_entries is not None else ngt
    gd_sec = 4
    gd_len = (gd_n * 4 + S - 1) // S
    gt_len = LEAF * 4 // S
    grains = [g for g in range(ngr) if data[g * gb:(g + 1) * gb].strip(b'\0')]
    if a.order == 'reverse':
        grains.reverse()
    used_gts = sorted({g // LEAF for g in grains})
    nxt = gd_sec + gd_len
    gt_at = {}
    if a.order != 'tables-last':
        for t in used_gts:
            gt_at[t] = nxt
            nxt += gt_len
    g_at = {}
    for g in grains:
        g_at[g] = nxt
        nxt += a.grain
    if a.order == 'tables-last':
        for t in used_gts:
            gt_at[t] = nxt
            nxt += gt_len
    out = bytearray(nxt * S)
    flags = 0x3 if not a.child else 0x2
    hdr = struct.pack('<4s8I', b'COWD', 1, flags, cap, a.grain, gd_sec, gd_n, nxt, 0)
    out[0:len(hdr)] = hdr
    if a.child:
        name = a.child.encode()
        out[32:32 + len(name)] = name
    else:
        struct.pack_into('<3I', out, 32, max(1, cap // (16 * 63)), 16, 63)
    for t, at in gt_at.items():
        struct.pack_into('<I', out, gd_sec * S + 4 * t, at)
    for g, at in g_at.items():
        struct.pack_into('<I', out, gt_at[g // LEAF] * S + 4 * (g % LEAF), at)
        chunk = data[g * gb:(g + 1) * gb]
        out[at * S:at * S + len(chunk)] = chunk
    if a.cut:
        del out[len(out) - a.cut:]
    open(a.out, 'wb').write(out)


if __name__ == '__main__':
    main()
