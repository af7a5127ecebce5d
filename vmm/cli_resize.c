/* vmm/cli_resize.c — `instar resize`, a drop-in for `qemu-img resize` 7.2:
 * same argument handling, checks in the same order, same messages (with
 * "instar: "), exit 0/1. Raw is resized on the host; every other format is
 * handed to the guest (vmm_guest_resize). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "abi_names.h"
#include "cli.h"
#include "cli_opts.h"
#include "external.h"
#include "guest_run.h"
#include "lock.h"
#include "raw.h"
#include "size.h"
#include "split.h"

enum {
	OPT_OBJECT = 256,
	OPT_IMAGE_OPTS,
	OPT_PREALLOCATION,
	OPT_SHRINK,
	OPT_OUTPUT,
	OPT_TIMEOUT,
	OPT_GUEST_DIR,
	OPT_MAX_STAGED,
	OPT_BACKING_DIR,
	OPT_CONFINE,
	OPT_STRICT_FORMAT,
};

static const struct option resize_options[] = {
    {"help", no_argument, NULL, 'h'},
    {"object", required_argument, NULL, OPT_OBJECT},
    {"image-opts", no_argument, NULL, OPT_IMAGE_OPTS},
    {"preallocation", required_argument, NULL, OPT_PREALLOCATION},
    {"shrink", no_argument, NULL, OPT_SHRINK},
    /* instar's own */
    {"output", required_argument, NULL, OPT_OUTPUT},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"guest-dir", required_argument, NULL, OPT_GUEST_DIR},
    {"max-staged", required_argument, NULL, OPT_MAX_STAGED},
    {"backing-dir", required_argument, NULL, OPT_BACKING_DIR},
    {"confine", no_argument, NULL, OPT_CONFINE},
    {"strict-format", no_argument, NULL, OPT_STRICT_FORMAT},
    {NULL, 0, NULL, 0},
};

struct resize_args {
	const char *filename;
	const char *fmt;
	const char *size_arg;
	uint32_t prealloc;
	bool shrink, quiet, image_opts;
	const char *display; /* the name in "Could not open '%s'": the
				--image-opts string, else filename */
	struct cli_objects objects;
	struct cli_image_opts io;
	uint32_t timeout_ms;
	const char *guest_dir;
	uint64_t max_staged; /* bound on the guest's staged writes; 0 = default */
	bool confine;	     /* instarfs's limits on the files an image names */
	bool strict_format;  /* -f and the probe must agree, -f raw included */
	size_t n_backing_dirs;
	const char *backing_dirs[VMM_EXT_MAX_BACKING_DIRS];
};

/* Block drivers qemu 7.2 knows but instar does not resize: -f NAME opens
 * the file (so open errors come first) and then fails like an unsupported
 * format; any other name is "Unknown driver". */
static const char *const qemu_other_drivers[] = {
    "blkdebug",
    "blklogwrites",
    "blkverify",
    "bochs",
    "cloop",
    "compress",
    "copy-before-write",
    "copy-on-read",
    "dmg",
    "ftp",
    "ftps",
    "gluster",
    "http",
    "https",
    "iscsi",
    "iser",
    "nbd",
    "nfs",
    "null-aio",
    "null-co",
    "nvme",
    "parallels",
    "preallocate",
    "qcow",
    "quorum",
    "rbd",
    "replication",
    "snapshot-access",
    "ssh",
    "throttle",
    "vvfat",
};

static void resize_help(void)
{
	printf("usage: instar resize [--object objectdef] [--image-opts] [-f fmt]\n"
	       "                     [--preallocation=prealloc] [-q] [--shrink]\n"
	       "                     [--output=human|json] [--timeout=seconds]\n"
	       "                     [--guest-dir=dir] [--max-staged=size]\n"
	       "                     [--confine] [--backing-dir=dir]... [--strict-format]\n"
	       "                     filename [+ | -]size\n"
	       "\n"
	       "Resize the image FILENAME to SIZE, or grow (+) or shrink (-) it by SIZE.\n"
	       "Every format other than raw is parsed and rewritten inside a KVM guest.\n"
	       "\n"
	       "  -f fmt                   image format: raw, qcow2, vmdk, vpc (vhd), vhdx,\n"
	       "                           qed, luks, vdi;\n"
	       "                           probed when not given\n"
	       "  --preallocation=mode     off, metadata, falloc or full (growing only)\n"
	       "  --shrink                 allow the new size to be smaller\n"
	       "  -q                       quiet: no \"Image resized.\"\n"
	       "  --output=human|json      json: one result object on stdout\n"
	       "  --timeout=seconds        wall-clock limit of the guest (default 30)\n"
	       "  --guest-dir=dir          where core.bin and resize.bin are\n"
	       "  --max-staged=size        bound on the bytes a resize may stage before\n"
	       "                           it commits (default 1G)\n"
	       "  --confine                backing files only beneath the image's directory\n"
	       "                           (or a --backing-dir); a data file not directly\n"
	       "                           beside the image unless its name is hidden\n"
	       "  --backing-dir=dir        one more directory backing files may be in\n"
	       "                           (repeatable; implies --confine for them)\n"
	       "  --strict-format          with -f, refuse an image whose probe finds\n"
	       "                           another format (-f raw included)\n"
	       "\n"
	       "A data file's name must lead beneath the image's directory (for /dev/fd/N:\n"
	       "the working directory) to a regular file of the image's owner with one\n"
	       "link; no name is followed through a symbolic link there.\n"
	       "  size                     bytes, or with a suffix b, k, M, G, T, P, E\n"
	       "                           (powers of 1024); fractions like 1.5G allowed\n");
}

/* msg's first line as an error (after prefix), any further line as a hint
 * (qemu's error_append_hint). */
