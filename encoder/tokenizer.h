/*
 * tokenizer.h - CLIP's byte-level BPE tokenizer (internal).
 *
 * Reproduces the token ids of CLIP's reference tokenizer, including the
 * text cleanup it runs first, so that a caption encoded here lands where the
 * released encoder put it. The pipeline, in the reference's order:
 *
 *   1. ftfy-style fixes, per line, repeated until nothing changes: HTML
 *      entities (only while no line so far contained '<'), C1 controls read
 *      as Windows-1252, Latin ligatures, full-/half-width forms, curly
 *      quotes, line breaks, ANSI terminal escapes, invisible control
 *      characters removed, NFC. ftfy's mojibake repair (re-decoding text
 *      that was decoded with the wrong codec) is not done.
 *   2. html.unescape twice (Python's rules, semicolon-less legacy names and
 *      numeric references included).
 *   3. Whitespace (Python's str.isspace set) collapsed to one space, ends
 *      stripped; full Unicode lowercase (U+0130 and final sigma included).
 *   4. Pre-tokenisation by CLIP's pattern; control characters that survive
 *      step 1 (e.g. U+0081) are symbols, as in the reference.
 *   5. Each piece's UTF-8 bytes mapped to byte symbols, "</w>" on the last,
 *      pairs merged lowest rank first.
 *
 * Named entities supported: the 252 HTML 4 entities, &apos;, and every
 * HTML5 name accepted without a semicolon (AMP, COPY, GT, LT, QUOT, REG);
 * ftfy's all-caps forms (&EACUTE;) of the lowercase ones. Other HTML5-only
 * names (&check; ...) are left as text.
 *
 * A tokenizer is read-only after hydb_tokenizer_new and may be shared by
 * threads.
 */
#ifndef HYDB_ENCODER_TOKENIZER_H
#define HYDB_ENCODER_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

/* The ids that are not merges: 256 byte symbols, the same 256 with "</w>",
 * and the two specials; a vocabulary of V ids holds V - this many merges. */
#define HYDB_TOKENIZER_FIXED_IDS 514
/* CLIP's vocabulary: 256 bytes, 256 bytes + "</w>", 48894 merges, 2 specials. */
#define HYDB_CLIP_MERGES 48894
#define HYDB_CLIP_VOCAB 49408
#define HYDB_CLIP_CONTEXT 77

typedef struct hydb_tokenizer hydb_tokenizer;

/**
 * Build a tokenizer from merges text (len bytes, one "a b" per line; a first
 * line containing "#version" is skipped, as CLIP's own file's first line is
 * '"bpe_simple_vocab_16e6.txt#version: 0.2'; a final newline is allowed).
 * Only the first max_merges merges are used; 0 = all. The vocabulary is
 * 512 byte symbols, one entry per merge, then <|startoftext|> and
 * <|endoftext|>. Errors: HYDB_EFORMAT (line number named), HYDB_ENOMEM.
 * Free with hydb_tokenizer_free.
 */
int hydb_tokenizer_new(hydb_tokenizer **out, const char *merges, size_t len,
		       size_t max_merges);
void hydb_tokenizer_free(hydb_tokenizer *t);

size_t hydb_tokenizer_vocab_size(const hydb_tokenizer *t);
/* <|startoftext|> = vocab_size - 2, <|endoftext|> = vocab_size - 1. */
int32_t hydb_tokenizer_bos(const hydb_tokenizer *t);
int32_t hydb_tokenizer_eos(const hydb_tokenizer *t);

/**
 * Tokenise text (len bytes of UTF-8) into ids[context]:
 * [BOS, up to context-2 tokens, EOS], the rest padded with EOS. Longer token
 * streams are cut so that EOS stays last. *n_used (may be NULL) receives the
 * number of ids up to and including EOS. context must be at least 2.
 * Errors: HYDB_ETOOBIG (len > HYDB_MAX_CAPTION), HYDB_EUTF8 (invalid UTF-8
 * or NUL, byte offset named), HYDB_EINVAL, HYDB_ENOMEM.
 */
int hydb_tokenize(const hydb_tokenizer *t, const char *text, size_t len,
		  int32_t *ids, size_t context, size_t *n_used);

/**
 * The vocabulary string of a token as CLIP spells it (bytes shown through
 * the GPT-2 byte-to-unicode map, "</w>" marking a word end), for debugging
 * output. Static to the tokenizer; NULL for an id out of range.
 */
const char *hydb_tokenizer_token(const hydb_tokenizer *t, int32_t id);

/**
 * Clean text the way CLIP does before pre-tokenisation (steps 1-3 above).
 * *out receives a malloc'd NUL-terminated UTF-8 string (free with free()),
 * *out_len its length. Same errors as hydb_tokenize.
 */
int hydb_tokenizer_clean(char **out, size_t *out_len, const char *text,
			 size_t len);

#endif /* HYDB_ENCODER_TOKENIZER_H */
