/* fs/config.c — instarfs settings: defaults, the ini file (inih), command-line
 * overrides; reloaded on SIGUSR1 (see instarfs.c). */
#include <errno.h>
#include <ini.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "abi_names.h"
#include "instarfs.h"
#include "size.h"

#define MAX_OVERRIDES 16

struct override {
	char *key;
	char *value;
};

static pthread_mutex_t cfg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ifs_config cfg_current;
static char *cfg_path; /* the file to (re)load; NULL: none */
static struct override overrides[MAX_OVERRIDES];
static size_t n_overrides;

static void config_defaults(struct ifs_config *c)
{
	memset(c, 0, sizeof(*c));
	c->timeout = INSTAR_TIMEOUT_DEFAULT_S;
	c->prealloc = INSTAR_PREALLOC_OFF;
	c->max_jobs = IFS_MAX_JOBS_DEFAULT;
	c->max_staged_total = IFS_MAX_STAGED_TOTAL_DEFAULT;
	c->allow_other = false;
	c->log_level = IFS_LOG_INFO;
}

static int parse_uint(const char *s, unsigned min, unsigned max, unsigned *ret)
{
	unsigned long v;
	char *end;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return -EINVAL;
	*ret = (unsigned)v;
	return 0;
}

/* A size as instar reads one ("512M", "4G", bytes), above 0. */
static int parse_size(const char *s, uint64_t *ret)
{
	uint64_t v;
	bool hex;

	if (instar_strtosz(s, &v, &hex) != INSTAR_SIZE_OK || v == 0)
		return -EINVAL;
	*ret = v;
	return 0;
}

static int parse_bool(const char *s, bool *ret)
{
	static const char *const yes[] = {"1", "true", "yes", "on"};
	static const char *const no[] = {"0", "false", "no", "off"};

	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*ret = true;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*ret = false;
			return 0;
		}
	}
	return -EINVAL;
}

