/* fs/jobs.c — the job runner: every resize (and every probe) is a child
 * `instar` process started with posix_spawn, handed the already-open image as
 * fd IFS_CHILD_FD (/dev/fd/3), watched by a deadline and a global job limit.
 * Whatever the child does — crash, hang, print garbage — ends as an error
 * object in result.json and an errno for the writer; the daemon carries on. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "abi_names.h"
#include "instarfs.h"
#include "result_json.h"

#define IFS_CHILD_FD 3
#define IFS_CHILD_FD_PATH "/dev/fd/3"
#define OUT_MAX (64u * 1024u) /* more stdout than this is not a valid result */
#define ERR_TAIL 512u	      /* stderr bytes kept for messages */
#define ARGV_MAX (26u + 2u * INSTAR_MAX_BACKING_DIRS)
/* Children get this environment and nothing of ours: whatever instarfs was
 * started with (test hooks, LD_PRELOAD, locale) stays out of a resize. */
#define CHILD_PATH "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define CHILD_LOCALE "LC_ALL=C"

/* The job queue (FIFO) and its threads, all under jobs_lock. Job threads
 * are started on demand while fewer than max_jobs exist and more jobs wait
 * than threads are free; one that finds more threads than max_jobs (after
 * a reload) ends. jobs_cond wakes idle threads and the shutdown. */
static pthread_mutex_t jobs_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t jobs_cond = PTHREAD_COND_INITIALIZER;
static struct ifs_job *queue_head, **queue_tail = &queue_head;
static unsigned queue_len;
static unsigned threads; /* job threads alive */
static unsigned busy;	 /* of which running a resize */
static bool stopping;
static unsigned jobs_max = IFS_MAX_JOBS_DEFAULT;

struct child {
	pid_t pid;
	int spawn_err; /* posix_spawn failed: positive errno */
	bool timed_out;
	int status; /* waitpid status */
	char *out;
	size_t out_len;
	bool out_overflow;
	char err[ERR_TAIL + 1];
	size_t err_len;
};

static int job_resize(struct ifs_image *img, const struct ifs_request *req);
static void *job_main(void *arg);

/* Starts the threads the queue needs. Returns -errno only if no thread
 * exists afterwards (the queue would never move). */
static int threads_spawn_locked(void)
{
	pthread_attr_t attr;
	sigset_t all, old;
	int r = 0;

	if (stopping || threads >= jobs_max || threads - busy >= queue_len)
		return 0;
	r = pthread_attr_init(&attr);
	if (r)
		return threads ? 0 : -r;
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	/* Job threads take no signals: SIGTERM/SIGINT must reach libfuse's
	 * threads (their reads end the FUSE loop), SIGUSR1 the reload thread. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	while (threads < jobs_max && threads - busy < queue_len) {
		pthread_t t;

		r = pthread_create(&t, &attr, job_main, NULL);
		if (r) {
			log_err("cannot start a job thread: %s", strerror(r));
			break;
		}
		threads++;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	return threads ? 0 : -r;
}

void ifs_jobs_config_changed(void)
{
	struct ifs_config c;

	ifs_config_get(&c);
	pthread_mutex_lock(&jobs_lock);
	jobs_max = c.max_jobs;
	threads_spawn_locked();
	/* Idle threads above the new limit end. */
	pthread_cond_broadcast(&jobs_cond);
	pthread_mutex_unlock(&jobs_lock);
}

void ifs_jobs_init(void)
{
	ifs_jobs_config_changed();
}

static void job_reply(struct ifs_job *job, int r)
{
	if (r < 0)
		fuse_reply_err(job->req, -r);
	else
		fuse_reply_write(job->req, job->size);
	free(job);
}

/* A queued job that will never run: its image is untouched. */
static void job_cancel(struct ifs_job *job)
{
	const char *msg = "instarfs is shutting down: the queued resize was cancelled before it "
			  "started; the image is unchanged";

	log_info("%s: queued resize cancelled (shutting down)", job->img->name);
	ifs_image_publish(job->img,
			  ifs_result_error(job->img->name, INSTAR_ERR_INTERNAL, ECANCELED, msg));
	job_reply(job, -ECANCELED);
}

