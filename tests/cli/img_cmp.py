#!/usr/bin/env python3
"""img_cmp.py - compare what dsc-img reports with what qemu-img reports.

  img_cmp.py info DSC.json QEMU.json [--no-names]
      format (qemu's vpc is dsc's vhd), virtual-size, cluster-size when both
      report it, and every format-specific field both report (a VMDK's
      extents entry by entry; file names by their last component, or not at
      all with --no-names: an uploaded body has none).
  img_cmp.py map DSC.json QEMU.json RAW exact|subset
      dsc's data extents are exactly the 64 KiB units of RAW that hold a
      nonzero byte; with `exact` they are also qemu-img map's data extents,
      with `subset` they lie inside them (qemu counts allocated blocks,
      dsc the data in them).
  img_cmp.py check DSC.json QEMU.json
      qemu-img check's cluster counts and image end offset.
Exit 0 when they agree, else 1 with the differences on stdout.
"""
import json
import os
import sys

UNIT = 65536


def load(path):
    with open(path) as f:
        return json.load(f)


def same_name(a, b):
    return os.path.basename(str(a)) == os.path.basename(str(b))


def cmp_info(d, q, names=True):
    bad = []
    fmt = {"vpc": "vhd"}.get(q["format"], q["format"])
    if d.get("format") != fmt:
        bad.append("format: dsc %r, qemu %r" % (d.get("format"), q["format"]))
    if d.get("virtual-size") != q["virtual-size"]:
        bad.append("virtual-size: dsc %r, qemu %r" % (d.get("virtual-size"), q["virtual-size"]))
    if "cluster-size" in d and "cluster-size" in q and d["cluster-size"] != q["cluster-size"]:
        bad.append("cluster-size: dsc %r, qemu %r" % (d["cluster-size"], q["cluster-size"]))
    if ("backing-filename" in d) != ("backing-filename" in q) or \
            d.get("backing-filename") != q.get("backing-filename"):
        bad.append("backing-filename: dsc %r, qemu %r" % (d.get("backing-filename"),
                                                          q.get("backing-filename")))
    ds = d.get("format-specific", {}).get("data", {})
    qs = q.get("format-specific", {}).get("data", {})
    common = [k for k in qs if k in ds]
    for k in common:
        if k == "extents":
            if len(ds[k]) != len(qs[k]):
                bad.append("extents: dsc has %d, qemu %d" % (len(ds[k]), len(qs[k])))
                continue
            for i, (de, qe) in enumerate(zip(ds[k], qs[k])):
                for k2 in qe:
                    if k2 not in de or (k2 == "filename" and not names):
                        continue
                    eq = same_name(de[k2], qe[k2]) if k2 == "filename" else de[k2] == qe[k2]
                    if not eq:
                        bad.append("extents[%d].%s: dsc %r, qemu %r" % (i, k2, de[k2], qe[k2]))
        elif ds[k] != qs[k]:
            bad.append("format-specific %s: dsc %r, qemu %r" % (k, ds[k], qs[k]))
    if qs and not common:
        bad.append("no format-specific field in common (qemu: %s)" % sorted(qs))
    return bad


def data_ranges(entries):
    out = []
    for e in entries:
        if e["data"]:
            if out and out[-1][1] == e["start"]:
                out[-1][1] = e["start"] + e["length"]
            else:
                out.append([e["start"], e["start"] + e["length"]])
    return out


def nonzero_units(raw):
    units = []
    with open(raw, "rb") as f:
        i = 0
        while True:
            b = f.read(UNIT)
            if not b:
                break
            if b.count(0) != len(b):
                units.append(i)
            i += 1
    return units


def units_of(ranges, size):
    s = set()
    for a, b in ranges:
        s.update(range(a // UNIT, (min(b, size) + UNIT - 1) // UNIT))
    return s


def cmp_map(d, q, raw, mode):
    bad = []
    size = os.path.getsize(raw)
    dr = data_ranges(d)
    qr = data_ranges(q)
    # Extents are ascending, do not overlap, and cover the disk.
    pos = 0
    for e in d:
        if e["start"] != pos:
            bad.append("dsc map: extent at %d, expected %d" % (e["start"], pos))
        pos = e["start"] + e["length"]
    if d and pos != size:
        bad.append("dsc map ends at %d, the disk at %d" % (pos, size))
    want = set(nonzero_units(raw))
    got = units_of(dr, size)
    if got != want:
        bad.append("dsc data units differ from the nonzero units: extra %s missing %s" %
                   (sorted(got - want)[:8], sorted(want - got)[:8]))
    if mode == "exact" and dr != qr:
        bad.append("dsc data %s != qemu data %s" % (dr[:6], qr[:6]))
    if mode == "subset":
        qu = units_of(qr, size)
        if not got <= qu:
            bad.append("dsc data outside qemu's: %s" % sorted(got - qu)[:8])
    return bad


def cmp_check(d, q):
    bad = []
    for k in ("image-end-offset", "total-clusters", "allocated-clusters"):
        if k in q and d.get(k) != q[k]:
            bad.append("%s: dsc %r, qemu %r" % (k, d.get(k), q[k]))
    return bad


def main():
    what = sys.argv[1]
    if what == "info":
        bad = cmp_info(load(sys.argv[2]), load(sys.argv[3]), "--no-names" not in sys.argv[4:])
    elif what == "map":
        bad = cmp_map(load(sys.argv[2]), load(sys.argv[3]), sys.argv[4], sys.argv[5])
    elif what == "check":
        bad = cmp_check(load(sys.argv[2]), load(sys.argv[3]))
    else:
        sys.exit("usage: img_cmp.py info|map|check ...")
    for b in bad:
        print(b)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
