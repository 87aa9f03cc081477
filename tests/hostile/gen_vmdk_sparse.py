#!/usr/bin/env python3
"""gen_vmdk_sparse.py - write the hostile monolithicSparse VMDK inputs named
in tests/hostile/expected (ms-*), as OUTDIR/NAME.vmdk.

usage: gen_vmdk_sparse.py -o OUTDIR

Each input is a small hosted sparse extent laid out as qemu-img lays one
(header, descriptor at sector 1, redundant directory and tables at 21, the
directory and tables after them, grains from the next grain boundary;
formats.md section 4) with one thing wrong. Limits are those of
src/lib/vmdk.h.
"""
import argparse
import os
import struct

S = 512
MAX_CAP = 1 << 37            # VMDK_MAX_CAPACITY_SECTORS
MAX_GRAIN = 2048             # VMDK_MAX_GRAIN_SECTORS


def image(cap=8192, grain=128, gtes=512, flags=0x3, version=1, grains=(0, 5, 63),
          patch=None):
    ngr = (cap + grain - 1) // grain
    ngt = (ngr + gtes - 1) // gtes
    gts = (gtes * 4 + S - 1) // S
    gds = (ngt * 4 + S - 1) // S
    rgd = 21
    gd = rgd + gds + ngt * gts
    over = (gd + gds + ngt * gts + grain - 1) // grain * grain
    h = {'version': version, 'flags': flags, 'cap': cap, 'grain': grain, 'gtes': gtes,
         'rgd': rgd, 'gd': gd, 'over': over}
    gte = [0] * (ngt * gtes)
    nxt = over
    for g in grains:
        gte[g] = nxt
        nxt += grain
    if patch:
        patch(h, gte)
    hdr = struct.pack('<4sIIQQQQIQQQB4sH', b'KDMV', h['version'], h['flags'], h['cap'],
                      h['grain'], 1, 20, h['gtes'], h['rgd'], h['gd'], h['over'], 0,
                      b'\n \r\n', 0)
    out = bytearray(hdr + bytes(S - len(hdr)))
    desc = ('# Disk DescriptorFile\nversion=1\nCID=0badc0de\nparentCID=ffffffff\n'
            'createType="monolithicSparse"\n\nRW %d SPARSE "h.vmdk"\n' % cap).encode()
    out += desc + bytes(20 * S - len(desc))
    size = max(over + len(grains) * grain, 21 + 2 * (gds + ngt * gts)) * S
    out += bytes(size - len(out))
    for base, copy in ((rgd, h.get('rgte', gte)), (gd, gte)):
        for t in range(ngt):
            at = base + gds + t * gts
            struct.pack_into('<I', out, base * S + 4 * t, at)
            for j in range(gtes):
                struct.pack_into('<I', out, at * S + 4 * j, copy[t * gtes + j] & 0xFFFFFFFF)
    for i, g in enumerate(grains):
        o = (over + i * grain) * S
        out[o:o + 16] = b'grain %9d' % g
    return bytes(out)


def cowd(cap=8192, grain=16, version=1, flags=0x3, gd=4, gd_n=None, grains=(0, 7, 300),
         gte_patch=None, cut=None, hdr_cap=None, hdr_grain=None):
    """A COWD (ESX Server 2 sparse) extent: 4-sector header, the directory at
    sector gd, 4096-entry tables, then the grains (cow_ext.h's layout).
    hdr_cap and hdr_grain replace the header's fields only."""
    per_gt = grain * 4096
    need = (cap + per_gt - 1) // per_gt
    if gd_n is None:
        gd_n = need
    gds = (need * 4 + S - 1) // S
    gt0 = max(gd, 4) + gds
    data = gt0 + need * 32
    hdr = struct.pack('<4sIIIIII', b'COWD', version, flags, cap if hdr_cap is None else hdr_cap,
                      grain if hdr_grain is None else hdr_grain, gd, gd_n)
    out = bytearray(hdr + bytes(4 * S - len(hdr)))
    gte = [0] * (need * 4096)
    nxt = data
    for g in grains:
        gte[g] = nxt
        nxt += grain
    if gte_patch:
        gte_patch(gte)
    out += bytes(nxt * S - len(out))
    for t in range(need):
        struct.pack_into('<I', out, max(gd, 4) * S + 4 * t, gt0 + t * 32)
        for j in range(4096):
            struct.pack_into('<I', out, (gt0 + t * 32) * S + 4 * j, gte[t * 4096 + j] & 0xFFFFFFFF)
    for i, g in enumerate(grains):
        o = (data + i * grain) * S
        out[o:o + 16] = b'grain %9d' % g
    if cut is not None:
        del out[cut:]
    return bytes(out)


