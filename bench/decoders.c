/* bench/decoders.c — decode time of one 2 MiB cluster for the guest's two
 * decoders (guest/plan/inflate.c, guest/plan/unzstd.c), on the host, over
 * four kinds of data. The host's zlib and libzstd encode the input (zlib as
 * qemu's qcow2 does: raw deflate, window 2^12, default level). The timings
 * are information, not a verdict: the unit suites check the decoded bytes;
 * here a wrong byte only stops the run (a wrong decoder's speed means
 * nothing). The data: tests/unit/gen_data.h, as the unit tests make it.
 *
 *   bench-decoders [RUNS]    (default 20; prints the best and the median)
 *
 * Built with the test suites (tests/meson.build, as bench-decoders). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>
#include <zstd.h>

#include "gen_data.h" /* tests/unit: the data kinds test_inflate.c uses */
#include "inflate.h"
#include "unzstd.h"

#define CLUSTER (2u << 20)

static _Alignas(8) uint8_t inflate_work[PLAN_INFLATE_WORK_SIZE];
static _Alignas(8) uint8_t unzstd_work[PLAN_UNZSTD_WORK_SIZE];
static void die(const char *what)
{
	fprintf(stderr, "bench-decoders: %s failed\n", what);
	exit(1);
}

static void *xmalloc(size_t n)
{
	void *p = malloc(n);

	if (!p) {
		perror("malloc");
		exit(1);
	}
	return p;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static size_t deflate_raw(const uint8_t *src, size_t n, uint8_t **out)
{
	z_stream z = {0};
	size_t cap;

	if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -12, 9, Z_DEFAULT_STRATEGY) != Z_OK)
		die("deflateInit2");
	cap = deflateBound(&z, (uLong)n) + 16;
	*out = xmalloc(cap);
	z.next_in = (Bytef *)(uintptr_t)src;
	z.avail_in = (uInt)n;
	z.next_out = *out;
	z.avail_out = (uInt)cap;
	if (deflate(&z, Z_FINISH) != Z_STREAM_END)
		die("deflate");
	deflateEnd(&z);
	return cap - z.avail_out;
}

static size_t zstd_frame(const uint8_t *src, size_t n, int level, uint8_t **out)
{
	size_t cap = ZSTD_compressBound(n), len;

	*out = xmalloc(cap);
	len = ZSTD_compress(*out, cap, src, n, level);
	if (ZSTD_isError(len))
		die("ZSTD_compress");
	return len;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Times RUNS decodes of c into out; src is what they must give. */
static void run(const char *dec, const char *what, const uint8_t *c, size_t clen,
		const uint8_t *src, uint8_t *out, int runs)
{
	double *t = xmalloc(sizeof(*t) * (size_t)runs);

	for (int r = 0; r < runs; r++) {
		double t0;
		int rc;

		memset(out, 0xee, CLUSTER);
		t0 = now();
		rc = dec[0] == 'i' ? plan_inflate(c, clen, out, CLUSTER, inflate_work)
				   : plan_unzstd(c, clen, out, CLUSTER, unzstd_work);
		t[r] = now() - t0;
		if (rc != 0 || memcmp(out, src, CLUSTER)) {
			fprintf(stderr, "bench-decoders: %s %s: wrong result (rc %d)\n", dec, what,
				rc);
			exit(1);
		}
	}
	qsort(t, (size_t)runs, sizeof(*t), cmp_double);
	printf("| %-7s | %-17s | %9zu | %7.3f | %9.3f | %11.0f |\n", dec, what, clen, t[0] * 1e3,
	       t[runs / 2] * 1e3, (double)CLUSTER / t[0] / 1e6);
	free(t);
}

int main(int argc, char **argv)
{
	int runs = argc > 1 ? atoi(argv[1]) : 20;
	uint8_t *src = xmalloc(CLUSTER), *out = xmalloc(CLUSTER), *c;
	char what[32];
	size_t clen;

	if (runs < 1 || runs > 100000) {
		fprintf(stderr, "usage: bench-decoders [RUNS]\n");
		return 2;
	}
	printf("One 2 MiB cluster, %d runs each.\n\n", runs);
	printf("| decoder | data              | input (B) | best ms | median ms | MB/s (best) |\n");
	printf("|---------|-------------------|-----------|---------|-----------|-------------|\n");
	for (int k = 0; k < K_COUNT; k++) {
		gen((enum kind)k, src, CLUSTER);
		clen = deflate_raw(src, CLUSTER, &c);
		run("inflate", kind_names[k], c, clen, src, out, runs);
		free(c);
		for (int level = 3; level <= 19; level += 16) {
			snprintf(what, sizeof(what), "%s, level %d", kind_names[k], level);
			clen = zstd_frame(src, CLUSTER, level, &c);
			run("unzstd", what, c, clen, src, out, runs);
			free(c);
		}
	}
	free(src);
	free(out);
	return 0;
}
