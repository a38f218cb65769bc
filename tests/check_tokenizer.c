/*
 * check_tokenizer.c - CLIP tokenizer: exact ids against the reference
 * vectors, cleanup rules, truncation and error paths.
 *
 * The reference vectors need the shared fixtures ($HYDB_SRCDIR/../shared);
 * without them the self-contained tests still run and the program then
 * exits 77 (skip) so the missing fixtures are visible.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "encoder/tokenizer.h"
#include "base/base.h"

/* ---- a tiny JSON-lines reader for {"text": "...", "ids": [...]} ---------- */

struct vec {
	char *text;
	size_t text_len;
	int32_t ids[512];
	size_t n_ids;
};

static const char *skip_ws(const char *p)
{
	while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
		p++;
	return p;
}

static int hex4(const char *p, unsigned *v)
{
	*v = 0;
	for (int i = 0; i < 4; i++) {
		char c = p[i];
		unsigned d;
		if (c >= '0' && c <= '9')
			d = (unsigned)(c - '0');
		else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
			d = (unsigned)((c | 0x20) - 'a' + 10);
		else
			return -1;
		*v = *v * 16 + d;
	}
	return 0;
}

/* \uXXXX, joining a surrogate pair; *p is just past the 'u'. */
static int json_u_escape(const char **p, unsigned *cp)
{
	unsigned lo;
	if (hex4(*p, cp) < 0)
		return -1;
	*p += 4;
	if (*cp < 0xD800 || *cp > 0xDBFF)
		return 0;
	if ((*p)[0] != '\\' || (*p)[1] != 'u' || hex4(*p + 2, &lo) < 0 ||
	    lo < 0xDC00 || lo > 0xDFFF)
		return -1;
	*p += 6;
	*cp = 0x10000 + ((*cp - 0xD800) << 10) + (lo - 0xDC00);
	return 0;
}

static int json_escape(const char **p, char *out, size_t *n)
{
	const char *simple = "\"\"\\\\//b\bf\fn\nr\rt\t";
	char e = *(*p)++;
	unsigned cp;
	if (e == 'u') {
		if (json_u_escape(p, &cp) < 0)
			return -1;
		*n += hydb_utf8_put(out + *n, cp);
		return 0;
	}
	for (const char *s = simple; *s; s += 2)
		if (*s == e) {
			out[(*n)++] = s[1];
			return 0;
		}
	return -1;
}

/* A JSON string at *p (opening quote) into a malloc'd buffer. */
static int json_string(const char **p, char **out, size_t *out_len)
{
	const char *s = *p + 1;
	char *buf = malloc(strlen(s) * 2 + 8);
	size_t n = 0;
	if (**p != '"' || !buf)
		return free(buf), -1;
	while (*s && *s != '"') {
		if (*s != '\\') {
			buf[n++] = *s++;
			continue;
		}
		s++;
		if (json_escape(&s, buf, &n) < 0)
			return free(buf), -1;
	}
	if (*s != '"')
		return free(buf), -1;
	buf[n] = '\0';
	*out = buf;
	*out_len = n;
	*p = s + 1;
	return 0;
}

static int json_ids(const char **p, struct vec *v)
{
	const char *s = skip_ws(*p);
	if (*s++ != '[')
		return -1;
	v->n_ids = 0;
	for (s = skip_ws(s); *s != ']'; s = skip_ws(s)) {
		char *end;
		long x = strtol(s, &end, 10);
		if (end == s || v->n_ids == sizeof v->ids / sizeof v->ids[0])
			return -1;
		v->ids[v->n_ids++] = (int32_t)x;
		s = skip_ws(end);
		if (*s == ',')
			s++;
	}
	*p = s + 1;
	return 0;
}

static int json_line(const char *line, struct vec *v)
{
	const char *p = skip_ws(line);
	memset(v, 0, sizeof *v);
	if (*p++ != '{')
		return -1;
	for (;;) {
		char *key;
		size_t key_len;
		int rc;
		p = skip_ws(p);
		if (*p == '}')
			return v->text ? 0 : -1;
		if (json_string(&p, &key, &key_len) < 0)
			return -1;
		p = skip_ws(p);
		if (*p++ != ':')
			return free(key), -1;
		p = skip_ws(p);
		if (!strcmp(key, "text"))
			rc = json_string(&p, &v->text, &v->text_len);
		else if (!strcmp(key, "ids"))
			rc = json_ids(&p, v);
		else
			rc = -1;
		free(key);
		if (rc < 0)
			return -1;
		p = skip_ws(p);
		if (*p == ',')
			p++;
	}
}

