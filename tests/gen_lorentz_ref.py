#!/usr/bin/python3
"""Reference values for tests/check_lorentz.c.

Writes random float32 point pairs at several curvatures and radii 0..12,
with the hard cases over-represented (near-parallel pairs at equal and near
radii, antipodal pairs, tiny radii, exact multiples), and for each pair the
MERU/HySAC geometry evaluated twice on the exact float32 inputs: with
mpmath at 60 digits (the reference) and with float64 numpy using the
textbook formulas (to show where float64 alone is not enough).

Usage: gen_lorentz_ref.py OUT [N_PER_CURVATURE] [SEED]
Line format (whitespace separated):
  c dim kind  x[dim] y[dim] v[dim]
  time_x inner key dist radius_x radius_y half_aperture_x oxy_angle
  exp_map0(v)[dim] log_map0(x)[dim]  key_f64 dist_f64
"""
import math
import sys

import mpmath as mp
import numpy as np

mp.mp.dps = 80
EPS = mp.mpf("1e-8")
CURVATURES = (0.1, 1.0, 10.0)
KINDS = ("random", "parallel_equal", "parallel_near", "antipodal", "tiny",
         "exact")


def unit(rng, dim):
    d = rng.standard_normal(dim)
    return d / np.linalg.norm(d)


def tilt(rng, d, angle):
    """Unit vector at the given angle from unit vector d."""
    o = rng.standard_normal(d.size)
    o -= d * np.dot(o, d)
    n = np.linalg.norm(o)
    if n == 0:
        return d
    return math.cos(angle) * d + math.sin(angle) * (o / n)


def point(direction, radius, c):
    return direction * (math.sinh(math.sqrt(c) * radius) / math.sqrt(c))


def loguniform(rng, lo, hi):
    return 10.0 ** rng.uniform(lo, hi)


def make_pair(rng, kind, c, dim):
    dx = unit(rng, dim)
    r1 = rng.uniform(0.0, 12.0)
    if kind == "random":
        return point(dx, r1, c), point(unit(rng, dim), rng.uniform(0, 12), c)
    if kind == "parallel_equal":
        dy = tilt(rng, dx, loguniform(rng, -7, -1))
        return point(dx, r1, c), point(dy, r1, c)
    if kind == "parallel_near":
        angle = 0.0 if rng.random() < 0.3 else loguniform(rng, -7, -1)
        r2 = max(0.0, r1 + rng.choice((-1, 1)) * loguniform(rng, -7, -1))
        return point(dx, r1, c), point(tilt(rng, dx, angle), r2, c)
    if kind == "antipodal":
        dy = tilt(rng, -dx, loguniform(rng, -7, -1))
        return point(dx, r1, c), point(dy, rng.uniform(0, 12), c)
    if kind == "tiny":
        r2 = loguniform(rng, -8, -1)
        dy = tilt(rng, dx, rng.uniform(0, math.pi))
        return point(dx, loguniform(rng, -8, -1), c), point(dy, r2, c)
    x = point(dx, r1, c).astype(np.float32)
    pick = rng.integers(4)
    if pick == 0:
        return x, x.copy()
    if pick == 1:
        return x, x * np.float32(2.0)
    if pick == 2:
        return x, -x
    return np.zeros(dim), x


def mp_ref(x, y, v, c):
    c = mp.mpf(c)
    X = [mp.mpf(float(t)) for t in x]
    Y = [mp.mpf(float(t)) for t in y]
    V = [mp.mpf(float(t)) for t in v]
    a, b, p = mp.fdot(X, X), mp.fdot(Y, Y), mp.fdot(X, Y)
    x0, y0 = mp.sqrt(1 / c + a), mp.sqrt(1 / c + b)
    # c (x0 y0 - p) - 1 rewritten without cancellation (an identity, see
    # src/base/lorentz.h): exactly 0 for identical or parallel inputs, where the
    # textbook form leaves a residue of the working precision.
    u = mp.fsum((s - t) ** 2 for s, t in zip(X, Y))
    key = (u + c * (a * b - p * p)) / (x0 * y0 + p + 1 / c)
    inner = -(1 + key) / c
    dist = mp.acosh(1 + key) / mp.sqrt(c)
    nx, ny = mp.sqrt(a), mp.sqrt(b)
    rx = mp.asinh(mp.sqrt(c) * nx) / mp.sqrt(c)
    ry = mp.asinh(mp.sqrt(c) * ny) / mp.sqrt(c)
    lo, hi = -1 + EPS, 1 - EPS
    clamp = lambda t: min(max(t, lo), hi)
    half = mp.asin(clamp(2 * mp.mpf("0.1") / (nx * mp.sqrt(c) + EPS)))
    c_xyl = c * inner
    numer = y0 + c_xyl * x0
    denom = mp.sqrt(max(c_xyl ** 2 - 1, EPS))
    oxy = mp.acos(clamp(numer / (nx * denom + EPS)))
    rcv = mp.sqrt(c) * mp.sqrt(mp.fdot(V, V))
    sinh_in = min(max(rcv, EPS), mp.asinh(2 ** 15))
    scale = mp.sinh(sinh_in) / max(rcv, EPS)
    expv = [scale * t for t in V]
    rcx = mp.sqrt(c) * nx
    lscale = mp.asinh(rcx) / rcx if rcx > 0 else mp.mpf(1)
    logx = [lscale * t for t in X]
    scalars = [x0, inner, key, dist, rx, ry, half, oxy]
    return scalars, expv, logx


def np_ref(x, y, c):
    """The textbook MERU formula in float64 (pairwise_inner/pairwise_dist)."""
    x = x.astype(np.float64)
    y = y.astype(np.float64)
    x0 = np.sqrt(1 / c + np.sum(x * x))
    y0 = np.sqrt(1 / c + np.sum(y * y))
    c_xyl = -c * (np.dot(x, y) - x0 * y0)
    return c_xyl - 1, np.arccosh(max(c_xyl, 1 + 1e-8)) / math.sqrt(c)


def fmt(values):
    return " ".join(repr(float(t)) for t in values)


def main():
    out = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 3400
    rng = np.random.default_rng(int(sys.argv[3]) if len(sys.argv) > 3 else 7)
    with open(out, "w") as f:
        for c in CURVATURES:
            for i in range(n):
                kind = KINDS[i % len(KINDS)]
                dim = 768 if i % 97 == 0 else int(rng.choice((2, 3, 8, 16, 33)))
                x, y = make_pair(rng, kind, c, dim)
                x = np.asarray(x, dtype=np.float32)
                y = np.asarray(y, dtype=np.float32)
                v = (unit(rng, dim) * rng.uniform(0, 13)).astype(np.float32)
                scalars, expv, logx = mp_ref(x, y, v, c)
                k64, d64 = np_ref(x, y, c)
                f.write("%r %d %d %s %s %s %s %s %s %r %r\n" % (
                    c, dim, KINDS.index(kind), fmt(x), fmt(y), fmt(v),
                    fmt(scalars), fmt(expv), fmt(logx), float(k64),
                    float(d64)))


if __name__ == "__main__":
    main()
