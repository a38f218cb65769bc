"""Lorentz-model geometry over numpy arrays, on libhydb's own kernels.

Points are space components x of shape (..., dim) for curvature -c; the
time component is x0 = sqrt(1/c + |x|^2). Any batch shape works and two
point arrays broadcast against each other like numpy arrays. Inputs are
read as float32 (the precision hydb stores); every result is computed in
double precision with the library's cancellation-free formulas (norms and
dot products in double-double), valid for radii up to at least 12: the
distance is the float64 truth for the float32 points to a few ulps.

Scalar functions return float64 arrays of the batch shape (a Python float
for a single pair); maps return float32 arrays of the input's shape. Work
on large batches is split over the CPUs, with the GIL released.
"""
import numpy as _np

from . import _core

__all__ = ["dist", "key", "inner", "time", "radius", "exp_map0", "log_map0", "redirect",
           "redirect_bound", "half_aperture", "oxy_angle", "set_threads"]

_DIST, _KEY, _INNER, _RADIUS, _TIME, _HALF, _OXY, _EXP, _LOG, _REDIRECT = range(10)


def _points(x, what):
    a = _np.asarray(x)
    if a.dtype.kind not in "fiu":
        raise TypeError("%s: dtype %s cannot be converted to float32" % (what, a.dtype))
    if a.ndim == 0:
        raise _core.InvalidArgumentError("%s: expected points of shape (..., dim), got a scalar" % what)
    return a


def _rows(a):
    """(..., dim) -> contiguous float32 (N, dim) without a copy if possible."""
    return _np.ascontiguousarray(a, dtype=_np.float32).reshape(-1, a.shape[-1])


def _unary(op, x, c, what="x"):
    a = _points(x, what)
    out = _core.geo(op, _rows(a), None, float(c))
    shape = a.shape[:-1]
    return out.reshape(shape) if shape else float(out[0])


def _pair(op, x, y, c):
    a, b = _points(x, "x"), _points(y, "y")
    if a.shape[-1] != b.shape[-1]:
        raise _core.DimensionError("x has dimension %d and y %d" % (a.shape[-1], b.shape[-1]))
    try:
        shape = _np.broadcast_shapes(a.shape[:-1], b.shape[:-1])
    except ValueError:
        raise _core.InvalidArgumentError("batch shapes %s and %s do not broadcast"
                                         % (a.shape[:-1], b.shape[:-1])) from None
    # Equal batch shapes, or one point against many, go in without a copy.
    sa, sb = a.shape[:-1], b.shape[:-1]
    if not (sa == sb or _np.prod(sa, dtype=_np.int64) == 1 or _np.prod(sb, dtype=_np.int64) == 1):
        a = _np.broadcast_to(a, shape + a.shape[-1:])
        b = _np.broadcast_to(b, shape + b.shape[-1:])
    out = _core.geo(op, _rows(a), _rows(b), float(c))
    return out.reshape(shape) if shape else float(out[0])


def dist(x, y, c=1.0):
    """Geodesic distance acosh(-c<x,y>_L)/sqrt(c) between x and y."""
    return _pair(_DIST, x, y, c)


def key(x, y, c=1.0):
    """cosh(sqrt(c) d) - 1: monotone in the distance d, the key hydb ranks by."""
    return _pair(_KEY, x, y, c)


def inner(x, y, c=1.0):
    """Lorentz inner product <x,y>_L = x.y - x0*y0."""
    return _pair(_INNER, x, y, c)


def time(x, c=1.0):
    """Time component x0 = sqrt(1/c + |x|^2)."""
    return _unary(_TIME, x, c)


def radius(x, c=1.0):
    """Distance from the origin: asinh(sqrt(c)|x|)/sqrt(c)."""
    return _unary(_RADIUS, x, c)


def half_aperture(x, c=1.0):
    """Entailment-cone half-aperture asin(2K/(sqrt(c)|x|)), K = 0.1, clamped."""
    return _unary(_HALF, x, c)


def oxy_angle(x, y, c=1.0):
    """Exterior angle at x of the triangle O-x-y (MERU's oxy_angle)."""
    return _pair(_OXY, x, y, c)


def _map(op, x, c, what):
    a = _points(x, what)
    out = _core.geo(op, _rows(a), None, float(c))
    return out.reshape(a.shape)


def exp_map0(v, c=1.0):
    """Exponential map at the origin: tangent vectors v -> space components
    (with HySAC's clamps). Returns float32 of v's shape."""
    return _map(_EXP, v, c, "v")


def log_map0(x, c=1.0):
    """Logarithmic map at the origin: space components -> tangent vectors."""
    return _map(_LOG, x, c, "x")


def redirect(q, bound, c=1.0, mode="hysac"):
    """Move queries farther than bound toward the origin, as search's
    redirect does: mode "hysac" rescales the space components to Euclidean
    norm bound, "geodesic" moves along the geodesic to radius bound.
    Returns (moved queries float32 of q's shape, bool array: which moved)."""
    modes = {"hysac": 1, "geodesic": 2}
    if mode not in modes:
        raise _core.InvalidArgumentError("redirect: mode must be 'hysac' or 'geodesic', got %r" % (mode,))
    a = _points(q, "q")
    out, moved = _core.geo(_REDIRECT, _rows(a), None, float(c), float(bound), modes[mode])
    shape = a.shape[:-1]
    return out.reshape(a.shape), (moved.reshape(shape) if shape else bool(moved[0]))


def redirect_bound(ub, c=1.0):
    """HySAC's widened bound ub' = ub + tanh((ub - 0.8)/c) + 1."""
    return _core.redirect_bound(float(ub), float(c))


def set_threads(n):
    """Threads the geometry functions split large batches over (0: one per
    CPU, the default; 1: the calling thread only)."""
    _core.set_geometry_threads(int(n))