static void report_lines(struct cli_ctx *c, unsigned code, int errnum, const char *prefix,
			 const char *msg)
{
	size_t n = strcspn(msg, "\n");

	cli_error(c, code, errnum, "%s%.*s", prefix, (int)n, msg);
	if (msg[n])
		cli_hint(c, "%s", msg + n + 1);
}

static int parse_timeout(const char *s, uint32_t *ret_ms)
{
	char *end;
	unsigned long v;

	errno = 0;
	if (*s < '0' || *s > '9')
		return -EINVAL;
	v = strtoul(s, &end, 10);
	if (errno || *end || v == 0 || v > 24ul * 3600)
		return -EINVAL;
	*ret_ms = (uint32_t)(v * 1000);
	return 0;
}

/* Returns 0 when parsing is done, 1 to exit 0 (help), -1 on error (reported). */
static int parse_args(struct cli_ctx *c, int argc, char **argv, struct resize_args *a)
{
	int opt;

	if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		/* qemu-img 7.2 says "Not enough arguments" here; help is kinder. */
		resize_help();
		return 1;
	}
	if (argc < 3) {
		cli_usage(c, "Not enough arguments");
		return -1;
	}
	/* As qemu-img 7.2: the last argument is SIZE, taken out before getopt
	 * so that "-1G" is not an option. */
	a->size_arg = argv[--argc];

	optind = 0; /* full getopt reset, permutation state included */
	while ((opt = getopt_long(argc, argv, ":f:hq", resize_options, NULL)) != -1) {
		switch (opt) {
		case ':':
			cli_usage(c, "missing argument for option '%s'", argv[optind - 1]);
			return -1;
		case '?':
			cli_usage(c, "unrecognized option '%s'", argv[optind - 1]);
			return -1;
		case 'h':
			cli_help(stdout);
			return 1;
		case 'f':
			a->fmt = optarg;
			break;
		case 'q':
			a->quiet = true;
			break;
		case OPT_OBJECT: {
			char msg[CLI_OPTS_MSG];

			/* qemu-img creates each object as it parses the option */
			if (cli_object_add(&a->objects, optarg, msg, sizeof(msg)) < 0) {
				report_lines(c, INSTAR_ERR_INVALID_OPTION, EINVAL, "", msg);
				return -1;
			}
			break;
		}
		case OPT_IMAGE_OPTS:
			a->image_opts = true;
			break;
		case OPT_PREALLOCATION: {
			int p = instar_prealloc_from_name(optarg);

			if (p < 0) {
				cli_error(c, INSTAR_ERR_INVALID_OPTION, EINVAL,
					  "Invalid preallocation mode '%s'", optarg);
				return -1;
			}
			a->prealloc = (uint32_t)p;
			break;
		}
		case OPT_SHRINK:
			a->shrink = true;
			break;
		case OPT_OUTPUT:
			if (strcmp(optarg, "json") == 0) {
				c->json = true;
			} else if (strcmp(optarg, "human") == 0) {
				c->json = false;
			} else {
				cli_error(c, INSTAR_ERR_INVALID_OPTION, EINVAL,
					  "--output must be used with human or json as argument.");
				return -1;
			}
			break;
		case OPT_TIMEOUT:
			if (parse_timeout(optarg, &a->timeout_ms) < 0) {
				cli_error(c, INSTAR_ERR_INVALID_OPTION, EINVAL,
					  "Invalid timeout '%s': expected whole seconds, 1 to %u",
					  optarg, INSTAR_TIMEOUT_MAX_S);
				return -1;
			}
			break;
		case OPT_GUEST_DIR:
			a->guest_dir = optarg;
			break;
		case OPT_CONFINE:
			a->confine = true;
			break;
		case OPT_STRICT_FORMAT:
			a->strict_format = true;
			break;
		case OPT_BACKING_DIR:
			if (a->n_backing_dirs == VMM_EXT_MAX_BACKING_DIRS) {
				cli_error(c, INSTAR_ERR_INVALID_OPTION, EINVAL,
					  "--backing-dir given more than %d times",
					  VMM_EXT_MAX_BACKING_DIRS);
				return -1;
			}
			a->backing_dirs[a->n_backing_dirs++] = optarg;
			break;
		case OPT_MAX_STAGED: {
			bool hex;

			if (instar_strtosz(optarg, &a->max_staged, &hex) != INSTAR_SIZE_OK ||
			    a->max_staged == 0) {
				cli_error(c, INSTAR_ERR_INVALID_OPTION, EINVAL,
					  "Invalid --max-staged '%s': expected a size above 0",
					  optarg);
				return -1;
			}
			break;
		}
		}
	}
	if (optind != argc - 1) {
		cli_usage(c, "Expecting image file name and size");
		return -1;
	}
	a->filename = argv[optind];
	a->display = a->filename;
	c->res.filename = a->filename;
	return 0;
}

static int parse_size(struct cli_ctx *c, const char *arg, struct instar_size *ret)
{
	int r = instar_size_parse(arg, ret);

	if (ret->hex_suffix)
		cli_warn("Using a multiplier suffix on hex numbers is deprecated: %s", ret->number);
	if (r == INSTAR_SIZE_OUT_OF_RANGE) {
		cli_error(c, INSTAR_ERR_INVALID_NEW_SIZE, ERANGE,
			  "Value '%s' is out of range for parameter 'size'", ret->number);
		return -1;
	}
	if (r != INSTAR_SIZE_OK) {
		cli_error(c, INSTAR_ERR_INVALID_NEW_SIZE, EINVAL,
			  "Parameter 'size' expects a non-negative number below 2^64");
		cli_hint(c, "Optional suffix k, M, G, T, P or E means kilo-, mega-, giga-, "
			    "tera-, peta-");
		cli_hint(c, "and exabytes, respectively.");
		return -1;
	}
	return 0;
}

