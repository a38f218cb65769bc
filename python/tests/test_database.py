"""Database: open/close, add, search, get, delete, stats, check, export, and
every bad input raising a clear exception that writes nothing."""
import gc
import math
import threading

import numpy as np
import pytest

import hydb

DIM = 19


def points(n, dim=DIM, seed=0, scale=0.5):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, dim)) * scale).astype(np.float32)


def keys(n, prefix="k"):
    return ["%s%d" % (prefix, i) for i in range(n)]


@pytest.fixture
def db(dbpath):
    d = hydb.open(dbpath, dim=DIM, create=True)
    yield d
    d.close()


def test_open_properties_and_context(dbpath):
    with hydb.open(dbpath, dim=DIM, curvature=2.0, create=True, m=8, ef_construction=50) as d:
        assert (d.dim, d.curvature, len(d)) == (DIM, 2.0, 0)
    assert d.closed
    with pytest.raises(hydb.InvalidArgumentError, match="closed"):
        len(d)
    with pytest.raises(hydb.InvalidArgumentError, match="closed"):
        d.add(["a"], points(1))
    with pytest.raises(hydb.InvalidArgumentError, match="closed"):
        d.search(points(1))
    d.close()  # idempotent
    with hydb.open(dbpath, readonly=True) as d:
        assert d.curvature == 2.0
        with pytest.raises(hydb.ReadOnlyError):
            d.add(["a"], points(1))
    with pytest.raises(hydb.DimensionError):
        hydb.open(dbpath, dim=DIM + 1)
    with pytest.raises(hydb.MismatchError):
        hydb.open(dbpath, dim=DIM + 1, create=True)
    with pytest.raises(hydb.NotFoundError) as e:
        hydb.open(dbpath + "-missing")
    assert isinstance(e.value, hydb.Error) and e.value.code == -4
    assert "missing" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(hydb.InvalidArgumentError):
        hydb.open(dbpath + "2", create=True)  # no dim


def test_second_open_is_busy(db, dbpath):
    with pytest.raises(hydb.BusyError):
        hydb.open(dbpath)


def test_add_search_get(db):
    x = points(200)
    ids = db.add(keys(200), x, labels=["safe"] * 100 + ["unsafe"] * 100, modalities="image",
                 captions=["cap %d" % i for i in range(200)], items=np.arange(200), meta={"src": "t"})
    assert ids.dtype == np.uint64 and ids.shape == (200,) and len(set(ids.tolist())) == 200
    assert len(db) == 200
    r = db.search(x[:5], k=3)
    assert r.ids.shape == (5, 3) and r.ids.dtype == np.uint64
    assert r.distances.dtype == np.float64
    assert r.ids[:, 0].tolist() == ids[:5].tolist()
    assert np.all(r.distances[:, 0] < 1e-6)
    assert r.keys[2][0] == "k2" and r.captions[2][0] == "cap 2"
    assert np.all(np.diff(r.distances, axis=1) >= 0)
    # distances agree with the geometry functions
    e = db.get(int(r.ids[0, 1]))
    assert math.isclose(r.distances[0, 1], hydb.lorentz.dist(x[0], e.vector), rel_tol=1e-9)
    # one query (dim,) -> (k,)
    one = db.search(x[7], k=4, exact=True)
    assert one.ids.shape == (4,) and one.keys[0] == "k7" and one.plans == "exact"
    # filters
    s = db.search(x[150:160], k=5, safe_only=True, exact=True)
    assert set(s.labels.ravel().tolist()) == {1}
    s = db.search(x[:10], k=5, label="unsafe", modality=["image", "text"])
    assert set(s.labels.ravel().tolist()) == {2}
    s = db.search(x[:3], k=300, exact=True)  # more than stored: padded
    assert np.all(s.counts == 200) and s.ids[0, 250] == 0 and np.isinf(s.distances[0, 250])
    assert s.keys[0][250] is None and s.labels[0, 250] == -1
    e = db.get("k5")
    assert (e.key, e.label, e.modality, e.caption, e.item, e.meta) == ("k5", "safe", "image", "cap 5", 5,
                                                                        {"src": "t"})
    assert e.vector.dtype == np.float32 and np.array_equal(e.vector, x[5])
    assert "k5" in db and "nope" not in db
    with pytest.raises(hydb.NotFoundError):
        db.get("nope")
    with pytest.raises(hydb.NotFoundError):
        db.get(10 ** 9)
    with pytest.raises(TypeError):
        db.get(1.5)


