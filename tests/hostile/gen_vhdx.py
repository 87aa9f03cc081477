#!/usr/bin/env python3
"""gen_vhdx.py - write the hostile VHDX inputs named in tests/hostile/expected.

usage: gen_vhdx.py -o OUTDIR [--list] [NAME...]

Each input is a small valid VHDX (built here from MS-VHDX: header section
with two CRC-32C'd headers and region tables, a 1 MiB log, the BAT at 2 MiB,
the metadata region at 3 MiB, 1 MiB payload blocks from 4 MiB) with one
thing wrong, written as OUTDIR/NAME.vhdx. The files are sparse: only the
structures and the payload are written. Checksums are recomputed after an
edit unless the case is about the checksum. --list prints the case names.
"""
import argparse
import os
import struct
import sys
import uuid

MiB = 1 << 20
KiB = 1 << 10
H1, H2, RT1, RT2 = 64 * KiB, 128 * KiB, 192 * KiB, 256 * KiB

G_BAT = uuid.UUID('2DC27766-F623-4200-9D64-115E9BFD4A08').bytes_le
G_MD = uuid.UUID('8B7CA206-4790-4B9A-B8FE-575F050F886E').bytes_le
G_FP = uuid.UUID('CAA16737-FA36-4D43-B3B6-33F0AA44E76B').bytes_le
G_VS = uuid.UUID('2FA54224-CD1B-4876-B211-5DBED83BF4B8').bytes_le
G_P83 = uuid.UUID('BECA12AB-B2E6-4523-93EF-C309E000C746').bytes_le
G_LSS = uuid.UUID('8141BF1D-A96F-4709-BA47-F233A8FAAB5F').bytes_le
G_PSS = uuid.UUID('CDA348C7-445D-4471-9CC9-E9885251C556').bytes_le
G_OTHER = uuid.UUID('01234567-89AB-4CDE-8F01-23456789ABCD').bytes_le

ZERO, NOT_PRESENT, FULL, PARTIAL = 2, 0, 6, 7


