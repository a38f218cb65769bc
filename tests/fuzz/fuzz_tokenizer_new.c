/*
 * fuzz_tokenizer_new.c - building a tokenizer from arbitrary merges text
 * (hydb_tokenizer_new). Byte 0 is the merge limit (0 = all); the rest is
 * the text. A tokenizer that builds must tokenise its own merges text and
 * a fixed caption.
 */
#include "tests/fuzz/tokenizer_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char caption[] = "A photo of the cat &amp; dog, isn't it? 123!";
	hydb_tokenizer *t = NULL;
	const char *text = (const char *)data + 1;
	size_t max_merges, vocab;
	if (size < 1)
		return 0;
	max_merges = data[0];
	if (hydb_tokenizer_new(&t, text, size - 1, max_merges) < 0)
		return 0;
	vocab = hydb_tokenizer_vocab_size(t);
	FUZZ_CHECK(vocab >= 514 && (max_merges == 0 || vocab <= 514 + max_merges));
	FUZZ_CHECK(hydb_tokenizer_token(t, (int32_t)vocab) == NULL);
	hydb_fuzz_tokenize(t, caption, sizeof caption - 1, 77);
	hydb_fuzz_tokenize(t, text, size - 1, 77);
	hydb_tokenizer_free(t);
	return 0;
}
