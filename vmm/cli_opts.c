/* vmm/cli_opts.c — --object and --image-opts (see cli_opts.h). The rules
 * and messages are qemu 7.2's, measured with qemu-img 7.2: keyval syntax
 * for --object (util/keyval.c: an implied "qom-type" first, ",," for a
 * comma in a value, the rightmost of a repeated key wins), QemuOpts syntax
 * for --image-opts. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli_opts.h"

#define MAX_KEYS 32

struct kv {
	size_t n;
	char *key[MAX_KEYS];
	char *val[MAX_KEYS];
};

__attribute__((format(printf, 3, 4))) static int say(char *msg, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, len, fmt, ap);
	va_end(ap);
	return -1;
}

static void kv_free(struct kv *kv)
{
	for (size_t i = 0; i < kv->n; i++) {
		free(kv->key[i]);
		free(kv->val[i]);
	}
	kv->n = 0;
}

static const char *kv_get(const struct kv *kv, const char *key)
{
	for (size_t i = kv->n; i-- > 0;)
		if (strcmp(kv->key[i], key) == 0)
			return kv->val[i];
	return NULL;
}

/* key = value; a repeated key: the rightmost wins (kv_get looks from the
 * end). -ENOMEM or -E2BIG. */
static int kv_put(struct kv *kv, const char *key, size_t klen, const char *val, size_t vlen)
{
	if (kv->n == MAX_KEYS)
		return -E2BIG;
	kv->key[kv->n] = strndup(key, klen);
	kv->val[kv->n] = strndup(val, vlen);
	if (!kv->key[kv->n] || !kv->val[kv->n]) {
		free(kv->key[kv->n]);
		free(kv->val[kv->n]);
		return -ENOMEM;
	}
	kv->n++;
	return 0;
}

static bool is_alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_alnum(char c)
{
	return is_alpha(c) || (c >= '0' && c <= '9');
}

/* qemu's parse_qapi_name(s, false) without the downstream "__RFQDN_"
 * prefix: a letter, then letters, digits, '-', '_'. Its length, 0 if none. */
static size_t qapi_name_len(const char *s)
{
	size_t n = 0;

	if (!is_alpha(s[0]))
		return 0;
	for (n = 1; is_alnum(s[n]) || s[n] == '-' || s[n] == '_'; n++)
		;
	return n;
}

/* A value up to a single ',' (",," is a comma); *pp moves past it. */
static char *take_value(const char **pp, size_t *ret_len)
{
	const char *s = *pp;
	char *v = malloc(strlen(s) + 1);
	size_t n = 0;

	if (!v)
		return NULL;
	for (;;) {
		if (!*s)
			break;
		if (*s == ',') {
			s++;
			if (*s != ',')
				break;
		}
		v[n++] = *s++;
	}
	v[n] = '\0';
	*pp = s;
	*ret_len = n;
	return v;
}

/* Takes the value at *pp (",," a comma, up to a single comma) and stores it
 * under key: 0 or a negative errno. */
static int kv_put_value(struct kv *kv, const char *key, size_t klen, const char **pp)
{
	size_t vlen;
	char *val = take_value(pp, &vlen);
	int r;

	if (!val)
		return -ENOMEM;
	r = kv_put(kv, key, klen, val, vlen);
	free(val);
	return r;
}

/* util/keyval.c's keyval_parse with the implied key "qom-type". */
static int keyval_parse(const char *s, struct kv *kv, char *msg, size_t len)
{
	bool first = true;

	while (*s) {
		size_t klen = strcspn(s, "=,"), frag;
		const char *key = s, *p;
		int r;

		if (first && klen && s[klen] != '=') {
			r = kv_put(kv, "qom-type", 8, s, klen);
			if (r < 0)
				return say(msg, len, "%s", strerror(-r));
			s += klen;
			if (*s == ',')
				s++;
			first = false;
			continue;
		}
		first = false;
		/* dotted fragments, each a QAPI name */
		for (p = key;;) {
			frag = qapi_name_len(p);
			if (!frag || (p + frag < key + klen && p[frag] != '.'))
				return say(msg, len, "Invalid parameter '%.*s'", (int)klen, key);
			if (frag >= 128)
				return say(msg, len, "Parameter%s '%.*s' is too long",
					   p != key || frag != klen ? " fragment" : "", (int)frag,
					   p);
			p += frag;
			if (p >= key + klen)
				break;
			p++;
		}
		s = key + klen;
		if (*s != '=')
			return say(msg, len, "Expected '=' after parameter '%.*s'", (int)klen, key);
		s++;
		r = kv_put_value(kv, key, klen, &s);
		if (r < 0)
			return say(msg, len, "%s", strerror(-r));
	}
	return 0;
}

