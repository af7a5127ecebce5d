/* contrib/shim/qemu-img.c — the opt-in `qemu-img` front (meson option
 * qemu_img_shim). `qemu-img resize ...` runs instar with its messages worded
 * as qemu-img's; every other command execs the real qemu-img found further
 * down PATH. Callers that run `qemu-img resize` by name (Nova, Cinder,
 * Proxmox, libvirt scripts) switch to instar without being patched.
 *
 * C rather than a shell script: the real qemu-img is told apart from the
 * front by device and inode (no test(1) in POSIX sh can), instar's exit
 * status and death by signal reach the caller unchanged, and its stderr is
 * rewritten line by line with no pipeline whose status sh would lose. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shim-config.h"

/* Set in the environment of the real qemu-img this front execs: a front that
 * starts with it set was exec'd by another front (a copy of it further down
 * PATH), and says so instead of looping. */
#define SHIM_PASSED_ENV "INSTAR_SHIM_PASSED"
/* Overrides the instar this front runs (the build's, in tests). */
#define SHIM_INSTAR_ENV "INSTAR_SHIM_INSTAR"

static pid_t child_pid;

static void shim_forward_signal(int sig)
{
	if (child_pid > 0)
		kill(child_pid, sig);
}

/* One line of instar's stderr as qemu-img words it: the leading "instar: "
 * becomes "qemu-img: ", and the "Try 'instar --help'" hint names qemu-img. */
static void shim_write_line(const char *line, size_t len)
{
	static const char prefix[] = "instar: ";
	static const char hint[] = "'instar --help'";
	const char *tail = line;
	size_t tail_len = len;
	const char *h;

	if (len >= sizeof(prefix) - 1 && memcmp(line, prefix, sizeof(prefix) - 1) == 0) {
		fputs("qemu-img: ", stderr);
		tail += sizeof(prefix) - 1;
		tail_len -= sizeof(prefix) - 1;
	}
	h = memmem(tail, tail_len, hint, sizeof(hint) - 1);
	if (h) {
		fwrite(tail, 1, (size_t)(h - tail), stderr);
		fputs("'qemu-img --help'", stderr);
		tail_len -= (size_t)(h - tail) + sizeof(hint) - 1;
		tail = h + sizeof(hint) - 1;
	}
	fwrite(tail, 1, tail_len, stderr);
	fflush(stderr);
}

/* Copies instar's stderr (fd) to ours, rewritten; returns at EOF. */
static void shim_filter(int fd)
{
	FILE *in = fdopen(fd, "r");
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;

	if (!in) {
		close(fd);
		return;
	}
	for (;;) {
		errno = 0;
		n = getline(&line, &cap, in);
		if (n >= 0) {
			shim_write_line(line, (size_t)n);
			continue;
		}
		if (errno == EINTR) {
			clearerr(in);
			continue;
		}
		break;
	}
	free(line);
	fclose(in);
}

static const char *shim_instar(void)
{
	const char *env = getenv(SHIM_INSTAR_ENV);

	return env && *env ? env : SHIM_INSTAR;
}

/* qemu-img resize ARGS... -> instar resize ARGS..., stderr rewritten. */
static int shim_resize(int argc, char **argv)
{
	static const int forwarded[] = {SIGHUP, SIGINT, SIGQUIT, SIGTERM};
	const char *instar = shim_instar();
	struct sigaction sa = {.sa_handler = shim_forward_signal};
	char **args;
	int p[2], status, i;
	pid_t r;

	if (argc == 3 && (strcmp(argv[2], "--help") == 0 || strcmp(argv[2], "-h") == 0)) {
		/* The marker that the front is active: the real qemu-img says
		 * "Not enough arguments" here. */
		printf("qemu-img resize: instar's qemu-img front runs %s\n", instar);
		fflush(stdout);
	}
	args = calloc((size_t)argc + 1, sizeof(*args));
	if (!args) {
		fputs("qemu-img: Out of memory\n", stderr);
		return 1;
	}
	args[0] = "instar";
	for (i = 1; i < argc; i++)
		args[i] = argv[i];
	if (pipe2(p, O_CLOEXEC) < 0) {
		fprintf(stderr, "qemu-img: Could not create a pipe: %s\n", strerror(errno));
		return 1;
	}
	sigemptyset(&sa.sa_mask);
	for (i = 0; i < (int)(sizeof(forwarded) / sizeof(forwarded[0])); i++)
		sigaction(forwarded[i], &sa, NULL);
	/* A caller that stops reading our stderr must not kill instar mid-write
	 * through us; we lose the message, instar finishes. */
	signal(SIGPIPE, SIG_IGN);

	child_pid = fork();
	if (child_pid < 0) {
		fprintf(stderr, "qemu-img: Could not fork: %s\n", strerror(errno));
		return 1;
	}
	if (child_pid == 0) {
		for (i = 0; i < (int)(sizeof(forwarded) / sizeof(forwarded[0])); i++)
			signal(forwarded[i], SIG_DFL);
		signal(SIGPIPE, SIG_DFL);
		if (dup2(p[1], STDERR_FILENO) < 0)
			_exit(1);
		execv(instar, args);
		/* Goes through the pipe: the parent words it as qemu-img's. */
		fprintf(stderr, "instar: Could not run instar (%s): %s\n", instar, strerror(errno));
		_exit(1);
	}
	close(p[1]);
	shim_filter(p[0]);
	do
		r = waitpid(child_pid, &status, 0);
	while (r < 0 && errno == EINTR);
	free(args);
	if (r < 0) {
		fprintf(stderr, "qemu-img: Could not wait for instar: %s\n", strerror(errno));
		return 1;
	}
	if (WIFSIGNALED(status)) {
		/* Die the same way, so the caller sees what instar saw. */
		signal(WTERMSIG(status), SIG_DFL);
		raise(WTERMSIG(status));
		return 128 + WTERMSIG(status);
	}
	return WEXITSTATUS(status);
}