static void report_lock(struct cli_ctx *c, const char *filename, int r,
			const struct vmm_lock_error *le)
{
	char errtext[160] = "";

	if (le->err)
		snprintf(errtext, sizeof(errtext), ": %s", strerror(le->err));
	switch (le->kind) {
	case VMM_LOCK_FAIL_BYTE:
		cli_error(c, INSTAR_ERR_LOCKED, EBUSY,
			  "Could not open '%s': Failed to lock byte %u%s", filename, le->byte,
			  errtext);
		return;
	case VMM_LOCK_FAIL_PERM:
		cli_error(c, INSTAR_ERR_LOCKED, EBUSY,
			  "Could not open '%s': Failed to get \"%s\" lock%s", filename, le->perm,
			  errtext);
		break;
	case VMM_LOCK_FAIL_SHARED:
		cli_error(c, INSTAR_ERR_LOCKED, EBUSY,
			  "Could not open '%s': Failed to get shared \"%s\" lock%s", filename,
			  le->perm, errtext);
		break;
	default:
		cli_error(c, INSTAR_ERR_LOCKED, EBUSY, "Could not open '%s': %s", filename,
			  strerror(-r));
		return;
	}
	cli_hint(c, "Is another process using the image [%s]?", filename);
}

static int resize_raw(struct cli_ctx *c, const struct resize_args *a, int fd, uint64_t new_size)
{
	struct vmm_raw_result rr;
	int r;

	r = vmm_raw_resize(fd, new_size, a->prealloc, &rr);
	c->res.file_size_before = rr.file_size_before;
	c->res.file_size_after = rr.file_size_after;
	if (r == 0)
		return 0;
	if (r == -ENOTSUP && !rr.what) {
		cli_error(c, INSTAR_ERR_PREALLOCATION_UNSUPPORTED, EOPNOTSUPP,
			  "Unsupported preallocation mode: %s", instar_prealloc_name(a->prealloc));
	} else if (r == -EFBIG) {
		cli_error(c, INSTAR_ERR_TOO_LARGE, ERANGE, "%s: %s", rr.what, strerror(-r));
	} else if (r == -ENOSPC || r == -EDQUOT) {
		cli_error(c, INSTAR_ERR_NO_SPACE, ENOSPC, "%s: %s", rr.what, strerror(-r));
	} else if (r == -ENOTSUP) {
		cli_error(c, INSTAR_ERR_PREALLOC_NOT_GROWING, EINVAL, "%s", rr.what);
	} else {
		cli_error(c, INSTAR_ERR_IO, EIO, "%s: %s", rr.what, strerror(-r));
	}
	return -1;
}

/* What the host found beside a qcow2 image: its backing chain and data file. */
struct resize_ext {
	uint32_t flags; /* INSTAR_RESIZE_BACKING, _BACKING_LEN, _DATA_FILE */
	uint64_t backing_len;
	uint32_t backing_crc, data_crc;
	int data_fd; /* -1: none */
	char data_name[1024];
	const char *data_noun;		      /* "data file" (qcow2), "extent file" (vmdk) */
	const struct instar_probe_info *info; /* the image's probe */
	struct vmm_ext_chain chain;	      /* the backing files the guest may read */
	/* twoGbMaxExtentFlat: the host's own extent files (vmm/split.h) */
	bool split;
	struct vmm_ext_policy *split_pol;
};

static int resize_data_file(struct cli_ctx *c, const struct resize_ext *x, uint64_t size,
			    uint32_t prealloc)
{
	struct vmm_raw_result rr;
	int r;

	/* the data file is a raw protocol node: metadata means nothing there */
	if (prealloc == INSTAR_PREALLOC_METADATA)
		prealloc = INSTAR_PREALLOC_OFF;
	r = vmm_raw_resize(x->data_fd, size, prealloc, &rr);
	if (r == 0)
		return 0;
	cli_error(c, r == -ENOSPC || r == -EDQUOT ? INSTAR_ERR_NO_SPACE : INSTAR_ERR_IO,
		  r == -ENOSPC || r == -EDQUOT ? ENOSPC : EIO,
		  "Could not resize the %s '%s': %s: %s", x->data_noun, x->data_name,
		  rr.what ? rr.what : "Could not resize file", strerror(-r));
	return -1;
}

/* After a failed commit the image may already be the new one (the message
 * says so); its data file must then keep the new length. */
static bool image_has_size(int fd, uint64_t size)
{
	struct instar_probe_info info;
	struct stat st;

	return fstat(fd, &st) == 0 && cli_probe_fd(fd, (uint64_t)st.st_size, &info) == 0 &&
	       info.virtual_size == size;
}

/* The guest run in a child process: the sandbox it enters forbids what the
 * host does with the extent files afterwards (open, create, unlink). The
 * result comes back through shared memory; the host checks the descriptor
 * on disk itself before it acts on it (vmm_split_committed). */
static int guest_forked(int fd, const struct instar_resize_config *cfg,
			const struct vmm_guest_opts *o, struct instar_resize_result *ret)
{
	struct shared_result {
		int r;
		struct instar_resize_result gr;
	} *m = mmap(NULL, sizeof(*m), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	pid_t pid;
	int st;

	if (m == MAP_FAILED)
		return -errno;
	m->r = -ECHILD;
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		munmap(m, sizeof(*m));
		return -errno;
	}
	if (pid == 0) {
		m->r = vmm_guest_resize(fd, cfg, o, &m->gr);
		fflush(NULL);
		_exit(0);
	}
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	*ret = m->gr;
	st = m->r;
	munmap(m, sizeof(*m));
	if (st == -ECHILD)
		snprintf(ret->detail, sizeof(ret->detail), "the guest's process died");
	return st;
}

/* A data file back at its old length after a guest that did not commit. */
static void data_file_restore(const struct resize_ext *x, off_t len)
{
	if (ftruncate(x->data_fd, len) < 0 || fdatasync(x->data_fd) < 0)
		cli_warn("could not restore the length of the data file '%s': %s", x->data_name,
			 strerror(errno));
}