static void *job_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&jobs_lock);
	for (;;) {
		struct ifs_job *job;

		if (threads > jobs_max)
			break;
		if (!queue_head) {
			if (stopping)
				break;
			pthread_cond_wait(&jobs_cond, &jobs_lock);
			continue;
		}
		job = queue_head;
		queue_head = job->next;
		if (!queue_head)
			queue_tail = &queue_head;
		queue_len--;
		busy++;
		pthread_mutex_unlock(&jobs_lock);
		job_reply(job, job_resize(job->img, &job->r));
		pthread_mutex_lock(&jobs_lock);
		busy--;
	}
	threads--;
	pthread_cond_broadcast(&jobs_cond);
	pthread_mutex_unlock(&jobs_lock);
	return NULL;
}

void ifs_job_submit(struct ifs_job *job)
{
	int r;

	job->next = NULL;
	pthread_mutex_lock(&jobs_lock);
	if (stopping) {
		pthread_mutex_unlock(&jobs_lock);
		job_cancel(job);
		return;
	}
	*queue_tail = job;
	queue_tail = &job->next;
	queue_len++;
	if (queue_len > threads - busy && threads >= jobs_max)
		log_debug("%s: waiting for a job slot (%u running, %u queued, max_jobs=%u)",
			  job->img->name, busy, queue_len, jobs_max);
	r = threads_spawn_locked();
	if (r < 0) {
		/* No thread at all: this job (the only one queued) fails. */
		queue_head = NULL;
		queue_tail = &queue_head;
		queue_len = 0;
		pthread_mutex_unlock(&jobs_lock);
		ifs_image_publish(job->img, ifs_result_error(job->img->name, INSTAR_ERR_INTERNAL,
							     EAGAIN, "cannot start a job thread"));
		job_reply(job, -EAGAIN);
		return;
	}
	pthread_cond_broadcast(&jobs_cond);
	pthread_mutex_unlock(&jobs_lock);
}

void ifs_jobs_shutdown(void)
{
	struct ifs_job *job, *next;
	unsigned n = 0;

	pthread_mutex_lock(&jobs_lock);
	stopping = true;
	job = queue_head;
	queue_head = NULL;
	queue_tail = &queue_head;
	queue_len = 0;
	pthread_cond_broadcast(&jobs_cond);
	if (busy)
		log_info("waiting for %u running resize(s) to finish", busy);
	pthread_mutex_unlock(&jobs_lock);
	for (; job; job = next, n++) {
		next = job->next;
		job_cancel(job);
	}
	if (n)
		log_info("%u queued resize(s) cancelled with ECANCELED", n);
	pthread_mutex_lock(&jobs_lock);
	while (threads)
		pthread_cond_wait(&jobs_cond, &jobs_lock);
	pthread_mutex_unlock(&jobs_lock);
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void child_read(struct child *c, int *fd, bool is_out)
{
	char buf[4096];
	ssize_t n = read(*fd, buf, sizeof(buf));

	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0) {
		close(*fd);
		*fd = -1;
		return;
	}
	if (is_out) {
		if (c->out_len + (size_t)n > OUT_MAX) {
			c->out_overflow = true;
			return;
		}
		char *p = realloc(c->out, c->out_len + (size_t)n + 1);

		if (!p) {
			c->out_overflow = true;
			return;
		}
		c->out = p;
		memcpy(c->out + c->out_len, buf, (size_t)n);
		c->out_len += (size_t)n;
		c->out[c->out_len] = '\0';
		return;
	}
	/* stderr: keep the tail, where the final message is. */
	if ((size_t)n >= ERR_TAIL) {
		memcpy(c->err, buf + n - ERR_TAIL, ERR_TAIL);
		c->err_len = ERR_TAIL;
	} else {
		size_t keep = c->err_len + (size_t)n > ERR_TAIL ? ERR_TAIL - (size_t)n : c->err_len;

		memmove(c->err, c->err + c->err_len - keep, keep);
		memcpy(c->err + keep, buf, (size_t)n);
		c->err_len = keep + (size_t)n;
	}
	c->err[c->err_len] = '\0';
}

