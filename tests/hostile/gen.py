#!/usr/bin/env python3
"""gen.py - write the hostile VMDK inputs named in tests/hostile/expected.

usage: gen.py -o OUTDIR [--small] [--list] [NAME...]

Every input is a small valid stream (built here, facts doc sections 1-4)
with one thing wrong, written as OUTDIR/NAME.vmdk. Inputs are generated at
test time so nothing binary is committed; the output is the same on every
run. --small leaves out inputs larger than 256 KiB (for the fuzzers' replay),
--list prints the case names. Cases named in `expected` and here must match
(run.sh checks it).

Layouts (facts section 5): `vmware` = header with GD_AT_END, grains, a GT
marker + table after each 32 MiB range, GD marker + directory, footer
marker + footer, EOS; `qemu` = directory and tables in the header area, no
footer, no EOS.
"""
import argparse
import base64
import os
import random
import struct
import sys
import zlib

S = 512
GD_AT_END = 0xFFFFFFFFFFFFFFFF
MAX_GRAIN = 2048            # VMDK_MAX_GRAIN_SECTORS (src/lib/vmdk.h)
MAX_GTES = 512              # VMDK_MAX_GTES_PER_GT
MAX_CAP = 1 << 37           # VMDK_MAX_CAPACITY_SECTORS
MAX_DESC = 2048             # VMDK_MAX_DESCRIPTOR_SECTORS
MiB = 1 << 20

# Header field offsets and widths, facts section 1.
FIELDS = {'magic': (0, 4), 'version': (4, 4), 'flags': (8, 4), 'capacity': (12, 8),
          'grain': (20, 8), 'descoff': (28, 8), 'descsize': (36, 8), 'gtes': (44, 4),
          'rgd': (48, 8), 'gd': (56, 8), 'overhead': (64, 8), 'unclean': (72, 1),
          'compress': (77, 2)}


def pad(b, n=S):
    return b + bytes(-len(b) % n)


def descriptor(cap, name='hostile.vmdk', lines=None):
    text = ('# Disk DescriptorFile\nversion=1\nencoding="UTF-8"\nCID=0badc0de\n'
            'parentCID=ffffffff\ncreateType="streamOptimized"\n\n# Extent description\n'
            'RW %d SPARSE "%s"\n\n# The Disk Data Base\n#DDB\n\nddb.virtualHWVersion = "4"\n'
            'ddb.adapterType = "lsilogic"\n' % (cap, name))
    if lines:
        text += lines
    return text.encode()


def header(cap, grain, dsec, overhead, gd=GD_AT_END, rgd=0, flags=0x30001, doff=1):
    h = struct.pack('<4sIIQQQQIQQQB4sH', b'KDMV', 3, flags, cap, grain, doff, dsec, 512,
                    rgd, gd, overhead, 0, b'\n \r\n', 1)
    return h + bytes(S - len(h))


def meta(val, typ):
    return struct.pack('<QII', val, 0, typ) + bytes(496)


def gmarker(lba, z, size=None):
    return pad(struct.pack('<QI', lba, len(z) if size is None else size) + z)


