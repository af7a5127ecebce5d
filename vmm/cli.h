/* vmm/cli.h — the `instar` command line: subcommands and shared helpers. */
#ifndef VMM_CLI_H
#define VMM_CLI_H

#include <stdbool.h>
#include <stdio.h>

#include "probe.h"
#include "result_json.h"

#define CLI_TRY_HELP "Try 'instar --help' for more information"

/* Subcommands; argv[0] is the subcommand name. Return the exit status. */
int cli_resize(int argc, char **argv);
int cli_info(int argc, char **argv);
void cli_help(FILE *f);

/* One failure, reported once: to stderr as qemu-img would (with "instar: ")
 * and kept (without the prefix) for the JSON result. */
struct cli_ctx {
	bool json;
	char *msg; /* error text for JSON, lines joined by '\n' */
	struct vmm_result res;
};

void cli_ctx_init(struct cli_ctx *c, bool json);
void cli_ctx_free(struct cli_ctx *c);
/* "instar: <text>" on stderr; records code, errno (0: default) and text. */
void cli_error(struct cli_ctx *c, unsigned code, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* A hint line: no prefix on stderr, appended to the recorded text. */
void cli_hint(struct cli_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* "instar: warning: <text>" on stderr; not part of the result. */
void cli_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A usage error: the message, then "Try 'instar --help' ...". */
void cli_usage(struct cli_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Writes the JSON result when asked for; returns the exit status (0/1). */
int cli_finish(struct cli_ctx *c);

/* True when argv asks for --output=json (scanned before parsing, so that
 * even a usage error produces exactly one JSON object). */
bool cli_wants_json(int argc, char **argv);

/* A failed guest result (gr->error != INSTAR_OK) as instar reports it:
 * qemu-img's message, "Could not open 'DISPLAY': DETAIL" for a failed open
 * (INSTAR_RESULT_OPEN). filename is the file opened, display the name the
 * command line gave (the --image-opts string), prealloc and max_staged what
 * was asked for (0: the default bound). */
void cli_guest_error(struct cli_ctx *c, const char *filename, const char *display,
		     uint32_t prealloc, uint64_t max_staged, const struct instar_resize_result *gr);
/* The guest's detail bounded to INSTAR_DETAIL_MAX and NUL-terminated. */
void cli_guest_detail(const char *in, char *out, size_t outlen);

/* name with control characters escaped (instar_escape) into buf, which
 * holds CLI_NAME_MAX bytes; returns buf. For names printed outside
 * cli_error and friends, which escape whole lines themselves. */
#define CLI_NAME_MAX 4096
const char *cli_name(const char *name, char *buf);

/* Reads the probe windows of fd (head, tail, then what the probe asks for)
 * and probes. Returns 0 or a negative errno from pread. */
int cli_probe_fd(int fd, uint64_t file_size, struct instar_probe_info *ret);
/* The same for the image opened by name (qemu's dmg probe goes by it), with
 * open_error judged for the driver force (-f; NULL: the probed one). */
int cli_probe_file(int fd, uint64_t file_size, const char *name, const char *force,
		   struct instar_probe_info *ret);

#endif
