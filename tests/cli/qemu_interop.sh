#!/bin/bash
# qemu_interop.sh - streams made by qemu-img (directory in the header, no
# footer, no EOS) and by the other producers' layouts (VMware, open-vmdk,
# a type 4 marker, grains out of order, an unpadded last grain, versions 1
# and 2, a CRLF descriptor, other producers' descriptor comments, blank
# lines and key order) convert back byte-exact; qemu-img
# reads what dsc-convert writes.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
dsc_init
need qemu-img

mkdir "$T/in" "$T/out"
I=$T/in O=$T/out

qemu_stream() { # RAW VMDK [extra -o options]
	qemu-img convert -f raw -O vmdk -o "subformat=streamOptimized${3:+,$3}" "$1" "$2"
}

gen_random "$I/one-sector.raw" 512
gen_random "$I/odd-1000.raw" 1000
gen_random "$I/sectors-67072.raw" 67072
gen_zero "$I/zero.raw" $((3 * MiB))
gen_random "$I/random.raw" $((8 * MiB))
gen_text "$I/text.raw" $((12 * MiB))
gen_sparse "$I/ranges.raw" $((70 * MiB + 4096))
put_random "$I/ranges.raw" 4096 100000
put_random "$I/ranges.raw" $((33 * MiB)) 200000
put_random "$I/ranges.raw" $((70 * MiB)) 4096

