#!/usr/bin/env python3
"""seeds.py - write the seed corpora of the libFuzzer harnesses.

usage: seeds.py OUTDIR

Writes OUTDIR/vmdk/ (VMDK streams, for fuzz_vmdk_read and fuzz_convert),
OUTDIR/descriptor/ (descriptor texts) and OUTDIR/raw/ (small raw disks).
The VMDK seeds are compact on purpose: small grains (1 to 128 sectors) and
the markers right after the descriptor, so each is a few KiB and a mutation
reaches the interesting fields quickly. Every producer layout the reader
must take (facts doc section 5) is represented: VMware/VirtualBox (GT/GD
markers, footer, EOS), qemu-img (directory in the header area, no footer),
open-vmdk (tables after the descriptor, EOS only), a type 4 marker, CRLF
and unquoted descriptors, VirtualBox's rounded capacity. Output is the same
on every run (fixed seeds), so the corpora can be regenerated any time.
"""
import os
import random
import struct
import sys
import zlib

SECTOR = 512


def pad(b, n=SECTOR):
    return b + bytes(-len(b) % n)


def descriptor(cap, name='seed.vmdk', crlf=False, quoted=True, extent_cap=None):
    q = '"' if quoted else ''
    lines = ['# Disk DescriptorFile', 'version=1', 'encoding="UTF-8"', 'CID=fffffffe',
             'parentCID=ffffffff', 'createType=%sstreamOptimized%s' % (q, q), '',
             '# Extent description',
             'RW %d SPARSE "%s"' % (cap if extent_cap is None else extent_cap, name), '',
             '# The Disk Data Base', '#DDB', '', 'ddb.virtualHWVersion = "4"',
             'ddb.geometry.cylinders = "1"', 'ddb.geometry.heads = "255"',
             'ddb.geometry.sectors = "63"', 'ddb.adapterType = "lsilogic"',
             'ddb.toolsVersion = "2147483647"', '']
    return ('\r\n' if crlf else '\n').join(lines).encode()


def header(cap, grain, desc_sectors, overhead, gd=0xFFFFFFFFFFFFFFFF, rgd=0,
           version=3, flags=0x30001):
    h = struct.pack('<4sIIQQQQIQQQB4sH', b'KDMV', version, flags, cap, grain, 1,
                    desc_sectors, 512, rgd, gd, overhead, 0, b'\n \r\n', 1)
    return h + bytes(SECTOR - len(h))


def meta(val, typ):
    return struct.pack('<QII', val, 0, typ) + bytes(496)


def grain_marker(lba, data, level=6):
    z = zlib.compress(data, level)
    return pad(struct.pack('<QI', lba, len(z)) + z)


def stream(layout, cap, grain, grains, desc_kw=None, hdr_cap=None):
    """grains: {grain index: bytes of one grain}. Returns the file."""
    gbytes = grain * SECTOR
    desc = pad(descriptor(cap, **(desc_kw or {})))
    dsec = len(desc) // SECTOR
    ngr = (cap + grain - 1) // grain
    nranges = max(1, (ngr + 511) // 512)
    hcap = cap if hdr_cap is None else hdr_cap
    if layout in ('qemu', 'openvmdk'):
        # Directory and tables in the header area, markers after them.
        gd_at = 1 + dsec
        gd_sec = (nranges * 4 + SECTOR - 1) // SECTOR
        gt_at = gd_at + gd_sec
        overhead = gt_at + 4 * nranges
        gte = [0] * (nranges * 512)
        body = bytearray()
        pos = overhead
        for g in sorted(grains):
            gte[g] = pos
            m = grain_marker(g * grain, grains[g].ljust(gbytes, b'\0'))
            body += m
            pos += len(m) // SECTOR
        flags = 0x30003 if layout == 'qemu' else 0x30001
        out = bytearray(header(hcap, grain, dsec, overhead, gd=gd_at, flags=flags,
                               rgd=gd_at if layout == 'qemu' else 0))
        out += desc
        out += pad(struct.pack('<%dI' % nranges, *[gt_at + 4 * r for r in range(nranges)]))
        out += struct.pack('<%dI' % len(gte), *gte)
        out += body
        if layout == 'openvmdk':
            out += meta(0, 0)
        return bytes(out)
    overhead = 1 + dsec
    out = bytearray(header(hcap, grain, dsec, overhead))
    out += desc
    gte = [0] * (nranges * 512)
    gtpos = [0] * nranges
    order = sorted(grains)
    for i, g in enumerate(order):
        gte[g] = len(out) // SECTOR
        out += grain_marker(g * grain, grains[g].ljust(gbytes, b'\0'))
        if layout == 'type4' and i == 0:
            out += meta(0, 4)
        if i + 1 == len(order) or order[i + 1] // 512 != g // 512:
            r = g // 512
            out += meta(4, 1)
            gtpos[r] = len(out) // SECTOR
            out += struct.pack('<512I', *gte[r * 512:(r + 1) * 512])
    gd_sec = (nranges * 4 + SECTOR - 1) // SECTOR
    out += meta(gd_sec, 2)
    gd = len(out) // SECTOR
    out += pad(struct.pack('<%dI' % nranges, *gtpos))
    out += meta(1, 3)
    out += header(hcap, grain, dsec, overhead, gd=gd)
    out += meta(0, 0)
    return bytes(out)


def write(d, name, data):
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), 'wb') as f:
        f.write(data)


