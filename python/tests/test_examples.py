"""The examples in python/examples run end to end on a random model: the
hydb.Model one, and the PyTorch one whose embeddings must agree with
hydb.Model's (same weights, same inputs)."""
import os
import re
import subprocess
import sys

import pytest

from conftest import TOP

PHOTOS = "/usr/lib/python3/dist-packages/skimage/data"


def hydb_cli():
    build = os.environ.get("HYDB_BUILDDIR")
    path = os.path.join(build, "hydb") if build else None
    if not path or not os.access(path, os.X_OK):
        pytest.skip("HYDB_BUILDDIR/hydb not found (the PyTorch example uses the command line)")
    return path


@pytest.fixture
def photos():
    if not os.path.isdir(PHOTOS):
        pytest.skip("python3-skimage's photos are missing")


def test_photos_example(tiny_model, tmp_path, photos):
    out = subprocess.run([sys.executable, os.path.join(TOP, "python", "examples", "photos.py"), tiny_model,
                          str(tmp_path / "db")], check=True, capture_output=True, text=True).stdout
    assert "10 photos and 10 captions" in out
    assert "check ok: True" in out


def test_photos_torch_example_agrees(tiny_model, photos):
    pytest.importorskip("torch")
    env = dict(os.environ, HYDB=hydb_cli())
    out = subprocess.run([sys.executable, os.path.join(TOP, "python", "examples", "photos_torch.py"), tiny_model],
                         check=True, capture_output=True, text=True, env=env).stdout
    m = re.search(r"image cosine >= ([0-9.]+), caption cosine >= ([0-9.]+), max \|radius difference\| ([0-9.e+-]+)",
                  out)
    assert m, out
    assert float(m.group(1)) >= 0.9999 and float(m.group(2)) >= 0.9999 and float(m.group(3)) <= 1e-3, out
    lines = [line.split(None, 1)[1] for line in out.splitlines()
             if line.startswith(("PyTorch ", "hydb.Model ")) and "->" in line]
    assert len(lines) == 4 and lines[:2] == lines[2:], out
