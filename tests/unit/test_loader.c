/* tests/unit/test_loader.c — guest directory lookup and the initial guest
 * memory image (vmm/loader.c), without KVM. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "abi.h"
#include "config.h"
#include "loader.h"

static char tmpdir[PATH_MAX];

static void put_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0755);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
}

static int setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "%s/instar-loader-XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[PATH_MAX + 16];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static void test_find_dir_order(void **state)
{
	char dir[PATH_MAX];

	(void)state;
	setenv("INSTAR_GUEST_DIR", "/from/env", 1);
	assert_int_equal(vmm_loader_find_dir("/from/opt", dir, sizeof(dir)), 0);
	assert_string_equal(dir, "/from/opt");
	assert_int_equal(vmm_loader_find_dir(NULL, dir, sizeof(dir)), 0);
	assert_string_equal(dir, "/from/env");
	assert_int_equal(vmm_loader_find_dir("", dir, sizeof(dir)), 0);
	assert_string_equal(dir, "/from/env");
	/* No build tree next to this test binary: the installed directory. */
	unsetenv("INSTAR_GUEST_DIR");
	assert_int_equal(vmm_loader_find_dir(NULL, dir, sizeof(dir)), 0);
	assert_string_equal(dir, INSTAR_GUEST_DIR_INSTALLED);
	assert_int_equal(vmm_loader_find_dir("/a/long/path", dir, 5), -ENAMETOOLONG);
}

/* A copy of this binary at <tmp>/vmm/prog finds <tmp>/guest via /proc/self/exe. */
static void test_find_dir_build_tree(void **state)
{
	char exe[PATH_MAX], copy[PATH_MAX + 32], guest[PATH_MAX + 32], out[PATH_MAX + 32];
	char got[PATH_MAX + 32], want[PATH_MAX + 32];
	static char buf[1 << 16];
	ssize_t n;
	int in, o, status;
	pid_t pid;
	FILE *f;

	(void)state;
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	assert_true(n > 0);
	exe[n] = '\0';
	snprintf(copy, sizeof(copy), "%s/vmm", tmpdir);
	assert_int_equal(mkdir(copy, 0755), 0);
	snprintf(guest, sizeof(guest), "%s/guest", tmpdir);
	assert_int_equal(mkdir(guest, 0755), 0);
	snprintf(copy, sizeof(copy), "%s/vmm/prog", tmpdir);
	in = open(exe, O_RDONLY);
	o = open(copy, O_WRONLY | O_CREAT, 0755);
	assert_true(in >= 0 && o >= 0);
	while ((n = read(in, buf, sizeof(buf))) > 0)
		assert_int_equal(write(o, buf, (size_t)n), n);
	close(in);
	close(o);
	snprintf(out, sizeof(out), "%s/out", tmpdir);

	/* Without core.bin the build tree is not taken. */
	for (int with_core = 0; with_core < 2; with_core++) {
		if (with_core) {
			snprintf(guest, sizeof(guest), "%s/guest/core.bin", tmpdir);
			put_file(guest, "x", 1);
		}
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			unsetenv("INSTAR_GUEST_DIR");
			execl(copy, copy, "--find-dir", out, (char *)NULL);
			_exit(127);
		}
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
		f = fopen(out, "r");
		assert_non_null(f);
		assert_non_null(fgets(got, sizeof(got), f));
		fclose(f);
		if (with_core)
			snprintf(want, sizeof(want), "%s/vmm/../guest", tmpdir);
		else
			snprintf(want, sizeof(want), "%s", INSTAR_GUEST_DIR_INSTALLED);
		assert_string_equal(got, want);
	}
}

