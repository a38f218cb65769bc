/*
 * fuzz_model.c - opening a model file (hydb_model_open): container, config,
 * tensor shapes and the tokenizer built from the stored merges. A model
 * that opens must answer its accessors and tokenise.
 */
#include "tests/fuzz/fuzz.h"

#include <math.h>

#include "encoder/model.h"
#include "encoder/tokenizer.h"

static void use_model(const hydb_model *m)
{
	int32_t ids[HYDB_CLIP_CONTEXT];
	size_t ctx = (size_t)m->cfg.context_length, used = 0;
	FUZZ_CHECK(hydb_model_dim(m) == (size_t)m->cfg.embed_dim);
	FUZZ_CHECK(hydb_model_curvature(m) > 0);
	FUZZ_CHECK(hydb_tokenizer_vocab_size(m->tok) == (size_t)m->cfg.vocab_size);
	if (ctx > HYDB_CLIP_CONTEXT)
		ctx = HYDB_CLIP_CONTEXT;
	FUZZ_CHECK(hydb_tokenize(m->tok, "a photo of a cat", 16, ids, ctx, &used) == 0);
	FUZZ_CHECK(used >= 2 && used <= ctx && ids[0] == m->cfg.bos_id);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	hydb_model *m = NULL;
	const char *path = hydb_fuzz_file(data, size, ".hydb");
	if (!path)
		return 0;
	if (hydb_model_open(&m, path) < 0)
		return 0;
	use_model(m);
	hydb_model_close(m);
	return 0;
}
