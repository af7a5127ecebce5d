/* tests/tools/plan_apply.c — host harness for the planners: runs a planner
 * against an image file (reads through pread), records the op stream, then
 * applies it the way the host commit does (writes in order, fdatasync at each
 * FLUSH, final length). Used by unit and compat tests of every format.
 *
 *   plan-apply [--shrink] [--prealloc MODE] [--ops] [--dry-run]
 *              [--stop-after K] [--backing-len N]
 *              [--backing FMT:FILE]... | [--backing-data FILE]
 *              FORMAT IMAGE NEWSIZE
 *
 * Like the host, it tells the qcow2 planner which backing file and data file
 * names it saw, and the vmdk planner a descriptor's flat extent (the shared
 * probe's view; resizing that extent, the host's part, is the caller's); --backing-len gives the
 * backing file's length (without it the planner treats it as unknown).
 *
 * --backing FMT:FILE, once per file of the backing chain in its order (the
 * image's own backing file first; FMT raw or qcow2, at most
 * INSTAR_BACKING_MAX_DEVS files), gives the planner the chain as the host
 * gives it to the guest (vmm/external.c, vmm/guest_run.c,
 * guest/ops/resize): each file a read-only device of its fstat length and
 * format, read through guest/plan/backing.c as the image sees it; unless
 * --backing-len is given, the backing length is the first file's as the
 * host learns it (raw: its length rounded up to a sector; qcow2: its
 * header's size in whole sectors). A qcow2 FILE must probe as qcow2 (the
 * host's "Image is not in qcow2 format"). Naming the chain is the caller's
 * part: plan-apply does not follow the header's names.
 * --backing-data FILE (older form, not with --backing): FILE as one raw
 * backing file, its length the backing length unless given.
 *
 * Prints one line "error=NAME action=A old=N new=N before=N after=N ops=N
 * reads=N read_bytes=N open=0|1 detail=..." (reads: the planner's read calls;
 * open: INSTAR_RESULT_OPEN, a failure of the image's open; with
 * INSTAR_RESULT_OPEN_ERRNO the detail is printed as the CLI adds the block
 * layer's words to it: "Could not open 'IMAGE': DETAIL", IMAGE as given;
 * with INSTAR_RESULT_OPEN_PRELINE, "preline=LINE" before "open=": the
 * driver's own line, and the detail is then "Could not open 'IMAGE':
 * Invalid argument", as the CLI prints them).
 * Exit: 0 planner OK, 2 planner error, 1 usage or host I/O failure. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "abi_names.h"
#include "backing.h"
#include "plan.h"
#include "probe.h"

struct rec_op {
	struct plan_op op;
	uint8_t *data;
};

struct recorder {
	struct rec_op *ops;
	size_t n, cap;
};

/* What the planner read (image and backing file): its cost in a form no
 * machine's speed changes, for tests that bound the work a plan takes. */
static uint64_t n_reads, read_bytes;

static int file_read(void *ctx, uint64_t off, void *buf, uint32_t len)
{
	int fd = *(int *)ctx;
	uint8_t *b = buf;

	n_reads++;
	read_bytes += len;
	while (len) {
		ssize_t r = pread(fd, b, len, (off_t)off);
		if (r < 0)
			return -errno;
		if (r == 0) { /* past EOF reads as zeros */
			memset(b, 0, len);
			return 0;
		}
		b += r;
		off += (uint64_t)r;
		len -= (uint32_t)r;
	}
	return 0;
}

static int rec_sink(void *ctx, const struct plan_op *op)
{
	struct recorder *r = ctx;
	struct rec_op *ro;

	if (r->n == r->cap) {
		size_t nc = r->cap ? r->cap * 2 : 64;
		struct rec_op *n = realloc(r->ops, nc * sizeof(*n));
		if (!n)
			return -ENOMEM;
		r->ops = n;
		r->cap = nc;
	}
	ro = &r->ops[r->n];
	ro->op = *op;
	ro->data = NULL;
	if (op->kind == PLAN_OP_WRITE) {
		ro->data = malloc(op->len);
		if (!ro->data)
			return -ENOMEM;
		memcpy(ro->data, op->data, op->len);
	}
	r->n++;
	return 0;
}