/* qemu 7.2's ObjectType: what --object may name (qapi/qom.json). */
static const char *const qom_types[] = {
    "authz-list",
    "authz-listfile",
    "authz-pam",
    "authz-simple",
    "can-bus",
    "can-host-socketcan",
    "colo-compare",
    "cryptodev-backend",
    "cryptodev-backend-builtin",
    "cryptodev-backend-lkcf",
    "cryptodev-vhost-user",
    "dbus-vmstate",
    "filter-buffer",
    "filter-dump",
    "filter-mirror",
    "filter-redirector",
    "filter-replay",
    "filter-rewriter",
    "input-barrier",
    "input-linux",
    "iothread",
    "main-loop",
    "memory-backend-epc",
    "memory-backend-file",
    "memory-backend-memfd",
    "memory-backend-ram",
    "pef-guest",
    "pr-manager-helper",
    "qtest",
    "rng-builtin",
    "rng-egd",
    "rng-random",
    "secret",
    "secret_keyring",
    "sev-guest",
    "thread-context",
    "s390-pv-guest",
    "throttle-group",
    "tls-creds-anon",
    "tls-creds-psk",
    "tls-creds-x509",
    "tls-cipher-suites",
    "x-remote-object",
    "x-vfio-user-server",
};

static bool known_type(const char *t)
{
	for (size_t i = 0; i < sizeof(qom_types) / sizeof(qom_types[0]); i++)
		if (strcmp(t, qom_types[i]) == 0)
			return true;
	return false;
}

/* qemu's id_wellformed: a letter, then letters, digits, '-', '.', '_'. */
static bool id_wellformed(const char *id)
{
	if (!is_alpha(id[0]))
		return false;
	for (size_t i = 1; id[i]; i++)
		if (!is_alnum(id[i]) && id[i] != '-' && id[i] != '.' && id[i] != '_')
			return false;
	return true;
}

bool cli_object_has_secret(const struct cli_objects *o, const char *id)
{
	for (size_t i = 0; i < o->n; i++)
		if (strcmp(o->ids[i], id) == 0)
			return true;
	return false;
}

/* The checks in qemu's order: the keys, qom-type, id, the secret's members
 * (format, then any unexpected key), the id's form, a duplicate, then what
 * the secret's completion checks (data/file, the file readable, keyid). */
static int secret_check(struct cli_objects *o, const struct kv *kv, char *msg, size_t len)
{
	static const char *const members[] = {"qom-type", "id",	  "format", "keyid",
					      "iv",	  "data", "file"};
	const char *type = kv_get(kv, "qom-type"), *id = kv_get(kv, "id");
	const char *format = kv_get(kv, "format"), *data = kv_get(kv, "data");
	const char *file = kv_get(kv, "file"), *keyid = kv_get(kv, "keyid");

	if (!type)
		return say(msg, len, "Parameter 'qom-type' is missing");
	if (!known_type(type))
		return say(msg, len, "Parameter 'qom-type' does not accept value '%s'", type);
	if (!id)
		return say(msg, len, "Parameter 'id' is missing");
	if (strcmp(type, "secret") != 0)
		return say(msg, len,
			   "Object type '%s' is not supported by instar: --object takes only "
			   "'secret'",
			   type);
	if (format && strcmp(format, "raw") != 0 && strcmp(format, "base64") != 0)
		return say(msg, len, "Parameter 'format' does not accept value '%s'", format);
	for (size_t i = 0; i < kv->n; i++) {
		bool ok = false;
		size_t frag = strcspn(kv->key[i], ".");

		for (size_t j = 0; j < sizeof(members) / sizeof(members[0]); j++)
			ok = ok || strcmp(kv->key[i], members[j]) == 0;
		if (!ok)
			return say(msg, len, "Parameter '%.*s' is unexpected", (int)frag,
				   kv->key[i]);
	}
	if (!id_wellformed(id))
		return say(msg, len,
			   "Parameter 'id' expects an identifier\nIdentifiers consist of "
			   "letters, digits, '-', '.', '_', starting with a letter.");
	if (cli_object_has_secret(o, id))
		return say(msg, len,
			   "attempt to add duplicate property '%s' to object (type 'container')",
			   id);
	if (data && file)
		return say(msg, len, "'file' and 'data' are mutually exclusive");
	if (!data && !file)
		return say(msg, len, "Either 'file' or 'data' must be provided");
	if (file) {
		int fd = open(file, O_RDONLY | O_CLOEXEC | O_NOCTTY);

		if (fd < 0)
			return say(msg, len,
				   "Unable to read %s: Failed to open file \u201c%s\u201d: %s",
				   file, file, strerror(errno));
		close(fd);
	}
	if (keyid) {
		if (!cli_object_has_secret(o, keyid))
			return say(msg, len, "No secret with id '%s'", keyid);
		return say(msg, len,
			   "Secret '%s': instar does not decrypt secrets (keyid=); give the "
			   "secret in the clear",
			   id);
	}
	return 0;
}

