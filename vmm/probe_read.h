/* vmm/probe_read.h — feeds the bounded header probe (shared/probe.c) from a
 * reader: the image file, or the staged view of a resize before its commit. */
#ifndef VMM_PROBE_READ_H
#define VMM_PROBE_READ_H

#include <stddef.h>
#include <stdint.h>

#include "probe.h"

/* Reads up to len bytes at off into buf; *ret_n is how many there were
 * (short only at the end of the file). 0 or -errno. */
typedef int (*vmm_probe_read_fn)(void *ctx, uint64_t off, void *buf, size_t len, size_t *ret_n);

/* Probes an image of file_size bytes read through rd: the head and tail
 * windows, then each further window the probe asks for. 0 or -errno. */
int vmm_probe_read(vmm_probe_read_fn rd, void *ctx, uint64_t file_size,
		   struct instar_probe_info *ret);

/* The same over a file descriptor (pread). */
int vmm_probe_fd(int fd, uint64_t file_size, struct instar_probe_info *ret);

/* The same with the probe's name and force (shared/probe.h). */
int vmm_probe_fd_as(int fd, uint64_t file_size, const char *name, const char *force,
		    struct instar_probe_info *ret);

#endif
