#!/usr/bin/env python3
"""gen_vdi.py - hostile VDI inputs for run.sh: NAME.vdi, one thing wrong each.

The base is a small dynamic image laid out as qemu-img 7.2 lays one out: the
512-byte header (fields at the offsets of qemu's VdiHeader / VirtualBox's
VDIHEADER1), the block map at 512, the data area after it. 8 MiB in 1 MiB
blocks: guest blocks 0 and 2 hold data, stored out of guest order (block 2
first, as a VM writing it first leaves it), block 5 is "discarded". Each
case changes one header field, map entry or the file's length. The outcomes
are in `expected` (i-* lines).

Usage: gen_vdi.py -o DIR [NAME...]
"""
import os
import struct
import sys

S = 512
MIB = 1 << 20
FREE, ZERO = 0xffffffff, 0xfffffffe


def data(n, seed):
    return bytes((i * 7 + seed) & 0xff for i in range(n))


class Vdi:
    def __init__(self, size=8 * MIB, bs=MIB, typ=1):
        n = (size + bs - 1) // bs
        self.f = {'version': 0x00010001, 'header_size': 0x180, 'type': typ, 'bmap': S,
                  'data': S + (4 * n + S - 1) // S * S, 'sector': S, 'size': size, 'bs': bs,
                  'extra': 0, 'blocks': n, 'alloc': 0, 'sig': 0xbeda107f}
        self.link = bytes(16)
        self.parent = bytes(16)
        if typ == 2:
            self.map = list(range(n))
            self.blocks = [data(bs, k) for k in range(n)]
        else:
            self.map = [FREE] * n
            self.map[2], self.map[0] = 0, 1
            if n > 5:
                self.map[5] = ZERO
            self.blocks = [data(bs, 2), data(bs, 1)]
        self.f['alloc'] = len(self.blocks)
        self.cut = None
        self.data0 = self.f['data']  # where the data area is, whatever the header says

    def bytes(self):
        f = self.f
        h = bytearray(S)
        h[0:35] = b'<<< QEMU VM Virtual Disk Image >>>\n'
        struct.pack_into('<IIIII', h, 0x40, f['sig'], f['version'], f['header_size'], f['type'], 0)
        struct.pack_into('<IIIIIII', h, 0x154, f['bmap'], f['data'], 0, 0, 0, f['sector'], 0)
        struct.pack_into('<QIIII', h, 0x170, f['size'], f['bs'], f['extra'], f['blocks'], f['alloc'])
        h[0x188:0x198] = bytes(range(1, 17))
        h[0x198:0x1a8] = bytes(range(17, 33))
        h[0x1a8:0x1b8] = self.link
        h[0x1b8:0x1c8] = self.parent
        m = b''.join(struct.pack('<I', e) for e in self.map)
        m += bytes(-len(m) % S)
        b = bytes(h) + m
        b += bytes(self.data0 - len(b))
        b += b''.join(self.blocks)
        return b[:self.cut] if self.cut is not None else b


def vdi(change=None, **kw):
    v = Vdi(**kw)
    if change:
        change(v)
    return v.bytes()


def field(name, val):
    return lambda v: v.f.__setitem__(name, val)


def entry(i, val):
    return lambda v: v.map.__setitem__(i, val)


def cases():
    c = {}
    c['i-base'] = vdi()
    c['i-static'] = vdi(size=4 * MIB, typ=2)
    # An odd size: qemu counts it in whole sectors, rounded up.
    c['i-odd-size'] = vdi(field('size', 8 * MIB - 100))
    # 64 KiB blocks: the header names the size; dsc reads any power of two
    # from 4 KiB to 64 MiB (qemu only 1 MiB).
    c['i-small-64k'] = vdi(size=512 << 10, bs=64 << 10)
    c['i-small-4k'] = vdi(size=32 << 10, bs=4096)  # also the fuzzer's seed
    c['i-bad-signature'] = vdi(field('sig', 0xbeda107e))
    c['i-version-0'] = vdi(field('version', 0))
    c['i-header-size'] = vdi(field('header_size', 0x100))
    c['i-type-diff'] = vdi(field('type', 4))
    c['i-type-undo'] = vdi(field('type', 3))
    c['i-type-7'] = vdi(field('type', 7))
    c['i-parent-uuid'] = vdi(lambda v: setattr(v, 'parent', bytes(range(5, 21))))
    c['i-link-uuid'] = vdi(lambda v: setattr(v, 'link', bytes(range(5, 21))))
    c['i-sector-4k'] = vdi(field('sector', 4096))
    c['i-disk-huge'] = vdi(field('size', 1 << 62))
    c['i-bs-0'] = vdi(field('bs', 0))
    c['i-bs-3m'] = vdi(field('bs', 3 * MIB))
    c['i-bs-1k'] = vdi(field('bs', 1024))
    c['i-bs-1g'] = vdi(field('bs', 1 << 30))
    c['i-extra'] = vdi(field('extra', 512))
    c['i-blocks-huge'] = vdi(field('blocks', 0xffffffff))
    c['i-blocks-small'] = vdi(field('blocks', 4))
    c['i-alloc-over'] = vdi(field('alloc', 9))
    c['i-bmap-unaligned'] = vdi(field('bmap', 0x300 - 4))
    c['i-bmap-in-header'] = vdi(field('bmap', 0))
    c['i-bmap-huge'] = vdi(lambda v: (v.f.__setitem__('bmap', 0xfffffe00),
                                      v.f.__setitem__('data', 0xfffffe00)))
    c['i-bmap-past-eof'] = vdi(lambda v: (v.f.__setitem__('bmap', 16 * MIB),
                                          v.f.__setitem__('data', 16 * MIB + S)))
    c['i-data-overlap'] = vdi(field('data', S))
    c['i-data-past-eof'] = vdi(field('data', 64 * MIB))
    c['i-entry-huge'] = vdi(entry(0, 0x7fffffff))
    c['i-entry-blocks'] = vdi(entry(0, 8))
    c['i-entry-dup'] = vdi(entry(1, 1))
    c['i-cut-map'] = vdi(lambda v: setattr(v, 'cut', S + 16))
    c['i-cut-data'] = vdi(lambda v: setattr(v, 'cut', 2 * S + MIB + 4096))
    c['i-tiny'] = vdi()[:100]
    return c


def main():
    if len(sys.argv) < 3 or sys.argv[1] != '-o':
        sys.exit(__doc__)
    out = sys.argv[2]
    os.makedirs(out, exist_ok=True)
    want = sys.argv[3:]
    for name, b in cases().items():
        if want and name not in want:
            continue
        with open(os.path.join(out, name + '.vdi'), 'wb') as f:
            f.write(b)


if __name__ == '__main__':
    main()
