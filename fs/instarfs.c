/* fs/instarfs.c — instarfs main: command line and config, sanity checks with
 * clear messages, mount, the SIGUSR1 reload thread, the FUSE loop (libfuse's
 * low-level session; why, see instarfs.h), and the shutdown: queued writes
 * cancelled, running resizes answered, then the unmount. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "abi_names.h"
#include "config.h"
#include "instarfs.h"

struct cmdline {
	char *source;
	char *config;
	char *timeout;
	char *preallocation;
	char *max_jobs;
	char *max_staged;
	char *max_staged_total;
	char *log_level;
	char *instar;
	char *backing_dirs;
	char *guest_dir;
	int help;
	int version;
};

enum { KEY_HELP, KEY_VERSION };

#define OPT(t, m)                                                                                  \
	{                                                                                          \
		t, offsetof(struct cmdline, m), 0                                                  \
	}
static const struct fuse_opt cmdline_spec[] = {
    OPT("config=%s", config),
    OPT("timeout=%s", timeout),
    OPT("preallocation=%s", preallocation),
    OPT("max_jobs=%s", max_jobs),
    OPT("max_staged=%s", max_staged),
    OPT("max_staged_total=%s", max_staged_total),
    OPT("log_level=%s", log_level),
    OPT("instar=%s", instar),
    OPT("backing_dirs=%s", backing_dirs),
    OPT("guest_dir=%s", guest_dir),
    FUSE_OPT_KEY("-h", KEY_HELP),
    FUSE_OPT_KEY("--help", KEY_HELP),
    FUSE_OPT_KEY("-V", KEY_VERSION),
    FUSE_OPT_KEY("--version", KEY_VERSION),
    FUSE_OPT_END,
};

static int cmdline_proc(void *data, const char *arg, int key, struct fuse_args *out)
{
	struct cmdline *c = data;

	(void)out;
	switch (key) {
	case KEY_HELP:
		c->help = 1;
		return 0;
	case KEY_VERSION:
		c->version = 1;
		return 0;
	case FUSE_OPT_KEY_NONOPT:
		/* The first bare word is SOURCE_DIR; the next one, the mount
		 * point, goes on to fuse_parse_cmdline. */
		if (!c->source) {
			c->source = strdup(arg);
			return c->source ? 0 : -1;
		}
		return 1;
	default:
		return 1;
	}
}

static void usage(const char *prog)
{
	printf(
	    "usage: %s [options] SOURCE_DIR MOUNTPOINT\n"
	    "\n"
	    "Shows every regular file in SOURCE_DIR as a folder under MOUNTPOINT with the\n"
	    "control files size (rw), result.json, info.json and format. Writing e.g.\n"
	    "'+10G' to size resizes the image with instar.\n"
	    "\n"
	    "instarfs options (also keys of the config file, [instarfs] section):\n"
	    "    -o config=FILE         config file (default " IFS_CONFIG_DEFAULT " if present)\n"
	    "    -o timeout=SECONDS     per-resize limit, passed to instar (default %u)\n"
	    "    -o preallocation=MODE  default for +SIZE grows: off, metadata, falloc, full\n"
	    "    -o max_jobs=N          resizes running at once; more wait in order (default %u)\n"
	    "    -o max_staged=SIZE     --max-staged of each resize (default: 1G, or less\n"
	    "                           so that max_jobs x max_staged fits the total)\n"
	    "    -o max_staged_total=SIZE  bound on max_jobs x max_staged (default 4G)\n"
	    "    -o log_level=LEVEL     error, warning, info, debug (default info)\n"
	    "    -o instar=PATH         the instar binary (default: next to instarfs, PATH)\n"
	    "    -o backing_dirs=D1:D2  absolute directories backing files may be in,\n"
	    "                           besides SOURCE_DIR (default: none)\n"
	    "    -o guest_dir=DIR       instar's guest binaries (INSTAR_GUEST_DIR of the\n"
	    "                           children; default: instar's own)\n"
	    "    -o allow_other         let other users use the mount\n"
	    "SIGUSR1 re-reads the config file.\n"
	    "\n",
	    prog, INSTAR_TIMEOUT_DEFAULT_S, IFS_MAX_JOBS_DEFAULT);
}

/* ---- SIGUSR1: reload, in a thread of its own (no work in a handler) ---- */
static int reload_stop_fd = -1;
static pthread_t reload_thread;

static void *reload_main(void *arg)
{
	int sfd = *(int *)arg;

	for (;;) {
		struct pollfd pfd[2] = {{.fd = sfd, .events = POLLIN},
					{.fd = reload_stop_fd, .events = POLLIN}};
		struct signalfd_siginfo si;

		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pfd[1].revents)
			break;
		if (pfd[0].revents && read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
			log_info("SIGUSR1 from pid %u: reloading the config", si.ssi_pid);
			ifs_config_reload();
		}
	}
	close(sfd);
	return NULL;
}