def test_upsert_by_key(db):
    x = points(10)
    ids = db.add(keys(10), x)
    y = points(3, seed=5)
    ids2 = db.add(["k1", "k2", "new"], y)
    assert len(db) == 11
    assert np.array_equal(db.get("k1").vector, y[0])
    assert ids2[0] == ids[1]  # a replaced record keeps its id
    r = db.search(y[1], k=1)
    assert r.keys[0] == "k2"


def test_input_conversions(db):
    x64 = points(5).astype(np.float64)
    db.add(keys(5), x64)  # float64 converted
    db.add(["list"], [x64[0].tolist()])  # nested list
    db.add("one", x64[1])  # one key, (dim,)
    db.add(["ints"], np.ones((1, DIM), dtype=np.int32))
    assert len(db) == 8
    torch = pytest.importorskip("torch")
    t = torch.from_numpy(points(4, seed=9))
    db.add(keys(4, "t"), t)
    assert np.array_equal(db.get("t3").vector, t[3].numpy())
    r = db.search(t[:2], k=1)
    assert r.keys[1][0] == "t1"


def assert_unchanged(db, n):
    assert len(db) == n
    assert db.check()["ok"]


@pytest.mark.parametrize("bad,exc", [
    (np.zeros((2, DIM + 1), np.float32), hydb.DimensionError),
    (np.zeros((3, DIM), np.float32), hydb.InvalidArgumentError),   # 3 rows for 2 keys
    (np.zeros((2, DIM, 1), np.float32), hydb.InvalidArgumentError),  # rank 3
    (np.zeros((2, 2 * DIM), np.float32)[:, ::2], hydb.InvalidArgumentError),  # not contiguous
    (np.array([["a"] * DIM] * 2), TypeError),
    (np.zeros((2, DIM), np.complex64), TypeError),
    ([[1.0] * DIM, [1.0] * (DIM - 1)], TypeError),  # ragged
    (None, TypeError),
    ("text", TypeError),
])
def test_bad_vectors_write_nothing(db, bad, exc):
    db.add(["keep"], points(1))
    with pytest.raises(exc) as e:
        db.add(["a", "b"], bad)
    assert str(e.value)
    assert_unchanged(db, 1)


def test_bad_values_write_nothing(db):
    db.add(["keep"], points(1))
    x = points(3)
    x[2, 4] = np.nan
    with pytest.raises(hydb.NonFiniteError, match="2"):
        db.add(["a", "b", "c"], x)
    x[2, 4] = np.inf
    with pytest.raises(hydb.NonFiniteError):
        db.add(["a", "b", "c"], x)
    far = points(2)
    far[1] = 0
    far[1, 0] = 1e12  # beyond the largest radius
    with pytest.raises(hydb.TooBigError):
        db.add(["a", "b"], far)
    with pytest.raises(hydb.InvalidArgumentError):
        db.add(["a", ""], points(2))  # empty key
    with pytest.raises(TypeError):
        db.add(["a", 5], points(2))
    with pytest.raises(hydb.InvalidArgumentError, match="NUL"):
        db.add(["a", "b\0c"], points(2))
    with pytest.raises(hydb.InvalidArgumentError):
        db.add(["a", "b"], points(2), labels=["safe"])
    with pytest.raises(hydb.InvalidArgumentError):
        db.add(["a", "b"], points(2), labels=["safe", "maybe"])
    with pytest.raises(hydb.InvalidArgumentError):
        db.add(["a", "b"], points(2), modalities=[1, 7])
    with pytest.raises(hydb.InvalidArgumentError):
        db.add(["a", "b"], points(2), captions=["x"])
    with pytest.raises(hydb.Error):
        db.add(["a", "b"], points(2), meta=["[1, 2]", None])  # not a JSON object
    with pytest.raises(hydb.InvalidArgumentError):
        db.add(["a", "b"], points(2), items=[-1, 2])
    assert_unchanged(db, 1)