def crc32c(b, _t=[]):
    if not _t:
        for i in range(256):
            c = i
            for _ in range(8):
                c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
            _t.append(c)
    c = 0xFFFFFFFF
    for x in b:
        c = _t[(c ^ x) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


class Vhdx:
    """A valid image, editable field by field before bytes() lays it out."""

    def __init__(self, lsector=512):
        self.block = MiB
        self.lsector = lsector
        self.psector = 4096
        self.vsize = 3 * MiB + 3 * lsector
        self.fp_flags = 0
        self.seq = [1, 2]
        self.version = [1, 1]
        self.log_guid = bytes(16)
        self.fwg = [b'F' * 16, b'F' * 16]  # FileWriteGuid of each header
        self.log = (MiB, MiB)
        # Regions: [guid, offset, length, required]
        self.regions = [[G_BAT, 2 * MiB, MiB, 1], [G_MD, 3 * MiB, MiB, 1]]
        self.rt_count = None
        # Metadata items: [guid, offset in region, data, flags]
        self.items = [[G_FP, 64 * KiB, None, 4], [G_VS, 64 * KiB + 8, None, 6],
                      [G_P83, 64 * KiB + 16, bytes(range(16)), 6],
                      [G_LSS, 64 * KiB + 32, None, 6], [G_PSS, 64 * KiB + 36, None, 6]]
        self.md_sig = b'metadata'
        self.md_count = None
        # Payload: block index -> (state, file offset); data per stored block.
        self.bat = {0: (FULL, 4 * MiB), 1: (ZERO, 0), 2: (FULL, 5 * MiB), 3: (FULL, 6 * MiB)}
        self.payload = {}
        for i in (0, 2, 3):
            n = min(self.block, self.vsize - i * self.block)
            self.payload[i] = bytes((i * 37 + k * 7) & 0xFF for k in range(251)) * (n // 251) + \
                bytes(n % 251)
        self.bat_raw = {}       # extra raw BAT entries: index -> u64
        self.break_crc = set()  # 'h1', 'h2', 'rt1', 'rt2'
        self.signature = b'vhdxfile'
        self.cut = None
        self.extra = []         # (offset, bytes) written last
        self.log_entries = []   # (offset in the log, entry bytes), wrapping

    def chunk_ratio(self):
        return max(1, (1 << 23) * self.lsector // max(self.block, 1))

    def pieces(self):
        out = []
        hs = bytearray(MiB)
        hs[0:8] = self.signature
        hs[8:8 + 16] = 'hostile'.encode('utf-16-le') + bytes(2)
        for k, off in enumerate((H1, H2)):
            h = bytearray(4096)
            struct.pack_into('<4sIQ16s16s16sHHIQ', h, 0, b'head', 0, self.seq[k], self.fwg[k],
                             b'D' * 16, self.log_guid, 0, self.version[k], self.log[1],
                             self.log[0])
            struct.pack_into('<I', h, 4, crc32c(bytes(h)))
            if 'h%d' % (k + 1) in self.break_crc:
                h[4] ^= 0xFF
            hs[off:off + 4096] = h
        rt = bytearray(64 * KiB)
        n = len(self.regions)
        struct.pack_into('<4sIII', rt, 0, b'regi', 0,
                         n if self.rt_count is None else self.rt_count, 0)
        for i, (g, o, ln, req) in enumerate(self.regions):
            struct.pack_into('<16sQII', rt, 16 + 32 * i, g, o, ln, req)
        struct.pack_into('<I', rt, 4, crc32c(bytes(rt)))
        for name, off in (('rt1', RT1), ('rt2', RT2)):
            r = bytearray(rt)
            if name in self.break_crc:
                r[4] ^= 0xFF
            hs[off:off + 64 * KiB] = r
        out.append((0, bytes(hs)))
        # Metadata.
        md_off = [r for r in self.regions if r[0] == G_MD]
        md_off = md_off[0][1] if md_off else 3 * MiB
        md = bytearray(64 * KiB + 64)
        md[0:8] = self.md_sig
        struct.pack_into('<H', md, 10, len(self.items) if self.md_count is None else self.md_count)
        for i, (g, o, data, fl) in enumerate(self.items):
            if data is None:
                data = {G_FP: struct.pack('<II', self.block, self.fp_flags),
                        G_VS: struct.pack('<Q', self.vsize),
                        G_LSS: struct.pack('<I', self.lsector),
                        G_PSS: struct.pack('<I', self.psector)}.get(g, bytes(8))
            struct.pack_into('<16sIII', md, 32 + 32 * i, g, o, len(data), fl)
            if o + len(data) <= len(md):
                md[o:o + len(data)] = data
            else:
                out.append((md_off + o, data))
        out.append((md_off, bytes(md)))
        # BAT.
        bat_off = [r for r in self.regions if r[0] == G_BAT]
        bat_off = bat_off[0][1] if bat_off else 2 * MiB
        cr = self.chunk_ratio()
        ents = {}
        for i, (st, fo) in self.bat.items():
            ents[i + i // cr] = fo | st
        ents.update(self.bat_raw)
        if ents:
            bat = bytearray(8 * (max(ents) + 1))
            for k, v in ents.items():
                struct.pack_into('<Q', bat, 8 * k, v)
            out.append((bat_off, bytes(bat)))
        for i, data in self.payload.items():
            st, fo = self.bat.get(i, (0, 0))
            # Blocks a case placed over the structures are not written.
            if st == FULL and 4 * MiB <= fo < (1 << 40):
                out.append((fo, data))
        for at, e in self.log_entries:
            lo, ll = self.log
            for k in range(0, len(e), 4096):
                out.append((lo + (at + k) % ll, e[k:k + 4096]))
        out.extend(self.extra)
        return out

    def write(self, path):
        # Structures placed past 1 TiB by a case are not written.
        write_pieces(path, [(o, b) for o, b in self.pieces() if o < (1 << 40)], self.cut)


def write_pieces(path, pieces, cut=None):
    """Write (offset, bytes) pieces into a sparse file."""
    end = max(o + len(b) for o, b in pieces)
    with open(path, 'wb') as f:
        for o, b in pieces:
            f.seek(o)
            f.write(b)
        f.truncate(end if cut is None else cut)


def flipped(rnd):
    """The base image's pieces with a few random bit flips in its
    structures: the headers and region tables (checksummed), the metadata
    table and items, the BAT (not checksummed)."""
    pieces = [(o, bytearray(b)) for o, b in Vhdx().pieces()]
    hs, md, bat = pieces[0][1], pieces[1][1], pieces[2][1]
    for _ in range(rnd.choice((1, 1, 2, 3, 8))):
        r = rnd.random()
        if r < 0.2:
            b, pos = hs, rnd.choice((H1, H2, RT1, RT2)) + rnd.randrange(128)
        elif r < 0.6:
            b, pos = md, rnd.choice((rnd.randrange(32 + 5 * 32), 64 * KiB + rnd.randrange(40)))
        else:
            b, pos = bat, rnd.randrange(len(bat))
        b[pos] ^= 1 << rnd.randrange(8)
    return [(o, bytes(b)) for o, b in pieces]


def log_entry(v, seq, at, descs, data, guid=None, length=None, tail=None):
    """A log entry (MS-VHDX 2.3.1): descs are (kind, offset, arg) with kind
    'desc' (arg: the 4 KiB it writes) or 'zero' (arg: the length)."""
    guid = guid if guid is not None else v.log_guid
    nd = -(-(64 + 32 * len(descs)) // 4096)
    ndata = sum(1 for k, _, _ in descs if k == 'desc')
    n = length if length is not None else 4096 * (nd + ndata)
    e = bytearray(max(n, 4096 * (nd + ndata)))
    struct.pack_into('<4sIIIQII16sQQ', e, 0, b'loge', 0, n, at if tail is None else tail, seq,
                     len(descs), 0, guid, 6 * MiB, 7 * MiB)
    k = 0
    for i, (kind, off, arg) in enumerate(descs):
        if kind == 'desc':
            struct.pack_into('<4s4s8sQQ', e, 64 + 32 * i, b'desc', arg[4092:], arg[:8], off, seq)
            ds = 4096 * (nd + k)
            struct.pack_into('<4sI', e, ds, b'data', seq >> 32)
            e[ds + 8:ds + 4092] = arg[8:4092]
            struct.pack_into('<I', e, ds + 4092, seq & 0xFFFFFFFF)
            k += 1
        else:
            struct.pack_into('<4sIQQQ', e, 64 + 32 * i, b'zero', 0, arg, off, seq)
    e = e[:n] if n <= len(e) else e
    struct.pack_into('<I', e, 4, crc32c(bytes(e)))
    return bytes(e)


def bat_page(v, overrides):
    """The first 4 KiB of the BAT with some entries replaced."""
    page = bytearray(4096)
    cr = v.chunk_ratio()
    m = dict(v.bat)
    m.update(overrides)
    for i, (st, fo) in m.items():
        struct.pack_into('<Q', page, 8 * (i + i // cr), fo | st)
    return bytes(page)


def replay_case(v, at=0, **kw):
    """The BAT in the file says block 2 is not there; the log has it."""
    page = bat_page(v, {})
    v.log_guid = bytes(range(1, 17))
    v.log_entries.append((at, log_entry(v, 5, at, [('desc', 2 * MiB, page),
                                                  ('zero', 4 * MiB + 8192, 4096)], None, **kw)))
    v.bat[2] = (ZERO, 0)


def case(fn):
    def make():
        v = Vhdx()
        r = fn(v)
        return r if isinstance(r, Vhdx) else v
    return make


def region(v, guid):
    return [r for r in v.regions if r[0] == guid][0]


def item(v, guid):
    return [i for i in v.items if i[0] == guid][0]


CASES = {}


def add(name, fn):
    CASES[name] = case(fn)


add('vx-base', lambda v: None)
add('vx-4k', lambda v: Vhdx(lsector=4096))
add('vx-empty', lambda v: (setattr(v, 'vsize', 0), setattr(v, 'bat', {}), setattr(v, 'payload', {})))
# ---- file identifier and headers ----
add('vx-bad-signature', lambda v: setattr(v, 'signature', b'vhdxfilf'))
add('vx-hdr-both-crc', lambda v: v.break_crc.update(('h1', 'h2')))
add('vx-hdr-current-crc', lambda v: v.break_crc.add('h2'))        # header 1 used
add('vx-hdr-old-crc', lambda v: v.break_crc.add('h1'))
add('vx-hdr-same-seq', lambda v: setattr(v, 'seq', [5, 5]))     # identical: fine
add('vx-hdr-same-seq-differ', lambda v: (setattr(v, 'seq', [5, 5]),
                                         v.fwg.__setitem__(1, b'G' * 16)))
add('vx-hdr-version-2', lambda v: setattr(v, 'version', [2, 2]))
add('vx-hdr-seq-max', lambda v: setattr(v, 'seq', [0xFFFFFFFFFFFFFFFF, 0]))
add('vx-log-guid', lambda v: setattr(v, 'log_guid', bytes(range(1, 17))))   # no entry
add('vx-log-replay', lambda v: replay_case(v))
add('vx-log-replay-wrap', lambda v: replay_case(v, at=MiB - 4096))
add('vx-log-bad-crc', lambda v: (replay_case(v), v.log_entries.__setitem__(
    0, (0, v.log_entries[0][1][:100] + b'X' + v.log_entries[0][1][101:]))))
add('vx-log-other-guid', lambda v: (replay_case(v), v.log_entries.__setitem__(
    0, (0, log_entry(v, 5, 0, [('zero', 4 * MiB, 4096)], None, guid=b'Z' * 16)))))
add('vx-log-tail-outside', lambda v: (replay_case(v), v.log_entries.__setitem__(
    0, (0, log_entry(v, 5, 0, [('zero', 4 * MiB, 4096)], None, tail=64 * 4096)))))
add('vx-log-zero-huge', lambda v: (replay_case(v), v.log_entries.__setitem__(
    0, (0, log_entry(v, 5, 0, [('zero', 4 * MiB, 0xFFFFFFFFFFFFF000)], None)))))
# A zero descriptor 1 TiB long past the end: the replay would grow a 6 MiB
# file by 1 TiB, which blocks placed there would make dsc read.
add('vx-log-grow-huge', lambda v: (replay_case(v), v.log_entries.__setitem__(
    0, (0, log_entry(v, 5, 0, [('desc', 2 * MiB, bat_page(v, {})),
                               ('zero', 8 * MiB, 1 << 40)], None)))))


def two_sequences(v):
    # An old sequence (5, zeroing 4 KiB of block 0) and a newer one (9,
    # the BAT page): only the newer is the active sequence.
    replay_case(v, at=64 * KiB)
    e = v.log_entries[0][1]
    v.log_entries[0] = (64 * KiB, log_entry(v, 9, 64 * KiB, [('desc', 2 * MiB, bat_page(v, {2: (FULL, 5 * MiB)}))], None))
    v.log_entries.append((0, log_entry(v, 5, 0, [('zero', 4 * MiB, 8192)], None)))


def one_sequence_of_two(v):
    # Entries 5 (zeroing 4 KiB of block 0) and 6 (the BAT page, tail at 5):
    # one sequence, both replayed.
    replay_case(v)
    v.log_entries[0] = (0, log_entry(v, 5, 0, [('zero', 4 * MiB, 4096)], None))
    v.log_entries.append((4096, log_entry(v, 6, 4096, [('desc', 2 * MiB, bat_page(v, {2: (FULL, 5 * MiB)}))], None, tail=0)))


def overlap_bomb(v):
    # Every sector of the log starts an entry as long as the log (bad CRCs):
    # checking them all would cost 256 x the log.
    v.log_guid = bytes(range(1, 17))
    for k in range(256):
        h = struct.pack('<4sIIIQII16sQQ', b'loge', 0, MiB, 0, 5, 0, 0, v.log_guid, 0, 0)
        v.log_entries.append((k * 4096, h + bytes(4096 - len(h))))


add('vx-log-overlap-bomb', overlap_bomb)
add('vx-log-two-sequences', two_sequences)
add('vx-log-sequence-of-two', one_sequence_of_two)
add('vx-log-truncated', lambda v: (replay_case(v), setattr(v, 'cut', 5 * MiB)))
add('vx-log-misaligned', lambda v: setattr(v, 'log', (MiB + 4096, MiB)))
add('vx-log-in-header', lambda v: setattr(v, 'log', (0, MiB)))
add('vx-log-huge', lambda v: setattr(v, 'log', (MiB, 0xFFF00000)))
# ---- region tables ----
add('vx-rt-both-crc', lambda v: v.break_crc.update(('rt1', 'rt2')))
add('vx-rt1-crc', lambda v: v.break_crc.add('rt1'))
add('vx-rt-count', lambda v: setattr(v, 'rt_count', 2048))
add('vx-rt-count-high', lambda v: setattr(v, 'rt_count', 0xFFFFFFFF))
add('vx-rt-unknown-required', lambda v: v.regions.append([G_OTHER, 8 * MiB, MiB, 1]))
add('vx-rt-unknown-optional', lambda v: v.regions.append([G_OTHER, 8 * MiB, MiB, 0]))
add('vx-rt-no-bat', lambda v: v.regions.pop(0))
add('vx-rt-no-metadata', lambda v: v.regions.pop(1))
add('vx-rt-dup-bat', lambda v: v.regions.append([G_BAT, 9 * MiB, MiB, 1]))
add('vx-rt-overlap', lambda v: region(v, G_MD).__setitem__(1, 2 * MiB))
add('vx-rt-in-header', lambda v: region(v, G_BAT).__setitem__(1, 512 * KiB))
add('vx-rt-misaligned', lambda v: region(v, G_BAT).__setitem__(2, MiB + 8))
add('vx-rt-zero-length', lambda v: region(v, G_MD).__setitem__(2, 0))
add('vx-rt-offset-huge', lambda v: region(v, G_MD).__setitem__(1, 0xFFFFFFFFFFF00000))
add('vx-rt-overlap-log', lambda v: region(v, G_BAT).__setitem__(1, MiB))
# ---- metadata ----
add('vx-md-signature', lambda v: setattr(v, 'md_sig', b'metadatX'))
add('vx-md-count', lambda v: setattr(v, 'md_count', 2048))
add('vx-md-count-max', lambda v: setattr(v, 'md_count', 0xFFFF))
add('vx-md-missing-size', lambda v: v.items.pop(1))
add('vx-md-missing-params', lambda v: v.items.pop(0))
add('vx-md-dup', lambda v: v.items.append([G_VS, 64 * KiB + 40, None, 6]))
add('vx-md-item-outside', lambda v: item(v, G_VS).__setitem__(1, MiB - 4))
add('vx-md-item-in-table', lambda v: item(v, G_VS).__setitem__(1, 100))
add('vx-md-item-huge', lambda v: item(v, G_P83).__setitem__(2, bytes(2 * MiB)))
add('vx-md-item-short', lambda v: item(v, G_VS).__setitem__(2, b'\1\2\3\4'))
add('vx-md-unknown-required', lambda v: v.items.append([G_OTHER, 64 * KiB + 48, bytes(8), 4]))
add('vx-md-unknown-optional', lambda v: v.items.append([G_OTHER, 64 * KiB + 48, bytes(8), 0]))
add('vx-md-parent', lambda v: setattr(v, 'fp_flags', 2))
add('vx-md-leave-allocated', lambda v: setattr(v, 'fp_flags', 1))
add('vx-block-0', lambda v: setattr(v, 'block', 0))
add('vx-block-3m', lambda v: setattr(v, 'block', 3 * MiB))
add('vx-block-512k', lambda v: setattr(v, 'block', 512 * KiB))
add('vx-block-512m', lambda v: setattr(v, 'block', 512 * MiB))
add('vx-lsector-1024', lambda v: setattr(v, 'lsector', 1024))
add('vx-psector-0', lambda v: setattr(v, 'psector', 0))
add('vx-vsize-odd', lambda v: setattr(v, 'vsize', 3 * MiB + 100))
add('vx-vsize-over', lambda v: setattr(v, 'vsize', (64 << 40) + 512))
add('vx-vsize-max', lambda v: setattr(v, 'vsize', 0xFFFFFFFFFFFFFE00))
# A 64 TiB disk of 1 MiB blocks: 512 MiB of BAT, past dsc's limit.
add('vx-bat-limit', lambda v: (setattr(v, 'vsize', 64 << 40),
                               region(v, G_BAT).__setitem__(2, 4095 * MiB),
                               region(v, G_MD).__setitem__(1, 4100 * MiB)))
# ---- BAT ----
add('vx-bat-region-small', lambda v: setattr(v, 'vsize', 200 << 30))
add('vx-bat-state-4', lambda v: v.bat.__setitem__(1, (4, 0)))
add('vx-bat-state-5', lambda v: v.bat.__setitem__(1, (5, 0)))        # draft UNMAPPED: zeros
add('vx-bat-undefined', lambda v: v.bat.__setitem__(1, (1, 0)))
add('vx-bat-unmapped', lambda v: v.bat.__setitem__(1, (3, 0)))
add('vx-bat-partial', lambda v: v.bat.__setitem__(1, (PARTIAL, 7 * MiB)))
add('vx-bat-in-header', lambda v: v.bat.__setitem__(0, (FULL, 0)))
add('vx-bat-on-log', lambda v: v.bat.__setitem__(0, (FULL, MiB)))
add('vx-bat-on-metadata', lambda v: v.bat.__setitem__(0, (FULL, 3 * MiB)))
add('vx-bat-on-bat', lambda v: v.bat.__setitem__(0, (FULL, 2 * MiB)))
add('vx-bat-overlap', lambda v: v.bat.__setitem__(2, (FULL, 4 * MiB)))
add('vx-bat-past-eof', lambda v: (v.bat.__setitem__(3, (FULL, 60 * MiB)), v.payload.pop(3)))
add('vx-bat-offset-huge', lambda v: v.bat.__setitem__(2, (FULL, 0xFFFFFFFFFFF00000)))
add('vx-bat-reserved-bits', lambda v: v.bat_raw.__setitem__(1, 0xFFFF8 | ZERO))
add('vx-bat-guest-order', lambda v: (v.bat.__setitem__(0, (FULL, 6 * MiB)),
                                     v.bat.__setitem__(3, (FULL, 4 * MiB)),
                                     v.payload.__setitem__(3, v.payload[3])))
# ---- cut files ----
for cut in (1000, 70000, 300000, MiB + 10, 2 * MiB + 100, 3 * MiB + 64 * KiB, 4 * MiB + 5,
            5 * MiB + 300000, 6 * MiB + 1000):
    add('vx-cut-%08d' % cut, (lambda c: lambda v: setattr(v, 'cut', c))(cut))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('-o', dest='out', default='.')
    ap.add_argument('--list', action='store_true')
    ap.add_argument('names', nargs='*')
    a = ap.parse_args()
    if a.list:
        print('\n'.join(CASES))
        return 0
    os.makedirs(a.out, exist_ok=True)
    for name in a.names or CASES:
        if name not in CASES:
            print('gen_vhdx.py: no case %s' % name, file=sys.stderr)
            return 2
        CASES[name]().write(os.path.join(a.out, name + '.vhdx'))
    return 0


if __name__ == '__main__':
    sys.exit(main())
