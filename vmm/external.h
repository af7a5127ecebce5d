/* vmm/external.h — the other files a qcow2 header names: the backing chain
 * (opened read-only, as qemu-img opens it, for its existence and length) and
 * the external data file (opened read-write; the host resizes it). The names
 * are untrusted bytes from the image, handled like any user-given path. */
#ifndef VMM_EXTERNAL_H
#define VMM_EXTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "probe.h"

#define VMM_EXT_MAX_DEPTH 64 /* backing chain links followed */

/* Opens the backing chain of the qcow2 image at image_path (info: its probe).
 * Relative names are resolved against the image's directory as qemu does;
 * for an image given as /dev/fd/N (how instarfs hands one over) against the
 * working directory. ret_known says whether *ret_len (the first backing
 * file's length, as qemu's bdrv_getlength) could be read for its format.
 * On failure returns a negative errno with err set to qemu's wording after
 * "Could not open '<image>': ", e.g. "Could not open backing file: Could not
 * open 'base.qcow2': No such file or directory". */
int vmm_ext_backing(const char *image_path, const struct instar_probe_info *info, uint64_t *ret_len,
		    bool *ret_known, char *err, size_t errlen);

/* Opens the external data file read-write. qemu resolves its name against the
 * working directory; instar also requires it to stay beneath that directory
 * (no absolute name, no "..", no symlink out of it: openat2 RESOLVE_BENEATH),
 * since resizing writes to it. It must be a regular file other than the
 * image (image_fd). Returns the fd or a negative errno with err set as for
 * vmm_ext_backing. */
int vmm_ext_data_file(int image_fd, const struct instar_probe_info *info, char *err, size_t errlen);

/* The name's bytes up to the first NUL, as a C string (qemu's view). */
void vmm_ext_name(char *dst, size_t cap, const uint8_t *name, uint32_t len);

#endif