int cli_object_add(struct cli_objects *o, const char *arg, char *msg, size_t len)
{
	struct kv kv = {0};
	int r = keyval_parse(arg, &kv, msg, len);

	if (r == 0)
		r = secret_check(o, &kv, msg, len);
	if (r == 0) {
		char *id = strdup(kv_get(&kv, "id"));

		if (!id || o->n == CLI_OPTS_MAX_SECRETS) {
			free(id);
			r = say(msg, len, "Too many secrets (at most %d)", CLI_OPTS_MAX_SECRETS);
		} else {
			o->ids[o->n++] = id;
		}
	}
	kv_free(&kv);
	return r;
}

void cli_objects_free(struct cli_objects *o)
{
	for (size_t i = 0; i < o->n; i++)
		free(o->ids[i]);
	o->n = 0;
}

/* ---- --image-opts ---- */

/* QemuOpts: key=value elements split at single commas (",," is a comma).
 * A first element without '=' names an existing node (kept in *ret_ref);
 * a later one is the boolean key=on, which qemu warns about (*warn). */
static int qemu_opts_parse(const char *s, struct kv *kv, char **ret_ref, char *warn, size_t wlen,
			   char *msg, size_t len)
{
	bool first = true;

	while (*s) {
		size_t klen = strcspn(s, "=,");
		const char *key = s;
		int r;

		s += klen;
		if (*s == '=') {
			s++;
			r = kv_put_value(kv, key, klen, &s);
		} else if (first) {
			*ret_ref = strndup(key, klen);
			if (*s == ',')
				s++;
			r = *ret_ref ? 0 : -ENOMEM;
		} else {
			if (*s == ',')
				s++;
			if (!warn[0])
				snprintf(warn, wlen,
					 "short-form boolean option '%.*s' deprecated\nPlease use "
					 "%.*s=on instead",
					 (int)klen, key, (int)klen, key);
			r = kv_put(kv, key, klen, "on", 2);
		}
		first = false;
		if (r < 0)
			return say(msg, len, "%s", strerror(-r));
	}
	return 0;
}

/* The options a format driver takes that change nothing of a resize (caches
 * and discard of the running qemu): accepted and ignored. */
static const char *const qcow2_tuning[] = {
    "l2-cache-size",	    "l2-cache-entry-size",  "refcount-cache-size",   "cache-size",
    "cache-clean-interval", "pass-discard-request", "pass-discard-snapshot", "pass-discard-other",
    "lazy-refcounts",	    "overlap-check",
};

static bool in_list(const char *k, const char *const *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(k, list[i]) == 0)
			return true;
	return false;
}

static bool is_bool(const char *v)
{
	return strcmp(v, "on") == 0 || strcmp(v, "off") == 0;
}