/* ---- fixtures --------------------------------------------------------------- */

static char shared_dir[4096];

static int have_shared(void)
{
	const char *src = getenv("HYDB_SRCDIR");
	FILE *f;
	char probe[4200];
	snprintf(shared_dir, sizeof shared_dir, "%s/../shared", src ? src : "..");
	snprintf(probe, sizeof probe, "%s/fixtures/clip_tokenizer_vectors.jsonl", shared_dir);
	if (!(f = fopen(probe, "r")))
		return 0;
	fclose(f);
	return 1;
}

static char *read_gz(const char *path, size_t *len)
{
	gzFile g = gzopen(path, "rb");
	size_t cap = 1 << 20, n = 0;
	char *buf = malloc(cap);
	int r;
	if (!g || !buf)
		return NULL;
	while ((r = gzread(g, buf + n, (unsigned)(cap - n))) > 0) {
		n += (size_t)r;
		if (n == cap)
			buf = realloc(buf, cap *= 2);
	}
	gzclose(g);
	*len = n;
	return buf;
}

static hydb_tokenizer *clip_tokenizer(void)
{
	char path[4200];
	size_t len;
	char *merges;
	hydb_tokenizer *t = NULL;
	snprintf(path, sizeof path, "%s/clip/bpe_simple_vocab_16e6.txt.gz", shared_dir);
	merges = read_gz(path, &len);
	ck_assert_msg(merges != NULL, "cannot read %s", path);
	ck_assert_int_eq(hydb_tokenizer_new(&t, merges, len, HYDB_CLIP_MERGES), 0);
	free(merges);
	return t;
}

static void format_ids(char *out, size_t cap, const int32_t *ids, size_t n)
{
	size_t used = 0;
	out[0] = '\0';
	for (size_t i = 0; i < n && used + 16 < cap; i++)
		used += (size_t)snprintf(out + used, cap - used, "%s%d", i ? "," : "", ids[i]);
}

START_TEST(test_clip_vectors)
{
	char path[4200], line[65536];
	hydb_tokenizer *t = clip_tokenizer();
	FILE *f;
	size_t total = 0, passed = 0;
	ck_assert_uint_eq(hydb_tokenizer_vocab_size(t), HYDB_CLIP_VOCAB);
	ck_assert_str_eq(hydb_tokenizer_token(t, 320), "a</w>");
	ck_assert_str_eq(hydb_tokenizer_token(t, 2368), "cat</w>");
	snprintf(path, sizeof path, "%s/fixtures/clip_tokenizer_vectors.jsonl", shared_dir);
	f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	while (fgets(line, sizeof line, f)) {
		struct vec v;
		int32_t ids[HYDB_CLIP_CONTEXT];
		size_t used = 0;
		if (skip_ws(line)[0] == '\0')
			continue;
		total++;
		ck_assert_msg(json_line(line, &v) == 0, "fixture line %zu: bad JSON", total);
		ck_assert_int_eq(hydb_tokenize(t, v.text, v.text_len, ids, HYDB_CLIP_CONTEXT, &used), 0);
		if (used == v.n_ids && !memcmp(ids, v.ids, used * sizeof ids[0])) {
			passed++;
		} else {
			char got[2048], want[2048];
			format_ids(got, sizeof got, ids, used);
			format_ids(want, sizeof want, v.ids, v.n_ids);
			fprintf(stderr, "fixture line %zu: %s\n  want %s\n  got  %s\n", total,
				v.text, want, got);
		}
		free(v.text);
	}
	fclose(f);
	printf("clip tokenizer fixtures: %zu of %zu lines passed\n", passed, total);
	ck_assert_uint_gt(total, 0);
	ck_assert_uint_eq(passed, total);
	hydb_tokenizer_free(t);
}
END_TEST

/* The reference pads to 77 with the end token and cuts long captions to
 * [start, first 75 tokens, end]. */