/* A grow makes the data file long enough before the image commits to the
 * new size (qemu's order too). *ret_len: its old length; *ret_grown: true
 * when it was made longer (a failed guest puts it back). */
static int data_file_pre_grow(struct cli_ctx *c, const struct resize_args *a,
			      const struct resize_ext *x, uint64_t probed_size, uint64_t new_size,
			      off_t *ret_len, bool *ret_grown)
{
	struct stat dst;

	*ret_grown = false;
	if (x->data_fd < 0 || new_size <= probed_size)
		return 0;
	if (fstat(x->data_fd, &dst) < 0) {
		cli_error(c, INSTAR_ERR_IO, EIO, "Could not open '%s': %s", x->data_name,
			  strerror(errno));
		return -1;
	}
	*ret_len = dst.st_size;
	if (resize_data_file(c, x, new_size, a->prealloc) < 0) {
		/* the image never changed: its data file goes back too */
		data_file_restore(x, dst.st_size);
		return -1;
	}
	*ret_grown = true;
	return 0;
}

/* twoGbMaxExtentFlat, after the guest: the extent files the host prepared
 * stay only when the descriptor on disk names them (a success whose
 * descriptor does not becomes GUEST_MISBEHAVED); then the cut and dropped
 * ones go. -1 (reported) when finishing fails. */
static int split_settle(struct cli_ctx *c, struct vmm_split *sp, int fd, int r,
			struct instar_resize_result *gr)
{
	char serr[1400];
	bool committed;

	if (!sp->target)
		return 0;
	committed = vmm_split_committed(sp, fd);
	if (r == 0 && gr->error == INSTAR_OK && !committed) {
		gr->error = INSTAR_ERR_GUEST_MISBEHAVED;
		snprintf(gr->detail, sizeof(gr->detail),
			 "the committed descriptor does not name the extents the host "
			 "prepared");
	}
	if (!committed)
		vmm_split_undo(sp);
	else if (r == 0 && gr->error == INSTAR_OK && vmm_split_finish(sp, serr, sizeof(serr)) < 0) {
		cli_error(c, INSTAR_ERR_IO, EIO, "%s", serr);
		return -1;
	}
	return 0;
}

/* What the guest did, reported: a failed start, the guest's refusal, or
 * the sizes it committed (the JSON result reports the guest's when they are
 * not the ones asked for). */
static int guest_outcome(struct cli_ctx *c, const struct resize_args *a, int r,
			 const struct instar_resize_result *gr, uint64_t probed_size,
			 uint64_t new_size)
{
	char detail[INSTAR_DETAIL_MAX + 1];

	if (r < 0) {
		cli_guest_detail(gr->detail, detail, sizeof(detail));
		cli_error(c, INSTAR_ERR_INTERNAL, EIO, "Could not start the resize guest: %s",
			  detail[0] ? detail : strerror(-r));
		return -1;
	}
	if (gr->error != INSTAR_OK) {
		cli_guest_error(c, a->filename, a->display, a->prealloc, a->max_staged, gr);
		return -1;
	}
	c->res.file_size_before = gr->file_size_before;
	c->res.file_size_after = gr->file_size_after;
	if (gr->old_virtual_size != probed_size || gr->new_virtual_size != new_size) {
		c->res.old_virtual_size = gr->old_virtual_size;
		c->res.resolved_new_virtual_size = gr->new_virtual_size;
	}
	return 0;
}

/* The guest's config and options for a resize of the image to new_size
 * (probed_size: the host's probe of the old size). */
static void guest_setup(const struct resize_args *a, const struct resize_ext *x, uint32_t format,
			uint64_t probed_size, uint64_t file_size, uint64_t new_size,
			struct instar_resize_config *cfg, struct vmm_guest_opts *o)
{
	*cfg = (struct instar_resize_config){
	    .magic = INSTAR_RESIZE_MAGIC,
	    .abi_version = INSTAR_ABI_VERSION,
	    .format = format,
	    .prealloc = a->prealloc,
	    .flags = (a->shrink ? INSTAR_RESIZE_SHRINK_ALLOWED : 0) | x->flags,
	    .expected_old_virtual_size = probed_size,
	    .new_virtual_size = new_size,
	    .file_size = file_size,
	    .backing_len = x->backing_len,
	    .backing_name_crc = x->backing_crc,
	    .data_file_name_crc = x->data_crc,
	    .backing_devs = x->chain.n,
	};
	*o = (struct vmm_guest_opts){
	    .guest_dir = a->guest_dir,
	    .timeout_ms = a->timeout_ms,
	    .overlay_limit = a->max_staged,
	    .debug = getenv("INSTAR_DEBUG") != NULL,
	    .keep_fd = x->data_fd,
	};
	for (uint32_t i = 0; i < x->chain.n; i++) {
		cfg->backing_fmt[i] = x->chain.fmt[i];
		o->backing_fd[i] = x->chain.fd[i];
	}
}