static int spawn_setup(posix_spawn_file_actions_t *fa, posix_spawnattr_t *at, int out_w, int err_w,
		       int img_fd)
{
	sigset_t none, all;
	int r;

	sigemptyset(&none);
	sigfillset(&all);
	r = posix_spawn_file_actions_init(fa);
	if (r)
		return r;
	r = posix_spawnattr_init(at);
	if (r) {
		posix_spawn_file_actions_destroy(fa);
		return r;
	}
	/* The image's directory is the source directory: relative names of a
	 * backing file or data file in it resolve from there (instar resolves
	 * them against its working directory for an image handed over as
	 * /dev/fd/N). First, before the dup2s below can reuse its number. */
	r = ifs_source_fd() >= 0 ? posix_spawn_file_actions_addfchdir_np(fa, ifs_source_fd()) : 0;
	/* Order matters: the image goes to fd 3 last, after the pipes (which
	 * may have been fd 3 themselves) are in place on 1 and 2. */
	if (!r)
		r = posix_spawn_file_actions_addopen(fa, 0, "/dev/null", O_RDONLY, 0);
	if (!r)
		r = posix_spawn_file_actions_adddup2(fa, out_w, 1);
	if (!r)
		r = posix_spawn_file_actions_adddup2(fa, err_w, 2);
	if (!r)
		r = posix_spawn_file_actions_adddup2(fa, img_fd, IFS_CHILD_FD);
	if (!r)
		r = posix_spawn_file_actions_addclosefrom_np(fa, IFS_CHILD_FD + 1);
	/* Our mask blocks SIGUSR1 and libfuse ignores SIGPIPE: reset both. A
	 * process group of its own lets the watchdog kill all of it. */
	if (!r)
		r = posix_spawnattr_setsigmask(at, &none);
	if (!r)
		r = posix_spawnattr_setsigdefault(at, &all);
	if (!r)
		r = posix_spawnattr_setpgroup(at, 0);
	if (!r)
		r = posix_spawnattr_setflags(at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
						     POSIX_SPAWN_SETPGROUP);
	if (r) {
		posix_spawn_file_actions_destroy(fa);
		posix_spawnattr_destroy(at);
	}
	return r;
}

/* The fixed environment of a child: envp[] (4 entries) pointing into buf. */
static void child_env(const struct ifs_config *cfg, char *buf, size_t cap, char *envp[4])
{
	size_t n = 0;

	envp[n++] = CHILD_PATH;
	envp[n++] = CHILD_LOCALE;
	if (cfg->guest_dir[0] &&
	    (size_t)snprintf(buf, cap, "INSTAR_GUEST_DIR=%s", cfg->guest_dir) < cap)
		envp[n++] = buf;
	envp[n] = NULL;
}

/* Starts argv with img_fd as fd 3 and its stdout and stderr into the pipes
 * outp and errp, whose write ends are closed here once it runs. 0, or
 * c->spawn_err (a positive errno); the caller closes what is still open. */