static int image_opt(const char *k, const char *v, const char *drv, struct cli_image_opts *io,
		     char *msg, size_t len)
{
	if (strcmp(k, "driver") == 0)
		return 0; /* taken first */
	if (strcmp(k, "file.driver") == 0) {
		if (strcmp(v, "file") != 0)
			return say(msg, len,
				   "Protocol driver '%s' is not supported by instar: file.driver "
				   "takes only 'file'",
				   v);
		return 0;
	}
	if (strcmp(k, "file.filename") == 0) {
		free(io->filename);
		io->filename = strdup(v);
		return io->filename ? 0 : say(msg, len, "%s", strerror(ENOMEM));
	}
	if (strcmp(k, "file.locking") == 0) {
		if (strcmp(v, "on") == 0)
			io->locking = CLI_LOCKING_ON;
		else if (strcmp(v, "off") == 0)
			io->locking = CLI_LOCKING_OFF;
		else if (strcmp(v, "auto") == 0)
			io->locking = CLI_LOCKING_AUTO;
		else
			return say(msg, len, "invalid parameter value: %s", v);
		return 0;
	}
	if (strncmp(k, "file.", 5) == 0)
		return say(msg, len, "Block protocol 'file' doesn't support the option '%s'",
			   k + 5);
	if (drv && ((strcmp(drv, "luks") == 0 && strcmp(k, "key-secret") == 0) ||
		    (strcmp(drv, "qcow2") == 0 && strcmp(k, "encrypt.key-secret") == 0))) {
		free(io->key_secret);
		io->key_secret = strdup(v);
		return io->key_secret ? 0 : say(msg, len, "%s", strerror(ENOMEM));
	}
	if (drv && strcmp(drv, "qcow2") == 0 && strcmp(k, "encrypt.format") == 0) {
		/* checked against the header (cli_image_opts_crypt), as qemu does */
		free(io->encrypt_format);
		io->encrypt_format = strdup(v);
		return io->encrypt_format ? 0 : say(msg, len, "%s", strerror(ENOMEM));
	}
	if (drv && strcmp(drv, "qcow2") == 0 &&
	    in_list(k, qcow2_tuning, sizeof(qcow2_tuning) / sizeof(qcow2_tuning[0]))) {
		/* qcow2 reads its options once the header is read */
		if (strcmp(k, "lazy-refcounts") == 0 && !is_bool(v) && !io->late_error[0])
			snprintf(io->late_error, sizeof(io->late_error),
				 "Parameter '%s' expects 'on' or 'off'", k);
		return 0;
	}
	return say(msg, len, "Block format '%s' does not support the option '%s'",
		   drv ? drv : "raw", k);
}

int cli_image_opts_parse(const char *s, struct cli_image_opts *ret, char *msg, size_t len)
{
	struct kv kv = {0};
	const char *drv;
	char *ref = NULL;
	int r;

	memset(ret, 0, sizeof(*ret));
	r = qemu_opts_parse(s, &kv, &ref, ret->warning, sizeof(ret->warning), msg, len);
	if (r == 0 && ref)
		r = kv.n ? say(msg, len,
			       "Cannot reference an existing block device with additional options "
			       "or a new filename")
			 : say(msg, len, "Cannot find device='%s' nor node-name='%s'", ref, ref);
	if (r == 0 && !kv.n)
		r = say(msg, len, "Must specify either driver or file");
	free(ref);
	drv = r == 0 ? kv_get(&kv, "driver") : NULL;
	if (drv) {
		ret->driver = strdup(drv);
		if (!ret->driver)
			r = say(msg, len, "%s", strerror(ENOMEM));
	}
	for (size_t i = 0; r == 0 && i < kv.n; i++)
		r = image_opt(kv.key[i], kv.val[i], drv, ret, msg, len);
	kv_free(&kv);
	if (r < 0) {
		char warning[sizeof(ret->warning)];

		memcpy(warning, ret->warning, sizeof(warning)); /* printed all the same */
		cli_image_opts_free(ret);
		memcpy(ret->warning, warning, sizeof(warning));
	}
	return r;
}

int cli_image_opts_file(const struct cli_image_opts *io, char *msg, size_t len)
{
	if (io->filename)
		return 0;
	return say(msg, len, "A block device must be specified for \"file\"");
}

int cli_image_opts_crypt(const struct cli_image_opts *io, uint32_t crypt_method, char *msg,
			 size_t len)
{
	const char *f = io->encrypt_format;

	if (!f)
		return 0;
	if (crypt_method == 0)
		return say(msg, len,
			   "No encryption in image header, but options specified format '%s'", f);
	if (crypt_method == 1 && strcmp(f, "aes") != 0)
		return say(msg, len,
			   "Header reported 'aes' encryption format but options specify '%s'", f);
	if (crypt_method == 2 && strcmp(f, "luks") != 0)
		return say(msg, len,
			   "Header reported 'luks' encryption format but options specify '%s'", f);
	return 0;
}

void cli_image_opts_free(struct cli_image_opts *io)
{
	free(io->driver);
	free(io->filename);
	free(io->key_secret);
	free(io->encrypt_format);
	memset(io, 0, sizeof(*io));
}
