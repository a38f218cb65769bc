# bench: entailment cones
# Cone-filtered search against exact on a tree and on WordNet's nouns
# (bench/cone_bench.c): the distance-trained embedding (few points in each
# other's cones) and the cone-trained one (wordnet_embed.py --cones, whose
# hyponyms lie in their hypernyms' cones; its own work directory, since
# cone_bench caches the held-out split by family name); 'make bench-cone'.
EXTRA_PROGRAMS += bench/cone_bench
bench_cone_bench_SOURCES = bench/cone_bench.c bench/gen_hysac.c bench/recall_data.h
bench_cone_bench_LDADD = libhydb_internal.la $(HYDB_DEPLIBS)
CLEANFILES += bench/cone_bench$(EXEEXT)
BENCH_TARGETS += bench-cone
bench-cone: bench/cone_bench$(EXEEXT)
	mkdir -p bench/results
	bench/cone_bench -f tree -n 100000 -d 16 -q 300 -w bench/results
	wn=$${HOME}/.cache/hydb/wordnet-noun-10d.f32; \
	if [ ! -f "$$wn" ]; then mkdir -p "$$(dirname "$$wn")" && \
	  $(PYTHON3) $(srcdir)/bench/wordnet_embed.py "$$wn"; fi; \
	bench/cone_bench -f wordnet -i "$$wn" -n 0 -d 10 -q 300 -w bench/results
	wc=$${HOME}/.cache/hydb/wordnet-noun-10d-cones.f32; \
	if [ ! -f "$$wc" ]; then \
	  $(PYTHON3) $(srcdir)/bench/wordnet_embed.py --cones "$$wc"; fi; \
	mkdir -p bench/results/cones; \
	bench/cone_bench -f wordnet -i "$$wc" -n 0 -d 10 -q 300 -w bench/results/cones
