#!/bin/bash
# ova.sh - OVA input (issue 16): appliances laid out as ovftool and
# VirtualBox write them (tests/cli/gen_ova.py: the .ovf first, the manifest
# second or last, one and two disks, ustar, pax and GNU tars, chunked and
# gzip-compressed members, SHA-1/256/512 manifests), read from the file and
# from a pipe and compared with what qemu-img reads in the VMDK; -disk and
# -list; and the refusals (a wrong digest, a truncated member, a tar that
# is not an OVA, hostile tar headers and OVF XML: entity expansion, deep
# nesting, huge sizes), each one line naming the file, with no output.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
dsc_init
need qemu-img qemu-io gzip xz
set -o pipefail

mkdir "$T/in" "$T/out"
I=$T/in O=$T/out
GEN="python3 $top_srcdir/tests/cli/gen_ova.py"

# Two disks: VM-style writes into qcow2, shipped as streamOptimized VMDKs.
qemu-img create -q -f qcow2 "$T/a.qcow2" 8M
qemu-io -f qcow2 -c 'write -P 0x41 1M 64k' -c 'write -P 0x42 7M 3000' -c 'write -P 0x43 0 512' \
	"$T/a.qcow2" >/dev/null
qemu-img create -q -f qcow2 "$T/b.qcow2" 12M
qemu-io -f qcow2 -c 'write -P 0x51 5M 1M' -c 'write -P 0x52 11M 4k' "$T/b.qcow2" >/dev/null
qemu-img convert -f qcow2 -O vmdk -o subformat=streamOptimized "$T/a.qcow2" "$I/disk1.vmdk"
qemu-img convert -f qcow2 -O vmdk -o subformat=streamOptimized "$T/b.qcow2" "$I/disk2.vmdk"
qemu-img convert -f vmdk -O raw "$I/disk1.vmdk" "$T/ref1.raw"
qemu-img convert -f vmdk -O raw "$I/disk2.vmdk" "$T/ref2.raw"