START_TEST(test_clip_truncation)
{
	char text[2000] = "";
	int32_t ids[HYDB_CLIP_CONTEXT];
	size_t used;
	hydb_tokenizer *t = clip_tokenizer();
	for (int i = 0; i < 100; i++)
		strcat(text, i % 2 ? "dog " : "cat ");
	ck_assert_int_eq(hydb_tokenize(t, text, strlen(text), ids, HYDB_CLIP_CONTEXT, &used), 0);
	ck_assert_uint_eq(used, 77);
	ck_assert_int_eq(ids[0], 49406);
	ck_assert_int_eq(ids[1], 2368);
	ck_assert_int_eq(ids[2], 1929);
	ck_assert_int_eq(ids[75], 2368); /* the 75th word, a cat; the rest is cut */
	ck_assert_int_eq(ids[76], 49407);
	hydb_tokenizer_free(t);
}
END_TEST

/* The reference, run with $PYTHON3 from a temporary file. */
static const char ref_py[] =
	"# Reference ids for random captions: CLIP's cleanup and BPE in Python, with\n"
	"# only the ftfy fixes the generated text can need (NFC, ligatures).\n"
	"import gzip, html, random, sys, unicodedata\n"
	"try:\n"
	"    import regex\n"
	"except ImportError:\n"
	"    print(\"SKIP python module 'regex' missing (Debian: python3-regex)\")\n"
	"    sys.exit(0)\n"
	"\n"
	"def byte_chars():\n"
	"    keep = [b for b in range(256) if 0x21 <= b <= 0x7E or 0xA1 <= b <= 0xAC or b >= 0xAE]\n"
	"    rest = [b for b in range(256) if b not in keep]\n"
	"    table = {b: chr(b) for b in keep}\n"
	"    table.update({b: chr(256 + i) for i, b in enumerate(rest)})\n"
	"    return [table[b] for b in keep + rest], table\n"
	"\n"
	"order, byte_char = byte_chars()\n"
	"lines = gzip.open(sys.argv[1]).read().decode(\"utf-8\").split(\"\\n\")[1:48895]\n"
	"pairs = [tuple(l.split()) for l in lines]\n"
	"words = order + [c + \"</w>\" for c in order] + [\"\".join(p) for p in pairs]\n"
	"words += [\"<|startoftext|>\", \"<|endoftext|>\"]\n"
	"ids = {w: i for i, w in enumerate(words)}\n"
	"rank = {p: i for i, p in enumerate(pairs)}\n"
	"pattern = regex.compile(r\"<\\|startoftext\\|>|<\\|endoftext\\|>|'s|'t|'re|'ve|'m|'ll|'d|\"\n"
	"                        r\"[\\p{L}]+|[\\p{N}]|[^\\s\\p{L}\\p{N}]+\", regex.IGNORECASE)\n"
	"LIG = {0x132: \"IJ\", 0x133: \"ij\", 0x149: \"'n\", 0x1C4: \"D\\u017d\", 0x1C5: \"D\\u017e\",\n"
	"       0x1C6: \"d\\u017e\", 0x1C7: \"LJ\", 0x1C8: \"Lj\", 0x1C9: \"lj\", 0x1CA: \"NJ\",\n"
	"       0x1CB: \"Nj\", 0x1CC: \"nj\", 0x1F1: \"DZ\", 0x1F2: \"Dz\", 0x1F3: \"dz\"}\n"
	"\n"
	"def merge(piece):\n"
	"    if piece in (\"<|startoftext|>\", \"<|endoftext|>\"):\n"
	"        return [piece]\n"
	"    sym = list(piece[:-1]) + [piece[-1] + \"</w>\"]\n"
	"    while len(sym) > 1:\n"
	"        best = min(zip(sym, sym[1:]), key=lambda p: rank.get(p, 1 << 30))\n"
	"        if best not in rank:\n"
	"            break\n"
	"        out, i = [], 0\n"
	"        while i < len(sym):\n"
	"            if i + 1 < len(sym) and (sym[i], sym[i + 1]) == best:\n"
	"                out.append(sym[i] + sym[i + 1])\n"
	"                i += 2\n"
	"            else:\n"
	"                out.append(sym[i])\n"
	"                i += 1\n"
	"        sym = out\n"
	"    return sym\n"
	"\n"
	"def encode(text):\n"
	"    text = unicodedata.normalize(\"NFC\", text.translate(LIG))\n"
	"    text = html.unescape(html.unescape(text)).strip()\n"
	"    text = regex.sub(r\"\\s+\", \" \", text).strip().lower()\n"
	"    out = []\n"
	"    for piece in pattern.findall(text):\n"
	"        out += [ids[s] for s in merge(\"\".join(byte_char[b] for b in piece.encode()))]\n"
	"    return [49406] + out[:75] + [49407]\n"
	"\n"
	"WORDS = [\"a photo of\", \"the\", \"dog's\", \"can't\", \"we'll\", \"they're\", \"I'm\", \"you'd\",\n"
	"         \"x'S\", \"ice-cream\", \"3.14159\", \"\\u00bd\", \"\\u00b2\", \"\\u0663\", \"\\u216b\", \"caf\\u00e9\",\n"
	"         \"na\\u00efve\", \"\\u00c6SIR\", \"Stra\\u00dfe\", \"\\u0130stanbul\", \"\\u039f\\u0394\\u039f\\u03a3\",\n"
	"         \"\\u043c\\u043e\\u0441\\u043a\\u0432\\u0430\", \"\\u65e5\\u672c\\u8a9e\", \"\\ud55c\\uad6d\\uc5b4\",\n"
	"         \"\\U0001F600\", \"\\U0001F44D\\U0001F3FD\", \"e\\u0301\", \"\\u01c5\", \"&amp;\", \"&lt;b&gt;\",\n"
	"         \"&nbsp;\", \"&eacute;\", \"&#233;\", \"&#x1F600;\", \"&copy;2024\", \"C++\", \"#tag\", \"$5\",\n"
	"         \"100%\", \"...\", \"?!\", \"(x)\", \"a_b\", \"a\\\\b\", \"'\", \"''\", \"\\t\", \"\\u00a0\", \"\\u2003\",\n"
	"         \"<|endoftext|>\", \"\\u00ad\", \"\\u0149\"]\n"
	"LETTERS = \"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,'-\\u00e9\\u00fc\\u00df\\u00e6\"\n"
	"RANGES = [(0x20, 0x7E), (0xA0, 0x24F), (0x370, 0x52F), (0x3040, 0x30FF), (0x4E00, 0x4FFF),\n"
	"          (0x1F300, 0x1F64F)]\n"
	"\n"
	"def sample(rng):\n"
	"    r = rng.random()\n"
	"    if r < 0.5:\n"
	"        return \" \".join(rng.choice(WORDS) for _ in range(rng.randint(1, 14)))\n"
	"    if r < 0.8:\n"
	"        return \"\".join(rng.choice(LETTERS) for _ in range(rng.randint(1, 80)))\n"
	"    return \"\".join(chr(rng.randint(*rng.choice(RANGES))) for _ in range(rng.randint(1, 40)))\n"
	"\n"
	"rng = random.Random(int(sys.argv[3]))\n"
	"for _ in range(int(sys.argv[2])):\n"
	"    s = sample(rng)\n"
	"    print(s.encode().hex() + \"\\t\" + \" \".join(map(str, encode(s))))\n";