static void recorder_free(struct recorder *r)
{
	for (size_t i = 0; i < r->n; i++)
		free(r->ops[i].data);
	free(r->ops);
	r->ops = NULL;
	r->n = r->cap = 0;
}

static const char *kind_name(uint32_t k)
{
	switch (k) {
	case PLAN_OP_WRITE:
		return "write";
	case PLAN_OP_ZERO:
		return "zero";
	case PLAN_OP_DISCARD:
		return "discard";
	case PLAN_OP_FLUSH:
		return "flush";
	}
	return "?";
}

/* fallocate's answer on a file system without the mode (9p, NFSv3). */
static bool falloc_unsupported(int err)
{
	return err == EOPNOTSUPP || err == ENOSYS || err == EINVAL;
}

/* Zeros over [off, off + len): a zero range, or written where the file
 * system lacks it, as the host's commit does (vmm/overlay.c commit_zero). */
static int apply_zero(int fd, uint64_t off, uint64_t len)
{
	static const uint8_t zeros[1 << 16];

	if (fallocate(fd, FALLOC_FL_ZERO_RANGE, (off_t)off, (off_t)len) == 0)
		return 0;
	if (!falloc_unsupported(errno))
		return -1;
	while (len) {
		size_t n = len > sizeof(zeros) ? sizeof(zeros) : (size_t)len;

		if (pwrite(fd, zeros, n, (off_t)off) != (ssize_t)n)
			return -1;
		off += n;
		len -= n;
	}
	return 0;
}

static int apply(int fd, const struct recorder *r, long stop_after)
{
	long writes = 0;

	for (size_t i = 0; i < r->n; i++) {
		const struct plan_op *op = &r->ops[i].op;

		if (op->kind != PLAN_OP_FLUSH && stop_after >= 0 && writes >= stop_after)
			return 1;
		switch (op->kind) {
		case PLAN_OP_WRITE:
			if (pwrite(fd, r->ops[i].data, op->len, (off_t)op->off) != (ssize_t)op->len)
				return -1;
			writes++;
			break;
		case PLAN_OP_ZERO:
			if (apply_zero(fd, op->off, op->len) != 0)
				return -1;
			writes++;
			break;
		case PLAN_OP_DISCARD: {
			struct stat st;
			if (fstat(fd, &st) != 0)
				return -1;
			/* advice: a file system without holes keeps the bytes,
			 * as the host's commit leaves them */
			if (op->off < (uint64_t)st.st_size &&
			    fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				      (off_t)op->off, (off_t)op->len) != 0 &&
			    !falloc_unsupported(errno))
				return -1;
			writes++;
			break;
		}
		case PLAN_OP_FLUSH:
			if (fdatasync(fd) != 0)
				return -1;
			break;
		}
	}
	return 0;
}

/* The shared probe over the file's first INSTAR_PROBE_HEAD_LEN bytes. */
static int probe_head(int fd, uint64_t file_size, struct instar_probe_info *info)
{
	static uint8_t head[INSTAR_PROBE_HEAD_LEN];
	struct instar_probe_input in = {.file_size = file_size};
	ssize_t n = pread(fd, head, sizeof(head), 0);

	if (n <= 0)
		return -1;
	in.windows[in.nwindows++] = (struct instar_probe_window){0, head, (size_t)n};
	return instar_probe(&in, info) < 0 ? -1 : 0;
}

/* The host's part of the config: the names the probe saw (qcow2's and
 * qed's backing files, qcow2's data file, a vmdk descriptor's flat extent;
 * none for other formats). */
static void host_names(int fd, uint64_t file_size, struct plan_opts *po)
{
	struct instar_probe_info info;

	if (probe_head(fd, file_size, &info) < 0)
		return;
	po->flags |= instar_probe_name_flags(&info, &po->backing_name_crc, &po->data_file_name_crc);
}

/* The backing chain the host hands the guest (--backing). */
struct chain {
	uint32_t n;
	int fd[INSTAR_BACKING_MAX_DEVS];
	uint32_t fmt[INSTAR_BACKING_MAX_DEVS]; /* the config's backing_fmt */
	uint64_t len[INSTAR_BACKING_MAX_DEVS]; /* backing_dev_len: fstat */
	uint64_t vlen;			       /* the first file's length, as the host's */
};

