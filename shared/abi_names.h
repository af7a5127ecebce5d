/* shared/abi_names.h — stable names for the ABI enums (JSON, messages). */
#ifndef INSTAR_ABI_NAMES_H
#define INSTAR_ABI_NAMES_H

#include "abi.h"

const char *instar_err_name(uint32_t err);
/* qemu's driver names: raw, qcow2, vmdk, vpc, vhdx. */
const char *instar_format_name(uint32_t fmt);
/* Returns enum instar_format or -1; accepts "vhd" for "vpc". */
int instar_format_from_name(const char *name);
const char *instar_prealloc_name(uint32_t mode);
/* Returns enum instar_prealloc or -1. */
int instar_prealloc_from_name(const char *name);
const char *instar_action_name(uint32_t action);

#endif
