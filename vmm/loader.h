/* vmm/loader.h — finds the guest binaries and lays out guest memory before
 * the first run: core.bin, the operation binary, boot info, config blob. */
#ifndef VMM_LOADER_H
#define VMM_LOADER_H

#include <stddef.h>
#include <stdint.h>

#include "guestmem.h"

/* The guest directory, first match of: opt_dir, $INSTAR_GUEST_DIR, the build
 * tree next to the running executable (<exe dir>/../guest/core.bin), the
 * installed libexecdir/instar. Returns 0 or -ENAMETOOLONG. */
int vmm_loader_find_dir(const char *opt_dir, char *ret_dir, size_t len);

/* Copies the file at path to guest-physical gpa; it must be non-empty and at
 * most max bytes. Returns 0 or a negative errno with err filled. */
int vmm_loader_load_file(const struct vmm_guestmem *m, const char *path, uint64_t gpa, uint64_t max,
			 uint64_t *ret_size, char *err, size_t errlen);

struct vmm_load_spec {
	const char *core_path;
	const char *op_path;
	const void *config;
	uint32_t config_len; /* <= INSTAR_CONFIG_MAX */
	uint32_t boot_flags; /* INSTAR_BOOT_* */
	uint64_t mmio_base;
	uint32_t blk_devices; /* boot info: 0 counts as 1 (device 0 only) */
};

/* Loads core at INSTAR_CORE_ADDR and the operation at INSTAR_OP_ADDR, writes
 * the config at INSTAR_CONFIG_ADDR and the boot info at INSTAR_BOOTINFO_ADDR
 * (heap: INSTAR_HEAP_ADDR to the end of RAM). */
int vmm_loader_setup(const struct vmm_guestmem *m, const struct vmm_load_spec *s, char *err,
		     size_t errlen);

#endif