class Image:
    """A stream under construction; remembers where each marker went."""

    def __init__(self, cap, grain=128, layout='vmware', desc=None, dsec=None, overhead=None):
        self.cap, self.grain, self.layout = cap, grain, layout
        self.gb = grain * S
        d = pad(desc if desc is not None else descriptor(cap))
        self.dsec = dsec if dsec is not None else len(d) // S
        d = d.ljust(self.dsec * S, b'\0')
        self.nranges = max(1, ((cap + grain - 1) // grain + 511) // 512)
        self.marks = []  # (kind, byte offset)
        if layout == 'qemu':
            gd_at = 1 + self.dsec
            gt_at = gd_at + (self.nranges * 4 + S - 1) // S
            ovh = overhead or (gt_at + 4 * self.nranges + grain - 1) // grain * grain
            self.out = bytearray(header(cap, grain, self.dsec, ovh, gd=gd_at, rgd=0,
                                        flags=0x30003))
            self.out += d
            self.out += pad(struct.pack('<%dI' % self.nranges,
                                        *[gt_at + 4 * r for r in range(self.nranges)]))
            self.out = self.out.ljust(ovh * S, b'\0')  # tables left empty: never read
        else:
            ovh = overhead or max(128, 1 + self.dsec)
            self.out = bytearray(header(cap, grain, self.dsec, ovh))
            self.out += d
            self.out = self.out.ljust(ovh * S, b'\0')
        self.gte = {}
        self.last_range = None

    def _close_range(self):
        if self.layout == 'vmware' and self.last_range is not None:
            r = self.last_range
            self.marks.append(('gt', len(self.out)))
            self.out += meta(4, 1)
            self.gtpos = getattr(self, 'gtpos', {})
            self.gtpos[r] = len(self.out) // S
            self.out += struct.pack('<512I', *[self.gte.get(r * 512 + i, 0) for i in range(512)])

    def grain_z(self, lba, z, size=None):
        """A grain marker with the given compressed bytes (and size field)."""
        r = lba // self.grain // 512
        if self.last_range is not None and r != self.last_range:
            self._close_range()
        self.last_range = r
        self.gte[lba // self.grain] = len(self.out) // S
        self.marks.append(('grain', len(self.out)))
        self.out += gmarker(lba, z, size)

    def add(self, lba, data, level=6):
        self.grain_z(lba, zlib.compress(data.ljust(self.gb, b'\0'), level))

    def raw(self, b):
        self.marks.append(('raw', len(self.out)))
        self.out += b

    def end(self, footer=True):
        if self.layout == 'qemu':
            return bytes(self.out)
        self._close_range()
        self.last_range = None
        gds = (self.nranges * 4 + S - 1) // S
        self.marks.append(('gd', len(self.out)))
        self.out += meta(gds, 2)
        gd = len(self.out) // S
        gtpos = getattr(self, 'gtpos', {})
        self.out += pad(struct.pack('<%dI' % self.nranges,
                                    *[gtpos.get(r, 0) for r in range(self.nranges)]))
        if footer:
            self.marks.append(('footer', len(self.out)))
            self.out += meta(1, 3)
            self.out += header(self.cap, self.grain, self.dsec,
                               struct.unpack_from('<Q', self.out, 64)[0], gd=gd)
        self.marks.append(('eos', len(self.out)))
        self.out += meta(0, 0)
        return bytes(self.out)


# Inputs found by the fuzzers (tests/fuzz/run.sh): case name -> base64 of
# the input (the "Base64:" line libFuzzer prints). Each crash or hang of
# the VMDK harnesses goes here as "fuzz-<what>", with its outcome in
# `expected`; run.sh then checks it through the probe and dsc-convert, and
# the fuzzers replay it before every run. Crashes of the server parsers'
# harnesses become cases of their own tests instead.
REGRESSIONS = {
}

RND = random.Random(1234)


def rand(n):
    return bytes(RND.getrandbits(8) for _ in range(n))


TEXT = (b'hostile but honest disk data %06d\n' * 2000)[:65536]


def base(layout='vmware', grain=128):
    """40 MiB + 3 sectors: grains in both 32 MiB ranges, random (compressed
    size over one grain) and text data, a last grain cut by the capacity."""
    cap = 40 * 2048 + 3
    im = Image(cap, grain, layout)
    gb = grain * S
    im.add(0, TEXT[:gb] if gb <= len(TEXT) else TEXT * (gb // len(TEXT)))
    im.add(grain, rand(min(gb, 65536)))
    im.add(20 * 2048, TEXT[:4000])
    im.add(36 * 2048, rand(3000))
    last = (cap - 1) // grain * grain
    im.add(last, b'end of disk'.ljust((cap - last) * S, b'.'))
    return im


def patched(b, off, fmt, val):
    b = bytearray(b)
    struct.pack_into(fmt, b, off, val)
    return bytes(b)


def field(name, val, b=None):
    off, width = FIELDS[name]
    b = bytearray(b if b is not None else BASE)
    b[off:off + width] = val.to_bytes(width, 'little')
    return bytes(b)


def mark(im, kind, n=0):
    return [o for k, o in im.marks if k == kind][n]


def cases():
    """name -> bytes (a function, so --small and NAME filters stay cheap)."""
    c = {}
    # ---- the header, field by field: 0, at the cap, past the cap ----
    c['bad-magic'] = lambda: b'KDMX' + BASE[4:]
    c['magic-only'] = lambda: b'KDMV'
    c['header-short'] = lambda: BASE[:100]
    c['version-0'] = lambda: field('version', 0)
    c['version-3-at-cap'] = lambda: BASE
    c['version-4'] = lambda: field('version', 4)
    c['version-max'] = lambda: field('version', 0xFFFFFFFF)
    c['flags-0'] = lambda: field('flags', 0)
    c['flags-all-known'] = lambda: field('flags', 0x30007)
    c['flags-unknown-incompat'] = lambda: field('flags', 0x70001)
    c['flags-all'] = lambda: field('flags', 0xFFFFFFFF)
    c['capacity-0'] = lambda: field('capacity', 0)
    c['capacity-at-cap'] = lambda: field('capacity', MAX_CAP)
    c['capacity-past-cap'] = lambda: field('capacity', MAX_CAP + 1)
    c['capacity-huge'] = lambda: field('capacity', 2**64 - 1)
    c['capacity-at-cap-grain-1'] = lambda: capacity_bomb_grain1()
    c['capacity-below-grains'] = lambda: field('capacity', 2048)
    c['grain-0'] = lambda: field('grain', 0)
    c['grain-3'] = lambda: field('grain', 3)
    c['grain-at-cap'] = lambda: grain_at_cap()
    c['grain-past-cap'] = lambda: field('grain', MAX_GRAIN * 2)
    c['grain-huge'] = lambda: field('grain', 1 << 40)
    c['grain-pow63'] = lambda: field('grain', 1 << 63)
    c['descoff-0'] = lambda: field('descoff', 0)
    c['descoff-past-overhead'] = lambda: field('descoff', 200)
    c['descoff-at-cap'] = lambda: field('descoff', MAX_CAP)
    c['descoff-huge'] = lambda: field('descoff', 2**64 - 1)
    c['descsize-0'] = lambda: field('descsize', 0)
    c['descsize-at-cap'] = lambda: desc_at_cap()
    c['descsize-past-cap'] = lambda: field('descsize', MAX_DESC + 1)
    c['descsize-huge'] = lambda: field('descsize', 2**64 - 1)
    c['descsize-past-file'] = lambda: field('overhead', 2100, field('descsize', 2000))
    c['gtes-0'] = lambda: field('gtes', 0)
    c['gtes-at-cap'] = lambda: field('gtes', MAX_GTES)
    c['gtes-past-cap'] = lambda: field('gtes', MAX_GTES + 1)
    c['gtes-huge'] = lambda: field('gtes', 0xFFFFFFFF)
    c['rgd-huge'] = lambda: field('rgd', 2**64 - 1)
    c['gd-0'] = lambda: field('gd', 0)
    c['overhead-0'] = lambda: field('overhead', 0)
    c['overhead-in-descriptor'] = lambda: field('overhead', 1)
    c['overhead-past-file'] = lambda: field('overhead', 1 << 20)
    c['overhead-at-cap'] = lambda: field('overhead', MAX_CAP)
    c['overhead-huge'] = lambda: field('overhead', 2**64 - 1)
    c['overhead-odd'] = lambda: field('overhead', 127)
    c['unclean-255'] = lambda: field('unclean', 255)
    c['compress-0'] = lambda: field('compress', 0)
    c['compress-2'] = lambda: field('compress', 2)
    c['compress-max'] = lambda: field('compress', 0xFFFF)
    # ---- the descriptor ----
    c['desc-blank'] = lambda: BASE[:S] + bytes(S) + BASE[2 * S:]
    c['desc-no-createtype'] = lambda: with_desc(descriptor(81923).replace(b'createType', b'kind'))
    c['desc-monolithic-flat'] = lambda: with_desc(
        descriptor(81923).replace(b'streamOptimized', b'monolithicFlat'))
    c['desc-no-nul'] = lambda: with_desc(b'# Disk DescriptorFile\ncreateType=streamOptimized\n'
                                         + b'x' * 1000, pad_byte=b'x')
    c['desc-many-lines'] = lambda: with_desc(descriptor(81923, lines='\n' * 5000), dsec=20)
    c['desc-long-line'] = lambda: with_desc(descriptor(81923, lines='#' * 9000 + '\n'
                                                       'RW 1 SPARSE "' + 'n' * 9000 + '"\n'))
    # ---- grain markers ----
    c['lba-beyond-capacity'] = lambda: grain_lba(81920 + 128)
    c['lba-huge'] = lambda: grain_lba(2**64 - 128)
    c['lba-unaligned'] = lambda: grain_lba(1)
    c['lba-repeated'] = lambda: two_grains(0, 0)
    c['lba-repeated-later'] = lambda: repeated_later()
    c['lba-descending'] = lambda: two_grains(256, 0)
    c['size-0'] = lambda: patched(BASE, G0 + 8, '<I', 0)
    c['size-1'] = lambda: patched(BASE, G0 + 8, '<I', 1)
    c['size-short'] = lambda: patched(BASE, G0 + 8, '<I', G0_SIZE // 2)
    c['size-2x-grain-trailing'] = lambda: size_2x_trailing()
    c['size-past-2x-grain'] = lambda: patched(BASE, G0 + 8, '<I', 2 * 65536 + 1)
    c['size-huge'] = lambda: patched(BASE, G0 + 8, '<I', 0xFFFFFFF0)
    c['zlib-garbage'] = lambda: one_grain_z(rand(3000))
    c['zlib-raw-deflate'] = lambda: one_grain_z(zlib.compress(TEXT, 6)[2:-4])
    c['zlib-bad-adler'] = lambda: one_grain_z(zlib.compress(TEXT, 6)[:-4] + b'\0\0\0\0')
    c['inflate-64MiB'] = lambda: one_grain_z(zlib.compress(bytes(64 * MiB), 9))
    c['inflate-2-grains'] = lambda: one_grain_z(zlib.compress(TEXT * 2, 6))
    c['inflate-half-grain'] = lambda: one_grain_z(zlib.compress(TEXT[:32768], 6), lba=0,
                                                  more=True)
    c['inflate-empty'] = lambda: one_grain_z(zlib.compress(b'', 6), more=True)
    # ---- metadata markers ----
    c['meta-unknown-type'] = lambda: with_marker(meta(0, 5))
    c['meta-gt-huge'] = lambda: with_marker(meta(2**64 - 1, 1))
    c['meta-gt-past-file'] = lambda: with_marker(meta(1 << 30, 1))
    c['meta-footer-size-2'] = lambda: with_marker(meta(2, 3))
    c['meta-footer-no-magic'] = lambda: with_marker(meta(1, 3) + bytes(S))
    c['meta-eos-no-footer'] = lambda: with_marker(meta(0, 0))
    c['meta-nonzero-padding'] = lambda: with_marker(meta(0, 4)[:100] + b'\1' + bytes(411))
    c['no-footer-gd-at-end'] = lambda: BASE_IM_NOFOOTER
    c['eos-then-garbage'] = lambda: BASE + rand(2000)
    c['qemu-garbage-after'] = lambda: QEMU + rand(700)
    # ---- truncations: at and inside every marker of both layouts ----
    # (A cut "mid" a marker is 700 bytes in: past the end for the last ones.)
    for i, (kind, off) in enumerate(BASE_IM.marks):
        c['cut-%02d-at-%s' % (i, kind)] = (lambda o: lambda: BASE[:o])(off)
        c['cut-%02d-in-%s' % (i, kind)] = (lambda o: lambda: BASE[:o + 13])(off)
        if off + 700 < len(BASE):
            c['cut-%02d-mid-%s' % (i, kind)] = (lambda o: lambda: BASE[:o + 700])(off)
    c['cut-in-descriptor'] = lambda: BASE[:S + 100]
    c['cut-at-overhead'] = lambda: BASE[:128 * S]
    c['cut-last-byte'] = lambda: BASE[:-1]
    for name, b64 in REGRESSIONS.items():
        c[name] = (lambda b: lambda: base64.b64decode(b))(b64)
    for i, (kind, off) in enumerate(QEMU_IM.marks):
        c['qemu-cut-%02d-in-%s' % (i, kind)] = (lambda o: lambda: QEMU[:o + 13])(off)
        if off + 700 < len(QEMU):
            c['qemu-cut-%02d-mid-%s' % (i, kind)] = (lambda o: lambda: QEMU[:o + 700])(off)
    return c


def with_desc(text, dsec=None, pad_byte=b'\0'):
    d = text + pad_byte * (-len(text) % S)
    dsec = dsec or len(d) // S
    d = d.ljust(dsec * S, b'\0')
    im = Image(81923, desc=d, dsec=dsec, overhead=max(128, 1 + dsec))
    im.out[S:S + len(d)] = d
    im.add(0, TEXT)
    return im.end()


def grain_lba(lba):
    im = Image(81923)
    im.add(0, TEXT)
    im.add(lba, TEXT)
    return im.end()


def two_grains(a, b):
    im = Image(81923)
    im.add(a, TEXT)
    im.add(b, rand(65536))
    return im.end()


def repeated_later():
    im = Image(81923)
    im.add(0, TEXT)
    im.add(128, rand(65536))
    im.add(0, b'second copy of grain 0' * 100)
    return im.end()


def one_grain_z(z, lba=0, more=False):
    im = Image(81923)
    im.grain_z(lba, z)
    if more:
        im.add(lba + 128, TEXT)
    return im.end()


def size_2x_trailing():
    z = zlib.compress(TEXT, 6)
    return one_grain_z(z + bytes(2 * 65536 - len(z)))


def with_marker(m):
    im = Image(81923)
    im.add(0, TEXT)
    im.raw(m)
    im.add(128, TEXT)
    return im.end()


def grain_at_cap():
    im = Image(4 * MAX_GRAIN + 5, grain=MAX_GRAIN)
    im.add(0, TEXT * 16)
    im.add(4 * MAX_GRAIN, b'last')
    return im.end()


def capacity_bomb_grain1():
    """64 TiB in 512-byte grains (the most grains a header can announce),
    grains at the start and the very end; no footer needed (gd = 0)."""
    d = pad(descriptor(MAX_CAP))
    out = bytearray(header(MAX_CAP, 1, len(d) // S, 1 + len(d) // S, gd=0))
    out += d
    for lba in (0, 1, MAX_CAP - 1):
        out += gmarker(lba, zlib.compress((b'bomb %d ' % lba * 80)[:S]))
    out += meta(0, 0)
    return bytes(out)


def desc_at_cap():
    d = descriptor(81923)
    im = Image(81923, desc=d, dsec=MAX_DESC)
    im.add(0, TEXT)
    return im.end()


def main():
    global BASE, BASE_IM, BASE_IM_NOFOOTER, QEMU, QEMU_IM, G0, G0_SIZE
    ap = argparse.ArgumentParser()
    ap.add_argument('-o', dest='out')
    ap.add_argument('--small', action='store_true')
    ap.add_argument('--list', action='store_true')
    ap.add_argument('names', nargs='*')
    a = ap.parse_args()
    BASE_IM = base()
    BASE = BASE_IM.end()
    nf = base()
    BASE_IM_NOFOOTER = nf.end(footer=False)
    QEMU_IM = base('qemu')
    QEMU = QEMU_IM.end()
    G0 = mark(BASE_IM, 'grain')
    G0_SIZE = struct.unpack_from('<I', BASE, G0 + 8)[0]
    c = cases()
    if a.list:
        print('\n'.join(c))
        return
    if not a.out:
        ap.error('-o OUTDIR is required')
    os.makedirs(a.out, exist_ok=True)
    for name in a.names or c:
        if name not in c:
            sys.exit('gen.py: no case named %s' % name)
        b = c[name]()
        if a.small and len(b) > 256 * 1024:
            continue
        with open(os.path.join(a.out, name + '.vmdk'), 'wb') as f:
            f.write(b)
    if not a.names:
        with open(os.path.join(a.out, 'base.vmdk'), 'wb') as f:
            f.write(BASE)
        with open(os.path.join(a.out, 'base-qemu.vmdk'), 'wb') as f:
            f.write(QEMU)


if __name__ == '__main__':
    main()
