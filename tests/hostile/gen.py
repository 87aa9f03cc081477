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


# ---- qcow2 (facts doc section 1 of the shared notes; written as NAME.qcow2) ----
# The base: version 3, 4 KiB clusters, 3 MiB + 1000 bytes of disk, two L2
# tables. Clusters: 0 header, 1 refcount table, 2 refcount block, 3 L1,
# 4 L2[0], 5-6 data, 7 two compressed clusters packed byte-wise (the second
# spills into cluster 8), 9 L2[1], 10 data at 2 MiB. An L2[0] entry with the
# zero flag, one unallocated.
QC = 4096
QSIZE = 3 * MiB + 1000


def qdeflate(data):
    z = zlib.compressobj(6, zlib.DEFLATED, -12)
    return z.compress(data) + z.flush()


def qheader(version=3, cbits=12, size=QSIZE, l1_size=2, l1_off=3 * QC, rt_off=QC, rt_clusters=1,
            incompat=0, hlen=112, ctype=0, crypt=0, refcount_order=4, backing=(0, 0), ext=b''):
    h = struct.pack('>4sIQIIQIIQQIIQ', b'QFI\xfb', version, backing[0], backing[1], cbits, size,
                    crypt, l1_size, l1_off, rt_off, rt_clusters, 0, 0)
    if version >= 3:
        h += struct.pack('>QQQII', incompat, 0, 0, refcount_order, hlen)
        h += bytes([ctype]) + bytes(7)
        h = h[:hlen].ljust(hlen, b'\0')
    return h + ext + struct.pack('>II', 0, 0)


