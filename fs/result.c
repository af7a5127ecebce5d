/* fs/result.c — result.json documents the daemon writes itself (a child that
 * died, timed out or was never started, a request it refused), through the
 * one serializer shared with `instar resize --output=json` (result_json_lib),
 * and the errno names of that schema read back from a child. */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
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
    {EACCES, "EACCES"}, {EMEDIUMTYPE, "EMEDIUMTYPE"}, {ECANCELED, "ECANCELED"},
    {EAGAIN, "EAGAIN"},
};

static const char *errno_name(int errnum)
{
	for (size_t i = 0; i < sizeof(errno_names) / sizeof(errno_names[0]); i++)
		if (errno_names[i].errnum == errnum)
			return errno_names[i].name;
	return NULL;
}

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
	/* The shared serializer names only the errnos instar itself returns;
	 * the daemon's own (ECANCELED at shutdown, EAGAIN) are set here so that
	 * result.json says the errno the writer got. */
	if (errno_name(errnum) && strcmp(errno_name(errnum), vmm_result_errno_name(errnum)) != 0) {
		json_t *doc = json_loads(json, 0, NULL);
		json_t *err = doc ? json_object_get(doc, "error") : NULL;
		char *s = NULL;

		if (json_is_object(err) &&
		    json_object_set_new(err, "errno", json_string(errno_name(errnum))) == 0)
			s = json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER);
		json_decref(doc);
		if (s) {
			size_t n = strlen(s);
			char *out = malloc(n + 2);

			if (out) {
				memcpy(out, s, n);
				memcpy(out + n, "\n", 2);
				free(json);
				json = out;
			}
			free(s);
		}
	}
	return json;
}
