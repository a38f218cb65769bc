"""hydb: nearest-neighbour search over hyperbolic (Lorentz) embeddings.

The bindings of libhydb (the C library; nothing is re-implemented here):
points of the Lorentz hyperboloid with curvature -c, stored by their space
components x (the time component is x0 = sqrt(1/c + |x|^2)), found by true
geodesic distance with an HNSW index kept in LMDB, plus the built-in HySAC
image/text encoder. numpy arrays go in and come out; anything with
``__array__`` or the buffer protocol (a PyTorch CPU tensor, say) is read
without a copy when it is C-contiguous float32.

Quick start::

    import numpy as np, hydb
    with hydb.open("photos.hydb", dim=768, create=True) as db:
        ids = db.add(["a", "b"], vectors, labels=["safe", "unsafe"],
                     modalities="image", captions=["a cat", "a dog"])
        res = db.search(queries, k=10, safe_only=True)
        res.ids, res.distances, res.keys     # (n, k) arrays, lists of lists

Contents:

* :func:`open` -> :class:`Database`: ``add``, ``search``, ``get``,
  ``delete``, ``stats``, ``check``, ``export``, ``len(db)``, ``db.dim``,
  ``db.curvature``; a context manager.
* :class:`Model`: the HySAC encoder (``encode_text``, ``encode_images``,
  ``bound``).
* :mod:`hydb.lorentz`: vectorised geometry (``dist``, ``key``, ``radius``,
  ``exp_map0``, ``log_map0``, ``redirect``, ``half_aperture``,
  ``oxy_angle``) on the library's cancellation-free kernels.
* Errors: :class:`Error` and one subclass per library error code
  (``InvalidArgumentError``, ``DimensionError``, ``NonFiniteError``,
  ``NotFoundError``, ...); ``str(e)`` is the library's one-line message and
  ``e.code`` its code. Bad input subclasses also derive from ValueError.

Threads: the GIL is released while the library adds, searches, encodes and
computes geometry, so Python threads run those calls in parallel. A
Database or Model may be shared by threads; closing one while another
thread uses it raises BusyError. Arrays passed in must not be resized by
another thread during a call.

Labels are "unknown", "safe", "unsafe" (or 0, 1, 2); modalities "other",
"image", "text" (or 0, 1, 2).
"""
import json as _json
import os as _os
import threading as _threading

import numpy as _np

from . import _core
from ._core import (BusyError, CorruptError, DimensionError, Error, ExistsError, FormatError,
                    InvalidArgumentError, IOFailedError, MismatchError, ModelError, NonFiniteError,
                    NoSpaceError, NotFoundError, OutOfMemoryError, ReadOnlyError, TooBigError,
                    UTF8Error, VersionError)
from . import lorentz

__version__ = "0.1.0"
library_version = _core.library_version

__all__ = ["open", "Database", "SearchResult", "Entry", "Model", "lorentz", "Error", "BusyError",
           "CorruptError", "DimensionError", "ExistsError", "FormatError", "InvalidArgumentError",
           "IOFailedError", "MismatchError", "ModelError", "NonFiniteError", "NoSpaceError",
           "NotFoundError", "OutOfMemoryError", "ReadOnlyError", "TooBigError", "UTF8Error",
           "VersionError", "LABELS", "MODALITIES", "library_version"]

LABELS = ("unknown", "safe", "unsafe")
MODALITIES = ("other", "image", "text")
CONES = ("within", "contains")  # bit 0: HYDB_CONE_WITHIN, bit 1: HYDB_CONE_CONTAINS
_REDIRECTS = {None: 0, "none": 0, "hysac": 1, "geodesic": 2}


def _code(value, names, what):
    """One label/modality: a name or its number."""
    if isinstance(value, str):
        try:
            return names.index(value.lower())
        except ValueError:
            raise InvalidArgumentError("%s: unknown name %r (expected one of %s)"
                                       % (what, value, ", ".join(names))) from None
    if isinstance(value, (bool, _np.bool_)) or not isinstance(value, (int, _np.integer)):
        raise TypeError("%s: expected a name (%s) or 0..2, got %r" % (what, ", ".join(names), value))
    if not 0 <= int(value) < len(names):
        raise InvalidArgumentError("%s: %d is not 0..%d" % (what, value, len(names) - 1))
    return int(value)


