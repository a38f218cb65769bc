"""recall_table.py - the recall bench's table from recall.csv (bench/recall_run.sh):
per family and ef, recall@10 and 1-thread QPS of hydb and hnswlib-lorentz,
then hydb's QPS over hnswlib's at recall@10 0.90, 0.95 and 0.99, each system's
QPS read off its own curve: the fastest measured setting reaching the
target, or log QPS interpolated linearly in recall between two consecutive
ef that cross it; '-' when a system never reaches it.

    recall_table.py recall.csv
"""
import csv
import math
import sys


def at(curve, target):
    """QPS at recall target on a curve {ef: (recall, qps)}: the fastest of
    the measured settings that reach it and of the points interpolated
    between consecutive ef that cross it (None: never reached)."""
    pts = [curve[ef] for ef in sorted(curve)]
    best = [q for r, q in pts if r >= target]
    for (r0, q0), (r1, q1) in zip(pts, pts[1:]):
        if r0 < target <= r1:
            t = (target - r0) / (r1 - r0)
            best.append(math.exp(math.log(q0) + t * (math.log(q1) - math.log(q0))))
    return max(best) if best else None


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    rows = list(csv.DictReader(open(sys.argv[1])))
    fams = []
    for r in rows:
        if r["family"] not in fams:
            fams.append(r["family"])
    for fam in fams:
        cur = {}
        for r in rows:
            if r["family"] == fam and r["system"] in ("hydb", "hnswlib-lorentz") and r["sel"] == "1":
                cur.setdefault(r["system"], {})[int(r["ef"])] = (float(r["recall10"]), float(r["qps1"]))
        h, l = cur.get("hydb", {}), cur.get("hnswlib-lorentz", {})
        print(f"family {fam}")
        print(f"  {'ef':>4}  {'hydb r@10':>9} {'q/s':>8}  {'hnswlib r@10':>12} {'q/s':>8}")
        for ef in sorted(set(h) | set(l)):
            a = h.get(ef)
            b = l.get(ef)
            fa = f"{a[0]:9.4f} {a[1]:8.0f}" if a else f"{'':9} {'':8}"
            fb = f"{b[0]:12.4f} {b[1]:8.0f}" if b else ""
            print(f"  {ef:4d}  {fa}  {fb}")
        for t in (0.90, 0.95, 0.99):
            qa, qb = at(h, t), at(l, t)
            ratio = f"{qa / qb:.2f}" if qa and qb else "-"
            fa = f"{qa:.0f}" if qa else "-"
            fb = f"{qb:.0f}" if qb else "-"
            print(f"  at recall {t:.2f}: hydb {fa} q/s, hnswlib {fb} q/s, ratio {ratio}")
        for r in rows:
            if r["family"] == fam and r["system"].startswith("hydb-auto-"):
                print(f"  search without ef, target {r['system'][10:]}: ef {r['ef']}, "
                      f"recall@10 {r['recall10']} (hydb_tune took {r['build_s']} s)")
        for r in rows:
            if r["family"] == fam and r["system"].startswith("build-race"):
                print(f"  {r['system']} {r['build_s']} s")


sys.exit(main())