static int reload_start(void)
{
	static int sfd;
	sigset_t set;
	int r;

	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sfd = signalfd(-1, &set, SFD_CLOEXEC);
	if (sfd < 0)
		return -errno;
	reload_stop_fd = eventfd(0, EFD_CLOEXEC);
	if (reload_stop_fd < 0) {
		r = -errno;
		close(sfd);
		return r;
	}
	r = pthread_create(&reload_thread, NULL, reload_main, &sfd);
	if (r) {
		close(sfd);
		close(reload_stop_fd);
		reload_stop_fd = -1;
		return -r;
	}
	return 0;
}

static void reload_stop(void)
{
	uint64_t one = 1;

	if (reload_stop_fd < 0)
		return;
	if (write(reload_stop_fd, &one, sizeof(one)) == (ssize_t)sizeof(one))
		pthread_join(reload_thread, NULL);
	close(reload_stop_fd);
	reload_stop_fd = -1;
}

/* ---- checks that turn kernel errnos into sentences ---- */
static int check_mountpoint(const char *mnt)
{
	struct stat st, parent;
	char up[PATH_MAX + 4];

	if (stat(mnt, &st) < 0) {
		int e = errno;

		if (e == ENOTCONN)
			log_err("mountpoint %s: %s (a stale FUSE mount? try 'fusermount3 -u %s')",
				mnt, strerror(e), mnt);
		else
			log_err("mountpoint %s: %s", mnt, strerror(e));
		return -e;
	}
	if (!S_ISDIR(st.st_mode)) {
		log_err("mountpoint %s: not a directory", mnt);
		return -ENOTDIR;
	}
	snprintf(up, sizeof(up), "%s/..", mnt);
	if (stat(up, &parent) == 0 && (parent.st_dev != st.st_dev || parent.st_ino == st.st_ino))
		log_warn("mountpoint %s is already a mount point; instarfs will be mounted over it",
			 mnt);
	return 0;
}

static int check_dev_fuse(void)
{
	struct stat st;

	if (stat("/dev/fuse", &st) == 0 && S_ISCHR(st.st_mode))
		return 0;
	log_err("/dev/fuse is missing: load the fuse module (modprobe fuse), or in a container "
		"pass the device in (e.g. --device /dev/fuse)");
	return -ENODEV;
}

/* --help and --version, then FUSE's own options. 1: done (exit 0), 0: go
 * on, -1: error. */
static int parse_cmdline(struct fuse_args *args, const struct cmdline *cl,
			 struct fuse_cmdline_opts *fopts, const char *prog)
{
	if (cl->help) {
		usage(prog);
		printf("FUSE options:\n");
		fuse_cmdline_help();
		fuse_lowlevel_help();
		return 1;
	}
	if (cl->version) {
		printf("instarfs version %s (libfuse %s)\n", INSTAR_VERSION, fuse_pkgversion());
		return 1;
	}
	return fuse_parse_cmdline(args, fopts) < 0 ? -1 : 0;
}

/* The configuration: the file, with the -o settings on top (now and on
 * every reload). 0 or -1. */
static int configure(const struct cmdline *cl, const struct fuse_cmdline_opts *fopts,
		     struct ifs_config *cfg)
{
	const struct {
		const char *key;
		const char *value;
	} ov[] = {{"timeout", cl->timeout},
		  {"preallocation", cl->preallocation},
		  {"max_jobs", cl->max_jobs},
		  {"max_staged", cl->max_staged},
		  {"max_staged_total", cl->max_staged_total},
		  {"log_level", cl->log_level},
		  {"instar", cl->instar},
		  {"backing_dirs", cl->backing_dirs},
		  {"guest_dir", cl->guest_dir}};

	for (size_t i = 0; i < sizeof(ov) / sizeof(ov[0]); i++)
		if (ov[i].value && ifs_config_set_override(ov[i].key, ov[i].value) < 0)
			return -1;
	if (ifs_config_load(cl->config) < 0)
		return -1;
	ifs_config_get(cfg);
	if (fopts->debug)
		ifs_log_set_level(IFS_LOG_DEBUG);
	return 0;
}

/* The source directory (opened) and the mount point (checked). 0 or -1. */
static int find_dirs(const struct cmdline *cl, const struct fuse_cmdline_opts *fopts,
		     const struct ifs_config *cfg, const char *prog, const char **ret_source,
		     const char **ret_mountpoint)
{
	const char *source = cl->source, *mountpoint = fopts->mountpoint;
	int r;

	if (!mountpoint && source && cfg->source[0]) {
		/* One bare word and a source in the config: it is the mount point. */
		mountpoint = source;
		source = cfg->source;
	}
	if (!source || !mountpoint) {
		fprintf(stderr, "usage: %s [options] SOURCE_DIR MOUNTPOINT (see --help)\n", prog);
		return -1;
	}
	r = ifs_source_open_dir(source);
	if (r < 0) {
		log_err("source directory %s: %s", source, strerror(-r));
		return -1;
	}
	if (check_dev_fuse() < 0 || check_mountpoint(mountpoint) < 0)
		return -1;
	*ret_source = source;
	*ret_mountpoint = mountpoint;
	return 0;
}