def _codes(values, names, what, n):
    """None, one value for all, or n values -> int64 array of n."""
    if values is None:
        return None
    if isinstance(values, (str, int, _np.integer)):
        return _np.full(n, _code(values, names, what), dtype=_np.int64)
    if isinstance(values, _np.ndarray) and values.dtype.kind in "iu":
        return values
    values = list(values)
    if len(values) != n:
        raise InvalidArgumentError("%s: %d values for %d keys" % (what, len(values), n))
    return _np.fromiter((_code(v, names, what) for v in values), dtype=_np.int64, count=n)


def _mask(values, names, what):
    """None, one value or several -> HYDB_MASK bits (0 = any)."""
    if values is None:
        return 0
    if isinstance(values, (str, int, _np.integer)):
        values = [values]
    mask = 0
    for v in values:
        mask |= 1 << _code(v, names, what)
    return mask


def _strings(values, what, n, allow_none=True):
    if values is None:
        return None
    if isinstance(values, str):
        raise TypeError("%s: expected a sequence of %d str, got one str" % (what, n))
    values = tuple(values)
    if len(values) != n:
        raise InvalidArgumentError("%s: %d values for %d keys" % (what, len(values), n))
    return values


def _keys(keys):
    if isinstance(keys, str):
        return (keys,)
    if isinstance(keys, _np.ndarray):
        keys = keys.tolist()
    return tuple(keys)


def open(path, dim=None, curvature=1.0, create=False, readonly=False, m=16, ef_construction=200,
         nosync=False):
    """Open the database directory at path and return a :class:`Database`.

    create=True creates it when missing; then dim (the space dimension) is
    required, curvature is c > 0 of the curvature -c, and m and
    ef_construction set the HNSW graph (stored; later opens ignore them).
    Creating over an existing database with another dim or curvature raises
    MismatchError. dim given without create must equal the database's.
    readonly=True never writes (works on read-only media). nosync=True makes
    writes faster: an OS crash may lose the last commits (a process crash
    loses nothing).

    Raises NotFoundError (no database there), MismatchError, VersionError,
    CorruptError, ReadOnlyError, BusyError (already open in this process).
    """
    if create and dim is None:
        raise InvalidArgumentError("open: create=True needs dim")
    path = _os.fspath(path)
    raw = _core.open(path, dim=int(dim) if create else 0, curvature=float(curvature), create=bool(create),
                     readonly=bool(readonly), m=int(m), ef_construction=int(ef_construction),
                     nosync=bool(nosync))
    db = Database(raw, path)
    if dim is not None and int(dim) != db.dim:
        db.close()
        raise DimensionError("%s: the database has dimension %d, not %d" % (path, db.dim, dim))
    return db


class Entry:
    """A stored record, as returned by :meth:`Database.get`."""
    __slots__ = ("id", "key", "vector", "radius", "modality", "label", "item", "caption", "meta")

    def __init__(self, t):
        (self.id, self.key, self.vector, self.radius, modality, label, self.item, self.caption,
         meta) = t
        self.modality = MODALITIES[modality] if 0 <= modality < 3 else modality
        self.label = LABELS[label] if 0 <= label < 3 else label
        self.meta = _json.loads(meta) if meta else None

    def __repr__(self):
        return "Entry(id=%d, key=%r, radius=%.4f, modality=%r, label=%r, item=%d, caption=%r)" % (
            self.id, self.key, self.radius, self.modality, self.label, self.item, self.caption)