# read_ova DESC OVA REF [ARGS...]: dsc reads OVA from the file and from a
# pipe (ARGS on both) into REF.
read_ova() {
	local desc=$1 ova=$2 ref=$3
	shift 3
	rm -f "$O"/*
	run_dsc -src "$ova" -dst "$O/file.raw" "$@"
	expect_ok "$desc: from the file"
	check "$desc: the file reads as qemu-img reads the disk" same_raw "$ref" "$O/file.raw"
	run_pipe "$ova" -src - -dst "$O/pipe.raw" "$@"
	expect_ok "$desc: from a pipe"
	check "$desc: the pipe reads as qemu-img reads the disk" same_raw "$ref" "$O/pipe.raw"
	rm -f "$O"/*
}

# ---- layouts ------------------------------------------------------------------
for mf in first last none; do
	for fmt in ustar pax gnu; do
		$GEN "$I/v.ova" "$I/disk1.vmdk" --mf $mf --format $fmt
		read_ova "manifest $mf, $fmt tar" "$I/v.ova" "$T/ref1.raw"
	done
done
for alg in sha1 sha512; do
	$GEN "$I/v.ova" "$I/disk1.vmdk" --alg $alg
	read_ova "$alg manifest after the descriptor" "$I/v.ova" "$T/ref1.raw"
done
$GEN "$I/v.ova" "$I/disk1.vmdk" --alg sha1 --mf last
read_ova "SHA-1 manifest at the end" "$I/v.ova" "$T/ref1.raw"
$GEN "$I/v.ova" "$I/disk1.vmdk" --mf-spaces
read_ova "manifest with Player's spacing" "$I/v.ova" "$T/ref1.raw"
$GEN "$I/v.ova" "$I/disk1.vmdk" --format pax --long-names --mf last
read_ova "pax long member names" "$I/v.ova" "$T/ref1.raw"
$GEN "$I/v.ova" "$I/disk1.vmdk" --format gnu --long-names
read_ova "GNU long member names" "$I/v.ova" "$T/ref1.raw"
$GEN "$I/v.ova" "$I/disk1.vmdk" --chunk 100000 --mf last
read_ova "ovf:chunkSize members, manifest last" "$I/v.ova" "$T/ref1.raw"
$GEN "$I/v.ova" "$I/disk1.vmdk" --gzip
read_ova "ovf:compression=gzip" "$I/v.ova" "$T/ref1.raw"
$GEN "$I/v.ova" "$I/disk1.vmdk" --gzip --chunk 65536 --mf last
read_ova "gzip and chunked" "$I/v.ova" "$T/ref1.raw"
$GEN "$I/v.ova" "$I/disk1.vmdk"
gzip -c "$I/v.ova" >"$I/v.ova.gz"
read_ova "an OVA inside gzip" "$I/v.ova.gz" "$T/ref1.raw"
# gzip around an OVA whose disk is gzip too: one compression is read.
$GEN "$I/v2.ova" "$I/disk1.vmdk" --gzip
gzip -c "$I/v2.ova" >"$I/v2.ova.gz"
run_dsc -src "$I/v2.ova.gz" -dst "$O/x.raw"
expect_fail "gzip around an OVA of gzip members: refused" v2.ova.gz 'a gzip-compressed file inside a gzip-compressed file'
rm -f "$O"/*

# pax size= and GNU base-256 size fields (what tars of members over 8 GiB
# carry), on a small member: the ustar octal field says 0 (pax) or is
# base-256 (GNU); the reader must take the extension's size.
python3 - "$I/disk1.vmdk" "$I/paxsize.ova" "$I/b256.ova" <<'EOF'
import io, sys, tarfile
d = open(sys.argv[1], 'rb').read()
ovf = (b'<Envelope><References><File id="f" href="disk1.vmdk"/></References>'
       b'<DiskSection><Disk diskId="d" fileRef="f"/></DiskSection></Envelope>')
def build(fmt, pax):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode='w', format=fmt) as t:
        for n, data in (('x.ovf', ovf), ('disk1.vmdk', d)):
            ti = tarfile.TarInfo(n); ti.size = len(data)
            if pax and n == 'disk1.vmdk':
                ti.pax_headers = {'size': str(len(data))}
            t.addfile(ti, io.BytesIO(data))
    return bytearray(buf.getvalue())
def fix(b, i):
    h = b[i:i + 512]; h[148:156] = b' ' * 8
    b[i + 148:i + 156] = b'%06o\0 ' % sum(h)
# pax: the disk's ustar header follows the 'x' header and its record block.
b = build(tarfile.PAX_FORMAT, True)
i = next(k for k in range(0, len(b), 512) if b[k:k + 10] == b'disk1.vmdk' and b[k + 156:k + 157] == b'0')
b[i + 124:i + 136] = b'00000000000\0'
fix(b, i)
open(sys.argv[2], 'wb').write(b)
g = build(tarfile.USTAR_FORMAT, False)
i = next(k for k in range(0, len(g), 512) if g[k:k + 10] == b'disk1.vmdk')
g[i + 124:i + 136] = b'\x80' + (len(d)).to_bytes(11, 'big')
fix(g, i)
open(sys.argv[3], 'wb').write(g)
EOF
read_ova "a pax size= record over a zero ustar size" "$I/paxsize.ova" "$T/ref1.raw"
read_ova "a GNU base-256 size field" "$I/b256.ova" "$T/ref1.raw"

# ---- two disks: -disk and -list ------------------------------------------------------
for mf in first last; do
	$GEN "$I/two.ova" "$I/disk1.vmdk" "$I/disk2.vmdk" --mf $mf
	read_ova "two disks, manifest $mf: the first by default" "$I/two.ova" "$T/ref1.raw"
	read_ova "two disks, manifest $mf: -disk 2" "$I/two.ova" "$T/ref2.raw" -disk 2
	read_ova "two disks, manifest $mf: -disk vmdisk2" "$I/two.ova" "$T/ref2.raw" -disk vmdisk2
	read_ova "two disks, manifest $mf: -disk disk2.vmdk" "$I/two.ova" "$T/ref2.raw" -disk disk2.vmdk
done
run_dsc -src "$I/two.ova" -list
expect_ok "-list"
check "-list: two disks with their files" grep -Eq '^2 +vmdisk2 +disk2\.vmdk +streamOptimized' "$T/stdout"
run_dsc -src "$I/two.ova" -list -json
check "-list -json: capacities" python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert [x["file"] for x in d] == ["disk1.vmdk", "disk2.vmdk"], d
assert all(x["capacityBytes"] == 8 << 20 for x in d), d' "$T/stdout"
xz -c "$I/two.ova" >"$I/two.ova.xz"
run_dsc -src "$I/two.ova.xz" -list
expect_ok "-list of an OVA inside xz"
check "-list of an .ova.xz: both disks" grep -Eq '^2 +vmdisk2 +disk2\.vmdk' "$T/stdout"
run_dsc -src "$I/two.ova" -dst "$O/x.raw" -disk 3
expect_fail "-disk 3 of two: refused" two.ova 'the OVF has 2 disks'
run_dsc -src "$I/two.ova" -dst "$O/x.raw" -disk nosuch
expect_fail "-disk nosuch: refused" two.ova 'no disk of the OVF'
run_dsc -src "$I/two.ova" -dst "$O/j.raw" -json
check "-json names the archive" grep -q '"sourceFormat":"vmdk","sourceArchive":"ova"' "$T/stdout"
rm -f "$O"/*
# The output converts on: into qcow2, checked by qemu-img.
run_dsc -src "$I/two.ova" -disk 2 -dst "$O/d2.qcow2" -dst-fmt qcow2
expect_ok "OVA disk 2 -> qcow2"
check "OVA disk 2 -> qcow2: qemu-img check" qemu-img check -q -f qcow2 "$O/d2.qcow2"
check "OVA disk 2 -> qcow2: qemu-img compare" qemu-img compare -q -f raw -F qcow2 "$T/ref2.raw" "$O/d2.qcow2"
rm -f "$O"/*

# ---- refusals -------------------------------------------------------------------------
# refuse DESC OVA ERE: refused from the file and from a pipe, nothing left.
refuse() {
	local desc=$1 ova=$2 ere=$3
	run_dsc -src "$ova" -dst "$O/r.raw"
	expect_fail "$desc" "$(basename "$ova")" "$ere"
	run_pipe "$ova" -src - -dst "$O/r.raw"
	expect_fail "$desc, from a pipe" stdin "$ere"
	dir_is "$desc: no output" "$O"
}
for mf in first last; do
	$GEN "$I/bad.ova" "$I/disk1.vmdk" --mf $mf --bad-digest disk1.vmdk
	refuse "a wrong disk digest, manifest $mf" "$I/bad.ova" 'OVA manifest: the SHA256 of disk1.vmdk is [0-9a-f]+, the manifest says'
	$GEN "$I/bad.ova" "$I/disk1.vmdk" --mf $mf --bad-digest bad.ovf
	refuse "a wrong descriptor digest, manifest $mf" "$I/bad.ova" 'the SHA256 of bad.ovf is'
done
# A SHA-512 manifest at the end: a file's member is read again for it; a
# pipe's cannot be (SHA-1 and SHA-256 are computed before a manifest).
$GEN "$I/s512.ova" "$I/disk1.vmdk" --mf last --alg sha512
run_dsc -src "$I/s512.ova" -dst "$O/s512.raw"
expect_ok "a SHA-512 manifest at the end, from the file: the member is read again"
check "a SHA-512 manifest at the end: the disk" same_raw "$T/ref1.raw" "$O/s512.raw"
rm -f "$O"/*
$GEN "$I/s512bad.ova" "$I/disk1.vmdk" --mf last --alg sha512 --bad-digest disk1.vmdk
run_dsc -src "$I/s512bad.ova" -dst "$O/s512.raw"
expect_fail "a wrong SHA-512 at the end, from the file" s512bad.ova 'the SHA512 of disk1.vmdk is'
run_pipe "$I/s512.ova" -src - -dst "$O/s512.raw"
expect_fail "a SHA-512 manifest at the end, from a pipe: refused" stdin 'SHA512 digest for .* only when the manifest comes before'
dir_is "SHA-512 refusals: no output" "$O"
$GEN "$I/s1bad.ova" "$I/disk1.vmdk" --mf last --alg sha1 --bad-digest disk1.vmdk
refuse "a wrong SHA-1 at the end (read again from a file, hashed as it passes on a pipe)" "$I/s1bad.ova" 'the SHA1 of disk1.vmdk is'
$GEN "$T/full.ova" "$I/disk1.vmdk" --mf last
n=$(fsize "$T/full.ova")
$GEN "$I/cut.ova" "$I/disk1.vmdk" --mf first --cut $((n / 2))
refuse "an OVA cut inside the disk" "$I/cut.ova" 'truncated'
at=$(grep -boa 'SHA256(disk1.vmdk)' "$T/full.ova" | cut -d: -f1)
$GEN "$I/cut2.ova" "$I/disk1.vmdk" --mf last --cut $((at + 10))
refuse "an OVA cut inside the manifest at its end" "$I/cut2.ova" 'truncated: the OVA \(tar\) ends at byte'
$GEN "$I/first.ova" "$I/disk1.vmdk" --first README
refuse "a tar whose first member is not an .ovf" "$I/first.ova" 'not an OVA: the first member of the tar is "README"'
$GEN "$I/size.ova" "$I/disk1.vmdk" --wrong-size
refuse "a member whose size is not ovf:size" "$I/size.ova" "the OVF's ovf:size says"
# OVF XML: entity expansion (a DOCTYPE is refused before any entity), deep
# nesting, a descriptor over 4 MiB, malformed XML.
lol='<!DOCTYPE Envelope [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>'
$GEN "$I/lol.ova" "$I/disk1.vmdk" --ovf-prefix "$lol" --ovf-extra '<x>&c;</x>'
refuse "an OVF with a DOCTYPE and entities" "$I/lol.ova" 'a DOCTYPE \(refused'
$GEN "$I/deep.ova" "$I/disk1.vmdk" --ovf-depth 200
refuse "an OVF nested 200 deep" "$I/deep.ova" 'nested deeper than 64 elements'
$GEN "$I/huge.ova" "$I/disk1.vmdk" --ovf-pad $((5 * MiB))
refuse "an OVF of 5 MiB" "$I/huge.ova" 'exceeds the limit of 4194304 bytes'
$GEN "$I/mal.ova" "$I/disk1.vmdk" --ovf-extra '<unclosed>'
refuse "malformed OVF XML" "$I/mal.ova" 'is not well-formed XML'
for mf in first last; do
$GEN "$I/nodisk.ova" "$I/disk1.vmdk" --chunk 100000 --mf $mf
python3 - "$I/nodisk.ova" <<'EOF'
# Rename the second chunk's member: chunk 1 is then missing, and the disk
# would end early; the manifest lists it.
import sys
p = sys.argv[1]
b = bytearray(open(p, 'rb').read())
i = next(k for k in range(0, len(b), 512) if b[k:k + 20] == b'disk1.vmdk.000000001')
b[i:i + 20] = b'other.vmdk.000000001'
h = b[i - (i % 512):i - (i % 512) + 512]
h[148:156] = b' ' * 8
b[i - (i % 512) + 148:i - (i % 512) + 156] = b'%06o\0 ' % sum(h)
open(p, 'wb').write(b)
EOF
refuse "a chunk missing, manifest $mf" "$I/nodisk.ova" 'the manifest lists disk1.vmdk.000000001, which does not follow chunk 000000000'
done
# Hostile tar headers: a bad checksum, a size field of 2^63.
python3 - "$I/disk1.vmdk" "$I/sum.ova" "$I/bigsize.ova" <<'EOF'
import io, sys, tarfile
d = open(sys.argv[1], 'rb').read()
ovf = b'<Envelope><References><File id="f" href="disk1.vmdk"/></References><DiskSection><Disk diskId="d" fileRef="f"/></DiskSection></Envelope>'
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode='w', format=tarfile.USTAR_FORMAT) as t:
    for n, data in (('x.ovf', ovf), ('disk1.vmdk', d)):
        ti = tarfile.TarInfo(n); ti.size = len(data); t.addfile(ti, io.BytesIO(data))
b = bytearray(buf.getvalue())
i = 512 + ((len(ovf) + 511) // 512) * 512  # the disk's header
s = bytearray(b); s[i] ^= 0x20  # the name changes, the checksum does not
open(sys.argv[2], 'wb').write(s)
g = bytearray(b); g[i + 124:i + 136] = b'\x80' + b'\x7f' + b'\xff' * 10
h = g[i:i + 512]; h[148:156] = b' ' * 8
g[i + 148:i + 156] = b'%06o\0 ' % sum(h)
open(sys.argv[3], 'wb').write(g)
EOF
refuse "a tar header with a bad checksum" "$I/sum.ova" 'is not a ustar header with a valid checksum'
refuse "a tar member of 2^63 bytes" "$I/bigsize.ova" 'malformed or over the limit'

# ---- writing OVAs (-dst-fmt ova) ------------------------------------------------------
# check_ova OVA NAME REF: tar order .ovf, VMDK member(s), .mf (Python's
# tarfile), every manifest digest right (hashlib), the OVF well-formed
# (xmllint) and naming the disk's capacity; the VMDK passes qemu-img check
# and vmdkinfo and reads as REF; dsc reads the OVA back as REF.
check_ova() {
	local ova=$1 name=$2 ref=$3
	rm -rf "$T/x" && mkdir "$T/x"
	check "$name: tar order and manifest" python3 "$top_srcdir/tests/cli/ova_check.py" "$ova" "$name" "$T/x"
	check "$name: the OVF is well-formed (xmllint)" xmllint --noout "$T/x/disk.ovf"
	check "$name: the OVF names the disk's capacity" \
		grep -q "ovf:capacity=\"$(fsize "$ref")\"" "$T/x/disk.ovf"
	check "$name: qemu-img check of its VMDK" qemu-img check -q -f vmdk "$T/x/disk.vmdk"
	check "$name: vmdkinfo opens its VMDK" vmdkinfo "$T/x/disk.vmdk"
	check "$name: its VMDK reads as the source" qemu-img compare -q -f raw -F vmdk "$ref" "$T/x/disk.vmdk"
	rm -f "$O/back.raw"
	run_dsc -src "$ova" -dst "$O/back.raw"
	expect_ok "$name: dsc reads the OVA back"
	check "$name: the disk read back" same_raw "$ref" "$O/back.raw"
}
need xmllint vmdkinfo
rm -f "$O"/*
run_dsc -src "$T/ref2.raw" -dst "$O/app.ova" -dst-fmt ova -o cpus=2,memory=2048,os=otherLinux64Guest
expect_ok "raw -> OVA file"
check_ova "$O/app.ova" app "$T/ref2.raw"
check "the OVF has the VMDK member's ovf:size, the CPUs, memory and OS" python3 -c '
import re, sys, tarfile
t = tarfile.open(sys.argv[1])
ovf = t.extractfile("app.ovf").read().decode()
size = int(re.search(r"ovf:size=\"(\d+)\"", ovf).group(1))
assert size == t.getmember("app-disk1.vmdk").size, size
assert "<rasd:VirtualQuantity>2</rasd:VirtualQuantity>" in ovf
assert "<rasd:VirtualQuantity>2048</rasd:VirtualQuantity>" in ovf
assert "vmw:osType=\"otherLinux64Guest\"" in ovf' "$O/app.ova"
# A pipe: the VMDK in 16 MiB ovf:chunkSize members (a 40 MiB disk of
# random data: three chunks).
head -c $((40 * MiB)) /dev/urandom >"$T/big.raw"
"$DSC_CONVERT" -src "$T/big.raw" -dst - -dst-fmt ova -o name=piped 2>"$T/stderr" | cat >"$O/piped.ova"
RC=${PIPESTATUS[0]} LAST_CMD="dsc-convert -src big.raw -dst - -dst-fmt ova -o name=piped | cat"
expect_ok "raw -> OVA on a pipe"
check_ova "$O/piped.ova" piped "$T/big.raw"
check "OVA on a pipe: three chunks of at most 16 MiB" python3 -c '
import sys, tarfile
ms = [m for m in tarfile.open(sys.argv[1]) if ".vmdk." in m.name]
assert [m.name[-9:] for m in ms] == ["000000000", "000000001", "000000002"], ms
assert all(m.size == 16 << 20 for m in ms[:2]) and 0 < ms[2].size <= 16 << 20, ms' "$O/piped.ova"
run_dsc -src "$O/piped.ova" -list -json
check "OVA on a pipe: -list shows the chunk size" grep -q '"chunkSize":16777216' "$T/stdout"
rm -f "$T/big.raw" "$O"/*
# From another format: an OVA's disk into a new OVA.
run_dsc -src "$I/two.ova" -disk 2 -dst "$O/re.ova" -dst-fmt ova
expect_ok "OVA disk 2 -> OVA"
check_ova "$O/re.ova" re "$T/ref2.raw"
rm -f "$O"/*
# Refusals: a raw pipe (no size first), -c, a bad name.
run_pipe "$T/ref1.raw" -src - -dst "$O/p.ova" -dst-fmt ova
expect_fail "raw pipe -> OVA: refused" p.ova 'needs the disk size before the data'
run_dsc -src "$T/ref1.raw" -dst "$O/c.ova" -dst-fmt ova -c
expect_fail "-c with OVA: refused" c.ova 'always compressed'
run_dsc -src "$T/ref1.raw" -dst "$O/n.ova" -dst-fmt ova -o 'name=a<b'
expect_fail "-o name with markup: refused" "name 'a<b'" 'must be 1 to 64'
dir_is "OVA output refusals: no output" "$O"

finish
