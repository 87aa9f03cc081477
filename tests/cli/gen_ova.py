#!/usr/bin/env python3
"""gen_ova.py - write an OVA (a tar of an OVF descriptor, a manifest and
disks) the way VMware's ovftool and VirtualBox lay one out, with knobs for
the variants and the damage tests/cli/ova.sh needs.

usage: gen_ova.py OUT.ova DISK [DISK...] [options]

  --mf first|last|none    manifest right after the .ovf (ovftool), at the
                          end of the archive (allowed by DSP0243), or none
  --alg sha1|sha256|sha512  manifest digests (default sha256)
  --mf-spaces             'SHA256 (name) = hex' (VMware Player's spacing)
  --bad-digest NAME       the manifest's digest of NAME is wrong
  --chunk N               split each disk into ovf:chunkSize=N members
                          (name.000000000, name.000000001, ...)
  --gzip                  store each disk gzip-compressed (ovf:compression)
  --format ustar|pax|gnu  tar format (pax: long member names work)
  --long-names            disk members get names over 100 bytes
  --ovf-extra TEXT        raw XML inserted before </Envelope>
  --ovf-prefix TEXT       raw text inserted before <Envelope> (a DOCTYPE)
  --ovf-depth N           N nested elements inside the VirtualSystem
  --ovf-pad N             N bytes of XML comment in the descriptor
  --cut N                 cut the archive after N bytes
  --no-size               leave ovf:size out of File
  --wrong-size            ovf:size one more than the member's size
  --capacity BYTES        ovf:capacity of every disk (default 8 MiB)
  --first NAME            the first member is a file NAME (not the .ovf)
"""
import argparse
import gzip
import hashlib
import io
import os
import tarfile


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('out')
    ap.add_argument('disks', nargs='+')
    ap.add_argument('--mf', default='first', choices=['first', 'last', 'none'])
    ap.add_argument('--alg', default='sha256', choices=['sha1', 'sha256', 'sha512'])
    ap.add_argument('--mf-spaces', action='store_true')
    ap.add_argument('--bad-digest')
    ap.add_argument('--chunk', type=int, default=0)
    ap.add_argument('--gzip', action='store_true')
    ap.add_argument('--format', default='ustar', choices=['ustar', 'pax', 'gnu'])
    ap.add_argument('--long-names', action='store_true')
    ap.add_argument('--ovf-extra', default='')
    ap.add_argument('--ovf-prefix', default='')
    ap.add_argument('--ovf-depth', type=int, default=0)
    ap.add_argument('--ovf-pad', type=int, default=0)
    ap.add_argument('--cut', type=int)
    ap.add_argument('--no-size', action='store_true')
    ap.add_argument('--wrong-size', action='store_true')
    ap.add_argument('--capacity', type=int, default=8 << 20)
    ap.add_argument('--first')
    a = ap.parse_args()

    files = []  # (member name, bytes)
    refs, disks = [], []
    for i, path in enumerate(a.disks, 1):
        data = open(path, 'rb').read()
        base = os.path.basename(path)
        if a.long_names:
            base = 'x' * 110 + '-' + base
        if a.gzip:
            data = gzip.compress(data, 6, mtime=0)
        size = '' if a.no_size or a.chunk else ' ovf:size="%d"' % (len(data) + (1 if a.wrong_size else 0))
        extra = ''
        if a.chunk:
            extra += ' ovf:chunkSize="%d"' % a.chunk
        if a.gzip:
            extra += ' ovf:compression="gzip"'
        refs.append('    <File ovf:id="file%d" ovf:href="%s"%s%s/>' % (i, base, size, extra))
        disks.append('    <Disk ovf:capacity="%d" ovf:capacityAllocationUnits="byte" '
                     'ovf:diskId="vmdisk%d" ovf:fileRef="file%d" ovf:format='
                     '"http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"/>'
                     % (a.capacity, i, i))
        if a.chunk:
            for k in range(0, max(len(data), 1), a.chunk):
                files.append(('%s.%09d' % (base, k // a.chunk), data[k:k + a.chunk]))
        else:
            files.append((base, data))
    nest = ''.join('<Section%d>' % k for k in range(a.ovf_depth)) + \
        ''.join('</Section%d>' % k for k in reversed(range(a.ovf_depth)))
    pad = '<!-- %s -->' % ('p' * a.ovf_pad) if a.ovf_pad else ''
    ovf = ('<?xml version="1.0" encoding="UTF-8"?>\n%s'
           '<Envelope vmw:buildId="build-1" xmlns="http://schemas.dmtf.org/ovf/envelope/1" '
           'xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1" '
           'xmlns:vmw="http://www.vmware.com/schema/ovf">\n'
           '  <References>\n%s\n  </References>\n'
           '  <DiskSection>\n    <Info>Virtual disk information</Info>\n%s\n  </DiskSection>\n'
           '  <VirtualSystem ovf:id="vm"><Info>A virtual machine</Info>%s</VirtualSystem>\n'
           '%s%s</Envelope>\n') % (a.ovf_prefix, '\n'.join(refs), '\n'.join(disks), nest, pad,
                                    a.ovf_extra)
    ovf = ovf.encode()
    name = os.path.splitext(os.path.basename(a.out))[0]
    members = [(name + '.ovf', ovf)] + files
    h = {'sha1': hashlib.sha1, 'sha256': hashlib.sha256, 'sha512': hashlib.sha512}[a.alg]
    lines = []
    for n, d in members:
        dig = h(d).hexdigest()
        if a.bad_digest == n:
            dig = ('0' if dig[0] != '0' else '1') + dig[1:]
        fmt = '%s (%s) = %s\n' if a.mf_spaces else '%s(%s)= %s\n'
        lines.append(fmt % (a.alg.upper(), n, dig))
    mf = (name + '.mf', ''.join(lines).encode())
    if a.mf == 'first':
        members.insert(1, mf)
    elif a.mf == 'last':
        members.append(mf)
    if a.first:
        members.insert(0, (a.first, b'not a descriptor\n'))
    fmt = {'ustar': tarfile.USTAR_FORMAT, 'pax': tarfile.PAX_FORMAT,
           'gnu': tarfile.GNU_FORMAT}[a.format]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode='w', format=fmt) as t:
        for n, d in members:
            ti = tarfile.TarInfo(n)
            ti.size = len(d)
            ti.mtime = 1700000000
            ti.mode = 0o644
            t.addfile(ti, io.BytesIO(d))
    out = buf.getvalue()
    if a.cut is not None:
        out = out[:a.cut]
    with open(a.out, 'wb') as f:
        f.write(out)


if __name__ == '__main__':
    main()