class SearchResult:
    """Results of :meth:`Database.search`, nearest first (ties by id).

    For n queries every array is (n, k); for one query given as a (dim,)
    vector, (k,). Missing results (fewer than k matches) are padded: id 0,
    distance inf, radius nan, label and modality -1, key and caption None.

    Attributes: ``ids`` uint64, ``distances`` float64 (geodesic), ``radii``
    float32 (distance of each hit from the origin), ``labels`` and
    ``modalities`` int8 codes (see LABELS, MODALITIES), ``items`` uint64,
    ``keys`` and ``captions`` lists (of lists), ``counts`` the hits per
    query, ``redirected`` bool per query, ``query_radius`` and
    ``searched_radius`` per query (before and after a redirect), ``plans``
    the planner's choice per query ("hnsw", "exact", "filtered-brute", ...).
    """
    __slots__ = ("ids", "distances", "radii", "labels", "modalities", "items", "keys", "captions",
                 "redirected", "query_radius", "searched_radius", "plans")

    def __init__(self, t, single):
        (self.ids, self.distances, self.radii, self.labels, self.modalities, self.items, self.keys,
         self.captions, self.redirected, self.query_radius, self.searched_radius, self.plans) = t
        if single:
            for name in self.__slots__:
                setattr(self, name, getattr(self, name)[0])

    @property
    def counts(self):
        """Number of real (non-padding) results per query."""
        return _np.isfinite(self.distances).sum(axis=-1)

    def __len__(self):
        return len(self.ids)

    def __repr__(self):
        return "SearchResult(shape=%s)" % (self.ids.shape,)