def field(name, value):
    def p(h, gte):
        h[name] = value
    return p


def cases():
    c = {}
    c['ms-base'] = lambda: image()
    c['ms-v2-zeroed'] = lambda: image(version=2, flags=0x7,
                                      patch=lambda h, g: g.__setitem__(7, 1))
    c['ms-capacity-huge'] = lambda: image(patch=field('cap', MAX_CAP + 1))
    c['ms-grain-0'] = lambda: image(patch=field('grain', 0))
    c['ms-grain-odd'] = lambda: image(patch=field('grain', 3))
    c['ms-grain-huge'] = lambda: image(patch=field('grain', MAX_GRAIN * 2))
    c['ms-gtes-huge'] = lambda: image(patch=field('gtes', 1 << 20))
    c['ms-gd-count-huge'] = lambda: image(patch=lambda h, g: h.update(cap=MAX_CAP, grain=1))
    c['ms-gd-past-eof'] = lambda: image(patch=field('gd', 1 << 30))
    c['ms-gd-in-header'] = lambda: image(patch=field('gd', 3))
    c['ms-gte-past-eof'] = lambda: image(patch=lambda h, g: g.__setitem__(5, 1 << 30))
    c['ms-gte-into-meta'] = lambda: image(patch=lambda h, g: g.__setitem__(5, 2))
    c['ms-gte-one-v1'] = lambda: image(patch=lambda h, g: g.__setitem__(9, 1))
    c['ms-rgd-mismatch'] = lambda: image(
        patch=lambda h, g: h.update(rgte=[v + (128 if i == 5 else 0) for i, v in enumerate(g)]))
    c['ms-compressed-no-markers'] = lambda: image(flags=0x10003)
    c['ms-cowd-base'] = lambda: cowd()
    c['ms-cowd-version-2'] = lambda: cowd(version=2)
    c['ms-cowd-child'] = lambda: cowd(flags=0x2)
    c['ms-cowd-cap-0'] = lambda: cowd(hdr_cap=0)
    c['ms-cowd-grain-0'] = lambda: cowd(hdr_grain=0)
    c['ms-cowd-grain-odd'] = lambda: cowd(hdr_grain=3)
    c['ms-cowd-grain-huge'] = lambda: cowd(hdr_grain=MAX_GRAIN * 2)
    c['ms-cowd-gd-short'] = lambda: cowd(hdr_cap=1 << 20, hdr_grain=1)
    c['ms-cowd-gd-in-header'] = lambda: cowd(gd=2)
    c['ms-cowd-gd-huge'] = lambda: cowd(gd_n=0xFFFFFFFF)
    c['ms-cowd-gte-past-eof'] = lambda: cowd(gte_patch=lambda g: g.__setitem__(7, 1 << 30))
    c['ms-cowd-gte-into-meta'] = lambda: cowd(gte_patch=lambda g: g.__setitem__(7, 2))
    c['ms-cowd-cut-header'] = lambda: cowd(cut=100)
    c['ms-cowd-cut-tables'] = lambda: cowd(cut=4 * S + 4 + 600)
    return c


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('-o', required=True)
    ap.add_argument('--small', action='store_true')
    ap.add_argument('--list', action='store_true')
    a = ap.parse_args()
    for name, make in sorted(cases().items()):
        if a.list:
            print(name)
            continue
        with open(os.path.join(a.o, name + '.vmdk'), 'wb') as f:
            f.write(make())


if __name__ == '__main__':
    main()
