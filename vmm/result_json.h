/* vmm/result_json.h — the one serializer of a resize outcome as JSON, shared
 * by `instar resize --output=json` and instarfs' result.json (result_json_lib).
 *
 * Schema (one object, keys always present, unknown numbers are null):
 *   {"filename": str|null, "target_format": str|null, "action": str|null,
 *    "old_virtual_size": int|null, "resolved_new_virtual_size": int|null,
 *    "file_size_before": int|null, "file_size_after": int|null}
 * and on failure (error != INSTAR_OK) also
 *   "error": {"code": instar_err_name(error), "errno": "EINVAL"|"ERANGE"|
 *             "EPERM"|"EBUSY"|"EOPNOTSUPP"|"ENOSPC"|"ETIMEDOUT"|"EIO"|
 *             "EACCES"|"EMEDIUMTYPE" (instar), or "ECANCELED"|"EAGAIN"
 *             (instarfs' own result.json), "message": str}
 */
#ifndef VMM_RESULT_JSON_H
#define VMM_RESULT_JSON_H

#include <stdint.h>
#include <stdio.h>

#include "abi.h"

/* Marks a size field that is not known: rendered as null. */
#define VMM_RESULT_UNKNOWN UINT64_MAX

struct vmm_result {
	const char *filename;		    /* NULL: null (e.g. a usage error) */
	int target_format;		    /* enum instar_format; <= 0: null */
	int action;			    /* enum instar_action; < 0: null */
	uint64_t old_virtual_size;	    /* VMM_RESULT_UNKNOWN: null */
	uint64_t resolved_new_virtual_size; /* VMM_RESULT_UNKNOWN: null */
	uint64_t file_size_before;	    /* VMM_RESULT_UNKNOWN: null */
	uint64_t file_size_after;	    /* VMM_RESULT_UNKNOWN: null */
	uint32_t error;			    /* enum instar_err; INSTAR_OK: no "error" */
	int errnum;			    /* positive errno; 0: vmm_result_errno(error) */
	const char *message;		    /* human text without "instar: "; NULL: "" */
};

/* Fills r with "nothing known yet": all numbers unknown, no error. */
void vmm_result_init(struct vmm_result *r);

/* Default errno for an error code (docs/design.md §3.3, instarfs): bad syntax EINVAL,
 * overflow/too large ERANGE, shrink without --shrink EPERM, locked EBUSY,
 * unsupported format/feature EOPNOTSUPP, disk full ENOSPC, watchdog
 * ETIMEDOUT, anything else EIO. Returns 0 for INSTAR_OK. */
int vmm_result_errno(uint32_t error);

/* "EINVAL", "ERANGE", ... for the errnos of the schema above; "EIO" for
 * any other. */
const char *vmm_result_errno_name(int errnum);

/* The errno a name of the schema stands for (as read back from a child's
 * result by instarfs); EIO for NULL or any other name. */
int vmm_result_errno_from_name(const char *name);

/* Renders r as one compact JSON object followed by "\n" into a malloc'ed,
 * NUL-terminated string (*ret_json, free() it). Returns 0 or -ENOMEM. */
int vmm_result_json_render(const struct vmm_result *r, char **ret_json);

/* Renders r and writes it to f (no flush, no close). Returns 0 or -errno. */
int vmm_result_json_write(const struct vmm_result *r, FILE *f);

#endif