def main():
    out = sys.argv[1]
    rnd = random.Random(7)
    vd, dd, rd = (os.path.join(out, x) for x in ('vmdk', 'descriptor', 'raw'))

    def data(n, kind):
        if kind == 'rand':
            return bytes(rnd.getrandbits(8) for _ in range(n))
        if kind == 'text':
            return (b'grain data %08d ' * (n // 16 + 1))[:n]
        return bytes([0x5a]) * n

    seeds = {
        'vmware-g1': stream('vmware', 8, 1, {0: data(512, 'text'), 5: data(512, 'rand')}),
        'vmware-g8': stream('vmware', 40, 8, {0: data(4096, 'text'), 2: data(100, 'fill'),
                                             4: data(4096, 'rand')}),
        'vmware-g128': stream('vmware', 300, 128, {1: data(2000, 'text')}),
        'vmware-empty': stream('vmware', 16, 8, {}),
        'vmware-2ranges': stream('vmware', 1100, 1, {0: data(512, 'text'),
                                                     600: data(512, 'fill')}),
        'qemu-g8': stream('qemu', 24, 8, {0: data(4096, 'text'), 2: data(1000, 'rand')}),
        'qemu-empty': stream('qemu', 16, 8, {}),
        'openvmdk-g8': stream('openvmdk', 24, 8, {1: data(4096, 'text')}),
        'type4-g8': stream('type4', 24, 8, {0: data(4096, 'fill'), 2: data(3000, 'text')}),
        'crlf-g8': stream('vmware', 16, 8, {1: data(4096, 'text')},
                          desc_kw={'crlf': True, 'quoted': False}),
        'vbox-rounded': stream('vmware', 13, 8, {1: data(2560, 'text')},
                               desc_kw={'extent_cap': 13}, hdr_cap=16),
    }
    for name, b in seeds.items():
        write(vd, name + '.vmdk', b)
    # Descriptors alone, including the ones above and odd spellings.
    write(dd, 'plain.txt', descriptor(128))
    write(dd, 'crlf.txt', descriptor(128, crlf=True, quoted=False))
    write(dd, 'padded.txt', pad(descriptor(2048, name='a b.vmdk')))
    write(dd, 'flat.txt', b'# Disk DescriptorFile\nversion=1\ncreateType="monolithicFlat"\n'
          b'RW 2048 FLAT "disk-flat.vmdk" 0\nRDONLY 16 SPARSE "x.vmdk"\n')
    write(dd, 'case.txt', b'# disk descriptorfile\n  CREATETYPE = streamOptimized  \n'
          b'\trw 5 sparse "y"\n')
    # Raw disks for the converter.
    write(rd, 'empty.raw', b'')
    write(rd, 'one-byte.raw', b'\x01')
    write(rd, 'sector.raw', data(512, 'text'))
    write(rd, 'odd.raw', data(1000, 'rand'))
    write(rd, 'zeros.raw', bytes(8192))
    write(rd, 'mixed.raw', bytes(4096) + data(3000, 'text') + bytes(5000) + b'\xff')
    # multipart (fuzz_multipart): byte 0 even = "Content-Type\n" + body as
    # is, odd = round trip (boundary length, repeat count, boundary, data);
    # byte 1 sets the read size.
    md = os.path.join(out, 'multipart')
    body = (b'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="a.vmdk"\r\n'
            b'Content-Type: application/octet-stream\r\n\r\n' + data(300, 'text') +
            b'\r\n--XyZ--\r\n')
    ct = b'multipart/form-data; boundary=XyZ\n'
    write(md, 'simple', b'\x00\x10' + ct + body)
    write(md, 'byte-reads', b'\x00\x00' + ct + body)
    write(md, 'quoted', b'\x02\x40multipart/form-data; boundary="a b"\n--a b\r\n'
          b'Content-Disposition: form-data; name=file\r\n\r\n\r\n--a\r\n--a b--')
    write(md, 'two-parts', b'\x04\x05' + ct + b'pre\r\n--XyZ\r\nContent-Disposition: '
          b'form-data; name="filename"\r\n\r\nv\r\n' + body[2:])
    write(md, 'rt-small', b'\x01\x20\x05\x01' + b'bOuNd' + data(200, 'rand'))
    write(md, 'rt-near-delim', b'\x01\x00\x03\x00' + b'abc' + b'\r\n--ab\r\n-\r\n--abc'[:-1] * 5)
    write(md, 'rt-window', b'\x01\xff\x0a\xff' + b'0123456789' + b'\r\n--0123456789'[:-3] + b'zz')
    # query strings (fuzz_params)
    pd = os.path.join(out, 'params')
    for i, q in enumerate([b'name=disk.vmdk&dst=vmdk&overwrite=true&prealloc=0',
                           b'src=%2Fdata%2Fa.raw&dst=raw', b'a=1&a=2', b'x=%zz', b'&&=&q',
                           b'name=..&name2=.hidden&n=a%2Fb', b'sha256=' + b'ab' * 32]):
        write(pd, 'q%d' % i, q)
    # address policies (fuzz_netpolicy): byte 0 even = allow, then the
    # rule list, then one address per line.
    nd = os.path.join(out, 'netpolicy')
    write(nd, 'allow-lo', b'\x00127.0.0.0/8, ::1\n127.0.0.1\n::ffff:127.0.0.1\n10.0.0.1\n::1\n')
    write(nd, 'deny', b'\x01203.0.113.0/24 2001:db8::/32\n203.0.113.9\n8.8.8.8\n2001:db8::5\n')
    write(nd, 'bad-bits', b'\x0010.1.0.1/16\n10.1.2.3\n')
    write(nd, 'mixed', b'\x00192.0.2.7 10.0.0.0/8,fd00::/8\n64:ff9b::a00:1\n2002:a00:1::\n'
          b'::ffff:10.9.9.9\n0.0.0.0\n255.255.255.255\n')
    # POST /import JSON bodies (fuzz_import_body)
    jd = os.path.join(out, 'import_body')
    for i, j in enumerate([
            b'{"url": "https://example.com/disk.vmdk", "dst": "raw", "prealloc": true}',
            b'{"url": "http://h/x", "headers": {"Authorization": "Bearer t"}, "level": "fast"}',
            b'{"url": "http://h/x", "headers": ["X-A: 1", "X-B: 2"], "sha256": "' + b'ab' * 32 + b'"}',
            b'{"url": "http://h/x", "headers": {"Bad\\r\\nName": "v"}}',
            b'{"url": 5}', b'[1, 2]', b'{"url": "u", "url": "v"}', b'{"nope": 1}',
            b'{"url": "http://h/x", "name": null, "overwrite": "false", "src": "vmdk"}']):
        write(jd, 'j%d' % i, j)


if __name__ == '__main__':
    main()