static int hex_decode(char *out, const char *hex, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned v;
		if (sscanf(hex + 2 * i, "%2x", &v) != 1)
			return -1;
		out[i] = (char)v;
	}
	return 0;
}

/* One reference line "<hex text>\t<ids>": 1 if our ids match. */
static int compare_ref_line(hydb_tokenizer *t, char *line, size_t line_no)
{
	static char text[65536];
	char *tab = strchr(line, '\t'), *p;
	int32_t ids[HYDB_CLIP_CONTEXT], want[HYDB_CLIP_CONTEXT];
	size_t n, used, n_want = 0;
	ck_assert_msg(tab && (size_t)(tab - line) / 2 < sizeof text, "reference line %zu: bad", line_no);
	n = (size_t)(tab - line) / 2;
	ck_assert_int_eq(hex_decode(text, line, n), 0);
	for (p = tab + 1; n_want < HYDB_CLIP_CONTEXT;) {
		char *end;
		long v = strtol(p, &end, 10);
		if (end == p)
			break;
		want[n_want++] = (int32_t)v;
		p = end;
	}
	ck_assert_int_eq(hydb_tokenize(t, text, n, ids, HYDB_CLIP_CONTEXT, &used), 0);
	if (used == n_want && !memcmp(ids, want, used * sizeof ids[0]))
		return 1;
	fprintf(stderr, "reference line %zu differs: %.*s\n", line_no, (int)n, text);
	return 0;
}

