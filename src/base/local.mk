# The base: errors, allocation, UTF-8, JSON, the Lorentz geometry (exact and
# SIMD ranking keys) and the run-time BLAS loader. It includes nothing of
# hydb's but the public header's error codes (ARCHITECTURE.md, tests/check_layers.py).
libhydb_internal_la_SOURCES += src/base/base.h src/base/error.c src/base/util.c \
	src/base/json.c src/base/json.h \
	src/base/lorentz.c src/base/lorentz.h \
	src/base/lorentz_kernel.c src/base/lorentz_kernel.h \
	src/base/blas.c src/base/blas.h \
	src/base/utf8.c src/base/bench_switch.c src/base/bench_switch.h