class Qcow2:
    """The base image; fields kept so that cases can patch them."""

    def __init__(self, version=3, extl2=False, ctype=0):
        self.extl2, self.version = extl2, version
        c = QC if not extl2 else 16384
        self.c = c
        esz = 16 if extl2 else 8
        self.esz = esz
        self.text = (b'qcow2 hostile but honest %06d\n' * 2000)[:c]
        self.rnd = rand(c)
        nclusters = 12
        b = bytearray(c * nclusters)
        span = (c // esz) * c
        l1n = (QSIZE + span - 1) // span
        self.l1_off, self.l2_0, self.l2_1 = 3 * c, 4 * c, 9 * c
        incompat = (0x10 if extl2 else 0) | (0x8 if ctype else 0)
        hdr = qheader(version=version, cbits=c.bit_length() - 1, l1_size=l1n, l1_off=self.l1_off,
                      rt_off=c, incompat=incompat, ctype=ctype,
                      hlen=112 if version >= 3 else 72)
        b[:len(hdr)] = hdr
        struct.pack_into('>Q', b, c, 2 * c)  # refcount table -> block
        for i in range(nclusters):
            struct.pack_into('>H', b, 2 * c + 2 * i, 1)
        struct.pack_into('>Q', b, self.l1_off, self.l2_0 | (1 << 63))
        if l1n > 1:
            struct.pack_into('>Q', b, self.l1_off + 8, self.l2_1 | (1 << 63))
        b[5 * c:6 * c] = self.text
        b[6 * c:7 * c] = self.rnd
        # Two compressed clusters packed from the start of cluster 7.
        comp1 = qdeflate(self.text[::-1])
        comp2 = qdeflate(b'second compressed cluster ' * (c // 26) + bytes(c % 26))
        self.comp = []
        pos = 7 * c
        for z in (comp1, comp2):
            b[pos:pos + len(z)] = z
            self.comp.append((pos, len(z)))
            pos += len(z)
        b[10 * c:11 * c] = self.text.replace(b'honest', b'at 2MiB')[:c]
        cb = c.bit_length() - 1
        x = 62 - (cb - 8)

        def comp_entry(off, n):
            nsect = ((off + n - 1) >> 9) - (off >> 9) + 1
            return (1 << 62) | ((nsect - 1) << x) | off

        self.b = b

        def put(table, j, val, bitmap=0):
            struct.pack_into('>Q', self.b, table + j * esz, val)
            if extl2:
                struct.pack_into('>Q', self.b, table + j * esz + 8, bitmap)
        full = 0xffffffff
        put(self.l2_0, 0, 5 * c | (1 << 63), full)
        put(self.l2_0, 1, 6 * c | (1 << 63), full)
        put(self.l2_0, 2, comp_entry(*self.comp[0]))
        put(self.l2_0, 3, comp_entry(*self.comp[1]))
        if extl2:
            put(self.l2_0, 4, 0, full << 32)  # all subclusters zero
        elif version >= 3:
            put(self.l2_0, 4, 1)  # zero flag
        if l1n > 1:
            put(self.l2_1, 0, 10 * c | (1 << 63), full)
        self.put = put
        self.comp_entry = comp_entry
        self.nsect_shift = x

    def bytes(self):
        return bytes(self.b)


def qfield(fmt, off, val, b=None):
    b = bytearray(b if b is not None else QBASE)
    struct.pack_into(fmt, b, off, *(val if isinstance(val, tuple) else (val,)))
    return bytes(b)


def qentry(table, j, val, bitmap=None, im=None):
    im = im or Qcow2()
    if bitmap is None:
        im.put(table(im), j, val(im) if callable(val) else val)
    else:
        im.put(table(im), j, val(im) if callable(val) else val, bitmap)
    return im.bytes()


def qcases():
    c = {}
    L2 = lambda im: im.l2_0  # noqa: E731
    c['q-base-extl2'] = lambda: Qcow2(extl2=True).bytes()
    c['q-cluster-bits-8'] = lambda: qfield('>I', 20, 8)
    c['q-cluster-bits-22'] = lambda: qfield('>I', 20, 22)
    c['q-version-1'] = lambda: qfield('>I', 4, 1)
    c['q-version-4'] = lambda: qfield('>I', 4, 4)
    c['q-size-2-63'] = lambda: qfield('>Q', 24, 1 << 63)
    c['q-size-max'] = lambda: qfield('>Q', 24, 2**64 - 1)
    c['q-size-beyond-l1'] = lambda: qfield('>Q', 24, 5 * MiB)
    c['q-l1-size-huge'] = lambda: qfield('>I', 36, 0xFFFFFFFF)
    c['q-l1-size-at-cap'] = lambda: qfield('>I', 36, 4 * MiB)
    c['q-l1-past-eof'] = lambda: qfield('>Q', 40, 1 << 40)
    c['q-l1-unaligned'] = lambda: qfield('>Q', 40, 3 * QC + 8)
    c['q-l1-in-header'] = lambda: qfield('>Q', 40, 0)
    c['q-l1-huge'] = lambda: qfield('>Q', 40, 2**64 - QC)
    c['q-reftable-huge'] = lambda: qfield('>I', 56, 0xFFFFFFFF)
    c['q-reftable-unaligned'] = lambda: qfield('>Q', 48, QC + 1)
    c['q-incompat-corrupt'] = lambda: qfield('>Q', 72, 2)
    c['q-incompat-datafile'] = lambda: qfield('>Q', 72, 4)
    c['q-incompat-unknown'] = lambda: qfield('>Q', 72, 1 << 40)
    c['q-incompat-dirty'] = lambda: qfield('>Q', 72, 1)
    c['q-refcount-order-7'] = lambda: qfield('>I', 96, 7)
    c['q-refcount-order-6'] = lambda: qfield('>I', 96, 6)
    c['q-header-length-odd'] = lambda: qfield('>I', 100, 105)
    c['q-header-length-short'] = lambda: qfield('>I', 100, 96)
    c['q-header-length-beyond'] = lambda: qfield('>I', 100, QC + 8)
    c['q-ctype-2'] = lambda: qfield('B', 104, 2, qfield('>Q', 72, 8))
    c['q-ctype-without-bit'] = lambda: qfield('B', 104, 1)
    c['q-crypt-aes'] = lambda: qfield('>I', 32, 1)
    c['q-crypt-luks'] = lambda: qfield('>I', 32, 2)
    c['q-ext-overflow'] = lambda: qfield('>II', 112, (0x12345678, 0xFFFFFFF0))
    c['q-ext-past-cluster'] = lambda: qfield('>II', 112, (0x12345678, QC - 112 - 8 + 1))
    c['q-ext-datafile'] = lambda: qext_datafile()
    c['q-ext-many'] = lambda: qext_many()
    c['q-backing'] = lambda: qbacking(b'base.qcow2')
    c['q-backing-hostile-name'] = lambda: qbacking(b"/etc/passwd\n\x1b[31m'" + b'A' * 1000)
    c['q-backing-past-cluster'] = lambda: qfield('>QI', 8, (1 << 30, 10))
    # ---- L1 and L2 entries ----
    c['q-l1-reserved'] = lambda: qfield('>Q', 3 * QC, (4 * QC) | 1)
    c['q-l1-unaligned-l2'] = lambda: qfield('>Q', 3 * QC, 4 * QC + 512)
    c['q-l2-at-l1'] = lambda: qfield('>Q', 3 * QC, 3 * QC)
    c['q-l2-at-reftable'] = lambda: qfield('>Q', 3 * QC, 1 * QC)
    c['q-l2-past-eof'] = lambda: qfield('>Q', 3 * QC, 1 << 40)
    c['q-l2-twice'] = lambda: qfield('>Q', 3 * QC + 8, 4 * QC)
    c['q-data-self'] = lambda: qentry(L2, 0, lambda im: im.l2_0)
    c['q-data-at-l1'] = lambda: qentry(L2, 0, lambda im: im.l1_off)
    c['q-data-reserved'] = lambda: qentry(L2, 0, 5 * QC | 2)
    c['q-data-unaligned'] = lambda: qentry(L2, 0, 5 * QC + 512)
    c['q-data-past-eof'] = lambda: qentry(L2, 0, 1 << 40)
    c['q-data-huge'] = lambda: qentry(L2, 0, 0x00fffffffffff000)
    c['q-data-zero-alloc'] = lambda: qentry(L2, 0, 5 * QC | 1)
    c['q-v2-zero-flag'] = lambda: qentry(L2, 4, 1, im=Qcow2(version=2))
    c['q-comp-in-header'] = lambda: qentry(L2, 2, (1 << 62) | 100)
    c['q-comp-too-long'] = lambda: qentry(L2, 2, (1 << 62) | (15 << 58) | 7 * QC)
    c['q-comp-past-eof'] = lambda: qentry(L2, 2, (1 << 62) | (1 << 40))
    c['q-comp-garbage'] = lambda: qcomp_bytes(rand(1500))
    c['q-comp-short'] = lambda: qcomp_bytes(qdeflate(b'half' * (QC // 8)))
    c['q-comp-long'] = lambda: qcomp_bytes(qdeflate(b'double' * (QC // 3)))
    c['q-comp-empty'] = lambda: qcomp_bytes(qdeflate(b''))
    c['q-comp-bomb'] = lambda: qcomp_bytes(qdeflate(bytes(64 * MiB))[:3000])
    c['q-comp-zlib-header'] = lambda: qcomp_bytes(zlib.compress(b'z' * QC))
    c['q-comp-at-end'] = lambda: qcomp_at_end()
    c['q-extl2-both-bits'] = lambda: qentry(L2, 0, 5 * 16384, 0x1_0000_0001, Qcow2(extl2=True))
    c['q-extl2-alloc-unallocated'] = lambda: qentry(L2, 5, 0, 0xff, Qcow2(extl2=True))
    c['q-extl2-comp-bitmap'] = lambda: qentry(L2, 2, lambda im: im.comp_entry(*im.comp[0]), 1,
                                              Qcow2(extl2=True))
    c['q-extl2-cluster-4k'] = lambda: qfield('>I', 20, 12, Qcow2(extl2=True).bytes())
    # subclusters 0-15 allocated, 16-31 read as zero
    c['q-extl2-half'] = lambda: qentry(L2, 0, 5 * 16384, 0xffff0000_0000ffff, Qcow2(extl2=True))
    # ---- truncation ----
    for cut in (50, 104, 200, QC, 3 * QC + 4, 4 * QC + 100, 5 * QC + 10, 7 * QC + 10, 10 * QC + 1,
                11 * QC - 1, len(QBASE) - 1):
        c['q-cut-%06d' % cut] = (lambda n: lambda: QBASE[:n])(cut)
    return c


def qext_datafile():
    b = bytearray(QBASE)
    struct.pack_into('>II', b, 112, 0x44415441, 6)
    b[120:126] = b'x.data'
    struct.pack_into('>II', b, 128, 0, 0)
    return bytes(b)


def qext_many():
    """Extensions of length 0 filling the header cluster, then the end."""
    b = bytearray(QBASE)
    for off in range(112, QC - 8, 8):
        struct.pack_into('>II', b, off, 0x0BADBEEF, 0)
    return bytes(b)


def qbacking(name):
    b = bytearray(QBASE)
    off = 1024
    b[off:off + len(name)] = name
    struct.pack_into('>QI', b, 8, off, len(name))
    return bytes(b)


def qcomp_bytes(z):
    """The first compressed cluster replaced by z (the second entry dropped)."""
    im = Qcow2()
    off = im.comp[0][0]
    im.b[off:off + 2 * QC] = bytes(2 * QC)
    im.b[off:off + len(z)] = z
    im.put(im.l2_0, 2, im.comp_entry(off, len(z)))
    im.put(im.l2_0, 3, 0)
    return im.bytes()


def qcomp_at_end():
    """A compressed cluster whose last sector runs past the end of the file."""
    im = Qcow2()
    z = qdeflate(im.text[::-1])
    b = bytes(im.b[:11 * QC]) + z
    im.b = bytearray(b)
    im.put(im.l2_0, 2, im.comp_entry(11 * QC, len(z)) + (1 << im.nsect_shift))  # a sector more
    return im.bytes()


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
    global QBASE
    QBASE = Qcow2().bytes()
    c = cases()
    q = qcases()
    q['q-base'] = lambda: QBASE
    q['q-base-v2'] = lambda: Qcow2(version=2).bytes()
    if a.list:
        print('\n'.join(list(c) + list(q)))
        return
    if not a.out:
        ap.error('-o OUTDIR is required')
    os.makedirs(a.out, exist_ok=True)
    for name in a.names or list(c) + list(q):
        if name not in c and name not in q:
            sys.exit('gen.py: no case named %s' % name)
        b = c[name]() if name in c else q[name]()
        if a.small and len(b) > 256 * 1024:
            continue
        with open(os.path.join(a.out, name + ('.vmdk' if name in c else '.qcow2')), 'wb') as f:
            f.write(b)
    if not a.names:
        with open(os.path.join(a.out, 'base.vmdk'), 'wb') as f:
            f.write(BASE)
        with open(os.path.join(a.out, 'base-qemu.vmdk'), 'wb') as f:
            f.write(QEMU)


if __name__ == '__main__':
    main()
