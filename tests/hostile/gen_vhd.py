#!/usr/bin/env python3
"""gen_vhd.py - hostile VHD inputs for run.sh: NAME.vhd, one thing wrong each.

A small dynamic disk (8 MiB, 2 MiB blocks, blocks 0 and 2 with data, laid out
as qemu does: footer copy @0, dynamic header @512, BAT @1536, blocks, footer)
and a small fixed one (1 MiB of data and a footer) are the bases; each case
changes one field of the footer, the dynamic header or the BAT (facts doc
section 2 of the shared notes) and fixes the checksum unless the checksum is
the point. The outcomes are in `expected` (v-* lines).

Usage: gen_vhd.py -o DIR [NAME...]
"""
import os
import struct
import sys

S = 512
BS = 2 << 20
SIZE = 8 << 20


def checksum(b, at):
    return (~sum(b[:at] + b'\0\0\0\0' + b[at + 4:])) & 0xffffffff


def footer(size, typ, data_offset, app=b'qem2', chs=(65535, 16, 255)):
    f = bytearray(S)
    f[0:8] = b'conectix'
    struct.pack_into('>IIQI', f, 8, 2, 0x10000, data_offset, 0)
    f[28:32] = app
    struct.pack_into('>I', f, 32, 0x50003)
    f[36:40] = b'Wi2k'
    struct.pack_into('>QQHBBI', f, 40, size, size, chs[0], chs[1], chs[2], typ)
    f[68:84] = bytes(range(1, 17))
    return f


def fix_footer(f):
    struct.pack_into('>I', f, 64, checksum(bytes(f), 64))


def header(entries=SIZE // BS, bs=BS, table=3 * S):
    h = bytearray(1024)
    h[0:8] = b'cxsparse'
    struct.pack_into('>QQIII', h, 8, 0xffffffffffffffff, table, 0x10000, entries, bs)
    return h


def fix_header(h):
    struct.pack_into('>I', h, 36, checksum(bytes(h), 36))


def data(n, seed):
    return bytes((i * 7 + seed) & 0xff for i in range(n))


class Dyn:
    def __init__(self, size=SIZE, bs=BS):
        n = size // bs
        self.foot = footer(size, 3, S)
        self.head = header(entries=n, bs=bs)
        self.bat = [0xffffffff] * n
        first = 3 * S + (4 * n + S - 1) // S * S
        self.bat[0] = first // S
        self.bat[2] = (first + S + bs) // S
        self.blocks = [b'\xff' * S + data(bs, 1), b'\xff' * S + data(bs, 2)]
        self.fix = True

    def bytes(self):
        if self.fix:
            fix_footer(self.foot)
            fix_header(self.head)
        bat = b''.join(struct.pack('>I', e) for e in self.bat)
        bat += b'\xff' * (-len(bat) % S)
        return bytes(self.foot) + bytes(self.head) + bat + b''.join(self.blocks) + bytes(self.foot)


def fixed(size=1 << 20, nbytes=1 << 20, **kw):
    f = footer(size, 2, 0xffffffffffffffff, **kw)
    fix_footer(f)
    return data(nbytes, 3) + bytes(f)


def dyn(change=None, fix=True):
    d = Dyn()
    if change:
        change(d)
    d.fix = fix
    return d.bytes()


def setf(fmt, off, val):
    return lambda d: struct.pack_into(fmt, d.foot, off, val)


def seth(fmt, off, val):
    return lambda d: struct.pack_into(fmt, d.head, off, val)


def setbat(i, val):
    def f(d):
        d.bat[i] = val
    return f


def cases():
    c = {}
    c['v-dyn-base'] = dyn()
    c['v-fixed-base'] = fixed()
    c['v-fixed-chs'] = fixed(size=1 << 20, app=b'qemu', chs=(30, 4, 17))  # 1 MiB - 8 KiB read
    c['v-footer-sum'] = dyn(setf('>I', 40, 12345), fix=False)
    c['v-footer-cookie'] = dyn(lambda d: d.foot.__setitem__(slice(0, 8), b'conectiy'))
    c['v-type-diff'] = dyn(setf('>I', 60, 4))
    c['v-type-9'] = dyn(setf('>I', 60, 9))
    c['v-size-huge'] = dyn(setf('>Q', 48, 2041 << 30))
    c['v-size-max'] = dyn(setf('>Q', 48, 2040 << 30))  # BAT of 4 entries: too small
    c['v-hdr-offset'] = dyn(setf('>Q', 16, 1 << 40))
    c['v-hdr-cookie'] = dyn(lambda d: d.head.__setitem__(slice(0, 8), b'cxsparsf'))
    c['v-hdr-sum'] = dyn(lambda d: (fix_footer(d.foot), d.head.__setitem__(32, 0x21)), fix=False)
    c['v-bs-3m'] = dyn(seth('>I', 32, 3 << 20))
    c['v-bs-0'] = dyn(seth('>I', 32, 0))
    c['v-bs-256'] = dyn(seth('>I', 32, 256))
    c['v-bs-512m'] = dyn(seth('>I', 32, 512 << 20))
    c['v-entries-small'] = dyn(seth('>I', 28, 3))
    c['v-entries-huge'] = dyn(seth('>I', 28, 0xffffffff))
    c['v-bat-offset-huge'] = dyn(seth('>Q', 16, 1 << 60))
    c['v-bat-over-header'] = dyn(seth('>Q', 16, 1024))
    c['v-bat-entry-outside'] = dyn(setbat(0, 0x7fffffff))
    c['v-bat-entry-header'] = dyn(setbat(0, 1))
    c['v-bat-entry-dup'] = dyn(setbat(1, 4))
    c['v-fixed-short'] = fixed(size=2 << 20)
    c['v-fixed-sum'] = fixed()[:-S + 64] + b'\0\0\0\0' + fixed()[-S + 68:]
    c['v-fixed-type-diff'] = (lambda b: b[:-S] + bytes(
        (lambda f: (struct.pack_into('>I', f, 60, 4), fix_footer(f), f)[2])(bytearray(b[-S:]))))(fixed())
    c['v-tiny'] = b'conectix'
    # Small valid disks, also the fuzzer's seeds: 4 KiB blocks (qemu reads
    # any power of two), and with the block written after the BAT out of
    # guest order.
    c['v-small-4k'] = Dyn(size=64 << 10, bs=4096).bytes()
    d = Dyn(size=64 << 10, bs=4096)
    d.bat[0], d.bat[2] = d.bat[2], d.bat[0]
    c['v-small-4k-swapped'] = d.bytes()
    c['v-small-fixed'] = fixed(size=16 << 10, nbytes=16 << 10)
    # The smallest block: one sector, whose bitmap is still one sector.
    c['v-bs-512'] = Dyn(size=4096, bs=512).bytes()
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
        with open(os.path.join(out, name + '.vhd'), 'wb') as f:
            f.write(b)


if __name__ == '__main__':
    main()