static int resize_guest(struct cli_ctx *c, const struct resize_args *a, int fd, uint32_t format,
			uint64_t probed_size, uint64_t file_size, uint64_t new_size,
			const struct resize_ext *x)
{
	struct instar_resize_config cfg;
	struct vmm_guest_opts o;
	struct instar_resize_result gr;
	struct vmm_split sp = {.pol = x->split_pol, .image_fd = fd, .info = x->info, .fd = -1};
	char serr[1400];
	off_t data_len = 0;
	bool grow_data;
	int r, serrno = EIO;

	guest_setup(a, x, format, probed_size, file_size, new_size, &cfg, &o);
	if (data_file_pre_grow(c, a, x, probed_size, new_size, &data_len, &grow_data) < 0)
		return -1;
	/* twoGbMaxExtentFlat/Sparse: the host checks the extents (sparse: each
	 * one's header), sizes and creates the extent files of a grow now, and
	 * checks those a shrink cuts or drops */
	if (x->split &&
	    vmm_split_prepare(&sp, new_size, a->prealloc, &serrno, serr, sizeof(serr)) < 0) {
		vmm_split_close(&sp);
		if (serrno == ENOTSUP) { /* an extent instar does not resize around */
			cli_error(c, INSTAR_ERR_UNSUPPORTED_SUBFORMAT, 0, "%s", serr);
			return -1;
		}
		cli_error(c,
			  serrno == ENOSPC || serrno == EDQUOT ? INSTAR_ERR_NO_SPACE
							       : INSTAR_ERR_OPEN_FAILED,
			  serrno == EDQUOT ? ENOSPC : serrno, "Could not open '%s': %s", a->display,
			  serr);
		return -1;
	}
	memset(&gr, 0, sizeof(gr));
	r = x->split ? guest_forked(fd, &cfg, &o, &gr) : vmm_guest_resize(fd, &cfg, &o, &gr);
	if (x->split && split_settle(c, &sp, fd, r, &gr) < 0) {
		vmm_split_close(&sp);
		return -1;
	}
	vmm_split_close(&sp);
	if (r == 0 && gr.error != INSTAR_OK) {
		/* the real lengths after a failure (the host measured them) */
		c->res.file_size_before = gr.file_size_before;
		c->res.file_size_after = gr.file_size_after;
	}
	if ((r < 0 || gr.error != INSTAR_OK) && grow_data && !image_has_size(fd, new_size))
		data_file_restore(x, data_len); /* the image did not take the new size */
	if (guest_outcome(c, a, r, &gr, probed_size, new_size) < 0)
		return -1;
	/* A shrink cuts the data file once the image no longer reaches past it
	 * (qemu cuts it just before its commit write). */
	if (x->data_fd >= 0 && new_size < probed_size &&
	    resize_data_file(c, x, new_size, INSTAR_PREALLOC_OFF) < 0)
		return -1;
	return 0;
}

/* qemu-img opens the whole backing chain and the data file with the image;
 * so does instar, and tells the guest what it found. A header whose names
 * the probe could not see is left to the guest, which refuses it. */
static int open_external(struct cli_ctx *c, const struct resize_args *a, int fd,
			 const struct instar_probe_info *info, struct resize_ext *x)
{
	const char *filename = a->filename;
	struct vmm_ext_policy pol;
	char err[3072];
	bool known = false;
	uint32_t flags = instar_probe_name_flags(info, &x->backing_crc, &x->data_crc);
	int r;

	x->info = info;
	if (info->format == INSTAR_FMT_VMDK && info->vmdk_split_ok) {
		/* the extent files are opened when the new size is known */
		x->split_pol = malloc(sizeof(*x->split_pol));
		if (!x->split_pol) {
			cli_error(c, INSTAR_ERR_INTERNAL, ENOMEM, "%s", strerror(ENOMEM));
			return -1;
		}
		r = vmm_ext_policy_open(x->split_pol, filename, a->backing_dirs, a->n_backing_dirs,
					a->confine, err, sizeof(err));
		if (r < 0) {
			cli_error(c, INSTAR_ERR_OPEN_FAILED, EIO, "Could not open '%s': %s",
				  filename, err);
			return -1;
		}
		x->split = true;
	}
	if (!(flags & (INSTAR_RESIZE_BACKING | INSTAR_RESIZE_DATA_FILE)))
		goto done;
	r = vmm_ext_policy_open(&pol, filename, a->backing_dirs, a->n_backing_dirs, a->confine, err,
				sizeof(err));
	if (r < 0) {
		vmm_ext_policy_close(&pol);
		cli_error(c, INSTAR_ERR_OPEN_FAILED, EIO, "Could not open '%s': %s", filename, err);
		return -1;
	}
	if (flags & INSTAR_RESIZE_BACKING) {
		r = vmm_ext_backing(&pol, filename, info, &x->backing_len, &known, &x->chain, err,
				    sizeof(err));
		if (r < 0) {
			vmm_ext_chain_close(&x->chain);
			vmm_ext_policy_close(&pol);
			cli_error(c, INSTAR_ERR_OPEN_FAILED,
				  r == -ENOENT	 ? ENOENT
				  : r == -EACCES ? EACCES
						 : EIO,
				  "Could not open '%s': %s", filename, err);
			return -1;
		}
	}
	if (flags & INSTAR_RESIZE_DATA_FILE) {
		vmm_ext_name(x->data_name, sizeof(x->data_name), info->data_file_name,
			     info->data_file_len);
		x->data_noun = info->format == INSTAR_FMT_VMDK ? "extent file" : "data file";
		r = vmm_ext_data_file(&pol, fd, info, err, sizeof(err));
		if (r < 0) {
			vmm_ext_policy_close(&pol);
			cli_error(c, r == -EBUSY ? INSTAR_ERR_LOCKED : INSTAR_ERR_OPEN_FAILED,
				  r == -ENOENT	 ? ENOENT
				  : r == -EBUSY	 ? EBUSY
				  : r == -EACCES ? EACCES
						 : EIO,
				  "Could not open '%s': %s", filename, err);
			return -1;
		}
		x->data_fd = r;
	}
	vmm_ext_policy_close(&pol);
done:
	x->flags = flags | (known ? INSTAR_RESIZE_BACKING_LEN : 0);
	return 0;
}

static void warn_probed_raw(const char *filename)
{
	char nb[CLI_NAME_MAX];

	fprintf(stderr,
		"WARNING: Image format was not specified for '%s' and probing guessed raw.\n"
		"         Automatically detecting the format is dangerous for raw images, "
		"write operations on block 0 will be restricted.\n"
		"         Specify the 'raw' format explicitly to remove the restrictions.\n",
		cli_name(filename, nb));
}

