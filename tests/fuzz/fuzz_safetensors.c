/*
 * fuzz_safetensors.c - the safetensors container check (encoder/
 * safetensors.h) straight from memory. Whatever it accepts, every tensor's
 * range must be readable and sized shape x dtype.
 */
#include "tests/fuzz/fuzz.h"

#include "encoder/safetensors.h"

static void check_entry(const hydb_st_file *st, const hydb_st_entry *e)
{
	size_t count = 1;
	volatile unsigned char sink = 0;
	FUZZ_CHECK(e->begin <= e->end && e->end <= st->data_size);
	for (int d = 0; d < e->ndim; d++)
		count *= (size_t)e->shape[d];
	FUZZ_CHECK(count == e->count);
	FUZZ_CHECK(e->count * hydb_st_dtype_size(e->dtype) == e->end - e->begin);
	if (e->end > e->begin)
		sink ^= st->data[e->begin] ^ st->data[e->end - 1];
	(void)sink;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	hydb_st_file st;
	const hydb_json *fmt;
	if (hydb_st_open(&st, data, size, "fuzz.safetensors") < 0)
		return 0;
	for (size_t i = 0; i < st.n_entries; i++)
		check_entry(&st, &st.entries[i]);
	fmt = hydb_st_meta(&st, "format");
	FUZZ_CHECK(!fmt || fmt->type == HYDB_JSON_STRING);
	hydb_st_close(&st);
	return 0;
}
