/* fs/result.c — result.json documents the daemon writes itself (a child that
 * died, timed out or was never started, a request it refused), through the
 * one serializer shared with `instar resize --output=json` (result_json_lib). */
#include <errno.h>

#include "instarfs.h"
#include "result_json.h"

char *ifs_result_error(const char *filename, uint32_t code, int errnum, const char *message)
{
	struct vmm_result r;
	char *json;

	vmm_result_init(&r);
	r.filename = filename;
	r.error = code;
	r.errnum = errnum;
	r.message = message;
	if (vmm_result_json_render(&r, &json) < 0)
		return NULL;
	return json;
}
