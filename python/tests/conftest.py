import os
import subprocess
import sys

import pytest

TOP = os.environ.get("HYDB_SRCDIR") or os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """A random model file of the HySAC architecture family, made by the
    tests' PyTorch reference (tests/ref_hysac.py make)."""
    path = str(tmp_path_factory.mktemp("model") / "tiny.safetensors")
    subprocess.run([sys.executable, os.path.join(TOP, "tests", "ref_hysac.py"), "make", path, "--seed", "3"],
                   check=True)
    return path


@pytest.fixture
def dbpath(tmp_path):
    return str(tmp_path / "db")