def test_bad_search_inputs(db):
    db.add(keys(20), points(20))
    q = points(2)
    with pytest.raises(hydb.DimensionError):
        db.search(np.zeros((2, DIM - 1)))
    q[1, 0] = np.nan
    with pytest.raises(hydb.NonFiniteError):
        db.search(q)
    with pytest.raises(hydb.InvalidArgumentError):
        db.search(points(2), k=0)
    with pytest.raises(hydb.InvalidArgumentError):
        db.search(points(2), k=hydb._core.MAX_K + 1)
    with pytest.raises(hydb.InvalidArgumentError):
        db.search(points(2), redirect="hysac")  # no bound
    with pytest.raises(hydb.InvalidArgumentError):
        db.search(points(2), redirect="sideways", bound=1.0)
    with pytest.raises(hydb.InvalidArgumentError):
        db.search(points(4)[:, ::1].T.copy().T)  # (dim, 4) shape -> wrong dim or not contiguous
    with pytest.raises(hydb.InvalidArgumentError):
        db.search(np.zeros((2, 2 * DIM), np.float32)[:, ::2])
    with pytest.raises(TypeError):
        db.search(object())
    with pytest.raises(hydb.InvalidArgumentError):
        db.search(points(2), label="nice")
    with pytest.raises(hydb.InvalidArgumentError):
        db.search(points(2), min_radius=float("nan"))


def test_redirect(db):
    x = points(50, scale=0.2)
    db.add(keys(50), x)
    q = points(1, seed=4, scale=3.0)
    r = db.search(q, k=5, redirect="hysac", bound=0.5)
    assert r.redirected[0] and r.searched_radius[0] < r.query_radius[0]
    moved, flag = hydb.lorentz.redirect(q, 0.5)
    assert flag[0]
    assert r.ids[0].tolist() == db.search(moved, k=5).ids[0].tolist()


def test_cone_filters(db):
    # points near the origin have wide cones; a far query's parents are
    # among them, and a near query's children are far out around it
    q = points(3, seed=9, scale=0.8)
    # and each query has children straight out along its ray
    t = np.linspace(1.3, 2.0, 20, dtype=np.float32)[:, None]
    kids = [qi * t + points(20, seed=10 + i, scale=0.001) for i, qi in enumerate(q)]
    x = np.concatenate([points(200, scale=0.03, seed=7), points(300, scale=1.5, seed=8)] + kids)
    db.add(keys(len(x)), x)
    for cone in ("within", "contains"):
        for exact in (True, False):
            r = db.search(q, k=10, cone=cone, exact=exact, ef=200)
            for qi in range(3):
                n = int(r.counts[qi])
                assert n > 0
                v = x[[int(k[1:]) for k in r.keys[qi][:n]]]
                if cone == "within":
                    ok = hydb.lorentz.oxy_angle(v, q[qi]) <= hydb.lorentz.half_aperture(v)
                else:
                    ok = hydb.lorentz.oxy_angle(q[qi], v) <= hydb.lorentz.half_aperture(q[qi])
                assert np.all(ok)
        ex = db.search(q, k=10, cone=cone, exact=True)
        ix = db.search(q, k=10, cone=cone, ef=200)
        for qi in range(3):
            assert ix.ids[qi].tolist() == ex.ids[qi].tolist()
    with pytest.raises(hydb.InvalidArgumentError):
        db.search(q, cone="sideways")


