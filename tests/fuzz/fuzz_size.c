/* tests/fuzz/fuzz_size.c — libFuzzer target for the SIZE grammar
 * (shared/size.c): arbitrary text; checks the parser's own invariants. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "size.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct instar_size s;
	char *str;
	int rc;

	if (size > 4096)
		return 0;
	str = malloc(size + 1);
	if (!str)
		abort();
	memcpy(str, data, size);
	str[size] = '\0';
	rc = instar_size_parse(str, &s);
	if (rc != INSTAR_SIZE_OK && rc != INSTAR_SIZE_INVALID && rc != INSTAR_SIZE_OUT_OF_RANGE)
		abort();
	if (rc == INSTAR_SIZE_OK) {
		uint64_t v;
		bool hex;

		/* The number points into the input, after at most one sign. */
		if (s.number < str || s.number > str + 1)
			abort();
		if (s.relative < -1 || s.relative > 1)
			abort();
		/* Parsing the stripped number alone gives the same value. */
		if (instar_strtosz(s.number, &v, &hex) != INSTAR_SIZE_OK || v != s.value)
			abort();
		(void)instar_size_resolve(&s, 0);
		(void)instar_size_resolve(&s, UINT64_MAX - 511);
		(void)instar_size_resolve(&s, 1u << 30);
	}
	free(str);
	return 0;
}
