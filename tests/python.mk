# The Python package: built in a venv as the README says, then its pytest
# suite (python/tests).
TESTS += tests/test_python.sh
EXTRA_DIST += tests/test_python.sh python/setup.py python/pyproject.toml python/hydb/__init__.py \
	python/hydb/__init__.pyi python/hydb/lorentz.py python/hydb/lorentz.pyi python/hydb/_core.c \
	python/hydb/py.typed python/tests/conftest.py python/tests/test_database.py \
	python/tests/test_lorentz.py python/tests/test_model.py python/examples/photos.py \
	python/bench/bench_python.py
