/*
 * fuzz_tokenize.c - CLIP text cleanup and BPE (encoder/tokenizer.h) on
 * arbitrary bytes, with a small fixed vocabulary built once. The context
 * length varies with the input size so that truncation is reached too.
 */
#include "tests/fuzz/tokenizer_check.h"

#include <stdlib.h>
#include <string.h>

/* Enough merges to build multi-symbol words, word ends, a non-ASCII pair
 * and a merge of merges. */
static const char merges[] =
	"#version: 0.2\n"
	"t h\n" "th e</w>\n" "a n\n" "an d</w>\n" "i n\n" "in g</w>\n"
	"o f</w>\n" "c a\n" "ca t</w>\n" "d o\n" "do g</w>\n" "p h\n" "ph o\n"
	"pho t\n" "phot o</w>\n" "e r</w>\n" "o n</w>\n" "a </w>\n" "s </w>\n"
	"' s</w>\n" "Ã ©\n" "c af\n" "Ã© </w>\n" "1 2\n" "12 3</w>\n"
	"! </w>\n" "ðŁ ĺ\n" "ðŁĺ Ģ</w>\n";

static hydb_tokenizer *tok;

static void drop_tokenizer(void)
{
	hydb_tokenizer_free(tok);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *clean = NULL;
	size_t clean_len = 0;
	if (!tok) {
		FUZZ_CHECK(hydb_tokenizer_new(&tok, merges, strlen(merges), 0) == 0);
		atexit(drop_tokenizer);
	}
	hydb_fuzz_tokenize(tok, (const char *)data, size, 2 + size % 80);
	if (hydb_tokenizer_clean(&clean, &clean_len, (const char *)data, size) == 0) {
		FUZZ_CHECK(clean[clean_len] == '\0' && strlen(clean) == clean_len);
		free(clean);
	}
	return 0;
}
