/* tests/unit/gen_data.h — the kinds of data the decoder tests compress
 * (tests/unit/test_inflate.c) and bench/decoders.c times: random bytes,
 * zeros, text of a small vocabulary, a short pattern repeated with stray
 * bytes. One deterministic generator (xorshift64*) for both. */
#ifndef TESTS_UNIT_GEN_DATA_H
#define TESTS_UNIT_GEN_DATA_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

enum kind { K_RANDOM, K_ZEROS, K_TEXT, K_PATTERN, K_COUNT };
static const char *const kind_names[K_COUNT] = {"random", "zeros", "text", "pattern"};

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static inline uint64_t rng(void)
{
	/* xorshift64* */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dull;
}

static inline uint32_t rng_below(uint32_t n)
{
	return (uint32_t)(rng() % n);
}

static inline void gen(enum kind k, uint8_t *buf, size_t n)
{
	static const char *const words[] = {
	    "the ",   "qcow2 ",	   "cluster ", "of ",	 "a ",	    "virtual ", "disk ",
	    "image ", "is ",	   "resized ", "when ",	 "grows ",  "and\n",	"L2 ",
	    "table ", "refcount ", "block ",   "entry ", "header ", "sector ",	"0x1f, "};
	size_t i = 0;

	switch (k) {
	case K_RANDOM:
		for (; i < n; i++)
			buf[i] = (uint8_t)rng();
		break;
	case K_ZEROS:
		memset(buf, 0, n);
		break;
	case K_TEXT:
		while (i < n) {
			const char *w = words[rng_below(sizeof(words) / sizeof(words[0]))];

			for (; *w && i < n; w++)
				buf[i++] = (uint8_t)*w;
		}
		break;
	default: {
		/* A pattern of 1..300 bytes repeated, with a stray byte now and
		 * then so matches come in every length and distance. */
		size_t p = 1 + rng_below(300);

		for (; i < n; i++)
			buf[i] = i < p ? (uint8_t)rng() : buf[i - p];
		for (i = 0; i < n / 997; i++)
			buf[rng_below((uint32_t)n)] = (uint8_t)rng();
		break;
	}
	}
}

#endif