/* One resize, step by step: what each step found, for the next. */
struct resize_job {
	int fd; /* stays open (and locked) until exit */
	struct stat st;
	struct instar_probe_info info;
	const char *driver; /* qemu's driver for the image: -f's, else the probe's */
	uint32_t format;    /* instar's format for driver; UNKNOWN: not resized */
	bool forced;
	uint64_t probed, cur; /* the header's size; qemu's length of it */
	struct resize_ext ext;
};

/* --image-opts: the option string names the file and the driver; -f is
 * refused with it, as qemu-img refuses it. */
static int take_image_opts(struct cli_ctx *c, struct resize_args *a)
{
	char msg[CLI_OPTS_MSG];
	int r;

	if (!a->image_opts)
		return 0;
	if (a->fmt) {
		cli_error(c, INSTAR_ERR_INVALID_OPTION, EINVAL,
			  "--image-opts and --format are mutually exclusive");
		return -1;
	}
	r = cli_image_opts_parse(a->filename, &a->io, msg, sizeof(msg));
	if (a->io.warning[0]) {
		size_t n = strcspn(a->io.warning, "\n");

		cli_warn("%.*s", (int)n, a->io.warning);
		if (a->io.warning[n])
			fprintf(stderr, "%s\n", a->io.warning + n + 1);
	}
	if (r < 0) {
		cli_error(c, INSTAR_ERR_INVALID_OPTION, EINVAL, "Could not open '%s': %s",
			  a->display, msg);
		return -1;
	}
	a->fmt = a->io.driver;
	return 0;
}

/* --image-opts: the file it names, once its driver is known. */
static int image_opts_file(struct cli_ctx *c, struct resize_args *a)
{
	char msg[CLI_OPTS_MSG];

	if (!a->image_opts)
		return 0;
	if (cli_image_opts_file(&a->io, msg, sizeof(msg)) < 0) {
		cli_error(c, INSTAR_ERR_INVALID_OPTION, EINVAL, "Could not open '%s': %s",
			  a->display, msg);
		return -1;
	}
	a->filename = a->io.filename;
	c->res.filename = a->filename;
	return 0;
}

/* -f NAME: the driver, and whether instar resizes its format. */
static int resolve_driver(struct cli_ctx *c, const struct resize_args *a, struct resize_job *j)
{
	int f;

	if (!a->fmt)
		return 0;
	j->forced = true;
	if (strcmp(a->fmt, "file") == 0 || strcmp(a->fmt, "host_device") == 0) {
		j->driver = "raw"; /* the protocol alone acts like raw */
		return 0;
	}
	f = instar_format_from_name(a->fmt);
	if (f > 0) {
		j->driver = instar_format_name((uint32_t)f); /* "vhd" is "vpc" */
		return 0;
	}
	for (size_t i = 0; i < sizeof(qemu_other_drivers) / sizeof(qemu_other_drivers[0]); i++)
		if (strcmp(a->fmt, qemu_other_drivers[i]) == 0) {
			j->driver = qemu_other_drivers[i];
			return 0;
		}
	cli_error(c, INSTAR_ERR_INVALID_OPTION, EINVAL, "Could not open '%s': Unknown driver '%s'",
		  a->display, a->fmt);
	return -1;
}

/* Opens and probes the file, as qemu-img opens the protocol first. */
static int open_image(struct cli_ctx *c, const struct resize_args *a, struct resize_job *j)
{
	int r;

	j->fd = open(a->filename, O_RDWR | O_CLOEXEC | O_NOCTTY);
	if (j->fd < 0) {
		r = errno;
		cli_error(c, INSTAR_ERR_OPEN_FAILED, r == EACCES || r == EPERM ? EPERM : EIO,
			  "Could not open '%s': Could not open '%s': %s", a->display, a->filename,
			  strerror(r));
		return -1;
	}
	if (fstat(j->fd, &j->st) < 0) {
		cli_error(c, INSTAR_ERR_IO, EIO, "Could not open '%s': %s", a->display,
			  strerror(errno));
		return -1;
	}
	if (!S_ISREG(j->st.st_mode)) {
		cli_error(c, INSTAR_ERR_UNSUPPORTED_FEATURE, EOPNOTSUPP,
			  "Cannot resize device files");
		return -1;
	}
	c->res.file_size_before = (uint64_t)j->st.st_size;
	c->res.file_size_after = (uint64_t)j->st.st_size; /* until something changes */
	r = cli_probe_file(j->fd, (uint64_t)j->st.st_size, a->filename, j->driver, &j->info);
	if (r < 0) {
		cli_error(c, INSTAR_ERR_READ_FAILED, EIO,
			  "Could not open '%s': Could not read image: %s", a->display,
			  strerror(-r));
		return -1;
	}
	if (!j->forced)
		j->driver = j->info.driver;
	r = instar_format_from_name(j->driver);
	j->format = r > 0 ? (uint32_t)r : INSTAR_FMT_UNKNOWN;
	if (j->format != INSTAR_FMT_UNKNOWN)
		c->res.target_format = (int)j->format;
	return 0;
}

/* What the driver's open says before any lock is taken (qemu's format
 * drivers fail there): the file is not in the forced format, a read-only
 * driver, a secret named but not given. A LUKS container and an encrypted
 * qcow2 are resized without their secret (qemu needs it to open them). */
