#!/usr/bin/env python3
"""ref_traversal.py - HySAC's safety traversal retrieval, reimplemented in
numpy from its definitions, for checking `hydb traverse --cone`.

    ref_traversal.py TEXTS.jsonl QUERY.json [--steps 50] [--curvature C]

TEXTS.jsonl: one {"key": ..., "vector": [...]} per candidate text (as
`hydb export` writes them); QUERY.json: {"vector": [...]} of the query (an
image's embedding). Prints one JSON line
a step: {"step": i, "key": best text or "[ROOT]"}.

The steps are HySAC's scripts/safety_traversal_retrieval.py: the query is
mapped to the tangent space at the origin (log_map0), interpolated linearly
toward the origin ([ROOT], the zero vector) at `steps` evenly spaced
weights from 1 down to 0, and lifted back (exp_map0). At each step every
text scores its Lorentz inner product with the point; a text whose
entailment cone does not hold the point (oxy_angle(text, point) >
half_aperture(text)) scores -1e12; [ROOT] holds every point. The best score
wins, the first on ties. Arithmetic in float64 on the float32 inputs, with
HySAC's clamps (min_radius 0.1; eps 1e-5 in arcsin, arccos and the
aperture's denominator; 1e-8 in the maps).
"""
import json
import math
import sys

import numpy as np


def time_of(x, c):
    return np.sqrt(1.0 / c + np.sum(x * x, axis=-1))


def exp_map0(v, c, eps=1e-8):
    n = np.linalg.norm(v, axis=-1, keepdims=True) * math.sqrt(c)
    s = np.clip(n, eps, math.asinh(2.0 ** 15))
    return np.sinh(s) * v / np.maximum(n, eps)


def log_map0(x, c, eps=1e-5):
    t = np.sqrt(1.0 + c * np.sum(x * x, axis=-1, keepdims=True))
    d = np.arccosh(np.maximum(t, 1.0 + eps))
    n = math.sqrt(c) * np.linalg.norm(x, axis=-1, keepdims=True)
    return d * x / np.maximum(n, eps)


def half_aperture(x, c, min_radius=0.1, eps=1e-5):
    a = 2.0 * min_radius / (np.linalg.norm(x, axis=-1) * math.sqrt(c) + eps)
    return np.arcsin(np.clip(a, -1.0 + eps, 1.0 - eps))


def oxy_angle(x, y, c, eps=1e-5):
    """Exterior angle at x of the triangle origin-x-y; x (n, d), y (d,)."""
    xt, yt = time_of(x, c), time_of(y, c)
    cxyl = c * (x @ y - xt * yt)
    numer = yt + cxyl * xt
    denom = np.sqrt(np.maximum(cxyl * cxyl - 1.0, eps))
    a = numer / (np.linalg.norm(x, axis=-1) * denom + eps)
    return np.arccos(np.clip(a, -1.0 + eps, 1.0 - eps))


def traverse(texts, query, c, steps):
    root = np.zeros(texts.shape[1])
    pool = np.vstack([texts, root[None, :]])
    aper = half_aperture(pool, c)
    tangent = log_map0(query[None, :], c)[0]
    out = []
    for w in np.linspace(1.0, 0.0, steps):
        p = exp_map0((w * tangent)[None, :], c)[0]
        score = pool @ p - time_of(pool, c) * time_of(p, c)
        energy = oxy_angle(pool, p, c) - aper
        energy[-1] = 0.0
        score[energy > 0] = -1e12
        out.append(int(np.argmax(score)))
    return out


def main():
    args = sys.argv[1:]
    steps, c = 50, 1.0
    if "--steps" in args:
        steps = int(args[args.index("--steps") + 1])
    if "--curvature" in args:
        c = float(args[args.index("--curvature") + 1])
    keys, vecs = [], []
    with open(args[0], encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            keys.append(row["key"])
            vecs.append(row["vector"])
    texts = np.asarray(np.asarray(vecs, dtype=np.float32), dtype=np.float64)
    with open(args[1], encoding="utf-8") as f:
        query = np.asarray(np.asarray(json.load(f)["vector"], dtype=np.float32), dtype=np.float64)
    for i, best in enumerate(traverse(texts, query, c, steps)):
        print(json.dumps({"step": i, "key": keys[best] if best < len(keys) else "[ROOT]"}))


if __name__ == "__main__":
    main()
