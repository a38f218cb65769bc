# hydb evaluate: the arithmetic in the library face (src/evaluate.c, declared
# in admin.h), the command and its manifest reader in the tool.
libhydb_internal_la_SOURCES += src/evaluate.c
hydb_SOURCES += src/cli/cmd_evaluate.c src/cli/eval_manifest.c src/cli/eval_manifest.h