/* Random captions (words, contractions, entities, scripts, emoji) against
 * a Python rendering of the reference, run by $PYTHON3 if it has 'regex'. */
START_TEST(test_clip_random_vs_python)
{
	char script[] = "/tmp/hydb_tokref_XXXXXX", cmd[9000];
	static char line[1 << 20];
	const char *py = getenv("PYTHON3");
	hydb_tokenizer *t = clip_tokenizer();
	size_t total = 0, passed = 0;
	int fd = mkstemp(script);
	FILE *p;
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, ref_py, sizeof ref_py - 1), (ssize_t)(sizeof ref_py - 1));
	close(fd);
	snprintf(cmd, sizeof cmd, "'%s' %s '%s/clip/bpe_simple_vocab_16e6.txt.gz' 1500 20240",
		 py && *py ? py : "/usr/bin/python3", script, shared_dir);
	p = popen(cmd, "r");
	ck_assert_ptr_nonnull(p);
	while (fgets(line, sizeof line, p)) {
		/* main() ran this only after finding the reference's Python;
		 * a skip now would be a pass with nothing compared. */
		ck_assert_msg(strncmp(line, "SKIP", 4), "Python reference unavailable: %s", line + 5);
		passed += (size_t)compare_ref_line(t, line, ++total);
	}
	ck_assert_int_eq(pclose(p), 0);
	unlink(script);
	printf("random captions vs Python: %zu of %zu passed\n", passed, total);
	ck_assert_uint_gt(total, 0);
	ck_assert_uint_eq(passed, total);
	hydb_tokenizer_free(t);
}
END_TEST

/* ---- a self-made vocabulary ------------------------------------------------ */

static const char tiny_merges[] =
	"#version: 0.2\n"
	"c a\n"
	"ca t</w>\n"
	"d o\n"
	"do g</w>\n"
	"a a\n";

static hydb_tokenizer *tiny(void)
{
	hydb_tokenizer *t = NULL;
	ck_assert_int_eq(hydb_tokenizer_new(&t, tiny_merges, strlen(tiny_merges), 0), 0);
	return t;
}

static size_t tok(hydb_tokenizer *t, const char *s, int32_t *ids, size_t context)
{
	size_t used = 0;
	ck_assert_int_eq(hydb_tokenize(t, s, strlen(s), ids, context, &used), 0);
	return used;
}

START_TEST(test_tiny_vocab)
{
	hydb_tokenizer *t = tiny();
	int32_t ids[8];
	ck_assert_uint_eq(hydb_tokenizer_vocab_size(t), 512 + 5 + 2);
	ck_assert_int_eq(hydb_tokenizer_bos(t), 517);
	ck_assert_int_eq(hydb_tokenizer_eos(t), 518);
	ck_assert_str_eq(hydb_tokenizer_token(t, 513), "cat</w>");
	ck_assert_str_eq(hydb_tokenizer_token(t, 517), "<|startoftext|>");
	/* GPT-2's byte map: printable bytes keep their character, others move
	 * past U+00FF ("Ā" is byte 0). */
	ck_assert_str_eq(hydb_tokenizer_token(t, 0), "!");
	ck_assert_str_eq(hydb_tokenizer_token(t, 188), "\xc4\x80");
	ck_assert_ptr_null(hydb_tokenizer_token(t, 519));
	ck_assert_uint_eq(tok(t, "A Cat dog", ids, 8), 5);
	ck_assert_int_eq(ids[0], 517);
	ck_assert_int_eq(ids[1], 320); /* "a</w>": byte 'a' is the 65th printable */
	ck_assert_int_eq(ids[2], 513);
	ck_assert_int_eq(ids[3], 515);
	ck_assert_int_eq(ids[4], 518);
	ck_assert_int_eq(ids[5], 518); /* padding */
	ck_assert_int_eq(ids[7], 518);
	/* "aaa": the pair (a, a) merges left to right, leaving "a</w>". */
	ck_assert_uint_eq(tok(t, "aaa", ids, 8), 4);
	ck_assert_int_eq(ids[1], 516);
	ck_assert_int_eq(ids[2], 320);
	/* A space is byte 0x20, shown as U+0120; markers map to their ids. */
	ck_assert_uint_eq(tok(t, "cat<|endoftext|>", ids, 8), 4);
	ck_assert_int_eq(ids[2], 518);
	hydb_tokenizer_free(t);
}
END_TEST