for src in "$I"/*.raw; do
	n=$(basename "$src" .raw)
	padded "$src" "$T/$n.padded"
	qemu_stream "$src" "$O/$n.vmdk" || { fail "$n: qemu-img makes a stream"; continue; }

	run_dsc -src "$O/$n.vmdk" -dst "$O/$n.raw"
	expect_ok "$n: qemu-made stream -> raw"
	check "$n: qemu-made stream -> raw is byte-exact (padded source)" cmp "$T/$n.padded" "$O/$n.raw"

	rm -f "$O/$n.raw"
	STDIN=$O/$n.vmdk run_dsc -src - -dst "$O/$n.raw"
	expect_ok "$n: qemu-made stream on stdin -> raw"
	check "$n: qemu-made stream on stdin -> raw is byte-exact" cmp "$T/$n.padded" "$O/$n.raw"

	run_dsc -src "$O/$n.vmdk" -dst "$O/$n.dsc.vmdk" -dst-fmt vmdk
	expect_ok "$n: qemu-made stream -> dsc stream"
	check "$n: qemu-made stream -> dsc stream: qemu-img compare" \
		qemu-img compare -q -f vmdk -F vmdk "$O/$n.vmdk" "$O/$n.dsc.vmdk"
	check "$n: qemu-made stream -> dsc stream: layout" vmdk_lint "$O/$n.dsc.vmdk" "$(fsize "$T/$n.padded")"

	# And qemu-img reads dsc-convert's stream back to the same bytes.
	run_dsc -src "$src" -dst "$O/$n.d.vmdk" -dst-fmt vmdk
	qemu-img convert -f vmdk -O raw "$O/$n.d.vmdk" "$O/$n.q.raw"
	check "$n: qemu-img converts dsc's stream back byte-exact" cmp "$T/$n.padded" "$O/$n.q.raw"
	rm -f "$O/$n".* "$T/$n.padded"
done

# A 20 GiB qemu-made stream (1.3 MB of preallocated tables) -> sparse raw.
gen_sparse "$I/big.raw" $((20 * GiB))
put_random "$I/big.raw" 0 5000
put_random "$I/big.raw" $((10 * GiB)) 5000
put_random "$I/big.raw" $((20 * GiB - 512)) 512
qemu_stream "$I/big.raw" "$O/big.vmdk"
run_dsc -src "$O/big.vmdk" -dst "$O/big.raw"
expect_ok "20 GiB qemu-made stream -> raw"
check "20 GiB qemu-made stream -> raw: size" size_is "$O/big.raw" $((20 * GiB))
check "20 GiB qemu-made stream -> raw: sparse" alloc_below "$O/big.raw" $((8 * MiB))
check "20 GiB qemu-made stream -> raw: content" qemu-img compare -q -f raw -F raw "$I/big.raw" "$O/big.raw"
rm -f "$I/big.raw" "$O"/*

# qemu's zeroed_grain flag (0x30007: bit 2, a compatible flag).
qemu_stream "$I/ranges.raw" "$O/zg.vmdk" zeroed_grain=on
run_dsc -src "$O/zg.vmdk" -dst "$O/zg.raw"
expect_ok "qemu stream with zeroed_grain=on -> raw"
check "zeroed_grain stream -> raw is byte-exact" cmp "$I/ranges.raw" "$O/zg.raw"

# An empty stream from qemu-img create: it ends at overHead.
qemu-img create -q -f vmdk -o subformat=streamOptimized "$O/empty.vmdk" 1M
run_dsc -src "$O/empty.vmdk" -dst "$O/empty.raw"
expect_ok "qemu-img create'd empty stream -> raw"
check "empty stream -> 1 MiB of zeros" cmp "$O/empty.raw" <(head -c $MiB /dev/zero)
rm -f "$O"/*

# Other producers' layouts, crafted; qemu-img vouches for each file first.
# (shortlast: the last grain ends at the capacity, unpadded; ranges.raw's
# size is not a multiple of the grain.)
for layout in vmware openvmdk type4 reverse shortlast v1 v2 crlf; do
	vmdk_craft "$I/ranges.raw" "$O/$layout.vmdk" $layout
	if ! qemu_same "$I/ranges.raw" "$O/$layout.vmdk"; then
		fail "$layout: crafted fixture rejected by qemu-img (test bug)"
		continue
	fi
	run_dsc -src "$O/$layout.vmdk" -dst "$O/$layout.raw"
	expect_ok "$layout layout -> raw (seekable output)"
	check "$layout layout -> raw is byte-exact" cmp "$I/ranges.raw" "$O/$layout.raw"
done
for layout in vmware openvmdk type4; do
	rm -f "$O/$layout.raw"
	STDIN=$O/$layout.vmdk run_dsc -src - -dst - -src-fmt vmdk
	expect_ok "$layout layout on stdin -> stdout"
	check "$layout layout stdin -> stdout is byte-exact" cmp "$I/ranges.raw" "$T/stdout"
done

# Other producers' descriptors (issue 12): a qemu-made stream with its
# embedded descriptor rewritten in place. Comments are comments whatever
# they say, blank lines and the order of the keys do not matter: dsc and
# qemu-img must read each variant to the same bytes.
patch_descriptor() { # IN OUT VARIANT
	python3 - "$1" "$2" "$3" <<'EOF'
import struct, sys
src, dst, variant = sys.argv[1:4]
b = bytearray(open(src, 'rb').read())
off, size = struct.unpack_from('<QQ', b, 28)
start, end = off * 512, (off + size) * 512
text = bytes(b[start:end]).split(b'\0', 1)[0].decode()
lines = text.rstrip('\n').split('\n')
keys = [l for l in lines if l.strip() and not l.lstrip().startswith('#')]
assert any(l.startswith('createType') for l in keys), text
if variant == 'space':
    assert lines[0] == '# Disk DescriptorFile', lines[0]
    lines[0] = '# Disk Descriptor File'
elif variant == 'other':
    lines[0] = '# written by another tool'
elif variant == 'nocomment':
    lines = keys
elif variant == 'blank':
    lines = ['', '   ', '\t'] + [x for l in lines for x in (l, '')]
elif variant == 'crlf':
    lines = [l + '\r' for l in lines]
    lines[0] = '# Disk Descriptor File\r'
elif variant == 'reorder':
    ext = [l for l in keys if l.split(' ')[0] in ('RW', 'RDONLY', 'NOACCESS')]
    ver = [l for l in keys if l.startswith('version')]
    rest = [l for l in keys if l not in ext and l not in ver]
    lines = ext + list(reversed(rest)) + ver
new = ('\n'.join(lines) + '\n').encode()
assert len(new) <= end - start, 'descriptor grew past its sectors'
b[start:end] = new + bytes(end - start - len(new))
open(dst, 'wb').write(b)
EOF
}
qemu_stream "$I/ranges.raw" "$O/q.vmdk"
for v in space other nocomment blank crlf reorder; do
	patch_descriptor "$O/q.vmdk" "$O/$v.vmdk" $v || { fail "$v: patching the descriptor"; continue; }
	rm -f "$O/$v.q.raw" "$O/$v.raw"
	if ! qemu-img convert -f vmdk -O raw "$O/$v.vmdk" "$O/$v.q.raw"; then
		fail "$v descriptor: qemu-img refuses the patched stream (test bug)"
		continue
	fi
	run_dsc -src "$O/$v.vmdk" -dst "$O/$v.raw"
	expect_ok "descriptor variant $v -> raw"
	check "descriptor variant $v: dsc and qemu-img agree byte for byte" cmp "$O/$v.q.raw" "$O/$v.raw"
	check "descriptor variant $v: the source's bytes" cmp "$I/ranges.raw" "$O/$v.raw"
done
rm -f "$O"/*

finish
