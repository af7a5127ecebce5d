/* fs/instarfs.h — instarfs internals shared by its files: logging, config,
 * the source directory and image table, the job runner, the control files.
 *
 * Threads and why (issue 17): instarfs uses libfuse's low-level API. A write
 * to `size` is checked, parsed and queued by the FUSE worker that received
 * it, which then returns to the kernel at once; the reply (fuse_reply_write
 * or fuse_reply_err) is sent later by the job thread that ran the resize. So
 * no FUSE worker ever waits for a resize or for a job slot, and lookups,
 * getattr, readdir, open and read are served by the workers whatever the
 * number of queued writes (the high-level API can only reply by returning
 * from the handler, which is what held a worker per queued write before).
 *   - FUSE workers (libfuse's multi-threaded loop, its own limits): every
 *     operation; the only children they wait for are `instar info` probes.
 *   - Job threads (jobs.c): at most max_jobs, started on demand, each runs
 *     one resize at a time from one FIFO queue: writers are served in the
 *     order their writes arrived. Lowering max_jobs (SIGUSR1) lets surplus
 *     threads end after their current resize.
 *   - notify.c: one thread sending poll wake-ups; instarfs.c: one thread
 *     reading SIGUSR1.
 * At the end of the FUSE loop (unmount, SIGTERM, SIGINT, SIGHUP) writes
 * still queued fail with ECANCELED (and a result.json saying so; their
 * image was never touched) while running resizes finish and are answered
 * before the mount goes away. */
#ifndef IFS_INSTARFS_H
#define IFS_INSTARFS_H

#define FUSE_USE_VERSION 35
#include <fuse_lowlevel.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "cli_limits.h"

/* ---- log.c ---- */
enum ifs_log_level { IFS_LOG_ERR = 0, IFS_LOG_WARN, IFS_LOG_INFO, IFS_LOG_DEBUG };

/* Routes our messages and libfuse's to stderr, or to syslog once daemonized. */
void ifs_log_init(void);
void ifs_log_use_syslog(void);
void ifs_log_set_level(int level);
/* "error"/"err", "warning"/"warn", "info", "debug"; -1 if unknown. */
int ifs_log_level_from_name(const char *name);
const char *ifs_log_level_name(int level);
void ifs_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define log_err(...) ifs_log(IFS_LOG_ERR, __VA_ARGS__)
#define log_warn(...) ifs_log(IFS_LOG_WARN, __VA_ARGS__)
#define log_info(...) ifs_log(IFS_LOG_INFO, __VA_ARGS__)
#define log_debug(...) ifs_log(IFS_LOG_DEBUG, __VA_ARGS__)

/* ---- config.c ---- */
#define IFS_CONFIG_DEFAULT "/etc/instar/instarfs.ini"
#define IFS_MAX_JOBS_DEFAULT 4u
#define IFS_MAX_JOBS_MAX 1024u
/* Extra seconds the watchdog grants the child past its own --timeout, so that
 * a child that times out itself can still report it. */
#define IFS_GRACE_SECONDS 5u
/* Staged bytes per child: at most instar's own default
 * (INSTAR_MAX_STAGED_DEFAULT), and for all of them together: max_jobs x
 * max_staged may not exceed max_staged_total. */
#define IFS_MAX_STAGED_TOTAL_DEFAULT (4ull << 30)

/* One absolute directory per entry, '\0'-separated, the last followed by
 * an empty one (so that no list needs a pointer into another copy). */
struct ifs_dir_list {
	char buf[4 * PATH_MAX];
	unsigned n;
};

struct ifs_config {
	unsigned timeout;  /* seconds; the child's --timeout */
	int prealloc;	   /* enum instar_prealloc: default for "+SIZE" writes */
	unsigned max_jobs; /* concurrent resizes, all images */
	/* --max-staged of every child; when not set, the smaller of 1 GiB and
	 * max_staged_total / max_jobs */
	uint64_t max_staged;
	bool max_staged_set;
	uint64_t max_staged_total; /* bound on max_jobs x max_staged */
	bool allow_other;	   /* mount option; read at mount time only */
	int log_level;		   /* enum ifs_log_level */
	char instar[PATH_MAX];	   /* the instar binary, resolved to a path */
	char source[PATH_MAX];	   /* source dir from the ini; "" if not set */
	/* backing_dirs: where backing files may be besides the source dir */
	struct ifs_dir_list backing_dirs;
	char guest_dir[PATH_MAX]; /* INSTAR_GUEST_DIR of children; "" if not set */
};

/* Records a command-line setting (key=value); it overrides the ini file at
 * load and at every reload. Returns 0 or -EINVAL (message logged). */
int ifs_config_set_override(const char *key, const char *value);
/* Loads defaults, then the ini file (path NULL: the default file if it
 * exists), then the overrides; on success makes it current. 0 / -errno. */
int ifs_config_load(const char *path);
/* Re-reads the file given to ifs_config_load. Keeps the old config on error. */
int ifs_config_reload(void);
/* A copy of the current config. */
void ifs_config_get(struct ifs_config *ret);

/* ---- source.c: the source directory and the per-image table ---- */
struct ifs_handle;

struct ifs_info {
	bool valid;
	dev_t dev; /* stat of the image the info was probed from */
	ino_t ino;
	off_t size;
	struct timespec mtim, ctim;
	uint64_t virtual_size;
	char format[32];
	char *json; /* info.json text */
};