static void test_load_file_bounds(void **state)
{
	static uint8_t ram[64 << 10];
	struct vmm_guestmem m = {.host = ram, .size = sizeof(ram)};
	char path[PATH_MAX + 16], err[256];
	uint64_t size = 0;

	(void)state;
	snprintf(path, sizeof(path), "%s/bin", tmpdir);
	put_file(path, "", 0);
	assert_int_equal(vmm_loader_load_file(&m, path, 0x1000, 100, &size, err, sizeof(err)),
			 -EINVAL);
	put_file(path, "0123456789", 10);
	assert_int_equal(vmm_loader_load_file(&m, path, 0x1000, 9, &size, err, sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "size 10 not in 1..9"));
	/* Fits the bound but not guest RAM. */
	assert_int_equal(
	    vmm_loader_load_file(&m, path, sizeof(ram) - 5, 100, &size, err, sizeof(err)), -EINVAL);
	assert_int_equal(vmm_loader_load_file(&m, path, 0x1000, 10, &size, err, sizeof(err)), 0);
	assert_int_equal(size, 10);
	assert_memory_equal(ram + 0x1000, "0123456789", 10);
	snprintf(path, sizeof(path), "%s/missing", tmpdir);
	assert_int_equal(vmm_loader_load_file(&m, path, 0x1000, 10, &size, err, sizeof(err)),
			 -ENOENT);
	assert_non_null(strstr(err, "missing"));
}

static void test_setup_layout(void **state)
{
	const uint64_t ram_size = 8ull << 20;
	uint8_t *ram = calloc(1, ram_size);
	struct vmm_guestmem m = {.host = ram, .size = ram_size};
	char core[PATH_MAX + 16], op[PATH_MAX + 16], err[256];
	struct instar_resize_config cfg = {.magic = INSTAR_RESIZE_MAGIC, .new_virtual_size = 42};
	struct vmm_load_spec s = {
	    .core_path = core,
	    .op_path = op,
	    .config = &cfg,
	    .config_len = sizeof(cfg),
	    .boot_flags = INSTAR_BOOT_DEBUG,
	    .mmio_base = INSTAR_VIRTIO_MMIO_BASE,
	};
	struct instar_boot_info bi;

	(void)state;
	assert_non_null(ram);
	snprintf(core, sizeof(core), "%s/core.bin", tmpdir);
	snprintf(op, sizeof(op), "%s/op.bin", tmpdir);
	put_file(core, "CORE", 4);
	put_file(op, "OPERATION", 9);
	assert_int_equal(vmm_loader_setup(&m, &s, err, sizeof(err)), 0);
	assert_memory_equal(ram + INSTAR_CORE_ADDR, "CORE", 4);
	assert_memory_equal(ram + INSTAR_OP_ADDR, "OPERATION", 9);
	assert_memory_equal(ram + INSTAR_CONFIG_ADDR, &cfg, sizeof(cfg));
	memcpy(&bi, ram + INSTAR_BOOTINFO_ADDR, sizeof(bi));
	assert_int_equal(bi.magic, INSTAR_BOOT_MAGIC);
	assert_int_equal(bi.abi_version, INSTAR_ABI_VERSION);
	assert_true(bi.ram_size == ram_size);
	assert_true(bi.op_addr == INSTAR_OP_ADDR);
	assert_true(bi.op_size == 9);
	assert_true(bi.config_addr == INSTAR_CONFIG_ADDR);
	assert_int_equal(bi.config_len, sizeof(cfg));
	assert_int_equal(bi.flags, INSTAR_BOOT_DEBUG);
	assert_true(bi.heap_start == INSTAR_HEAP_ADDR);
	assert_true(bi.heap_end == ram_size);
	assert_int_equal(bi.blk_devices, 1); /* 0 in the spec: device 0 only */
	assert_int_equal(bi.reserved, 0);
	s.blk_devices = 3; /* the image and two backing files */
	assert_int_equal(vmm_loader_setup(&m, &s, err, sizeof(err)), 0);
	memcpy(&bi, ram + INSTAR_BOOTINFO_ADDR, sizeof(bi));
	assert_int_equal(bi.blk_devices, 3);

	s.config_len = INSTAR_CONFIG_MAX + 1;
	assert_int_equal(vmm_loader_setup(&m, &s, err, sizeof(err)), -EINVAL);
	free(ram);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_find_dir_order),
	    cmocka_unit_test(test_find_dir_build_tree),
	    cmocka_unit_test(test_load_file_bounds),
	    cmocka_unit_test(test_setup_layout),
	};

	/* Child mode of test_find_dir_build_tree: report what the copy found. */
	if (argc == 3 && !strcmp(argv[1], "--find-dir")) {
		char dir[PATH_MAX];
		FILE *f = fopen(argv[2], "w");

		if (!f || vmm_loader_find_dir(NULL, dir, sizeof(dir)))
			return 1;
		fputs(dir, f);
		return fclose(f) ? 1 : 0;
	}
	return cmocka_run_group_tests(tests, setup, teardown);
}
