/* vmm/result_json.c — resize outcome as JSON (jansson); used by the CLI and
 * by instarfs for children that died before writing their own. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "abi_names.h"
#include "result_json.h"

void vmm_result_init(struct vmm_result *r)
{
	memset(r, 0, sizeof(*r));
	r->target_format = INSTAR_FMT_UNKNOWN;
	r->action = -1;
	r->old_virtual_size = VMM_RESULT_UNKNOWN;
	r->resolved_new_virtual_size = VMM_RESULT_UNKNOWN;
	r->file_size_before = VMM_RESULT_UNKNOWN;
	r->file_size_after = VMM_RESULT_UNKNOWN;
	r->error = INSTAR_OK;
}

int vmm_result_errno(uint32_t error)
{
	switch (error) {
	case INSTAR_OK:
		return 0;
	case INSTAR_ERR_INVALID_OPTION:
	case INSTAR_ERR_INVALID_NEW_SIZE:
	case INSTAR_ERR_PREALLOC_NOT_GROWING:
	case INSTAR_ERR_NOT_MULTIPLE_512:
		return EINVAL;
	case INSTAR_ERR_TOO_LARGE:
		return ERANGE;
	case INSTAR_ERR_SHRINK_WITHOUT_FLAG:
		return EPERM;
	case INSTAR_ERR_LOCKED:
		return EBUSY;
	case INSTAR_ERR_UNSUPPORTED_FORMAT:
	case INSTAR_ERR_UNSUPPORTED_SUBFORMAT:
	case INSTAR_ERR_UNSUPPORTED_SHRINK:
	case INSTAR_ERR_PREALLOCATION_UNSUPPORTED:
	case INSTAR_ERR_UNSUPPORTED_FEATURE:
		return EOPNOTSUPP;
	case INSTAR_ERR_NO_SPACE:
		return ENOSPC;
	case INSTAR_ERR_TIMEOUT:
		return ETIMEDOUT;
	default:
		return EIO;
	}
}

/* Every errno a result may name: the defaults above, those instar reports
 * itself (EACCES, EMEDIUMTYPE), and instarfs' own (ECANCELED at shutdown,
 * EAGAIN). ENOTSUP, the same number as EOPNOTSUPP on Linux, is only read. */
static const struct {
	int errnum;
	const char *name;
} vmm_errno_names[] = {
    {EINVAL, "EINVAL"}, {ERANGE, "ERANGE"},	      {EPERM, "EPERM"},
    {EBUSY, "EBUSY"},	{EOPNOTSUPP, "EOPNOTSUPP"},   {ENOTSUP, "ENOTSUP"},
    {ENOSPC, "ENOSPC"}, {ETIMEDOUT, "ETIMEDOUT"},     {EIO, "EIO"},
    {EACCES, "EACCES"}, {EMEDIUMTYPE, "EMEDIUMTYPE"}, {ECANCELED, "ECANCELED"},
    {EAGAIN, "EAGAIN"},
};

const char *vmm_result_errno_name(int errnum)
{
	for (size_t i = 0; i < sizeof(vmm_errno_names) / sizeof(vmm_errno_names[0]); i++)
		if (vmm_errno_names[i].errnum == errnum)
			return vmm_errno_names[i].name;
	return "EIO";
}

int vmm_result_errno_from_name(const char *name)
{
	if (!name)
		return EIO;
	for (size_t i = 0; i < sizeof(vmm_errno_names) / sizeof(vmm_errno_names[0]); i++)
		if (strcmp(name, vmm_errno_names[i].name) == 0)
			return vmm_errno_names[i].errnum;
	return EIO;
}