static int child_spawn(char *const argv[], int img_fd, struct child *c, int outp[2], int errp[2])
{
	char envbuf[PATH_MAX + 32], *envp[4];
	struct ifs_config cfg;
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;

	ifs_config_get(&cfg);
	child_env(&cfg, envbuf, sizeof(envbuf), envp);
	if (pipe2(outp, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0) {
		c->spawn_err = errno;
		return c->spawn_err;
	}
	c->spawn_err = spawn_setup(&fa, &at, outp[1], errp[1], img_fd);
	if (c->spawn_err)
		return c->spawn_err;
	c->spawn_err = posix_spawn(&c->pid, argv[0], &fa, &at, argv, envp);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	close(outp[1]);
	close(errp[1]);
	outp[1] = errp[1] = -1;
	if (c->spawn_err) {
		c->pid = -1;
		return c->spawn_err;
	}
	log_debug("started %s %s (pid %d)", argv[0], argv[1], (int)c->pid);
	return 0;
}

/* Reads the child's output until it exits (true; pidfd), both pipes reach
 * EOF (false), or the deadline passes (false, c->timed_out). */
static bool child_collect(struct child *c, int *out, int *err, int pidfd, int64_t deadline)
{
	while (*out >= 0 || *err >= 0 || pidfd >= 0) {
		struct pollfd pfd[3];
		int n = 0, left = (int)(deadline - now_ms());
		bool exited = false;

		if (left <= 0) {
			c->timed_out = true;
			return false;
		}
		if (*out >= 0)
			pfd[n++] = (struct pollfd){.fd = *out, .events = POLLIN};
		if (*err >= 0)
			pfd[n++] = (struct pollfd){.fd = *err, .events = POLLIN};
		if (pidfd >= 0)
			pfd[n++] = (struct pollfd){.fd = pidfd, .events = POLLIN};
		if (poll(pfd, (nfds_t)n, left) < 0) {
			if (errno == EINTR)
				continue;
			return false;
		}
		for (int i = 0; i < n; i++) {
			if (!pfd[i].revents)
				continue;
			if (pfd[i].fd == pidfd) {
				exited = true;
				continue;
			}
			if (pfd[i].fd == *out)
				child_read(c, out, true);
			else
				child_read(c, err, false);
		}
		if (exited)
			return true;
	}
	return false;
}

/* After the exit: what is already in the pipes, without waiting for writers
 * the child may have left behind. */
static void child_drain(struct child *c, int *out, int *err)
{
	if (*out >= 0)
		fcntl(*out, F_SETFL, O_NONBLOCK);
	if (*err >= 0)
		fcntl(*err, F_SETFL, O_NONBLOCK);
	while (*out >= 0 && c->out_len < OUT_MAX) {
		size_t before = c->out_len;

		child_read(c, out, true);
		if (c->out_len == before)
			break;
	}
	for (int i = 0; i < 64 && *err >= 0; i++)
		child_read(c, err, false);
}

/* No pidfd (kernel before 5.3) and the pipes closed: polls for the exit
 * until the deadline. */
static void child_poll_exit(struct child *c, int64_t deadline)
{
	while (!c->timed_out) {
		siginfo_t si = {0};

		if (waitid(P_PID, (id_t)c->pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
		    si.si_pid == c->pid)
			return;
		if (now_ms() >= deadline)
			c->timed_out = true;
		else
			usleep(10000);
	}
}

/* Runs argv with img_fd as fd 3 and waits at most limit_s seconds. */
static void child_run(char *const argv[], int img_fd, unsigned limit_s, struct child *c)
{
	int outp[2] = {-1, -1}, errp[2] = {-1, -1}, pidfd = -1;
	int64_t deadline;
	bool exited;

	memset(c, 0, sizeof(*c));
	c->pid = -1;
	if (child_spawn(argv, img_fd, c, outp, errp))
		goto out;
	/* A pidfd tells us when the child exits even if something it started
	 * keeps the pipes open. Without one (old kernel) we wait for EOF. */
	pidfd = (int)syscall(SYS_pidfd_open, c->pid, 0);
	deadline = now_ms() + (int64_t)limit_s * 1000;
	exited = child_collect(c, &outp[0], &errp[0], pidfd, deadline);
	if (exited)
		child_drain(c, &outp[0], &errp[0]);
	else if (pidfd < 0)
		child_poll_exit(c, deadline);
	if (c->timed_out)
		log_warn("%s %s (pid %d) ran past %u s: killing it", argv[0], argv[1], (int)c->pid,
			 limit_s);
	/* Kill the whole group while the (possibly zombie) leader still holds
	 * the pid, so the group id cannot have been reused. */
	kill(-c->pid, SIGKILL);
	while (waitpid(c->pid, &c->status, 0) < 0 && errno == EINTR)
		;
out:
	if (pidfd >= 0)
		close(pidfd);
	for (int i = 0; i < 2; i++) {
		if (outp[i] >= 0)
			close(outp[i]);
		if (errp[i] >= 0)
			close(errp[i]);
	}
	if (c->err_len)
		ifs_log(c->status ? IFS_LOG_INFO : IFS_LOG_DEBUG, "%s %s (pid %d) said: %s",
			argv[0], argv[1], (int)c->pid, c->err);
}

static const char *last_line(struct child *c)
{
	char *p;

	while (c->err_len && (c->err[c->err_len - 1] == '\n' || c->err[c->err_len - 1] == ' '))
		c->err[--c->err_len] = '\0';
	p = strrchr(c->err, '\n');
	return p ? p + 1 : c->err;
}

/* The outcome of a child that did not give a usable answer; NULL if it did
 * (then *ret_doc holds its JSON object). */
static char *child_failure(const char *name, const char *what, struct child *c, unsigned limit_s,
			   json_t **ret_doc, int *ret_errno)
{
	char msg[1024];
	json_error_t jerr;
	json_t *doc;

	*ret_doc = NULL;
	*ret_errno = EIO;
	if (c->spawn_err) {
		snprintf(msg, sizeof(msg), "cannot start %s: %s", what, strerror(c->spawn_err));
		return ifs_result_error(name, INSTAR_ERR_INTERNAL, EIO, msg);
	}
	if (c->timed_out) {
		*ret_errno = ETIMEDOUT;
		snprintf(msg, sizeof(msg),
			 "%s did not finish within %u s (timeout + %u s grace) and was killed",
			 what, limit_s, IFS_GRACE_SECONDS);
		return ifs_result_error(name, INSTAR_ERR_TIMEOUT, ETIMEDOUT, msg);
	}
	if (WIFSIGNALED(c->status)) {
		int sig = WTERMSIG(c->status);
		const char *abbrev = sigabbrev_np(sig);

		snprintf(msg, sizeof(msg), "%s was killed by signal %d (SIG%s: %s)", what, sig,
			 abbrev ? abbrev : "?", strsignal(sig));
		return ifs_result_error(name, INSTAR_ERR_INTERNAL, EIO, msg);
	}
	doc = c->out && !c->out_overflow ? json_loadb(c->out, c->out_len, 0, &jerr) : NULL;
	if (!json_is_object(doc)) {
		json_decref(doc);
		snprintf(msg, sizeof(msg), "%s printed no valid JSON (exit status %d)%s%.400s",
			 what, WEXITSTATUS(c->status), c->err_len ? ": " : "", last_line(c));
		return ifs_result_error(name, INSTAR_ERR_INTERNAL, EIO, msg);
	}
	*ret_doc = doc;
	*ret_errno = 0;
	return NULL;
}

/* Dumps doc with "filename" set to the image's name in the source dir (the
 * child only saw /dev/fd/3). */
static char *doc_dump(json_t *doc, const char *name, size_t flags)
{
	json_t *fn = json_string(name);
	char *s, *out;
	size_t n;

	/* Names that are not UTF-8 cannot be JSON strings: null. */
	json_object_set_new(doc, "filename", fn ? fn : json_null());
	s = json_dumps(doc, flags | JSON_PRESERVE_ORDER);
	if (!s)
		return NULL;
	n = strlen(s);
	out = malloc(n + 2);
	if (out) {
		memcpy(out, s, n);
		memcpy(out + n, "\n", 2);
	}
	free(s);
	return out;
}

/* The format an image's name says it has (qemu's driver name), or NULL:
 * then the child probes. ".img" says nothing (raw and qcow2 alike use it). */
static const char *format_from_name(const char *name)
{
	static const struct {
		const char *ext, *fmt;
	} map[] = {{".qcow2", "qcow2"}, {".vmdk", "vmdk"}, {".vhd", "vpc"}, {".vpc", "vpc"},
		   {".vhdx", "vhdx"},	{".qed", "qed"},   {".vdi", "vdi"}, {".raw", "raw"}};
	size_t len = strlen(name);

	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
		size_t el = strlen(map[i].ext);

		if (len > el && strcasecmp(name + len - el, map[i].ext) == 0)
			return map[i].fmt;
	}
	return NULL;
}

static int job_resize(struct ifs_image *img, const struct ifs_request *req)
{
	char staged[24], timeout[16], *argv[ARGV_MAX], *json = NULL, msg[512];
	const char *fmt = format_from_name(img->name), *dir;
	struct ifs_config cfg;
	struct child c;
	json_t *doc = NULL, *err;
	unsigned limit;
	int fd, prealloc, errnum = 0, n = 0;

	ifs_config_get(&cfg);
	fd = ifs_source_open(img->name, O_RDWR, NULL);
	if (fd < 0) {
		snprintf(msg, sizeof(msg), "cannot open the image: %s", strerror(-fd));
		ifs_image_publish(img,
				  ifs_result_error(img->name, INSTAR_ERR_OPEN_FAILED, EIO, msg));
		return fd == -ENOENT || fd == -EACCES ? fd : -EIO;
	}
	/* The configured default applies to plain grows only: qemu-img refuses
	 * preallocation for anything that is not growing the image. */
	prealloc = req->prealloc;
	if (prealloc < 0 && req->size[0] == '+' && cfg.prealloc != INSTAR_PREALLOC_OFF)
		prealloc = cfg.prealloc;
	snprintf(timeout, sizeof(timeout), "%u", cfg.timeout);
	argv[n++] = cfg.instar;
	argv[n++] = "resize";
	argv[n++] = "--output=json";
	if (req->quiet)
		argv[n++] = "-q";
	argv[n++] = "--timeout";
	argv[n++] = timeout;
	if (prealloc >= 0) {
		argv[n++] = "--preallocation";
		argv[n++] = (char *)instar_prealloc_name((uint32_t)prealloc);
	}
	if (req->shrink)
		argv[n++] = "--shrink";
	/* Always given: the configured share of max_staged_total, or less if
	 * the writer asked for less (ops.c refuses more). */
	snprintf(staged, sizeof(staged), "%llu",
		 (unsigned long long)(req->max_staged ? req->max_staged : cfg.max_staged));
	argv[n++] = "--max-staged";
	argv[n++] = staged;
	/* The files the image names stay in the source dir (the child's working
	 * directory, so the directory of /dev/fd/3) and the backing_dirs; a data
	 * file is never another image this mount exposes. */
	argv[n++] = "--confine";
	dir = cfg.backing_dirs.buf;
	for (unsigned i = 0; i < cfg.backing_dirs.n; i++, dir += strlen(dir) + 1) {
		argv[n++] = "--backing-dir";
		argv[n++] = (char *)dir;
	}
	/* A name that says the format is believed only if the probe agrees
	 * (else EMEDIUMTYPE): a raw disk whose guest wrote a qcow2 header is
	 * never resized as qcow2, nor a qcow2 named .raw cut as raw. */
	if (fmt) {
		argv[n++] = "-f";
		argv[n++] = (char *)fmt;
		argv[n++] = "--strict-format";
	}
	argv[n++] = IFS_CHILD_FD_PATH;
	argv[n++] = (char *)req->size;
	argv[n] = NULL;

	limit = cfg.timeout + IFS_GRACE_SECONDS;
	log_info("%s: resize %s%s%s%s%s (timeout %u s)", img->name, req->shrink ? "--shrink " : "",
		 prealloc >= 0 ? "--preallocation=" : "",
		 prealloc >= 0 ? instar_prealloc_name((uint32_t)prealloc) : "",
		 prealloc >= 0 ? " " : "", req->size, cfg.timeout);
	child_run(argv, fd, limit, &c);
	close(fd);

	json = child_failure(img->name, "instar resize", &c, limit, &doc, &errnum);
	if (doc) {
		err = json_object_get(doc, "error");
		if (json_is_object(err)) {
			errnum = vmm_result_errno_from_name(
			    json_string_value(json_object_get(err, "errno")));
		} else if (WEXITSTATUS(c.status) != 0) {
			snprintf(msg, sizeof(msg),
				 "instar resize exited with status %d without an error object",
				 WEXITSTATUS(c.status));
			json = ifs_result_error(img->name, INSTAR_ERR_INTERNAL, EIO, msg);
			errnum = EIO;
		}
		if (!json)
			json = doc_dump(doc, img->name, JSON_COMPACT);
		json_decref(doc);
	}
	free(c.out);
	if (errnum)
		log_info("%s: resize failed: %s", img->name, json ? json : strerror(errnum));
	else
		log_info("%s: resized", img->name);
	ifs_image_publish(img, json);
	return -errnum;
}

static bool info_matches(const struct ifs_info *i, const struct stat *st)
{
	return i->valid && i->dev == st->st_dev && i->ino == st->st_ino && i->size == st->st_size &&
	       i->mtim.tv_sec == st->st_mtim.tv_sec && i->mtim.tv_nsec == st->st_mtim.tv_nsec &&
	       i->ctim.tv_sec == st->st_ctim.tv_sec && i->ctim.tv_nsec == st->st_ctim.tv_nsec;
}

int ifs_job_info(struct ifs_image *img, char **ret_error)
{
	char *argv[5], *json = NULL, msg[256];
	struct ifs_config cfg;
	struct stat st;
	struct child c;
	json_t *doc = NULL, *vs = NULL, *fmt = NULL, *err;
	unsigned limit;
	int fd, errnum = 0;
	bool fresh;

	if (ret_error)
		*ret_error = NULL;
	fd = ifs_source_open(img->name, O_RDONLY, &st);
	if (fd < 0)
		return fd;
	ifs_images_lock();
	fresh = info_matches(&img->info, &st);
	ifs_images_unlock();
	if (fresh) {
		close(fd);
		return 0;
	}
	ifs_config_get(&cfg);
	argv[0] = cfg.instar;
	argv[1] = "info";
	argv[2] = "--output=json";
	argv[3] = IFS_CHILD_FD_PATH;
	argv[4] = NULL;
	limit = cfg.timeout + IFS_GRACE_SECONDS;
	child_run(argv, fd, limit, &c);
	close(fd);

	json = child_failure(img->name, "instar info", &c, limit, &doc, &errnum);
	if (doc) {
		err = json_object_get(doc, "error");
		vs = json_object_get(doc, "virtual-size");
		if (!vs)
			vs = json_object_get(doc, "virtual_size");
		fmt = json_object_get(doc, "format");
		if (json_is_object(err)) {
			errnum = vmm_result_errno_from_name(
			    json_string_value(json_object_get(err, "errno")));
			json = doc_dump(doc, img->name, JSON_COMPACT);
		} else if (!json_is_integer(vs) || json_integer_value(vs) < 0 ||
			   !json_is_string(fmt) ||
			   json_string_length(fmt) >= sizeof(img->info.format)) {
			snprintf(msg, sizeof(msg),
				 "instar info printed no virtual-size and format (exit status %d)",
				 WEXITSTATUS(c.status));
			json = ifs_result_error(img->name, INSTAR_ERR_INTERNAL, EIO, msg);
			errnum = EIO;
		}
	}
	if (errnum) {
		log_info("%s: info failed: %s", img->name, json ? json : strerror(errnum));
		if (ret_error)
			*ret_error = json;
		else
			free(json);
		json_decref(doc);
		free(c.out);
		return -errnum;
	}
	json = doc_dump(doc, img->name, JSON_INDENT(4));
	if (!json) {
		json_decref(doc);
		free(c.out);
		return -ENOMEM;
	}
	ifs_images_lock();
	free(img->info.json);
	img->info.json = json;
	img->info.virtual_size = (uint64_t)json_integer_value(vs);
	snprintf(img->info.format, sizeof(img->info.format), "%s", json_string_value(fmt));
	img->info.dev = st.st_dev;
	img->info.ino = st.st_ino;
	img->info.size = st.st_size;
	img->info.mtim = st.st_mtim;
	img->info.ctim = st.st_ctim;
	img->info.valid = true;
	ifs_images_unlock();
	json_decref(doc);
	free(c.out);
	return 0;
}