START_TEST(test_tiny_truncation)
{
	hydb_tokenizer *t = tiny();
	int32_t ids[5];
	ck_assert_uint_eq(tok(t, "cat dog cat dog", ids, 5), 5);
	ck_assert_int_eq(ids[0], 517);
	ck_assert_int_eq(ids[1], 513);
	ck_assert_int_eq(ids[2], 515);
	ck_assert_int_eq(ids[3], 513);
	ck_assert_int_eq(ids[4], 518);
	ck_assert_uint_eq(tok(t, "", ids, 2), 2);
	ck_assert_int_eq(ids[1], 518);
	ck_assert_int_eq(hydb_tokenize(t, "a", 1, ids, 1, NULL), HYDB_EINVAL);
	hydb_tokenizer_free(t);
}
END_TEST

static void expect_utf8_error(hydb_tokenizer *t, const char *s, size_t n, const char *where)
{
	int32_t ids[8];
	ck_assert_int_eq(hydb_tokenize(t, s, n, ids, 8, NULL), HYDB_EUTF8);
	ck_assert_msg(strstr(hydb_last_error(), where), "message '%s' lacks '%s'",
		      hydb_last_error(), where);
}

START_TEST(test_invalid_utf8)
{
	hydb_tokenizer *t = tiny();
	expect_utf8_error(t, "ab\xff", 3, "offset 2");
	expect_utf8_error(t, "a\0b", 3, "NUL at byte offset 1");
	/* Overlong '/', a surrogate, and a truncated sequence. */
	expect_utf8_error(t, "\xc0\xaf", 2, "offset 0");
	expect_utf8_error(t, "x\xed\xa0\x80", 4, "offset 1");
	expect_utf8_error(t, "caf\xc3", 4, "offset 3");
	hydb_tokenizer_free(t);
}
END_TEST

START_TEST(test_oversize)
{
	hydb_tokenizer *t = tiny();
	int32_t ids[8];
	size_t n = HYDB_MAX_CAPTION + 1;
	char *big = malloc(n);
	memset(big, 'a', n);
	ck_assert_int_eq(hydb_tokenize(t, big, n, ids, 8, NULL), HYDB_ETOOBIG);
	/* At the limit it works, and one long word still merges quickly. */
	ck_assert_int_eq(hydb_tokenize(t, big, n - 1, ids, 8, NULL), 0);
	ck_assert_int_eq(ids[1], 516);
	free(big);
	hydb_tokenizer_free(t);
}
END_TEST

static void expect_bad_merges(const char *text, const char *where)
{
	hydb_tokenizer *t = (hydb_tokenizer *)1;
	ck_assert_int_eq(hydb_tokenizer_new(&t, text, strlen(text), 0), HYDB_EFORMAT);
	ck_assert_ptr_null(t);
	ck_assert_msg(strstr(hydb_last_error(), where), "message '%s' lacks '%s'",
		      hydb_last_error(), where);
}

START_TEST(test_malformed_merges)
{
	hydb_tokenizer *t = NULL;
	expect_bad_merges("a b\nabc\n", "line 2");
	expect_bad_merges("#version: 0.2\na b\nc d e\n", "line 3");
	expect_bad_merges("a b\n\nc d\n", "line 2");
	expect_bad_merges("a b\nc \xff\n", "line 2");
	expect_bad_merges(" b\n", "line 1");
	/* "#version" only counts on the first line. */
	expect_bad_merges("a b\n#version\n", "line 2");
	/* A limit stops reading before the bad line; CRLF ends are accepted. */
	ck_assert_int_eq(hydb_tokenizer_new(&t, "a b\r\nc d\nbad\n", 13, 2), 0);
	ck_assert_uint_eq(hydb_tokenizer_vocab_size(t), 516);
	ck_assert_str_eq(hydb_tokenizer_token(t, 512), "ab");
	hydb_tokenizer_free(t);
}
END_TEST

