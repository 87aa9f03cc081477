#!/usr/bin/env python3
"""ova_check.py - check an OVA dsc wrote, with Python's tarfile and hashlib:
the tar order (NAME.ovf, NAME-disk1.vmdk or its chunks, NAME.mf), regular
members of mode 0644, a SHA256 manifest listing every other member with its
right digest. Writes OUTDIR/disk.ovf and OUTDIR/disk.vmdk (the chunks
joined) for the other tools.

usage: ova_check.py OVA NAME OUTDIR
"""
import hashlib
import sys
import tarfile

ova, name, out = sys.argv[1:]
t = tarfile.open(ova)
ms = t.getmembers()
names = [m.name for m in ms]
assert names[0] == name + '.ovf', names
assert names[-1] == name + '.mf', names
disk = names[1:-1]
assert disk and all(n.startswith(name + '-disk1.vmdk') for n in disk), names
assert all(m.isreg() and m.mode == 0o644 for m in ms), names
mf = {}
for line in t.extractfile(names[-1]).read().decode().splitlines():
    alg, rest = line.split('(', 1)
    fn, hexd = rest.split(')= ')
    assert alg == 'SHA256', line
    mf[fn] = hexd
assert sorted(mf) == sorted(names[:-1]), (mf, names)
for n in names[:-1]:
    assert hashlib.sha256(t.extractfile(n).read()).hexdigest() == mf[n], n
with open(out + '/disk.ovf', 'wb') as f:
    f.write(t.extractfile(names[0]).read())
with open(out + '/disk.vmdk', 'wb') as f:
    for n in disk:
        f.write(t.extractfile(n).read())
