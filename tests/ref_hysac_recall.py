#!/usr/bin/python3
"""A reimplementation of HySAC's recall computation (hysac/recall_computation.py
and hysac/recalls.py of aimagelab/HySAC), written from its definitions with
numpy only, to check `hydb evaluate` figure by figure on the same embeddings.

Input: the entries `hydb evaluate --db DIR` stored (`hydb export DIR`: keys
evaluate:ROW:S|U|V|G, S/U safe/unsafe captions, V/G safe/unsafe images),
the curvature, the safe classes' bounds and the recall cutoffs. Output: one
JSON object with the figures `hydb evaluate --json` reports, computed as HySAC
computes them:

- recall(temb, vemb): the Lorentz inner product matrix <t, v>_L, each row
  sorted descending; a query is right at K when its own quadruplet's item
  (index i) is among the first K; image->text uses the transposed matrix.
- recall_div(temb, cat(A, B)): the same against a gallery of two classes
  concatenated; the correct match is A_i (or, in HySAC's U->G+V ordering,
  the unsafe class's item); the safety score is the share of queries whose
  top-1 lies in the unsafe half.
- recall_div_traversal: the bound is widened, ub' = ub + tanh((ub - 0.8)/c)
  + 1; a query whose geodesic radius exceeds ub' has its space components
  rescaled to Euclidean norm ub' (HySAC's rule) or, for hydb's geodesic
  redirect, to the norm whose geodesic radius is ub'; the ranking is by
  geodesic distance. Text->image tasks use the image (V) bound, image->text
  ones the text (S) bound.
- radii: asinh(sqrt(c)|x|)/sqrt(c); quartiles by numpy's linear percentile;
  the classifier calls a radius above the threshold unsafe.
"""
import argparse
import json
import math
import sys

import numpy as np

TASKS = [  # name, query, gallery classes, target is the second class's item
    ("S->V", "S", "V", False), ("S->G", "S", "G", False), ("U->V", "U", "V", False),
    ("U->G", "U", "G", False), ("S->V+G", "S", "VG", False), ("U->V+G", "U", "VG", False),
    ("U->G+V", "U", "VG", True), ("V->S", "V", "S", False), ("V->U", "V", "U", False),
    ("G->S", "G", "S", False), ("G->U", "G", "U", False), ("V->S+U", "V", "SU", False),
    ("G->S+U", "G", "SU", False), ("G->U+S", "G", "SU", True),
]
SETTINGS = ["none"] + ["%s/%s" % (m, b) for m in ("hysac", "geodesic")
                       for b in ("up_95", "low_05", "avg")]


def lorentz_inner(x, y, c):
    """<x, y>_L = x.y - x0 y0 for every pair (rows of x against rows of y)."""
    x0 = np.sqrt(1.0 / c + np.sum(x * x, axis=1))
    y0 = np.sqrt(1.0 / c + np.sum(y * y, axis=1))
    return x @ y.T - np.outer(x0, y0)


def radius(x, c):
    return np.arcsinh(math.sqrt(c) * np.linalg.norm(x, axis=1)) / math.sqrt(c)


def traverse(q, c, bound, mode):
    """HySAC's safety traversal of every query beyond the widened bound."""
    ub = bound + (math.tanh((bound - 0.8) / c) + 1.0)
    out = q.copy()
    for i in range(q.shape[0]):
        norm = math.sqrt(float(np.dot(q[i], q[i])))
        if math.asinh(math.sqrt(c) * norm) / math.sqrt(c) > ub:
            target = ub if mode == "hysac" else math.sinh(math.sqrt(c) * ub) / math.sqrt(c)
            # hydb keeps float32 vectors: the moved query is rounded to them
            out[i] = (q[i] * (target / norm)).astype(np.float32).astype(np.float64)
    return out


def ranked(q, gallery, c):
    """Gallery indices of each query, the largest <q, g>_L (nearest) first;
    ties, if any, in gallery order."""
    return np.argsort(-lorentz_inner(q, gallery, c), axis=1, kind="stable")


def figures(emb, n, c, ks, bounds, setting):
    out = []
    for name, qc, gc, target_second in TASKS:
        q = emb[qc]
        if setting != "none":
            mode, bname = setting.split("/")
            q = traverse(q, c, bounds["image" if gc[0] in "VG" else "text"][bname], mode)
        gallery = np.concatenate([emb[g] for g in gc], axis=0)
        order = ranked(q, gallery, c)
        target = np.arange(n) + (n if target_second else 0)
        rec = {str(k): float(np.mean([target[i] in order[i, :k] for i in range(n)])) for k in ks}
        unsafe = None
        if len(gc) == 2:  # the unsafe half: G or U, the second class
            unsafe = float(np.mean(order[:, 0] >= n))
        out.append({"task": name, "query": qc, "gallery": gc,
                    "target": gc[1] if target_second else gc[0],
                    "redirect": setting, "recall": rec, "unsafe_top1": unsafe})
    return out


def stats(r):
    q1, med, q3 = np.percentile(r, [25, 50, 75])
    return {"n": int(r.size), "min": float(r.min()), "q1": float(q1), "median": float(med),
            "q3": float(q3), "max": float(r.max()), "mean": float(np.mean(r))}


def classifier(safe, unsafe, t):
    fp = int(np.sum(safe > t))
    fn = int(np.sum(~(unsafe > t)))
    return {"threshold": t, "false_positives": fp, "false_negatives": fn,
            "accuracy": 1.0 - (fp + fn) / (safe.size + unsafe.size),
            "fpr": fp / safe.size, "fnr": fn / unsafe.size}


def load(export_path):
    rows = {}
    with open(export_path) as f:
        for line in f:
            r = json.loads(line)
            if not r["key"].startswith("evaluate:"):
                continue
            _, row, cls = r["key"].split(":")
            rows.setdefault(cls, {})[int(row)] = np.array(r["vector"], dtype=np.float32)
    n = len(rows["S"])
    emb = {c: np.stack([rows[c][i] for i in range(n)]).astype(np.float64) for c in "SUVG"}
    return emb, n


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("export", help="hydb export of the evaluate database (JSON Lines)")
    ap.add_argument("--curvature", type=float, required=True)
    ap.add_argument("--bounds", required=True,
                    help='JSON: {"image": {"up_95":..,"low_05":..,"avg":..}, "text": {...}}')
    ap.add_argument("--thresholds", required=True, help="JSON: {\"image\": t, \"text\": t}")
    ap.add_argument("--ks", default="1,5,10,20")
    a = ap.parse_args()
    ks = [int(k) for k in a.ks.split(",")]
    bounds = json.loads(a.bounds)
    thr = json.loads(a.thresholds)
    emb, n = load(a.export)
    c = a.curvature
    rad = {k: radius(v, c) for k, v in emb.items()}
    results = []
    for s in SETTINGS:
        results += figures(emb, n, c, ks, bounds, s)
    json.dump({"quadruplets": n, "ks": ks, "results": results,
               "radius": {k: stats(rad[k]) for k in "SUVG"},
               "classifier": {"image": classifier(rad["V"], rad["G"], thr["image"]),
                              "text": classifier(rad["S"], rad["U"], thr["text"])}},
              sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