class Database:
    """An open hydb database: use :func:`open`. A context manager; close()
    is also called when it is garbage-collected.

    ``len(db)`` is the number of records; ``db.dim`` the space dimension;
    ``db.curvature`` c of the curvature -c; ``db.path``.
    """

    def __init__(self, raw, path):
        self._db = raw
        self.path = path

    # -- basics
    @property
    def dim(self):
        """Space dimension of the stored points."""
        return self._db.dim

    @property
    def curvature(self):
        """c of the curvature -c."""
        return self._db.curvature

    @property
    def closed(self):
        return self._db.closed

    def close(self):
        """Close the database. Idempotent. Raises BusyError while another
        thread is inside a call on it."""
        self._db.close()

    def __enter__(self):
        if self._db.closed:
            raise InvalidArgumentError("the database is closed")
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __len__(self):
        return self._db._count()

    def __repr__(self):
        if self._db.closed:
            return "<hydb.Database %r (closed)>" % self.path
        return "<hydb.Database %r dim=%d curvature=%g>" % (self.path, self.dim, self.curvature)

    # -- writes
    def add(self, keys, vectors, *, labels=None, modalities=None, captions=None, items=None, meta=None):
        """Insert or replace (by key) records in one atomic batch; return
        their ids as a uint64 array.

        keys: a str or a sequence of n unique str. vectors: (n, dim) (or
        (dim,) for one key) of any float or integer dtype; float32
        C-contiguous input (numpy, or a tensor through __array__/the buffer
        protocol) is used without a copy; a non-contiguous array raises.
        labels, modalities: None, one value for all, or n values (names or
        codes). captions: None or n str/None. items: None or n uint64 (links
        an image and its captions). meta: None, one dict for all, or n
        dicts/JSON-object strings/None.

        Either every record is stored, or (on any error) none. Raises
        DimensionError, NonFiniteError (NaN/inf), TooBigError (over a
        limit, or a point farther than radius 20 from the origin),
        InvalidArgumentError, TypeError, ReadOnlyError, NoSpaceError.
        """
        keys = _keys(keys)
        n = len(keys)
        labels = _codes(labels, LABELS, "labels", n)
        modalities = _codes(modalities, MODALITIES, "modalities", n)
        captions = _strings(captions, "captions", n)
        if items is not None:
            items = _np.asarray(items)
            if items.ndim == 0:
                items = _np.full(n, items, dtype=_np.uint64)
            elif items.dtype.kind not in "iu":
                raise TypeError("items: expected integers, got dtype %s" % items.dtype)
            elif items.dtype.kind == "i" and (items < 0).any():
                raise InvalidArgumentError("items: must be >= 0")
        if meta is not None:
            if isinstance(meta, (dict, str)):
                meta = [meta] * n
            meta = _strings(meta, "meta", n)
            meta = tuple(m if m is None or isinstance(m, str) else _json.dumps(m) for m in meta)
        return self._db._add(keys, vectors, labels, modalities, items, captions, meta)

    def delete(self, keys=None, ids=None, *, missing_ok=False):
        """Delete records by key (a str or a sequence of str) or by id (an
        int or an array of ints) in one transaction; return how many were
        removed. delete("k") and delete(7) also work positionally. An absent
        record fails the whole call with NotFoundError (nothing deleted)
        unless missing_ok=True."""
        if ids is None and keys is not None and not isinstance(keys, str):
            if isinstance(keys, (int, _np.integer)):
                keys, ids = None, keys
            else:
                seq = keys.tolist() if isinstance(keys, _np.ndarray) else list(keys)
                if seq and all(isinstance(k, (int, _np.integer)) for k in seq):
                    keys, ids = None, seq
                else:
                    keys = seq
        if (keys is None) == (ids is None):
            raise InvalidArgumentError("delete: give keys or ids")
        if keys is not None:
            return self._db._delete(_keys(keys), None, bool(missing_ok))
        ids = _np.atleast_1d(_np.asarray(ids))
        if ids.dtype.kind not in "iu":
            raise TypeError("delete: ids must be integers, got dtype %s" % ids.dtype)
        if ids.dtype.kind == "i" and (ids < 0).any():
            raise InvalidArgumentError("delete: ids must be >= 0")
        return self._db._delete(None, ids.astype(_np.uint64), bool(missing_ok))

    # -- reads
    def search(self, queries, k=10, *, ef=None, exact=False, safe_only=False, label=None, modality=None,
               min_radius=None, max_radius=None, redirect=None, bound=None, cone=None):
        """k nearest neighbours by geodesic distance of one query (dim,) or
        many (n, dim); returns a :class:`SearchResult`.

        ef: the beam width (default max(k, 64)); exact=True: brute force,
        exact to the last rank. Filters, all combined: safe_only=True (label
        "safe"), label and modality (one value or several), min_radius and
        max_radius (distance from the origin). redirect="hysac" (HySAC's
        rule: a query farther than bound is rescaled to Euclidean norm
        bound) or "geodesic" (moved along the geodesic to the origin to
        radius bound) searches from the moved query; bound is required then
        (e.g. Model.bound("text") widened by lorentz.redirect_bound).
        cone="within" keeps results whose entailment cone holds the query
        (its generic parents), cone="contains" results inside the query's
        cone (its specific children); ("within", "contains") both.
        Queries of any float dtype are converted to float32; the batch runs
        in one read snapshot with the GIL released.
        """
        q, single = self._queries(queries)
        lmask = _mask(label, LABELS, "label")
        if safe_only:
            if lmask and not lmask & 2:
                raise InvalidArgumentError("search: safe_only=True with a label filter that excludes safe")
            lmask = 2
        mmask = _mask(modality, MODALITIES, "modality")
        mode = self._redirect(redirect, bound)
        t = self._db._search(q, int(k), int(ef or 0), bool(exact), lmask, mmask,
                             float(min_radius) if min_radius is not None else 0.0,
                             float(max_radius) if max_radius is not None else float("inf"),
                             mode, float(bound) if bound is not None else 0.0,
                             _mask(cone, CONES, "cone"))
        return SearchResult(t, single)

    def _queries(self, queries):
        if isinstance(queries, _np.ndarray):
            q = queries
        elif hasattr(queries, "__array__") or isinstance(queries, (list, tuple, memoryview)):
            try:
                q = _np.asarray(queries)
            except (ValueError, TypeError) as e:
                raise TypeError("queries: cannot be read as an array of numbers (%s)" % e) from None
        else:
            q = queries  # the extension reports what it cannot read
        single = isinstance(q, _np.ndarray) and q.ndim == 1
        if single:
            q = q.reshape(1, -1)
        return q, single

    @staticmethod
    def _redirect(redirect, bound):
        if isinstance(redirect, bool) or redirect not in _REDIRECTS:
            raise InvalidArgumentError("search: redirect must be None, 'hysac' or 'geodesic', got %r" % (redirect,))
        mode = _REDIRECTS[redirect]
        if mode and bound is None:
            raise InvalidArgumentError("search: redirect=%r needs bound" % redirect)
        return mode

    def get(self, key_or_id):
        """The record with this key (str) or id (int), as an :class:`Entry`.
        Raises NotFoundError."""
        if isinstance(key_or_id, _np.integer):
            key_or_id = int(key_or_id)
        if isinstance(key_or_id, bool) or not isinstance(key_or_id, (str, int)):
            raise TypeError("get: expected a key (str) or an id (int), got %r" % (key_or_id,))
        return Entry(self._db._get(key_or_id))

    def __contains__(self, key_or_id):
        try:
            self.get(key_or_id)
            return True
        except NotFoundError:
            return False

    def stats(self):
        """Counts and radius range from one snapshot: a dict with count,
        dim, curvature, radius_min, radius_max and groups, a dict
        {(modality, label): count} of the non-empty groups."""
        count, groups, rmin, rmax = self._db._stats()
        return {"count": count, "dim": self.dim, "curvature": self.curvature, "radius_min": rmin,
                "radius_max": rmax,
                "groups": {(MODALITIES[m], LABELS[l]): groups[m][l]
                           for m in range(3) for l in range(3) if groups[m][l]}}

    def check(self):
        """Verify the store (checksums, tables that agree, metadata) and the
        index (HNSW invariants, reachability) in one snapshot. Returns a
        dict: ok (no problems), records, live_slots, keys, radius_entries,
        store_problems, index_problems, unreachable (a quality warning:
        exact search still finds those), messages (up to 1,000 one-line
        descriptions)."""
        r = self._db._check()
        names = ("records", "live_slots", "keys", "radius_entries", "store_problems", "index_problems",
                 "unreachable", "messages")
        d = dict(zip(names, r))
        d["ok"] = d["store_problems"] == 0 and d["index_problems"] == 0
        return d

    def export(self):
        """Every record in id order from one snapshot, as a dict of columns:
        ids (n,) uint64, keys list, vectors (n, dim) float32, radii (n,)
        float32, modalities and labels (n,) int8 codes, items (n,) uint64,
        captions list (str or None), meta list (dict or None)."""
        ids, keys, vecs, radii, mods, labels, items, caps, metas = self._db._export()
        return {"ids": ids, "keys": keys, "vectors": vecs, "radii": radii, "modalities": mods,
                "labels": labels, "items": items, "captions": caps,
                "meta": [_json.loads(m) if m else None for m in metas]}