/* The directory part of path, resolved; "" if it cannot be. */
static void shim_realdir(const char *path, size_t len, char *ret, size_t retlen)
{
	char dir[PATH_MAX];

	ret[0] = '\0';
	if (len == 0) {
		path = ".";
		len = 1;
	}
	if (len >= sizeof(dir))
		return;
	memcpy(dir, path, len);
	dir[len] = '\0';
	if (!realpath(dir, ret) || strlen(ret) >= retlen)
		ret[0] = '\0';
}

/* The first qemu-img on PATH that is not this front: not in this front's own
 * directory and not the same file (device and inode) under another name. */
static int shim_find_real(char *ret, size_t len)
{
	char self_dir[PATH_MAX], dir[PATH_MAX], exe[PATH_MAX];
	const char *path = getenv("PATH");
	const char *p, *end;
	struct stat self, st;
	char cs_path[256];
	ssize_t n;
	char *slash;

	if (stat("/proc/self/exe", &self) < 0)
		return -errno;
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n < 0)
		return -errno;
	exe[n] = '\0';
	slash = strrchr(exe, '/');
	shim_realdir(exe, slash ? (size_t)(slash - exe) : 0, self_dir, sizeof(self_dir));
	if (!path) {
		/* As execvp: the system's default search path. */
		if (confstr(_CS_PATH, cs_path, sizeof(cs_path)) == 0 ||
		    strlen(cs_path) >= sizeof(cs_path) - 1)
			strcpy(cs_path, "/bin:/usr/bin");
		path = cs_path;
	}
	for (p = path;; p = end + 1) {
		end = strchr(p, ':');
		if (!end)
			end = p + strlen(p);
		shim_realdir(p, (size_t)(end - p), dir, sizeof(dir));
		if (dir[0] && strcmp(dir, self_dir) != 0 &&
		    (size_t)snprintf(ret, len, "%s/qemu-img", dir) < len && stat(ret, &st) == 0 &&
		    S_ISREG(st.st_mode) && access(ret, X_OK) == 0 &&
		    !(st.st_dev == self.st_dev && st.st_ino == self.st_ino))
			return 0;
		if (!*end)
			break;
	}
	return -ENOENT;
}

int main(int argc, char **argv)
{
	char real[PATH_MAX];
	int r;

	if (getenv(SHIM_PASSED_ENV)) {
		fprintf(stderr,
			"qemu-img: instar's qemu-img front was started by itself: another copy "
			"of it is further down PATH, in place of the real qemu-img\n");
		return 1;
	}
	if (argc >= 2 && strcmp(argv[1], "resize") == 0)
		return shim_resize(argc, argv);

	r = shim_find_real(real, sizeof(real));
	if (r < 0) {
		fprintf(stderr, "qemu-img: instar's qemu-img front found no other qemu-img on PATH "
				"(it handles only 'resize'; install qemu-utils for the rest)\n");
		return 127;
	}
	if (setenv(SHIM_PASSED_ENV, "1", 1) < 0) {
		fprintf(stderr, "qemu-img: %s\n", strerror(errno));
		return 1;
	}
	execv(real, argv);
	fprintf(stderr, "qemu-img: Could not run %s: %s\n", real, strerror(errno));
	return 127;
}
