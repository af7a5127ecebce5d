/* tests/fuzz/fuzz_request.c — libFuzzer target for instarfs's parser of the
 * words written to `size` (fs/request.c). */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "instarfs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct ifs_request req;
	char err[256] = "";
	int rc;

	rc = ifs_request_parse((const char *)data, size, &req, err, sizeof(err));
	if (rc != 0 && rc != -EINVAL && rc != -E2BIG && rc != -ERANGE)
		abort();
	if (memchr(err, '\0', sizeof(err)) == NULL)
		abort();
	if (rc == 0) {
		/* The size word lies inside the request's own buffer. */
		if (!req.size || req.size < req.buf || req.size >= req.buf + sizeof(req.buf))
			abort();
		if (req.prealloc < -1 || req.prealloc > 3)
			abort();
	}
	return 0;
}