struct ifs_image {
	struct ifs_image *next;
	char *name;
	uint64_t id;  /* 1, 2, ... in order of creation: the inode numbers */
	bool busy;    /* a resize holds this image */
	char *result; /* result.json text, NULL before any resize */
	uint64_t gen; /* bumped by every published result */
	struct timespec result_time;
	struct ifs_handle *pollers; /* open handles with a pending poll */
	struct ifs_info info;	    /* probe cache, valid while the stat matches */
};

int ifs_source_open_dir(const char *path);
int ifs_source_fd(void);
/* True for names instarfs exposes: non-empty, no '/', not hidden. */
bool ifs_source_name_ok(const char *name);
/* lstat-like stat of an exposed image: -ENOENT unless a regular file. */
int ifs_source_stat(const char *name, struct stat *ret);
/* Opens an exposed image (O_NOFOLLOW, regular files only, O_CLOEXEC).
 * Returns the fd or -errno. */
int ifs_source_open(const char *name, int flags, struct stat *ret_st);

/* The image table (entries are created on demand and never freed, so
 * pointers stay valid). All fields are guarded by ifs_images_lock(). */
struct ifs_image *ifs_image_get(const char *name);
/* The entry with that id, NULL if none. */
struct ifs_image *ifs_image_by_id(uint64_t id);
void ifs_images_lock(void);
void ifs_images_unlock(void);
/* Marks img busy; -EBUSY if a resize already runs on it. */
int ifs_image_claim(struct ifs_image *img);
/* Stores a new result.json (takes ownership of json), drops the info cache,
 * clears busy and wakes pollers. */
void ifs_image_publish(struct ifs_image *img, char *json);
void ifs_image_release(struct ifs_image *img);

/* ---- request.c: the words written to `size` ---- */
#define IFS_WRITE_MAX 4096u

struct ifs_request {
	bool shrink;
	bool quiet;
	int prealloc;	     /* enum instar_prealloc, -1: not given */
	uint64_t max_staged; /* --max-staged in bytes, 0: not given */
	const char *size;    /* points into buf */
	uint32_t code;	     /* on error: INSTAR_ERR_INVALID_OPTION or _NEW_SIZE */
	char buf[IFS_WRITE_MAX + 1];
};

/* Splits and checks one write. Returns 0 or -EINVAL with a message in err. */
int ifs_request_parse(const char *data, size_t len, struct ifs_request *ret, char *err,
		      size_t errlen);

/* ---- jobs.c: children running instar ---- */
/* One queued write to `size`: img is claimed (busy) by the writer. */
struct ifs_job {
	struct ifs_job *next;
	fuse_req_t req;
	struct ifs_image *img;
	size_t size; /* bytes written: the reply on success */
	struct ifs_request r;
};

void ifs_jobs_init(void);
/* Starts or ends job threads after max_jobs changed. */
void ifs_jobs_config_changed(void);
/* Queues job (taking ownership) behind the ones already queued; a job
 * thread runs `instar resize`, publishes the outcome and replies to
 * job->req. Never blocks on a resize. */
void ifs_job_submit(struct ifs_job *job);
/* End of the mount: queued jobs fail with ECANCELED, running ones finish;
 * returns when every job thread has ended. */
void ifs_jobs_shutdown(void);
/* Fills img->info by running `instar info` unless the image is unchanged
 * since the last probe. Takes the image lock itself. Returns 0 or -errno;
 * on failure *ret_error (if not NULL) gets a malloc'ed JSON error object. */
int ifs_job_info(struct ifs_image *img, char **ret_error);

/* ---- result.c: JSON documents the daemon writes itself ---- */
/* A result.json error object in the schema of `instar resize --output=json`
 * (sizes unknown), rendered by vmm's serializer: code is an enum instar_err.
 * Returns malloc'ed text ending in "\n", or NULL. */
char *ifs_result_error(const char *filename, uint32_t code, int errnum, const char *message);

/* ---- control.c: the files in each image folder ---- */
enum ifs_ctl_kind { IFS_CTL_SIZE, IFS_CTL_RESULT, IFS_CTL_INFO, IFS_CTL_FORMAT, IFS_CTL_COUNT };

struct ifs_control {
	const char *name;
	enum ifs_ctl_kind kind;
	mode_t mask;   /* permission bits taken from the image's mode */
	bool writable; /* write() is a request */
	bool pollable; /* poll() wakes after each resize */
};

extern const struct ifs_control ifs_controls[IFS_CTL_COUNT];
const struct ifs_control *ifs_control_find(const char *name);

/* One open control file: its snapshot and poll state. */
struct ifs_handle {
	const struct ifs_control *ctl;
	struct ifs_image *img;
	char *buf; /* snapshot rendered at open */
	size_t len;
	uint64_t gen; /* img->gen the snapshot belongs to */
	struct fuse_pollhandle *ph;
	struct ifs_handle *poll_next; /* on img->pollers, under the image lock */
	bool polling;
};

/* Renders the snapshot of h (h->ctl, h->img set). Returns 0 or -errno. */
int ifs_control_render(struct ifs_handle *h);

/* ---- notify.c: poll wake-ups, sent from their own thread ---- */
int ifs_notify_start(void);
void ifs_notify_stop(void);
/* Queues ph for fuse_notify_poll + destroy. Callable under the image lock. */
void ifs_notify_queue(struct fuse_pollhandle *ph);

/* ---- ops.c ---- */
extern const struct fuse_lowlevel_ops ifs_ll_ops;

#endif