class Model:
    """The built-in HySAC encoder, from a model file (see the README, "Model
    file"; tools/hydb-convert makes one, --tiny a small random one). May be
    shared by threads; each encode call uses scratch memory of its own.

    ``dim`` and ``curvature`` describe its embedding space. A context
    manager.
    """

    def __init__(self, path):
        self._m = _core.model_open(_os.fspath(path))
        self.path = _os.fspath(path)

    @property
    def dim(self):
        return self._m.dim

    @property
    def curvature(self):
        return self._m.curvature

    def close(self):
        self._m.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def encode_text(self, texts):
        """Encode captions (a str or a list of str): returns (vectors (n,
        dim) float32 space components, radii (n,) float32)."""
        if isinstance(texts, str):
            texts = [texts]
        return self._m._encode_text(tuple(texts))

    def encode_images(self, images):
        """Encode images: each a path (str or os.PathLike) to a JPEG, PNG or
        WebP file, or the file's bytes. Paths are decoded and encoded as one
        batch. Returns (vectors (n, dim) float32, radii (n,) float32)."""
        if isinstance(images, (str, bytes, bytearray, memoryview)) or hasattr(images, "__fspath__"):
            images = [images]
        items = []
        for x in images:
            if isinstance(x, (bytes, bytearray, memoryview)):
                items.append(x)
            else:
                items.append(_os.fspath(x) if hasattr(x, "__fspath__") else x)
        return self._m._encode_images(tuple(items))

    def bound(self, modality):
        """The safe-class bound (HySAC's up_95 radius) of "image" or "text";
        nan when the model file carries no bounds."""
        return self._m._bound(_code(modality, MODALITIES, "modality"))

    def __repr__(self):
        return "<hydb.Model %r dim=%d>" % (self.path, self.dim)


def blas_info():
    """Which OpenBLAS kernel the encoder's matrix products run on, and why."""
    return _core.blas_info()
