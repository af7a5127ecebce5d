/* vmm/cli_common.c — messages, JSON result and the probe reader shared by
 * the `instar` subcommands. */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "probe_read.h"
#include "escape.h"

const char *cli_name(const char *name, char *buf)
{
	instar_escape(buf, CLI_NAME_MAX, name);
	return buf;
}

void cli_ctx_init(struct cli_ctx *c, bool json)
{
	memset(c, 0, sizeof(*c));
	c->json = json;
	vmm_result_init(&c->res);
}

void cli_ctx_free(struct cli_ctx *c)
{
	free(c->msg);
	c->msg = NULL;
}

/* line, with control characters escaped: names from an image or the command
 * line reach both stderr and the JSON message this way only. malloc'ed. */
__attribute__((format(printf, 1, 0))) static char *escaped_line(const char *fmt, va_list ap)
{
	char *line = NULL, *out;
	size_t need;

	if (vasprintf(&line, fmt, ap) < 0)
		return NULL;
	need = instar_escape(NULL, 0, line);
	out = malloc(need + 1);
	if (out)
		instar_escape(out, need + 1, line);
	free(line);
	return out;
}

static void append(struct cli_ctx *c, char *line)
{
	char *joined = NULL;

	if (!c->msg) {
		c->msg = line;
		return;
	}
	if (asprintf(&joined, "%s\n%s", c->msg, line) >= 0) {
		free(c->msg);
		c->msg = joined;
	}
	free(line);
}

/* One line on stderr after prefix, and the same text kept for the result. */
__attribute__((format(printf, 3, 0))) static void report(struct cli_ctx *c, const char *prefix,
							 const char *fmt, va_list ap)
{
	char *line = escaped_line(fmt, ap);

	if (!line)
		return;
	fprintf(stderr, "%s%s\n", prefix, line);
	append(c, line);
}

void cli_error(struct cli_ctx *c, unsigned code, int errnum, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	report(c, "instar: ", fmt, ap);
	va_end(ap);
	c->res.error = code;
	c->res.errnum = errnum;
}

void cli_hint(struct cli_ctx *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	report(c, "", fmt, ap);
	va_end(ap);
}

void cli_warn(const char *fmt, ...)
{
	va_list ap;
	char *line;

	va_start(ap, fmt);
	line = escaped_line(fmt, ap);
	va_end(ap);
	if (line)
		fprintf(stderr, "instar: warning: %s\n", line);
	free(line);
}

void cli_usage(struct cli_ctx *c, const char *fmt, ...)
{
	va_list ap;
	char *line = NULL;

	va_start(ap, fmt);
	if (vasprintf(&line, fmt, ap) < 0)
		line = NULL;
	va_end(ap);
	cli_error(c, INSTAR_ERR_INVALID_OPTION, EINVAL, "%s", line ? line : fmt);
	cli_hint(c, "%s", CLI_TRY_HELP);
	free(line);
}

int cli_finish(struct cli_ctx *c)
{
	int failed = c->res.error != INSTAR_OK;

	if (c->json) {
		c->res.message = c->msg;
		if (vmm_result_json_write(&c->res, stdout) < 0 && !failed) {
			fputs("instar: Could not write the JSON result\n", stderr);
			failed = 1;
		}
	}
	if (fflush(stdout) == EOF && !failed) {
		fprintf(stderr, "instar: Could not write to stdout: %s\n", strerror(errno));
		failed = 1;
	}
	cli_ctx_free(c);
	return failed ? 1 : 0;
}

bool cli_wants_json(int argc, char **argv)
{
	bool json = false;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0)
			break;
		if (strcmp(argv[i], "--output=json") == 0)
			json = true;
		else if (strncmp(argv[i], "--output=", 9) == 0)
			json = false;
		else if (strcmp(argv[i], "--output") == 0 && i + 1 < argc)
			json = strcmp(argv[++i], "json") == 0;
	}
	return json;
}

int cli_probe_fd(int fd, uint64_t file_size, struct instar_probe_info *ret)
{
	return vmm_probe_fd(fd, file_size, ret);
}

int cli_probe_file(int fd, uint64_t file_size, const char *name, const char *force,
		   struct instar_probe_info *ret)
{
	return vmm_probe_fd_as(fd, file_size, name, force, ret);
}
