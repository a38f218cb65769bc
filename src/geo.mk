# Lorentz geometry and exact search.
libhydb_internal_la_SOURCES += src/lorentz.c src/lorentz.h
