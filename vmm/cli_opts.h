/* vmm/cli_opts.h — qemu-img's --object and --image-opts, as far as instar
 * honours them: the syntax checked as qemu 7.2 checks it, the message
 * qemu-img prints (without "qemu-img: ") for what it refuses. Pure: no
 * I/O but the read test of a secret's file=. */
#ifndef VMM_CLI_OPTS_H
#define VMM_CLI_OPTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CLI_OPTS_MSG 512
#define CLI_OPTS_MAX_SECRETS 16

/* The secrets defined so far (their ids; instar never needs the value). */
struct cli_objects {
	size_t n;
	char *ids[CLI_OPTS_MAX_SECRETS];
};

/* One --object argument: 0, or -1 with the message in msg (a second line,
 * if any, is a hint). Only "secret" objects are accepted. */
int cli_object_add(struct cli_objects *o, const char *arg, char *msg, size_t len);
bool cli_object_has_secret(const struct cli_objects *o, const char *id);
void cli_objects_free(struct cli_objects *o);

enum cli_locking { CLI_LOCKING_AUTO, CLI_LOCKING_ON, CLI_LOCKING_OFF };

/* The --image-opts string, as instar honours it. Strings are malloc'ed. */
struct cli_image_opts {
	char *driver;	/* driver=, NULL: probe */
	char *filename; /* file.filename= */
	enum cli_locking locking;
	char *key_secret;	       /* key-secret= (luks) or encrypt.key-secret= (qcow2) */
	char *encrypt_format;	       /* encrypt.format= (qcow2), NULL: not given */
	char late_error[CLI_OPTS_MSG]; /* a bad option value the format driver
					  reports once it has read the header */
	char warning[CLI_OPTS_MSG];    /* qemu's warning, if any (a second line
					  is a hint); printed even on failure */
};

/* Parses s: 0, or -1 with qemu's message (without "Could not open '...': ")
 * in msg. */
int cli_image_opts_parse(const char *s, struct cli_image_opts *ret, char *msg, size_t len);
/* After the driver's name is checked: the file option is there, else -1
 * with qemu's message. */
int cli_image_opts_file(const struct cli_image_opts *io, char *msg, size_t len);
/* qcow2's encrypt.format= against the header's crypt method (0 none, 1 aes,
 * 2 luks), once the header is read: 0, or -1 with qemu's message. Other
 * methods are the guest's to refuse. */
int cli_image_opts_crypt(const struct cli_image_opts *io, uint32_t crypt_method, char *msg,
			 size_t len);
void cli_image_opts_free(struct cli_image_opts *io);

#endif
