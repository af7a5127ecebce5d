/* fs/log.c — instarfs logging: one level for our messages and libfuse's,
 * stderr in the foreground (journald under systemd), syslog once daemonized;
 * control characters escaped in every record. */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>

#include "escape.h"
#include "instarfs.h"

static atomic_int log_level = IFS_LOG_INFO;
static atomic_bool log_syslog;

static const char *const level_names[] = {"error", "warning", "info", "debug"};

void ifs_log_set_level(int level)
{
	if (level >= IFS_LOG_ERR && level <= IFS_LOG_DEBUG)
		atomic_store(&log_level, level);
}

int ifs_log_level_from_name(const char *name)
{
	if (strcmp(name, "err") == 0)
		return IFS_LOG_ERR;
	if (strcmp(name, "warn") == 0)
		return IFS_LOG_WARN;
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
		if (strcmp(name, level_names[i]) == 0)
			return (int)i;
	return -1;
}

const char *ifs_log_level_name(int level)
{
	if (level < IFS_LOG_ERR || level > IFS_LOG_DEBUG)
		return "unknown";
	return level_names[level];
}

__attribute__((format(printf, 2, 0))) static void log_va(int level, const char *fmt, va_list ap)
{
	static const int prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};
	char msg[1024], safe[4 * sizeof(msg)];
	size_t n;

	if (level > atomic_load(&log_level))
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	n = strlen(msg);
	while (n > 0 && msg[n - 1] == '\n')
		msg[--n] = '\0';
	/* Image names, a child's stderr and the like are untrusted: one log
	 * record stays one line and sends no terminal escape. */
	instar_escape(safe, sizeof(safe), msg);
	if (atomic_load(&log_syslog))
		syslog(prio[level], "%s", safe);
	else
		fprintf(stderr, "instarfs: %s\n", safe);
}

void ifs_log(int level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_va(level, fmt, ap);
	va_end(ap);
}

__attribute__((format(printf, 2, 0))) static void fuse_log_cb(enum fuse_log_level level,
							      const char *fmt, va_list ap)
{
	int l;

	if (level <= FUSE_LOG_ERR)
		l = IFS_LOG_ERR;
	else if (level == FUSE_LOG_WARNING)
		l = IFS_LOG_WARN;
	else if (level <= FUSE_LOG_INFO)
		l = IFS_LOG_INFO;
	else
		l = IFS_LOG_DEBUG;
	log_va(l, fmt, ap);
}

void ifs_log_init(void)
{
	fuse_set_log_func(fuse_log_cb);
}

void ifs_log_use_syslog(void)
{
	openlog("instarfs", LOG_PID, LOG_DAEMON);
	atomic_store(&log_syslog, true);
}
