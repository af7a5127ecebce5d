/* vmm/loader.c — guest directory lookup and the initial guest memory image.
 * No build path is compiled in: the build tree is found from /proc/self/exe. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "abi.h"
#include "config.h"
#include "loader.h"

static int vmm_loader_copy(char *dst, size_t len, const char *src)
{
	if (strlen(src) >= len)
		return -ENAMETOOLONG;
	strcpy(dst, src);
	return 0;
}

/* <exe dir>/../guest, when it holds a core.bin (build/vmm/instar -> build/guest). */
static int vmm_loader_build_dir(char *ret_dir, size_t len)
{
	char exe[PATH_MAX], probe[PATH_MAX + 32];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	char *slash;

	if (n <= 0)
		return -ENOENT;
	exe[n] = '\0';
	slash = strrchr(exe, '/');
	if (!slash)
		return -ENOENT;
	*slash = '\0';
	snprintf(probe, sizeof(probe), "%s/../guest/core.bin", exe);
	if (access(probe, R_OK) != 0)
		return -ENOENT;
	if ((size_t)snprintf(ret_dir, len, "%s/../guest", exe) >= len)
		return -ENAMETOOLONG;
	return 0;
}

int vmm_loader_find_dir(const char *opt_dir, char *ret_dir, size_t len)
{
	const char *env;

	if (opt_dir && *opt_dir)
		return vmm_loader_copy(ret_dir, len, opt_dir);
	env = getenv("INSTAR_GUEST_DIR");
	if (env && *env)
		return vmm_loader_copy(ret_dir, len, env);
	if (vmm_loader_build_dir(ret_dir, len) == 0)
		return 0;
	return vmm_loader_copy(ret_dir, len, INSTAR_GUEST_DIR_INSTALLED);
}

int vmm_loader_load_file(const struct vmm_guestmem *m, const char *path, uint64_t gpa, uint64_t max,
			 uint64_t *ret_size, char *err, size_t errlen)
{
	struct stat st;
	uint8_t *dst;
	uint64_t done = 0;
	int fd, r;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		snprintf(err, errlen, "cannot open guest binary %s: %s", path, strerror(-r));
		return r;
	}
	if (fstat(fd, &st) < 0) {
		r = -errno;
		snprintf(err, errlen, "cannot stat guest binary %s: %s", path, strerror(-r));
		goto out;
	}
	if (!S_ISREG(st.st_mode) || st.st_size <= 0 || (uint64_t)st.st_size > max) {
		r = -EINVAL;
		snprintf(err, errlen, "guest binary %s: size %lld not in 1..%llu", path,
			 (long long)st.st_size, (unsigned long long)max);
		goto out;
	}
	dst = vmm_gpa(m, gpa, (uint64_t)st.st_size);
	if (!dst) {
		r = -EINVAL;
		snprintf(err, errlen, "guest binary %s does not fit in guest RAM", path);
		goto out;
	}
	while (done < (uint64_t)st.st_size) {
		ssize_t n = read(fd, dst + done, (size_t)((uint64_t)st.st_size - done));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			r = n < 0 ? -errno : -EIO;
			snprintf(err, errlen, "cannot read guest binary %s: %s", path,
				 strerror(-r));
			goto out;
		}
		done += (uint64_t)n;
	}
	*ret_size = done;
	r = 0;
out:
	close(fd);
	return r;
}

int vmm_loader_setup(const struct vmm_guestmem *m, const struct vmm_load_spec *s, char *err,
		     size_t errlen)
{
	struct instar_boot_info *bi;
	uint64_t core_size, op_size;
	void *cfg;
	int r;

	if (s->config_len > INSTAR_CONFIG_MAX) {
		snprintf(err, errlen, "guest config too large");
		return -EINVAL;
	}
	r = vmm_loader_load_file(m, s->core_path, INSTAR_CORE_ADDR, INSTAR_CORE_MAX, &core_size,
				 err, errlen);
	if (r)
		return r;
	r = vmm_loader_load_file(m, s->op_path, INSTAR_OP_ADDR, INSTAR_OP_MAX, &op_size, err,
				 errlen);
	if (r)
		return r;

	cfg = vmm_gpa(m, INSTAR_CONFIG_ADDR, INSTAR_CONFIG_MAX);
	bi = vmm_gpa(m, INSTAR_BOOTINFO_ADDR, sizeof(*bi));
	if (!cfg || !bi || m->size <= INSTAR_HEAP_ADDR) {
		snprintf(err, errlen, "guest RAM too small");
		return -EINVAL;
	}
	memset(cfg, 0, INSTAR_CONFIG_MAX);
	memcpy(cfg, s->config, s->config_len);

	*bi = (struct instar_boot_info){
	    .magic = INSTAR_BOOT_MAGIC,
	    .abi_version = INSTAR_ABI_VERSION,
	    .ram_size = m->size,
	    .op_addr = INSTAR_OP_ADDR,
	    .op_size = op_size,
	    .config_addr = INSTAR_CONFIG_ADDR,
	    .config_len = s->config_len,
	    .flags = s->boot_flags,
	    .mmio_base = s->mmio_base,
	    .heap_start = INSTAR_HEAP_ADDR,
	    .heap_end = m->size,
	    .blk_devices = s->blk_devices ? s->blk_devices : 1,
	};
	/* Every operation's scratch starts at the heap: fault its first page
	 * in now (a whole huge page on a host with THP, zeroing included),
	 * while vmm_kvm_create() sets up the vCPU, rather than in the guest. */
	*(volatile uint8_t *)vmm_gpa(m, INSTAR_HEAP_ADDR, 1) = 0;
	return 0;
}