static int check_open(struct cli_ctx *c, const struct resize_args *a, const struct resize_job *j)
{
	const char *key = a->io.key_secret;
	bool luks = strcmp(j->driver, "luks") == 0;
	bool crypt = j->format == INSTAR_FMT_QCOW2 && j->info.encrypted;
	char prefix[CLI_NAME_MAX + 32], msg[CLI_OPTS_MSG];

	snprintf(prefix, sizeof(prefix), "Could not open '%s': ", a->display);
	if (j->info.open_error[0]) {
		report_lines(c, INSTAR_ERR_PARSE_FAILED, EMEDIUMTYPE, prefix, j->info.open_error);
		return -1;
	}
	if (a->io.late_error[0]) {
		cli_error(c, INSTAR_ERR_INVALID_OPTION, EINVAL, "%s%s", prefix, a->io.late_error);
		return -1;
	}
	if (j->format == INSTAR_FMT_QCOW2 &&
	    cli_image_opts_crypt(&a->io, j->info.crypt_method, msg, sizeof(msg)) < 0) {
		cli_error(c, INSTAR_ERR_INVALID_OPTION, EINVAL, "%s%s", prefix, msg);
		return -1;
	}
	if (!luks && !crypt)
		return 0;
	if (key && !cli_object_has_secret(&a->objects, key)) {
		cli_error(c, INSTAR_ERR_INVALID_OPTION, EINVAL, "%sNo secret with id '%s'", prefix,
			  key);
		return -1;
	}
	if (luks && strcmp(j->info.driver, "luks") != 0) {
		/* qemu looks for the secret before it reads the header */
		if (!key)
			cli_error(c, INSTAR_ERR_UNSUPPORTED_FEATURE, EOPNOTSUPP,
				  "%sParameter 'key-secret' is required for cipher", prefix);
		else
			cli_error(c, INSTAR_ERR_PARSE_FAILED, EMEDIUMTYPE,
				  "%sVolume is not in LUKS format", prefix);
		return -1;
	}
	/* The headers, the key material and qcow2's tables are not encrypted
	 * (guest/plan/luks.c, guest/plan/qcow2.c): with or without the secret,
	 * the guest resizes them and never decrypts. */
	return 0;
}

/* The locks qemu takes (unless file.locking=off), the probed-raw warning
 * and --strict-format. */
static int lock_image(struct cli_ctx *c, const struct resize_args *a, const struct resize_job *j)
{
	struct vmm_lock_error le;
	const struct instar_probe_info *info = &j->info;
	int r, forced = j->forced ? instar_format_from_name(j->driver) : -1;

	if (a->io.locking != CLI_LOCKING_OFF) {
		r = vmm_image_lock(j->fd, j->format != INSTAR_FMT_RAW, &le);
		if (r < 0) {
			report_lock(c, a->filename, r, &le);
			return -1;
		}
	}
	if (!j->forced && j->format == INSTAR_FMT_RAW)
		warn_probed_raw(a->filename);
	/* --strict-format (instarfs, when an image's name says its format): a
	 * probe that disagrees is refused both ways. A raw disk whose guest
	 * wrote a qcow2 header must not be resized as qcow2, and a qcow2 named
	 * .raw not cut as raw: whoever owns it has to say what it is. */
	if (!a->strict_format || forced <= 0 || (info->format == (uint32_t)forced && !info->other))
		return 0;
	if (forced == INSTAR_FMT_RAW)
		cli_error(c, INSTAR_ERR_PARSE_FAILED, EMEDIUMTYPE,
			  "Could not open '%s': Image is not in raw format: its header says %s",
			  a->display,
			  info->other ? "another format" : instar_format_name(info->format));
	else
		cli_error(c, INSTAR_ERR_PARSE_FAILED, EMEDIUMTYPE,
			  "Could not open '%s': Image is not in %s format", a->display,
			  instar_format_name((uint32_t)forced));
	return -1;
}

/* A size the probe read that qemu's block layer can hold. */
static bool size_known(uint64_t probed)
{
	return probed != INSTAR_PROBE_UNKNOWN && probed <= (uint64_t)INT64_MAX;
}

/* The image's current length as qemu-img sees it (and, for qcow2, what it
 * opens beside the image). 0; 1: a format instar does not resize; 2: no
 * size the host can tell (not reported); -1: reported. */
static int current_size(struct cli_ctx *c, const struct resize_args *a, struct resize_job *j)
{
	if (j->format == INSTAR_FMT_RAW) {
		j->probed = instar_probe_raw_size((uint64_t)j->st.st_size);
		j->cur = j->probed;
		c->res.old_virtual_size = j->cur;
		return 0;
	}
	if (j->format != INSTAR_FMT_UNKNOWN && j->info.format != j->format) {
		cli_error(c, INSTAR_ERR_PARSE_FAILED, EINVAL,
			  "Could not open '%s': Image is not in %s format", a->display,
			  instar_format_name(j->format));
		return -1;
	}
	/* the names the probe saw (qcow2, qed, vmdk): none for other formats */
	if (open_external(c, a, j->fd, &j->info, &j->ext) < 0)
		return -1;
	j->probed = j->info.virtual_size;
	if (!size_known(j->probed))
		/* UNKNOWN: refused below, whatever the size; else the caller
		 * says the size is not known (after the guest's open checks) */
		return j->format == INSTAR_FMT_UNKNOWN ? 1 : 2;
	/* qemu's length is whole sectors of the header's size */
	j->cur = j->probed & ~511ull;
	c->res.old_virtual_size = j->cur;
	return 0;
}

/* qemu-img's checks of the new size, in its order; report: print the
 * refusal (else only say there is one). */
