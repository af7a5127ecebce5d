/* vmm/external.h — the other files an image names: a qcow2 header's backing
 * chain (opened read-only, as qemu-img opens it, for its existence and
 * length) and external data file, and a vmdk descriptor's flat extent (both
 * opened read-write; the host resizes them). The names
 * are untrusted bytes from the image: one policy decides which files they
 * may reach, and every file is opened O_PATH, checked to be a regular file,
 * and only then reopened with the mode it needs. */
#ifndef VMM_EXTERNAL_H
#define VMM_EXTERNAL_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "cli_limits.h"
#include "probe.h"

#define VMM_EXT_MAX_DEPTH 64 /* backing chain links followed */
#define VMM_EXT_MAX_BACKING_DIRS INSTAR_MAX_BACKING_DIRS

/* Where the names of one image may lead. */
struct vmm_ext_policy {
	/* The image's directory (O_PATH): the directory of the path given, or
	 * the working directory for an image given as /dev/fd/N (instarfs runs
	 * its children in the source directory). -1 until opened. */
	int dir_fd;
	char dir[PATH_MAX]; /* its path as the kernel names it */
	/* --confine (instarfs): backing files only beneath the image's
	 * directory or a backing dir; a data file not directly beside the
	 * image unless its name is hidden (instarfs exposes every other
	 * regular file there as an image of its own). */
	bool confine;
	size_t n_backing_dirs; /* --backing-dir: implies confine for backing files */
	int backing_dir_fd[VMM_EXT_MAX_BACKING_DIRS];
	char backing_dir[VMM_EXT_MAX_BACKING_DIRS][PATH_MAX];
};

/* Opens the directory of image_path and each of backing_dirs (n of them).
 * Returns 0 or a negative errno with err set to the reason (naming the
 * directory). vmm_ext_policy_close releases it (also after a failure). */
int vmm_ext_policy_open(struct vmm_ext_policy *p, const char *image_path,
			const char *const *backing_dirs, size_t n, bool confine, char *err,
			size_t errlen);
void vmm_ext_policy_close(struct vmm_ext_policy *p);

/* The backing chain as the guest may read it: the first n files, each
 * reopened O_RDONLY from the O_PATH fd the policy checked, with the format
 * it is read as (qemu's: the naming header's backing format, else the
 * probe's). The chain stops at the first file in a format other than raw
 * or qcow2, and after INSTAR_BACKING_MAX_DEVS files. */
struct vmm_ext_chain {
	uint32_t n;
	int fd[INSTAR_BACKING_MAX_DEVS];
	uint32_t fmt[INSTAR_BACKING_MAX_DEVS];
};

/* Opens the backing chain of the qcow2 image at image_path (info: its probe).
 * Relative names are combined with the naming image's path as qemu does (for
 * /dev/fd/N: the working directory). Without confinement any regular file
 * may be a backing file (qemu and OpenStack lay disks out as _base/...);
 * with it, only one beneath the image's directory or a backing dir, reached
 * without symbolic links. ret_known says whether *ret_len (the first
 * backing file's length, as qemu's bdrv_getlength) could be read for its
 * format. ret_chain (may be NULL; n = 0 on entry) receives the chain's
 * fds for the guest; the caller closes them (vmm_ext_chain_close), also
 * after a failure. On failure returns a negative errno (-EACCES: the policy refused
 * the name) with err set to qemu's wording after "Could not open
 * '<image>': ", e.g. "Could not open backing file: Could not open
 * 'base.qcow2': No such file or directory". */
int vmm_ext_backing(const struct vmm_ext_policy *p, const char *image_path,
		    const struct instar_probe_info *info, uint64_t *ret_len, bool *ret_known,
		    struct vmm_ext_chain *ret_chain, char *err, size_t errlen);

/* Closes the fds of a chain (n set to 0). */
void vmm_ext_chain_close(struct vmm_ext_chain *c);

/* Opens the external data file of a qcow2 image, or the one FLAT/VMFS extent
 * a vmdk descriptor file names (monolithicFlat, vmfs), read-write: the host
 * resizes it. Its name must lead beneath the
 * image's directory (relative, or absolute and landing there; no symbolic
 * link on the way) to a regular file with the image's owner and one link,
 * other than the image (image_fd). Returns the fd, or a negative errno
 * (-EACCES: the policy refused it) with err set as for vmm_ext_backing. */
int vmm_ext_data_file(const struct vmm_ext_policy *p, int image_fd,
		      const struct instar_probe_info *info, char *err, size_t errlen);

/* A twoGbMaxExtentFlat extent file by its name (text): opened under the
 * policy of vmm_ext_data_file, or with create created there (O_EXCL: an
 * existing file of that name is refused, -EEXIST; with the image's mode bits
 * and owner) and locked. *ret_st (may be NULL): its identity. Returns the fd
 * or a negative errno with err set. */
int vmm_ext_extent_open(const struct vmm_ext_policy *p, int image_fd, const char *name, bool create,
			struct stat *ret_st, char *err, size_t errlen);

/* 0 when nothing is called name beneath the image's directory (a new
 * extent may be created there), else a negative errno (-EEXIST, -EACCES for
 * a name the policy refuses or a symbolic link) with err set. */
int vmm_ext_absent(const struct vmm_ext_policy *p, const char *name, char *err, size_t errlen);

/* Removes the file name beneath the image's directory if its entry is still
 * the file id (dev and inode) was taken from: 0, or a negative errno (-ESTALE:
 * another file) with err (may be NULL) set. */
int vmm_ext_unlink(const struct vmm_ext_policy *p, const char *name, const struct stat *id,
		   char *err, size_t errlen);

/* The name's bytes up to the first NUL, as a C string (qemu's view). */
void vmm_ext_name(char *dst, size_t cap, const uint8_t *name, uint32_t len);

#endif