static json_t *json_size(uint64_t v)
{
	/* json_int_t is signed 64-bit; sizes past it cannot be real results. */
	if (v == VMM_RESULT_UNKNOWN || v > (uint64_t)INT64_MAX)
		return json_null();
	return json_integer((json_int_t)v);
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 if invalid. */
static size_t utf8_seq_len(const unsigned char *s)
{
	size_t n, i;
	uint32_t cp;

	if (s[0] < 0x80)
		return 1;
	if ((s[0] & 0xe0) == 0xc0)
		n = 2, cp = s[0] & 0x1f;
	else if ((s[0] & 0xf0) == 0xe0)
		n = 3, cp = s[0] & 0x0f;
	else if ((s[0] & 0xf8) == 0xf0)
		n = 4, cp = s[0] & 0x07;
	else
		return 0;
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
	    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

/* A JSON string of s; bytes that are not UTF-8 (file names may be any
 * bytes) become U+FFFD so the document stays valid. */
static json_t *json_text(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t len = strlen(s), i = 0, o = 0;
	json_t *j;
	char *buf;

	j = json_string(s);
	if (j)
		return j;
	if (len > SIZE_MAX / 3 - 1)
		return NULL;
	buf = malloc(len * 3 + 1);
	if (!buf)
		return NULL;
	while (i < len) {
		size_t n = utf8_seq_len(p + i);

		if (n) {
			memcpy(buf + o, p + i, n);
			o += n;
			i += n;
		} else {
			memcpy(buf + o, "\xef\xbf\xbd", 3);
			o += 3;
			i++;
		}
	}
	j = json_stringn(buf, o);
	free(buf);
	return j;
}

static json_t *json_str_or_null(const char *s)
{
	return s ? json_text(s) : json_null();
}

static int add(json_t *obj, const char *key, json_t *val)
{
	/* json_object_set_new steals val even on failure. */
	if (!val || json_object_set_new(obj, key, val) < 0)
		return -ENOMEM;
	return 0;
}

static json_t *result_to_json(const struct vmm_result *r)
{
	json_t *obj = json_object();
	int err = 0;

	if (!obj)
		return NULL;
	err |= add(obj, "filename", json_str_or_null(r->filename));
	err |= add(obj, "target_format",
		   r->target_format > 0 && r->target_format < INSTAR_FMT_COUNT
		       ? json_string(instar_format_name((uint32_t)r->target_format))
		       : json_null());
	err |= add(obj, "action",
		   r->action >= 0 && r->action <= INSTAR_ACTION_SHRINK
		       ? json_string(instar_action_name((uint32_t)r->action))
		       : json_null());
	err |= add(obj, "old_virtual_size", json_size(r->old_virtual_size));
	err |= add(obj, "resolved_new_virtual_size", json_size(r->resolved_new_virtual_size));
	err |= add(obj, "file_size_before", json_size(r->file_size_before));
	err |= add(obj, "file_size_after", json_size(r->file_size_after));
	if (r->error != INSTAR_OK) {
		json_t *e = json_object();
		int errnum = r->errnum ? r->errnum : vmm_result_errno(r->error);

		err |= add(obj, "error", e);
		if (e) {
			err |= add(e, "code", json_string(instar_err_name(r->error)));
			err |= add(e, "errno", json_string(vmm_result_errno_name(errnum)));
			err |= add(e, "message", json_text(r->message ? r->message : ""));
		}
	}
	if (err) {
		json_decref(obj);
		return NULL;
	}
	return obj;
}

int vmm_result_json_render(const struct vmm_result *r, char **ret_json)
{
	json_t *obj = result_to_json(r);
	char *s, *out;
	size_t n;

	if (!obj)
		return -ENOMEM;
	s = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(obj);
	if (!s)
		return -ENOMEM;
	n = strlen(s);
	out = realloc(s, n + 2);
	if (!out) {
		free(s);
		return -ENOMEM;
	}
	out[n] = '\n';
	out[n + 1] = '\0';
	*ret_json = out;
	return 0;
}

int vmm_result_json_write(const struct vmm_result *r, FILE *f)
{
	char *s;
	int ret = vmm_result_json_render(r, &s);

	if (ret < 0)
		return ret;
	if (fputs(s, f) == EOF)
		ret = errno ? -errno : -EIO;
	free(s);
	return ret;
}