static void expect_clean(const char *in, const char *want)
{
	char *out = NULL;
	size_t len = 0;
	ck_assert_int_eq(hydb_tokenizer_clean(&out, &len, in, strlen(in)), 0);
	ck_assert_msg(!strcmp(out, want), "clean('%s') = '%s', want '%s'", in, out, want);
	ck_assert_uint_eq(len, strlen(want));
	free(out);
}

START_TEST(test_cleanup)
{
	/* ftfy: entities, ligatures, full width, curly quotes. */
	expect_clean("Caf&eacute; &#x41;&#66; \xef\xac\x81ne \xe2\x80\x9cq\xe2\x80\x9d "
		     "\xef\xbc\xa1\xef\xbc\xa2",
		     "caf\xc3\xa9 ab fine \"q\" ab");
	/* ftfy repeats until stable, then html.unescape runs twice more. */
	expect_clean("&amp;amp;amp;amp;lt;", "<");
	/* A '<' in a line turns ftfy's entity decoding off, html.unescape
	 * still decodes twice. */
	expect_clean("<b> &amp;amp;amp;lt;", "<b> &amp;lt;");
	/* Python decodes legacy names without a semicolon, by longest prefix. */
	expect_clean("&ampx &copy2024 &notit;", "&x \xc2\xa9" "2024 \xc2\xacit;");
	/* ftfy's all-caps names. */
	expect_clean("P&EACUTE;REZ STRA&SZLIG;E", "p\xc3\xa9rez strasse");
	/* Numeric references Python maps specially. */
	expect_clean("&#128;&#0;&#1;x&#x110000;", "\xe2\x82\xac\xef\xbf\xbdx\xef\xbf\xbd");
	/* Controls ftfy drops, terminal escapes, C1 read as Windows-1252. */
	expect_clean("a\x01" "b \x1b[31mred\x1b[0m \xc2\x93q\xc2\x94", "ab red \"q\"");
	/* Whitespace collapse includes NBSP and the ideographic space. */
	expect_clean("  a \xc2\xa0\xe3\x80\x80\t\n b  ", "a b");
	/* Final sigma and dotted capital I. */
	expect_clean("\xce\x9f\xce\x94\xce\x9f\xce\xa3 \xce\xa3", "\xce\xbf\xce\xb4\xce\xbf\xcf\x82 \xcf\x83");
	expect_clean("\xc4\xb0", "i\xcc\x87");
	/* NFC composes a combining accent. */
	expect_clean("e\xcc\x81", "\xc3\xa9");
	/* A control character ftfy keeps stays a symbol. */
	expect_clean("x\xc2\x81y", "x\xc2\x81y");
}
END_TEST

/* The random-caption reference needs Python with 'regex' (python3-regex). */
static int have_python_reference(void)
{
	const char *py = getenv("PYTHON3");
	char cmd[4200];
	snprintf(cmd, sizeof cmd, "'%s' -c 'import regex' >/dev/null 2>&1", py && *py ? py : "/usr/bin/python3");
	return system(cmd) == 0;
}

static Suite *tokenizer_suite(int with_clip, int with_python)
{
	Suite *s = suite_create("tokenizer");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_tiny_vocab);
	tcase_add_test(tc, test_tiny_truncation);
	tcase_add_test(tc, test_invalid_utf8);
	tcase_add_test(tc, test_oversize);
	tcase_add_test(tc, test_malformed_merges);
	tcase_add_test(tc, test_cleanup);
	suite_add_tcase(s, tc);
	if (with_clip) {
		TCase *clip = tcase_create("clip");
		tcase_set_timeout(clip, 60);
		tcase_add_test(clip, test_clip_vectors);
		tcase_add_test(clip, test_clip_truncation);
		if (with_python)
			tcase_add_test(clip, test_clip_random_vs_python);
		suite_add_tcase(s, clip);
	}
	return s;
}

int main(void)
{
	int with_clip = have_shared(), with_python = have_python_reference();
	SRunner *sr = srunner_create(tokenizer_suite(with_clip, with_python));
	int failed;
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	if (failed)
		return EXIT_FAILURE;
	if (!with_clip) {
		printf("shared fixtures not found under %s: CLIP vectors skipped\n", shared_dir);
		return 77;
	}
	if (!with_python) {
		printf("python3 with 'regex' not found: random captions against the Python reference skipped\n");
		return 77;
	}
	return EXIT_SUCCESS;
}
