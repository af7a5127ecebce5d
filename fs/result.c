/* fs/result.c — result.json documents the daemon writes itself (a child that
 * died, timed out or was never started), in the schema of
 * `instar resize --output=json`, and the errno names of that schema. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "instarfs.h"

static const struct {
	int errnum;
	const char *name;
} errno_names[] = {
    {EINVAL, "EINVAL"},		{ERANGE, "ERANGE"}, {EPERM, "EPERM"},	      {EBUSY, "EBUSY"},
    {EOPNOTSUPP, "EOPNOTSUPP"}, {ENOSPC, "ENOSPC"}, {ETIMEDOUT, "ETIMEDOUT"}, {EIO, "EIO"},
    {ENOENT, "ENOENT"},		{EACCES, "EACCES"},
};

int ifs_errno_from_name(const char *name)
{
	if (!name)
		return EIO;
	if (strcmp(name, "ENOTSUP") == 0)
		return EOPNOTSUPP;
	for (size_t i = 0; i < sizeof(errno_names) / sizeof(errno_names[0]); i++)
		if (strcmp(name, errno_names[i].name) == 0)
			return errno_names[i].errnum;
	return EIO;
}

const char *ifs_errno_name(int errnum)
{
	for (size_t i = 0; i < sizeof(errno_names) / sizeof(errno_names[0]); i++)
		if (errno_names[i].errnum == errnum)
			return errno_names[i].name;
	return "EIO";
}

char *ifs_result_error(const char *filename, const char *code, int errnum, const char *message)
{
	json_t *o, *e;
	char *s, *out = NULL;
	size_t n;

	o = json_object();
	e = json_object();
	if (!o || !e)
		goto out;
	/* json_string rejects invalid UTF-8: fall back to null rather than fail. */
	json_object_set_new(o, "filename", filename ? json_string(filename) : json_null());
	if (!json_object_get(o, "filename"))
		json_object_set_new(o, "filename", json_null());
	json_object_set_new(o, "target_format", json_null());
	json_object_set_new(o, "action", json_null());
	json_object_set_new(o, "old_virtual_size", json_null());
	json_object_set_new(o, "resolved_new_virtual_size", json_null());
	json_object_set_new(o, "file_size_before", json_null());
	json_object_set_new(o, "file_size_after", json_null());
	json_object_set_new(e, "code", json_string(code));
	json_object_set_new(e, "errno", json_string(ifs_errno_name(errnum)));
	json_object_set_new(e, "message", json_string(message ? message : ""));
	if (!json_object_get(e, "message"))
		json_object_set_new(e, "message", json_string("(message not UTF-8)"));
	json_object_set(o, "error", e);
	s = json_dumps(o, JSON_PRESERVE_ORDER | JSON_COMPACT);
	if (!s)
		goto out;
	n = strlen(s);
	out = malloc(n + 2);
	if (out) {
		memcpy(out, s, n);
		memcpy(out + n, "\n", 2);
	}
	free(s);
out:
	json_decref(e);
	json_decref(o);
	return out;
}
