/* fs/result.c — result.json documents the daemon writes itself (a child that
 * died, timed out or was never started, a request it refused), through the
 * one serializer shared with `instar resize --output=json` (result_json_lib),
 * and the errno names of that schema read back from a child. */
#include <errno.h>
#include <string.h>

#include "instarfs.h"
#include "result_json.h"

static const struct {
	int errnum;
	const char *name;
} errno_names[] = {
    {EINVAL, "EINVAL"}, {ERANGE, "ERANGE"},	      {EPERM, "EPERM"},
    {EBUSY, "EBUSY"},	{EOPNOTSUPP, "EOPNOTSUPP"},   {ENOTSUP, "ENOTSUP"},
    {ENOSPC, "ENOSPC"}, {ETIMEDOUT, "ETIMEDOUT"},     {EIO, "EIO"},
    {EACCES, "EACCES"}, {EMEDIUMTYPE, "EMEDIUMTYPE"},
};

int ifs_errno_from_name(const char *name)
{
	if (!name)
		return EIO;
	for (size_t i = 0; i < sizeof(errno_names) / sizeof(errno_names[0]); i++)
		if (strcmp(name, errno_names[i].name) == 0)
			return errno_names[i].errnum;
	return EIO;
}

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
