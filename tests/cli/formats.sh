#!/bin/bash
# formats.sh - everything that lists formats agrees with the table.
#
# `dsc-convert -formats` prints the library's table. README's format table
# (between the formats:begin/end markers) must hold the same rows, the
# man pages' FORMATS lists must name every format and alias, the usage text
# names the readable and writable ones, and the server's README names every
# format it accepts.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
dsc_init

run_dsc -formats
check "-formats exits 0" test "$RC" = 0
# "name does aliases description" rows, up to the first blank line.
awk 'NR > 1 && NF == 0 { exit } NR > 1' "$T/stdout" >"$T/table"
check "-formats lists raw and vmdk first" test "$(awk '{print $1}' "$T/table" | head -2 | tr '\n' ' ')" = "raw vmdk "
check "-formats lists at least 18 formats" test "$(wc -l <"$T/table")" -ge 18

# README: | `name` | `alias`, ... | reads, writes / refused by name | description |
python3 - "$top_srcdir/README.md" "$T/table" >"$T/readme.diff" <<'PY'
import re, sys
readme = open(sys.argv[1], encoding='utf-8').read()
m = re.search(r'<!-- formats:begin.*?-->\n(.*?)<!-- formats:end -->', readme, re.S)
if not m:
    print('README has no formats:begin/end block'); sys.exit(1)
rows = {}
for line in m.group(1).splitlines():
    cells = [c.strip() for c in line.strip().strip('|').split('|')]
    if len(cells) != 4 or cells[0] in ('format', '---'):
        continue
    name = cells[0].strip('`')
    aliases = ','.join(a.strip().strip('`') for a in cells[1].split(',') if a.strip())
    rows[name] = (cells[2], aliases, cells[3])
does = {'rw': 'reads, writes', 'r': 'reads', 'w': 'writes', '-': 'refused by name'}
bad = 0
seen = set()
for line in open(sys.argv[2]):
    name, flags, aliases, desc = line.split(None, 3)
    desc = desc.strip()
    aliases = '' if aliases == '-' else aliases
    seen.add(name)
    want = (does[flags], aliases, desc)
    if rows.get(name) != want:
        print('README row for %s: %r, table says %r' % (name, rows.get(name), want)); bad = 1
for name in rows:
    if name not in seen:
        print('README lists %s, which the table does not have' % name); bad = 1
sys.exit(bad)
PY
check "README's format table matches -formats" test $? = 0
[ -s "$T/readme.diff" ] && cat "$T/readme.diff"

# Man pages: every name and alias inside the FORMATS block of dsc-convert(1),
# and every readable/writable name in dsc-server(8).
sed -n '/formats:begin/,/formats:end/p' "$top_srcdir/doc/dsc-convert.1" >"$T/man"
while read -r name flags aliases _; do
	for n in $name ${aliases//,/ }; do
		[ "$n" = - ] && continue
		check "dsc-convert(1) FORMATS names $n" grep -qw -- "$n" "$T/man"
	done
	if [ "$flags" != - ]; then
		check "dsc-server(8) names $name" grep -qw -- "$name" "$top_srcdir/doc/dsc-server.8"
		check "src/server/README.md names $name" grep -qw -- "$name" "$top_srcdir/src/server/README.md"
	fi
done <"$T/table"

# The usage text lists what the table can read and write.
run_dsc -help
rd=$(awk '$2 ~ /r/ {print $1}' "$T/table" | paste -sd, | sed 's/,/, /g')
wr=$(awk '$2 ~ /w/ {print $1}' "$T/table" | paste -sd, | sed 's/,/, /g')
check "usage lists readable formats ($rd)" grep -q "Formats read: $rd " "$T/stdout"
check "usage lists writable formats ($wr)" grep -q "Formats written: $wr\." "$T/stdout"
finish
