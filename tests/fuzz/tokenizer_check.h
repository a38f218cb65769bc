/*
 * tokenizer_check.h - what every successful tokenisation must look like,
 * shared by the two tokenizer targets.
 */
#ifndef HYDB_FUZZ_TOKENIZER_CHECK_H
#define HYDB_FUZZ_TOKENIZER_CHECK_H

#include "tests/fuzz/fuzz.h"

#include "encoder/tokenizer.h"

/* [BOS, tokens..., EOS, EOS padding], every id in the vocabulary and
 * printable by hydb_tokenizer_token. The specials may occur inside: CLIP's
 * pattern reads "<|endoftext|>" in a caption as the token itself. */
static inline void hydb_fuzz_tokenize(const hydb_tokenizer *t, const char *text, size_t len,
				      size_t context)
{
	int32_t ids[96];
	size_t used = 0;
	int32_t vocab = (int32_t)hydb_tokenizer_vocab_size(t);
	if (context > sizeof ids / sizeof ids[0])
		context = sizeof ids / sizeof ids[0];
	if (hydb_tokenize(t, text, len, ids, context, &used) < 0)
		return;
	FUZZ_CHECK(used >= 2 && used <= context);
	FUZZ_CHECK(ids[0] == hydb_tokenizer_bos(t));
	for (size_t i = 1; i + 1 < used; i++) {
		FUZZ_CHECK(ids[i] >= 0 && ids[i] < vocab);
		FUZZ_CHECK(hydb_tokenizer_token(t, ids[i]) != NULL);
	}
	for (size_t i = used - 1; i < context; i++)
		FUZZ_CHECK(ids[i] == hydb_tokenizer_eos(t));
}

#endif