static int check_new_size(struct cli_ctx *c, const struct resize_args *a, uint64_t cur,
			  const struct instar_size *size, int64_t *ret_total, bool report)
{
	int64_t total = instar_size_resolve(size, cur);

	if (total <= 0) {
		if (report)
			cli_error(c, INSTAR_ERR_INVALID_NEW_SIZE, EINVAL,
				  "New image size must be positive");
		return -1;
	}
	c->res.resolved_new_virtual_size = (uint64_t)total;
	c->res.action = (uint64_t)total > cur	? INSTAR_ACTION_GROW
			: (uint64_t)total < cur ? INSTAR_ACTION_SHRINK
						: INSTAR_ACTION_NOOP;
	if ((uint64_t)total <= cur && a->prealloc != INSTAR_PREALLOC_OFF) {
		if (report)
			cli_error(c, INSTAR_ERR_PREALLOC_NOT_GROWING, EINVAL,
				  "Preallocation can only be used for growing images");
		return -1;
	}
	if ((uint64_t)total < cur && !a->shrink) {
		if (!report)
			return -1;
		cli_error(c, INSTAR_ERR_SHRINK_WITHOUT_FLAG, EPERM,
			  "Use the --shrink option to perform a shrink operation.");
		fputs("instar: ", stderr);
		cli_hint(c, "warning: Shrinking an image will delete all data beyond the shrunken "
			    "image's end. Before performing such an operation, make sure there is "
			    "no important data there.");
		return -1;
	}
	if ((uint64_t)total > INSTAR_QEMU_MAX_LENGTH) {
		if (report)
			cli_error(c, INSTAR_ERR_TOO_LARGE, ERANGE,
				  "offset(%lld) exceeds maximum(%lld)", (long long)total,
				  (long long)INSTAR_QEMU_MAX_LENGTH);
		return -1;
	}
	*ret_total = total;
	return 0;
}

/* qemu-img opens the image (its driver's checks) before it checks the new
 * size. Where the host's size checks refuse the request, or its probe found
 * no size, the guest's open checks go first: a run of the guest that
 * commits nothing (open_only), asked for the old size, or for 0 when the
 * size is not known. True when the image's open failed there (reported, as
 * qemu-img reports it), or, with any (no size the host can tell), when the
 * guest refused it at all (its reason: vmdk's "Failed to inquire current
 * image length"); false leaves the host's own refusal to the caller.
 * (Not for a format the host alone handles, nor for twoGbMaxExtentFlat,
 * whose guest runs in a child process.) */
static bool open_fails_first(struct cli_ctx *c, const struct resize_args *a,
			     const struct resize_job *j, bool any)
{
	bool known = size_known(j->probed);
	struct instar_resize_config cfg;
	struct instar_resize_result gr;
	struct vmm_guest_opts o;

	if (j->format == INSTAR_FMT_RAW || j->format == INSTAR_FMT_UNKNOWN || j->ext.split)
		return false;
	guest_setup(a, &j->ext, j->format, known ? j->probed : UINT64_MAX, (uint64_t)j->st.st_size,
		    known ? j->probed : 0, &cfg, &o);
	cfg.prealloc = INSTAR_PREALLOC_OFF;
	o.open_only = true;
	memset(&gr, 0, sizeof(gr));
	if (vmm_guest_resize(j->fd, &cfg, &o, &gr) < 0 || gr.error == INSTAR_OK ||
	    (!any && !(gr.flags & INSTAR_RESULT_OPEN)))
		return false;
	cli_guest_error(c, a->filename, a->display, a->prealloc, a->max_staged, &gr);
	return true;
}

static int do_resize_job(struct cli_ctx *c, struct resize_args *a, struct resize_job *jp);

static int do_resize(struct cli_ctx *c, struct resize_args *a)
{
	struct resize_job j = {.fd = -1, .ext = {.data_fd = -1}};
	int r = do_resize_job(c, a, &j);

	if (j.ext.split_pol) {
		vmm_ext_policy_close(j.ext.split_pol);
		free(j.ext.split_pol);
	}
	return r;
}

static int do_resize_job(struct cli_ctx *c, struct resize_args *a, struct resize_job *jp)
{
	struct instar_size size;
	int64_t total;
	int r;

	if (parse_size(c, a->size_arg, &size) < 0 || take_image_opts(c, a) < 0 ||
	    resolve_driver(c, a, jp) < 0 || image_opts_file(c, a) < 0 || open_image(c, a, jp) < 0 ||
	    check_open(c, a, jp) < 0 || lock_image(c, a, jp) < 0)
		return -1;
	r = current_size(c, a, jp);
	if (r == 2) {
		if (!open_fails_first(c, a, jp, true))
			cli_error(c, INSTAR_ERR_PARSE_FAILED, EIO,
				  "Could not open '%s': Could not determine the image's virtual "
				  "size",
				  a->display);
		return -1;
	}
	if (r < 0)
		return -1;
	if (r == 0 && check_new_size(c, a, jp->cur, &size, &total, false) < 0) {
		if (!open_fails_first(c, a, jp, false))
			check_new_size(c, a, jp->cur, &size, &total, true);
		return -1;
	}
	if (jp->format == INSTAR_FMT_UNKNOWN) {
		/* a format qemu knows and instar does not resize */
		cli_error(c, INSTAR_ERR_UNSUPPORTED_FORMAT, EOPNOTSUPP,
			  "Image format driver does not support resize");
		return -1;
	}
	if (jp->format == INSTAR_FMT_RAW)
		return resize_raw(c, a, jp->fd, (uint64_t)total);
	if (jp->format == INSTAR_FMT_QCOW2 && (total & 511)) {
		cli_error(c, INSTAR_ERR_NOT_MULTIPLE_512, EINVAL,
			  "The new size must be a multiple of 512");
		return -1;
	}
	return resize_guest(c, a, jp->fd, jp->format, jp->probed, (uint64_t)jp->st.st_size,
			    (uint64_t)total, &jp->ext);
}

int cli_resize(int argc, char **argv)
{
	struct resize_args a = {.prealloc = INSTAR_PREALLOC_OFF};
	struct cli_ctx c;
	int r;

	cli_ctx_init(&c, cli_wants_json(argc, argv));
	r = parse_args(&c, argc, argv, &a);
	if (r > 0) {
		cli_objects_free(&a.objects);
		cli_ctx_free(&c);
		return 0;
	}
	if (r == 0 && do_resize(&c, &a) == 0 && !a.quiet && !c.json)
		printf("Image resized.\n");
	cli_objects_free(&a.objects);
	cli_image_opts_free(&a.io);
	return cli_finish(&c);
}
