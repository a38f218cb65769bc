"""hydb.lorentz against float64 truth (mpmath where cancellation matters)
on the same float32 points, over batch shapes and broadcasting."""
import math

import numpy as np
import pytest

import hydb
from hydb import lorentz

mpmath = pytest.importorskip("mpmath")
mpmath.mp.dps = 50


def pts(shape, scale, seed):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def mp_dist(x, y, c):
    x = [mpmath.mpf(float(v)) for v in x]
    y = [mpmath.mpf(float(v)) for v in y]
    c = mpmath.mpf(c)
    x0 = mpmath.sqrt(1 / c + sum(v * v for v in x))
    y0 = mpmath.sqrt(1 / c + sum(v * v for v in y))
    inner = sum(a * b for a, b in zip(x, y)) - x0 * y0
    return float(mpmath.acosh(-c * inner) / mpmath.sqrt(c))


@pytest.mark.parametrize("c", [1.0, 0.5, 2.0])
def test_dist_matches_mpmath(c):
    x = pts((40, 16), 2.0, 1)
    y = x + pts((40, 16), 1e-3, 2)  # near pairs: cancellation territory
    far = pts((40, 16), 30.0, 3)
    for a, b in ((x, y), (x, far)):
        d = lorentz.dist(a, b, c)
        truth = np.array([mp_dist(p, q, c) for p, q in zip(a, b)])
        assert d.shape == (40,) and d.dtype == np.float64
        assert np.max(np.abs(d - truth) / truth) < 1e-12


def test_shapes_and_broadcasting():
    x = pts((3, 4, 8), 1.0, 4)
    y = pts((4, 8), 1.0, 5)
    d = lorentz.dist(x, y)
    assert d.shape == (3, 4)
    assert d[2, 1] == lorentz.dist(x[2, 1], y[1])
    assert isinstance(lorentz.dist(x[0, 0], y[0]), float)
    one = lorentz.dist(x, y[0])  # one point against many: no copy
    assert one.shape == (3, 4) and one[1, 2] == lorentz.dist(x[1, 2], y[0])
    assert lorentz.radius(x).shape == (3, 4)
    assert lorentz.key(x[0], x[0]).tolist() == [0.0] * 4
    v = lorentz.log_map0(x)
    assert v.shape == x.shape and v.dtype == np.float32
    np.testing.assert_allclose(lorentz.exp_map0(v), x, rtol=1e-5, atol=1e-6)
    with pytest.raises(hydb.DimensionError):
        lorentz.dist(x, pts((4, 7), 1.0, 6))
    with pytest.raises(hydb.InvalidArgumentError):
        lorentz.dist(pts((3, 8), 1, 0), pts((2, 8), 1, 0))
    with pytest.raises(TypeError):
        lorentz.radius(np.array([["a", "b"]]))
    with pytest.raises(hydb.InvalidArgumentError):
        lorentz.radius(x, c=-1)


def test_radius_time_inner_formulas():
    x = pts((100, 12), 1.5, 7).astype(np.float64)
    n = np.linalg.norm(x, axis=1)
    np.testing.assert_allclose(lorentz.radius(x), np.arcsinh(n), rtol=1e-12)
    np.testing.assert_allclose(lorentz.time(x), np.sqrt(1 + n * n), rtol=1e-12)
    y = pts((100, 12), 1.5, 8).astype(np.float64)
    inner = (x * y).sum(1) - np.sqrt(1 + n * n) * np.sqrt(1 + (y * y).sum(1))
    np.testing.assert_allclose(lorentz.inner(x, y), inner, rtol=1e-10)
    k = lorentz.key(x, y)
    np.testing.assert_allclose(np.arccosh(1 + k), lorentz.dist(x, y), rtol=1e-12)
    ha = lorentz.half_aperture(x)
    np.testing.assert_allclose(ha, np.arcsin(np.clip(0.2 / n, -1 + 1e-8, 1 - 1e-8)), rtol=1e-6)
    a = lorentz.oxy_angle(x, y)
    assert a.shape == (100,) and np.all((a >= 0) & (a <= math.pi))


def test_redirect_rules():
    q = np.array([[3.0, 4.0], [0.3, 0.4]], np.float32)
    out, moved = lorentz.redirect(q, 2.0, mode="hysac")
    assert moved.tolist() == [True, False]
    np.testing.assert_allclose(np.linalg.norm(out[0]), 2.0, rtol=1e-6)
    out, moved = lorentz.redirect(q, 1.0, mode="geodesic")
    np.testing.assert_allclose(lorentz.radius(out[0]), 1.0, rtol=1e-6)
    assert lorentz.redirect_bound(1.0, 1.0) == pytest.approx(2.0 + math.tanh(0.2))
    with pytest.raises(hydb.InvalidArgumentError):
        lorentz.redirect(q, -1.0)
    with pytest.raises(hydb.InvalidArgumentError):
        lorentz.redirect(q, 1.0, mode="x")


def test_threads_split_gives_same_results():
    x = pts((20000, 8), 1.0, 9)
    y = pts((20000, 8), 1.0, 10)
    lorentz.set_threads(1)
    a = lorentz.dist(x, y)
    lorentz.set_threads(0)
    b = lorentz.dist(x, y)
    assert np.array_equal(a, b)