def test_delete(db):
    ids = db.add(keys(10), points(10))
    assert db.delete(["k1", "k2"]) == 2
    assert db.delete("k3") == 1
    assert db.delete(ids[4]) == 1
    assert db.delete(ids=ids[5:7]) == 2
    assert len(db) == 4
    with pytest.raises(hydb.NotFoundError):
        db.delete(["k8", "k1"])  # one absent: nothing deleted
    assert len(db) == 4
    assert db.delete(["k8", "k1"], missing_ok=True) == 1
    assert db.delete([]) == 0
    with pytest.raises(hydb.InvalidArgumentError):
        db.delete()
    with pytest.raises(hydb.InvalidArgumentError):
        db.delete(ids=[-1])
    assert db.check()["ok"]


def test_stats_check_export(db):
    x = points(30)
    db.add(keys(30), x, labels=["safe"] * 10 + ["unsafe"] * 20, modalities=["text"] * 15 + ["image"] * 15,
           captions=[None, "c"] * 15, meta=[{"i": i} for i in range(30)])
    s = db.stats()
    assert s["count"] == 30 and s["dim"] == DIM
    assert s["groups"] == {("text", "safe"): 10, ("text", "unsafe"): 5, ("image", "unsafe"): 15}
    radii = hydb.lorentz.radius(x)
    assert math.isclose(s["radius_min"], radii.min(), rel_tol=1e-6)
    assert math.isclose(s["radius_max"], radii.max(), rel_tol=1e-6)
    c = db.check()
    assert c["ok"] and c["records"] == 30 and c["messages"] == [] and c["unreachable"] == 0
    e = db.export()
    assert e["vectors"].shape == (30, DIM) and e["vectors"].dtype == np.float32
    assert np.array_equal(e["vectors"], x)
    assert e["keys"] == keys(30) and e["captions"][:2] == [None, "c"]
    assert e["meta"][3] == {"i": 3}
    assert e["labels"].tolist() == [1] * 10 + [2] * 20
    assert np.all(np.diff(e["ids"].astype(np.int64)) > 0)


def test_errors_hierarchy():
    codes = set()
    for name in dir(hydb):
        obj = getattr(hydb, name)
        if isinstance(obj, type) and issubclass(obj, hydb.Error) and obj is not hydb.Error:
            codes.add(obj.code)
    assert codes == set(range(-17, 0))
    assert issubclass(hydb.DimensionError, ValueError)
    assert issubclass(hydb.NotFoundError, LookupError)


def test_threads_share_a_database(db):
    x = points(300)
    db.add(keys(300), x)
    errors = []

    def worker(i):
        try:
            for _ in range(5):
                r = db.search(x[i * 50:(i + 1) * 50], k=1, exact=True)
                assert r.keys == [[k] for k in keys(300)[i * 50:(i + 1) * 50]]
        except Exception as e:  # reported below
            errors.append(e)

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert errors == []


def test_close_while_busy_raises(db):
    x = points(2000)
    db.add(keys(2000), x)
    started = threading.Event()
    stop = threading.Event()
    seen = []

    def searcher():
        started.set()
        while not stop.is_set():
            db.search(x[:200], k=10, exact=True)

    t = threading.Thread(target=searcher)
    t.start()
    started.wait()
    for _ in range(200):
        try:
            db.close()
            seen.append("closed")
            break
        except hydb.BusyError:
            seen.append("busy")
    stop.set()
    t.join(timeout=60)
    # Either the close happened between two calls (then the searcher's next
    # call raises cleanly) or it was refused: never a crash.
    assert seen


def test_garbage_collected_handle_is_closed(dbpath):
    d = hydb.open(dbpath, dim=DIM, create=True)
    d.add(["a"], points(1))
    del d
    gc.collect()
    with hydb.open(dbpath) as d:  # not BusyError: the first handle closed
        assert len(d) == 1