/* A FUSE session mounted on mountpoint, or NULL. */
static struct fuse_session *mount_session(struct fuse_args *args, const struct ifs_config *cfg,
					  const char *mountpoint)
{
	struct fuse_session *se;
	sigset_t usr1;

	/* Kernel-side permission checks against the modes we report; without
	 * this anyone allowed into the mount could resize any image. */
	if (fuse_opt_add_arg(args, "-odefault_permissions") < 0 ||
	    (cfg->allow_other && fuse_opt_add_arg(args, "-oallow_other") < 0))
		return NULL;

	/* Block SIGUSR1 before any thread exists; the reload thread reads it
	 * from a signalfd. Children get a clean mask (jobs.c). */
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &usr1, NULL);

	se = fuse_session_new(args, &ifs_ll_ops, sizeof(ifs_ll_ops), NULL);
	if (!se)
		return NULL;
	if (fuse_session_mount(se, mountpoint) != 0) {
		log_err("cannot mount on %s (see the fuse message above)", mountpoint);
		fuse_session_destroy(se);
		return NULL;
	}
	/* Never leak /dev/fuse into a child (posix_spawn also closes fds > 3). */
	fcntl(fuse_session_fd(se), F_SETFD, FD_CLOEXEC);
	return se;
}

/* Daemonized (unless -f), serves the mount until it is unmounted or a
 * signal ends the loop, then lets the running resizes finish. The exit
 * status: 0 or 1. */
static int serve(struct fuse_session *se, const struct fuse_cmdline_opts *fopts,
		 const struct ifs_config *cfg, const char *source, const char *mountpoint)
{
	struct fuse_loop_config loop = {.clone_fd = 0, .max_idle_threads = 10};
	int ret, r;

	if (fuse_daemonize(fopts->foreground) != 0)
		return 1;
	if (!fopts->foreground)
		ifs_log_use_syslog();
	if (fuse_set_signal_handlers(se) != 0)
		return 1;
	ifs_jobs_init();
	r = ifs_notify_start();
	if (r == 0)
		r = reload_start();
	if (r < 0) {
		log_err("cannot start threads: %s", strerror(-r));
		fuse_remove_signal_handlers(se);
		return 1;
	}
	log_info("serving %s on %s (instar %s, timeout %u s, max_jobs %u, max_staged %llu)", source,
		 mountpoint, cfg->instar, cfg->timeout, cfg->max_jobs,
		 (unsigned long long)cfg->max_staged);
	if (fopts->singlethread)
		ret = fuse_session_loop(se) ? 1 : 0;
	else
		ret = fuse_session_loop_mt(se, &loop) ? 1 : 0;
	log_info("unmounting %s", mountpoint);
	/* Still mounted: the replies of the running resizes can reach their
	 * writers, and the cancelled ones get ECANCELED, before the unmount. */
	ifs_jobs_shutdown();
	reload_stop();
	ifs_notify_stop();
	fuse_remove_signal_handlers(se);
	return ret;
}

static void cmdline_free(struct cmdline *cl)
{
	free(cl->source);
	free(cl->config);
	free(cl->timeout);
	free(cl->preallocation);
	free(cl->max_jobs);
	free(cl->max_staged);
	free(cl->max_staged_total);
	free(cl->log_level);
	free(cl->instar);
	free(cl->backing_dirs);
	free(cl->guest_dir);
}

int main(int argc, char *argv[])
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct fuse_cmdline_opts fopts = {0};
	struct cmdline cl = {0};
	struct ifs_config cfg;
	struct fuse_session *se;
	const char *source, *mountpoint;
	int ret = 1, r;

	ifs_log_init();
	if (fuse_opt_parse(&args, &cl, cmdline_spec, cmdline_proc) < 0)
		return 1;
	r = parse_cmdline(&args, &cl, &fopts, argv[0]);
	if (r > 0)
		ret = 0;
	else if (r == 0 && configure(&cl, &fopts, &cfg) == 0 &&
		 find_dirs(&cl, &fopts, &cfg, argv[0], &source, &mountpoint) == 0) {
		se = mount_session(&args, &cfg, mountpoint);
		if (se) {
			ret = serve(se, &fopts, &cfg, source, mountpoint);
			fuse_session_unmount(se);
			fuse_session_destroy(se);
		}
	}
	free(fopts.mountpoint);
	cmdline_free(&cl);
	fuse_opt_free_args(&args);
	return ret;
}
