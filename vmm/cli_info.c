/* vmm/cli_info.c — `instar info`: what the host probe sees (format, virtual
 * size, file size, details). Read-only, no locks, no guest; instarfs uses
 * its JSON for info.json. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "abi_names.h"
#include "cli.h"

enum { OPT_OUTPUT = 256 };

static const struct option info_options[] = {
    {"help", no_argument, NULL, 'h'},
    {"output", required_argument, NULL, OPT_OUTPUT},
    {NULL, 0, NULL, 0},
};

/* "1 GiB", "1.5 MiB", as qemu-img info prints sizes. */
static void human_size(uint64_t v, char *buf, size_t len)
{
	static const char *const suffix[] = {"", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"};
	double x = (double)v * 1.024;
	int i = 0;

	while (i < 6 && x >= (double)(1ull << (10 * (i + 1))))
		i++;
	snprintf(buf, len, "%0.3g %sB", (double)v / (double)(1ull << (10 * i)), suffix[i]);
}

static const char *format_label(const struct instar_probe_info *info)
{
	if (info->other)
		return info->other;
	return instar_format_name(info->format);
}

static int print_json(const char *filename, const struct instar_probe_info *info)
{
	json_t *o = json_object();
	char *s;
	int err = 0;

	if (!o)
		return -ENOMEM;
	err |= json_object_set_new(o, "filename", json_string(filename));
	err |= json_object_set_new(o, "format", json_string(format_label(info)));
	err |= json_object_set_new(o, "virtual_size",
				   info->virtual_size == INSTAR_PROBE_UNKNOWN ||
					   info->virtual_size > (uint64_t)INT64_MAX
				       ? json_null()
				       : json_integer((json_int_t)info->virtual_size));
	err |= json_object_set_new(o, "file_size", json_integer((json_int_t)info->file_size));
	err |= json_object_set_new(o, "subformat",
				   info->subformat[0] ? json_string(info->subformat) : json_null());
	err |= json_object_set_new(
	    o, "cluster_size", info->cluster_size ? json_integer(info->cluster_size) : json_null());
	err |= json_object_set_new(o, "version",
				   info->version ? json_integer(info->version) : json_null());
	err |= json_object_set_new(o, "backing", json_boolean(info->has_backing));
	s = err ? NULL : json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(o);
	if (!s)
		return -ENOMEM;
	printf("%s\n", s);
	free(s);
	return 0;
}

static void print_human(const char *filename, const struct instar_probe_info *info)
{
	char hs[32], nb[CLI_NAME_MAX];

	printf("image: %s\n", cli_name(filename, nb));
	printf("file format: %s\n", format_label(info));
	if (info->virtual_size != INSTAR_PROBE_UNKNOWN) {
		human_size(info->virtual_size, hs, sizeof(hs));
		printf("virtual size: %s (%llu bytes)\n", hs,
		       (unsigned long long)info->virtual_size);
	} else {
		printf("virtual size: unknown\n");
	}
	human_size(info->file_size, hs, sizeof(hs));
	printf("file length: %s (%llu bytes)\n", hs, (unsigned long long)info->file_size);
	if (info->subformat[0])
		printf("subformat: %s\n", info->subformat);
	if (info->cluster_size)
		printf("cluster_size: %u\n", info->cluster_size);
	if (info->version)
		printf("version: %u\n", info->version);
	if (info->has_backing)
		printf("backing: yes\n");
}

int cli_info(int argc, char **argv)
{
	struct instar_probe_info info;
	struct cli_ctx c;
	const char *fmt = NULL, *filename;
	struct stat st;
	int opt, fd, r;

	cli_ctx_init(&c, cli_wants_json(argc, argv));
	optind = 0;
	while ((opt = getopt_long(argc, argv, ":f:h", info_options, NULL)) != -1) {
		switch (opt) {
		case ':':
			cli_usage(&c, "missing argument for option '%s'", argv[optind - 1]);
			return cli_finish(&c);
		case '?':
			cli_usage(&c, "unrecognized option '%s'", argv[optind - 1]);
			return cli_finish(&c);
		case 'h':
			printf("usage: instar info [--output=human|json] [-f fmt] filename\n"
			       "Shows what instar's host probe sees; reads, never locks.\n");
			cli_ctx_free(&c);
			return 0;
		case 'f':
			fmt = optarg;
			break;
		case OPT_OUTPUT:
			if (strcmp(optarg, "json") != 0 && strcmp(optarg, "human") != 0) {
				cli_error(&c, INSTAR_ERR_INVALID_OPTION, EINVAL,
					  "--output must be used with human or json as argument.");
				return cli_finish(&c);
			}
			c.json = strcmp(optarg, "json") == 0;
			break;
		}
	}
	if (optind != argc - 1) {
		cli_usage(&c, "Expecting one image file name");
		return cli_finish(&c);
	}
	filename = argv[optind];
	c.res.filename = filename;

	fd = open(filename, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		r = errno;
		cli_error(&c, INSTAR_ERR_OPEN_FAILED, 0,
			  "Could not open '%s': Could not open '%s': %s", filename, filename,
			  strerror(r));
		return cli_finish(&c);
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		cli_error(&c, INSTAR_ERR_OPEN_FAILED, 0, "Could not open '%s': not a regular file",
			  filename);
		close(fd);
		return cli_finish(&c);
	}
	r = cli_probe_file(fd, (uint64_t)st.st_size, filename, NULL, &info);
	close(fd);
	if (r < 0) {
		cli_error(&c, INSTAR_ERR_READ_FAILED, 0,
			  "Could not open '%s': Could not read image: %s", filename, strerror(-r));
		return cli_finish(&c);
	}
	if (fmt) {
		int f = instar_format_from_name(fmt);

		if (f < 0) {
			cli_error(&c, INSTAR_ERR_INVALID_OPTION, EINVAL,
				  "Could not open '%s': Unknown driver '%s'", filename, fmt);
			return cli_finish(&c);
		}
		if (f == INSTAR_FMT_RAW) {
			info.format = INSTAR_FMT_RAW;
			info.other = NULL;
			info.virtual_size = instar_probe_raw_size(info.file_size);
			info.subformat[0] = '\0';
			info.cluster_size = 0;
			info.version = 0;
			info.has_backing = false;
		} else if ((uint32_t)f != info.format) {
			cli_error(&c, INSTAR_ERR_PARSE_FAILED, EINVAL,
				  "Could not open '%s': Image is not in %s format", filename,
				  instar_format_name((uint32_t)f));
			return cli_finish(&c);
		}
	}
	if (c.json)
		r = print_json(filename, &info);
	else
		print_human(filename, &info);
	if (r < 0) {
		fputs("instar: Could not render the JSON\n", stderr);
		cli_ctx_free(&c);
		return 1;
	}
	cli_ctx_free(&c);
	return fflush(stdout) == EOF ? 1 : 0;
}
