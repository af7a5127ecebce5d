/* shared/abi_names.c — stable names for the ABI enums (JSON, messages). */
#include "abi_names.h"

static const char *const err_names[INSTAR_ERR_COUNT] = {
    [INSTAR_OK] = "OK",
    [INSTAR_ERR_INVALID_OPTION] = "INVALID_OPTION",
    [INSTAR_ERR_INVALID_NEW_SIZE] = "INVALID_NEW_SIZE",
    [INSTAR_ERR_SHRINK_WITHOUT_FLAG] = "SHRINK_WITHOUT_FLAG",
    [INSTAR_ERR_SHRINK_BELOW_ALLOCATED] = "SHRINK_BELOW_ALLOCATED",
    [INSTAR_ERR_UNSUPPORTED_FORMAT] = "UNSUPPORTED_FORMAT",
    [INSTAR_ERR_UNSUPPORTED_SUBFORMAT] = "UNSUPPORTED_SUBFORMAT",
    [INSTAR_ERR_UNSUPPORTED_SHRINK] = "UNSUPPORTED_SHRINK",
    [INSTAR_ERR_PREALLOCATION_UNSUPPORTED] = "PREALLOCATION_UNSUPPORTED",
    [INSTAR_ERR_SCRATCH_TOO_SMALL] = "SCRATCH_TOO_SMALL",
    [INSTAR_ERR_READ_FAILED] = "READ_FAILED",
    [INSTAR_ERR_WRITE_FAILED] = "WRITE_FAILED",
    [INSTAR_ERR_PARSE_FAILED] = "PARSE_FAILED",
    [INSTAR_ERR_HEADER_MISMATCH] = "HEADER_MISMATCH",
    [INSTAR_ERR_REQUIRES_CHECK] = "REQUIRES_CHECK",
    [INSTAR_ERR_UNSUPPORTED_FEATURE] = "UNSUPPORTED_FEATURE",
    [INSTAR_ERR_TOO_LARGE] = "TOO_LARGE",
    [INSTAR_ERR_CORRUPT] = "CORRUPT",
    [INSTAR_ERR_NO_SPACE] = "NO_SPACE",
    [INSTAR_ERR_TIMEOUT] = "TIMEOUT",
    [INSTAR_ERR_GUEST_FAULT] = "GUEST_FAULT",
    [INSTAR_ERR_IO] = "IO",
    [INSTAR_ERR_LOCKED] = "LOCKED",
    [INSTAR_ERR_OPEN_FAILED] = "OPEN_FAILED",
    [INSTAR_ERR_OVERLAY_LIMIT] = "OVERLAY_LIMIT",
    [INSTAR_ERR_PREALLOC_NOT_GROWING] = "PREALLOC_NOT_GROWING",
    [INSTAR_ERR_NOT_MULTIPLE_512] = "NOT_MULTIPLE_512",
    [INSTAR_ERR_INTERNAL] = "INTERNAL",
    [INSTAR_ERR_GUEST_MISBEHAVED] = "GUEST_MISBEHAVED",
};

static const char *const fmt_names[INSTAR_FMT_COUNT] = {
    [INSTAR_FMT_UNKNOWN] = "unknown", [INSTAR_FMT_RAW] = "raw",	  [INSTAR_FMT_QCOW2] = "qcow2",
    [INSTAR_FMT_VMDK] = "vmdk",	      [INSTAR_FMT_VHD] = "vpc",	  [INSTAR_FMT_VHDX] = "vhdx",
    [INSTAR_FMT_QED] = "qed",	      [INSTAR_FMT_LUKS] = "luks", [INSTAR_FMT_VDI] = "vdi",
};

static const char *const prealloc_names[] = {"off", "metadata", "falloc", "full"};
static const char *const action_names[] = {"noop", "grow", "shrink"};

const char *instar_err_name(uint32_t err)
{
	return err < INSTAR_ERR_COUNT && err_names[err] ? err_names[err] : "UNKNOWN";
}

const char *instar_format_name(uint32_t fmt)
{
	return fmt < INSTAR_FMT_COUNT ? fmt_names[fmt] : "unknown";
}

int instar_format_from_name(const char *name)
{
	for (int i = 1; i < INSTAR_FMT_COUNT; i++) {
		const char *n = fmt_names[i];
		size_t k = 0;

		while (n[k] && n[k] == name[k])
			k++;
		if (n[k] == '\0' && name[k] == '\0')
			return i;
	}
	/* "vhd" is accepted as an alias of qemu's "vpc". */
	if (name[0] == 'v' && name[1] == 'h' && name[2] == 'd' && name[3] == '\0')
		return INSTAR_FMT_VHD;
	return -1;
}

const char *instar_prealloc_name(uint32_t mode)
{
	return mode < 4 ? prealloc_names[mode] : "unknown";
}

int instar_prealloc_from_name(const char *name)
{
	for (int i = 0; i < 4; i++) {
		const char *n = prealloc_names[i];
		size_t k = 0;

		while (n[k] && n[k] == name[k])
			k++;
		if (n[k] == '\0' && name[k] == '\0')
			return i;
	}
	return -1;
}

const char *instar_action_name(uint32_t action)
{
	return action < 3 ? action_names[action] : "unknown";
}