static int chain_add(struct chain *c, const char *arg)
{
	const char *colon = strchr(arg, ':');
	struct instar_probe_info info = {0};
	struct stat st;
	uint32_t fmt;
	int fd;

	if (!colon || (strncmp(arg, "raw:", 4) != 0 && strncmp(arg, "qcow2:", 6) != 0)) {
		fprintf(stderr, "--backing %s: FMT:FILE with FMT raw or qcow2\n", arg);
		return -1;
	}
	if (c->n >= INSTAR_BACKING_MAX_DEVS) {
		fprintf(stderr, "--backing %s: more than %u backing files\n", arg,
			INSTAR_BACKING_MAX_DEVS);
		return -1;
	}
	fmt = arg[0] == 'r' ? INSTAR_FMT_RAW : INSTAR_FMT_QCOW2;
	fd = open(colon + 1, O_RDONLY);
	if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		perror(colon + 1);
		return -1;
	}
	if (fmt == INSTAR_FMT_QCOW2 &&
	    (probe_head(fd, (uint64_t)st.st_size, &info) < 0 || info.format != INSTAR_FMT_QCOW2)) {
		fprintf(stderr, "%s: Image is not in qcow2 format\n", colon + 1);
		return -1;
	}
	if (c->n == 0)
		c->vlen = fmt == INSTAR_FMT_RAW ? instar_probe_raw_size((uint64_t)st.st_size)
			  : info.virtual_size == INSTAR_PROBE_UNKNOWN ? UINT64_MAX
								      : info.virtual_size & ~511ull;
	c->fd[c->n] = fd;
	c->fmt[c->n] = fmt;
	c->len[c->n] = (uint64_t)st.st_size;
	c->n++;
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option lopts[] = {
	    {"shrink", no_argument, NULL, 's'},
	    {"prealloc", required_argument, NULL, 'p'},
	    {"ops", no_argument, NULL, 'o'},
	    {"dry-run", no_argument, NULL, 'n'},
	    {"stop-after", required_argument, NULL, 'k'},
	    {"backing-len", required_argument, NULL, 'b'},
	    {"backing-data", required_argument, NULL, 'd'},
	    {"backing", required_argument, NULL, 'B'},
	    {NULL, 0, NULL, 0},
	};
	struct plan_opts po = {0};
	struct instar_resize_result res = {0};
	struct recorder rec = {0};
	struct plan_scratch sc;
	struct plan p;
	struct plan_io io;
	struct stat st;
	static struct chain ch;
	static struct plan_backing bk;
	bool show_ops = false, dry = false, preline;
	long stop_after = -1;
	int c, fd, fmt, prealloc, bfd = -1;
	size_t scratch_len = 24u << 20;
	void *scratch;

	while ((c = getopt_long(argc, argv, "", lopts, NULL)) != -1) {
		switch (c) {
		case 's':
			po.flags |= INSTAR_RESIZE_SHRINK_ALLOWED;
			break;
		case 'p':
			prealloc = instar_prealloc_from_name(optarg);
			if (prealloc < 0)
				return 1;
			po.prealloc = (uint32_t)prealloc;
			break;
		case 'o':
			show_ops = true;
			break;
		case 'n':
			dry = true;
			break;
		case 'k':
			stop_after = strtol(optarg, NULL, 10);
			break;
		case 'b':
			po.backing_len = strtoull(optarg, NULL, 0);
			po.flags |= INSTAR_RESIZE_BACKING_LEN;
			break;
		case 'd':
			bfd = open(optarg, O_RDONLY);
			if (bfd < 0 || fstat(bfd, &st) != 0) {
				perror(optarg);
				return 1;
			}
			if (!(po.flags & INSTAR_RESIZE_BACKING_LEN)) {
				po.backing_len = (uint64_t)st.st_size;
				po.flags |= INSTAR_RESIZE_BACKING_LEN;
			}
			break;
		case 'B':
			if (chain_add(&ch, optarg) < 0)
				return 1;
			break;
		default:
			return 1;
		}
	}
	if (argc - optind != 3 || (ch.n && bfd >= 0)) {
		fprintf(stderr, "usage: plan-apply [--shrink] [--prealloc M] [--ops] [--dry-run] "
				"[--stop-after K] [--backing-len N] [--backing FMT:FILE]... | "
				"[--backing-data FILE] FORMAT IMAGE NEWSIZE\n");
		return 1;
	}
	if (ch.n && !(po.flags & INSTAR_RESIZE_BACKING_LEN) && ch.vlen != UINT64_MAX) {
		po.backing_len = ch.vlen; /* as vmm_ext_backing's ret_len, when known */
		po.flags |= INSTAR_RESIZE_BACKING_LEN;
	}
	fmt = instar_format_from_name(argv[optind]);
	if (fmt < 0) {
		fprintf(stderr, "unknown format %s\n", argv[optind]);
		return 1;
	}
	fd = open(argv[optind + 1], dry ? O_RDONLY : O_RDWR);
	if (fd < 0 || fstat(fd, &st) != 0) {
		perror(argv[optind + 1]);
		return 1;
	}
	po.new_size = strtoull(argv[optind + 2], NULL, 0);
	po.expected_old_size = UINT64_MAX; /* "unknown": planners skip the check */
	host_names(fd, (uint64_t)st.st_size, &po);
	io.read = file_read;
	io.ctx = &fd;
	io.file_size = (uint64_t)st.st_size;
	io.read_backing = bfd >= 0 ? file_read : NULL;
	io.backing_ctx = &bfd;
	scratch = malloc(scratch_len);
	if (!scratch)
		return 1;
	plan_scratch_init(&sc, scratch, scratch_len);
	/* as guest/ops/resize: the chain over the planner's scratch */
	plan_backing_init(&bk, &sc);
	for (uint32_t i = 0; i < ch.n; i++)
		if (plan_backing_add(&bk, ch.fmt[i], ch.len[i], file_read, &ch.fd[i]) != 0)
			return 1;
	if (bk.ndev) {
		io.read_backing = plan_backing_read;
		io.backing_ctx = &bk;
	}
	plan_init(&p, rec_sink, &rec, 0);
	res.file_size_before = (uint64_t)st.st_size;
	plan_resize((uint32_t)fmt, &po, &io, &sc, &p, &res);
	res.detail[INSTAR_DETAIL_MAX - 1] = '\0';
	preline = (res.flags & INSTAR_RESULT_OPEN_PRELINE) != 0;
	printf("error=%s action=%s old=%" PRIu64 " new=%" PRIu64 " before=%" PRIu64
	       " after=%" PRIu64 " ops=%zu reads=%" PRIu64 " read_bytes=%" PRIu64
	       "%s%s open=%u detail=%s%s%s%s\n",
	       instar_err_name(res.error), instar_action_name(res.action), res.old_virtual_size,
	       res.new_virtual_size, res.file_size_before, res.file_size_after, rec.n, n_reads,
	       read_bytes, preline ? " preline=" : "", preline ? res.detail : "",
	       (res.flags & INSTAR_RESULT_OPEN) != 0,
	       (res.flags & INSTAR_RESULT_OPEN_ERRNO) ? "Could not open '" : "",
	       (res.flags & INSTAR_RESULT_OPEN_ERRNO) ? argv[optind + 1] : "",
	       (res.flags & INSTAR_RESULT_OPEN_ERRNO) ? "': " : "",
	       preline ? "Invalid argument" : res.detail);
	if (show_ops)
		for (size_t i = 0; i < rec.n; i++)
			printf("%zu %s off=%" PRIu64 " len=%" PRIu64 "\n", i,
			       kind_name(rec.ops[i].op.kind), rec.ops[i].op.off, rec.ops[i].op.len);
	if (res.error != INSTAR_OK) {
		recorder_free(&rec);
		free(scratch);
		close(fd);
		return 2;
	}
	if (!dry) {
		int a = apply(fd, &rec, stop_after);
		if (a < 0) {
			perror("apply");
			return 1;
		}
		if (a == 0 && ftruncate(fd, (off_t)res.file_size_after) != 0) {
			perror("ftruncate");
			return 1;
		}
		if (fsync(fd) != 0)
			return 1;
	}
	close(fd);
	recorder_free(&rec);
	free(scratch);
	return 0;
}