static bool is_executable_file(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

static int search_path(const char *name, char *ret, size_t len)
{
	const char *path = getenv("PATH");
	const char *p, *colon;

	if (!path || !*path)
		path = "/usr/local/bin:/usr/bin:/bin";
	for (p = path; p; p = colon ? colon + 1 : NULL) {
		colon = strchr(p, ':');
		int dlen = colon ? (int)(colon - p) : (int)strlen(p);

		if (dlen == 0)
			continue;
		if ((size_t)snprintf(ret, len, "%.*s/%s", dlen, p, name) >= len)
			continue;
		if (is_executable_file(ret))
			return 0;
	}
	return -ENOENT;
}

/* The instar next to us (build tree: build/fs/instarfs and build/vmm/instar;
 * installed: both in bindir), else the one on PATH. */
static int find_default_instar(char *ret, size_t len)
{
	static const char *const rel[] = {"../vmm/instar", "instar"};
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

	if (n > 0) {
		char *slash;

		exe[n] = '\0';
		slash = strrchr(exe, '/');
		if (slash) {
			*slash = '\0';
			for (size_t i = 0; i < 2; i++) {
				char cand[PATH_MAX + 32];

				snprintf(cand, sizeof(cand), "%s/%s", exe, rel[i]);
				if (is_executable_file(cand) && realpath(cand, ret))
					return 0;
			}
		}
	}
	return search_path("instar", ret, len);
}

static int set_instar(struct ifs_config *c, const char *value)
{
	char buf[PATH_MAX];

	if (!*value)
		return find_default_instar(c->instar, sizeof(c->instar));
	if (!strchr(value, '/')) {
		if (search_path(value, buf, sizeof(buf)) < 0) {
			log_err("instar = %s: not found on PATH", value);
			return -ENOENT;
		}
		value = buf;
	}
	if (!is_executable_file(value)) {
		log_err("instar = %s: not an executable file", value);
		return -ENOENT;
	}
	/* Resolve now: after daemonizing the working directory is /. */
	if (!realpath(value, c->instar))
		return -errno;
	return 0;
}

/* backing_dirs = /a:/b — absolute directories, ':'-separated as in PATH
 * (',' separates -o options), at most INSTAR_MAX_BACKING_DIRS. */
static int set_backing_dirs(struct ifs_config *c, const char *value)
{
	struct ifs_dir_list *l = &c->backing_dirs;
	size_t used = 0;
	const char *p, *colon;

	memset(l, 0, sizeof(*l));
	for (p = value; *p; p = colon ? colon + 1 : p + strlen(p)) {
		size_t len;

		colon = strchr(p, ':');
		len = colon ? (size_t)(colon - p) : strlen(p);
		if (len == 0)
			continue;
		if (p[0] != '/' || l->n == INSTAR_MAX_BACKING_DIRS ||
		    used + len + 2 > sizeof(l->buf))
			return -EINVAL;
		memcpy(l->buf + used, p, len);
		used += len + 1; /* the NUL memset left */
		l->n++;
		if (!colon)
			break;
	}
	return 0;
}

/* Applies one key; shared by the ini file and -o options. */
static int config_apply(struct ifs_config *c, const char *key, const char *value)
{
	unsigned u;
	int v;

	if (strcmp(key, "timeout") == 0) {
		if (parse_uint(value, 1, INSTAR_TIMEOUT_MAX_S, &u) < 0)
			goto bad;
		c->timeout = u;
	} else if (strcmp(key, "max_jobs") == 0) {
		if (parse_uint(value, 1, IFS_MAX_JOBS_MAX, &u) < 0)
			goto bad;
		c->max_jobs = u;
	} else if (strcmp(key, "max_staged") == 0) {
		if (parse_size(value, &c->max_staged) < 0)
			goto bad;
		c->max_staged_set = true;
	} else if (strcmp(key, "max_staged_total") == 0) {
		if (parse_size(value, &c->max_staged_total) < 0)
			goto bad;
	} else if (strcmp(key, "preallocation") == 0) {
		v = instar_prealloc_from_name(value);
		if (v < 0)
			goto bad;
		c->prealloc = v;
	} else if (strcmp(key, "allow_other") == 0) {
		if (parse_bool(value, &c->allow_other) < 0)
			goto bad;
	} else if (strcmp(key, "log_level") == 0) {
		v = ifs_log_level_from_name(value);
		if (v < 0)
			goto bad;
		c->log_level = v;
	} else if (strcmp(key, "instar") == 0) {
		return set_instar(c, value) < 0 ? -EINVAL : 0;
	} else if (strcmp(key, "backing_dirs") == 0) {
		if (set_backing_dirs(c, value) < 0)
			goto bad;
	} else if (strcmp(key, "guest_dir") == 0) {
		if (strlen(value) >= sizeof(c->guest_dir) || (value[0] && value[0] != '/'))
			goto bad;
		strcpy(c->guest_dir, value);
	} else if (strcmp(key, "source") == 0) {
		if (strlen(value) >= sizeof(c->source))
			goto bad;
		strcpy(c->source, value);
	} else {
		log_warn("unknown setting '%s' ignored", key);
	}
	return 0;
bad:
	log_err("invalid value for %s: '%s'", key, value);
	return -EINVAL;
}

struct ini_ctx {
	struct ifs_config *c;
	const char *path;
	int err;
};

static int ini_cb(void *user, const char *section, const char *name, const char *value)
{
	struct ini_ctx *ctx = user;

	if (*section && strcmp(section, "instarfs") != 0) {
		log_warn("%s: section [%s] ignored", ctx->path, section);
		return 1;
	}
	if (config_apply(ctx->c, name, value) < 0)
		ctx->err = -EINVAL;
	return 1;
}

int ifs_config_set_override(const char *key, const char *value)
{
	struct ifs_config scratch;

	if (n_overrides == MAX_OVERRIDES)
		return -E2BIG;
	/* Validate now so a typo fails at startup, not at the first reload. */
	config_defaults(&scratch);
	if (config_apply(&scratch, key, value) < 0)
		return -EINVAL;
	overrides[n_overrides].key = strdup(key);
	overrides[n_overrides].value = strdup(value);
	if (!overrides[n_overrides].key || !overrides[n_overrides].value)
		return -ENOMEM;
	n_overrides++;
	return 0;
}

static int config_build(struct ifs_config *c)
{
	struct ini_ctx ctx = {.c = c, .path = cfg_path, .err = 0};

	config_defaults(c);
	if (cfg_path) {
		int r = ini_parse(cfg_path, ini_cb, &ctx);

		if (r == -1) {
			log_err("cannot read config file %s: %s", cfg_path, strerror(errno));
			return -ENOENT;
		}
		if (r == -2)
			return -ENOMEM;
		if (r > 0) {
			log_err("%s:%d: syntax error", cfg_path, r);
			return -EINVAL;
		}
		if (ctx.err)
			return ctx.err;
	}
	for (size_t i = 0; i < n_overrides; i++)
		if (config_apply(c, overrides[i].key, overrides[i].value) < 0)
			return -EINVAL;
	/* The memory bound: every running child may stage max_staged bytes. A
	 * max_staged that was set is refused if it breaks the bound (no silent
	 * change to what was asked); the default share is lowered to fit. */
	if (c->max_staged_set && c->max_staged > c->max_staged_total / c->max_jobs) {
		log_err("max_jobs (%u) x max_staged (%llu bytes) exceeds max_staged_total (%llu "
			"bytes): lower max_jobs or max_staged, or raise max_staged_total",
			c->max_jobs, (unsigned long long)c->max_staged,
			(unsigned long long)c->max_staged_total);
		return -EINVAL;
	}
	if (!c->max_staged_set) {
		c->max_staged = c->max_staged_total / c->max_jobs;
		if (c->max_staged > INSTAR_MAX_STAGED_DEFAULT)
			c->max_staged = INSTAR_MAX_STAGED_DEFAULT;
		if (c->max_staged == 0) {
			log_err("max_staged_total (%llu bytes) is below max_jobs (%u) bytes",
				(unsigned long long)c->max_staged_total, c->max_jobs);
			return -EINVAL;
		}
	}
	if (!c->instar[0] && find_default_instar(c->instar, sizeof(c->instar)) < 0) {
		log_err("cannot find the instar binary (looked next to instarfs and on PATH); "
			"set instar= in the config or -o instar=PATH");
		return -ENOENT;
	}
	return 0;
}

int ifs_config_load(const char *path)
{
	struct ifs_config c;
	int r;

	free(cfg_path);
	cfg_path = NULL;
	if (path)
		cfg_path = realpath(path, NULL);
	else if (access(IFS_CONFIG_DEFAULT, F_OK) == 0)
		cfg_path = strdup(IFS_CONFIG_DEFAULT);
	if (path && !cfg_path) {
		log_err("config file %s: %s", path, strerror(errno));
		return -ENOENT;
	}
	r = config_build(&c);
	if (r < 0)
		return r;
	pthread_mutex_lock(&cfg_lock);
	cfg_current = c;
	pthread_mutex_unlock(&cfg_lock);
	ifs_log_set_level(c.log_level);
	return 0;
}

int ifs_config_reload(void)
{
	struct ifs_config c, old;
	int r;

	if (!cfg_path) {
		log_info("SIGUSR1: no config file to reload");
		return 0;
	}
	r = config_build(&c);
	if (r < 0) {
		log_err("reload of %s failed; keeping the current settings", cfg_path);
		return r;
	}
	pthread_mutex_lock(&cfg_lock);
	old = cfg_current;
	/* Mount-time settings cannot change under a live mount. */
	c.allow_other = old.allow_other;
	memcpy(c.source, old.source, sizeof(c.source));
	cfg_current = c;
	pthread_mutex_unlock(&cfg_lock);
	ifs_log_set_level(c.log_level);
	ifs_jobs_config_changed();
	log_info("reloaded %s: timeout=%u preallocation=%s max_jobs=%u max_staged=%llu "
		 "max_staged_total=%llu log_level=%s instar=%s",
		 cfg_path, c.timeout, instar_prealloc_name((uint32_t)c.prealloc), c.max_jobs,
		 (unsigned long long)c.max_staged, (unsigned long long)c.max_staged_total,
		 ifs_log_level_name(c.log_level), c.instar);
	return 0;
}

void ifs_config_get(struct ifs_config *ret)
{
	pthread_mutex_lock(&cfg_lock);
	*ret = cfg_current;
	pthread_mutex_unlock(&cfg_lock);
}
