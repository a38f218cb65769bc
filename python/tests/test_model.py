"""hydb.Model on a random tiny model: shapes, agreement with the CLI's
encoder, bytes and paths, errors."""
import glob
import os

import numpy as np
import pytest

import hydb

PHOTOS = "/usr/lib/python3/dist-packages/skimage/data"


def photos():
    found = sorted(glob.glob(os.path.join(PHOTOS, "*.png")))[:3]
    if len(found) < 3:
        pytest.skip("python3-skimage's sample photos are missing")
    return found


def test_encode_text_and_images(tiny_model):
    with hydb.Model(tiny_model) as m:
        v, r = m.encode_text(["a cat on a mat", "a dog", ""])
        assert v.shape == (3, m.dim) and v.dtype == np.float32 and r.shape == (3,)
        np.testing.assert_allclose(r, hydb.lorentz.radius(v, m.curvature), rtol=1e-5)
        v1, _ = m.encode_text("a dog")
        np.testing.assert_array_equal(v1[0], v[1])
        files = photos()
        iv, ir = m.encode_images(files)
        assert iv.shape == (3, m.dim)
        with open(files[1], "rb") as f:
            blob = f.read()
        bv, _ = m.encode_images([blob, files[0]])
        np.testing.assert_allclose(bv[0], iv[1], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(bv[1], iv[0], rtol=1e-5, atol=1e-6)
        for mod in ("image", "text"):  # nan: the model file carries no bounds
            assert m.bound(mod) > 0 or np.isnan(m.bound(mod))
        with pytest.raises(hydb.InvalidArgumentError):
            m.bound("other")
        with pytest.raises(hydb.FormatError):
            m.encode_images([b"not an image"])
        with pytest.raises(hydb.NotFoundError):
            m.encode_images(["/nonexistent.png"])
        with pytest.raises(TypeError):
            m.encode_images([3])
        with pytest.raises(TypeError):
            m.encode_text(["ok", None])


def test_model_into_database(tiny_model, dbpath):
    m = hydb.Model(tiny_model)
    caps = ["red", "green", "blue"]
    v, r = m.encode_text(caps)
    with hydb.open(dbpath, dim=m.dim, curvature=m.curvature, create=True) as db:
        db.add(caps, v, modalities="text", captions=caps)
        res = db.search(m.encode_text("green")[0], k=1)
        assert res.keys[0][0] == "green"
    m.close()
    with pytest.raises(hydb.InvalidArgumentError, match="closed"):
        m.encode_text(["x"])


def test_bad_model_file(tmp_path):
    p = tmp_path / "bad.safetensors"
    p.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{}")
    with pytest.raises(hydb.Error):
        hydb.Model(str(p))
    with pytest.raises(hydb.NotFoundError):
        hydb.Model(str(tmp_path / "none"))
