/* vmm/main.c — the `instar` command line: global options and dispatch. */
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include <jansson.h>

#include "cli.h"
#include "config.h"

void cli_help(FILE *f)
{
	fprintf(f,
		"instar version %s\n"
		"usage: instar [standard options] command [command options]\n"
		"Resize virtual-disk images; every format but raw is parsed in a KVM guest.\n"
		"\n"
		"    '-h', '--help'       display this help and exit\n"
		"    '-V', '--version'    output version information and exit\n"
		"\n"
		"Command syntax:\n"
		"  resize [--object objectdef] [--image-opts] [-f fmt] [--preallocation=prealloc]"
		" [-q] [--shrink] [--output=human|json] [--timeout=seconds] [--guest-dir=dir]"
		" filename [+ | -]size\n"
		"  info [--output=human|json] [-f fmt] filename\n"
		"\n"
		"Command parameters:\n"
		"  'fmt' is raw, qcow2, vmdk, vpc (also 'vhd') or vhdx; probed when omitted\n"
		"  'prealloc' is off, metadata, falloc or full\n"
		"  'size' is bytes, or a number with a suffix k, M, G, T, P or E (powers of\n"
		"    1024, 'b' is ignored); '+' grows by and '-' shrinks by that much\n"
		"  '--shrink' is required to make an image smaller\n"
		"  '-q' suppresses 'Image resized.'\n"
		"  '--output=json' prints one result object on stdout\n"
		"\n"
		"'instar resize' takes the arguments of 'qemu-img resize' (7.2) and prints\n"
		"its messages; see 'instar resize --help'.\n",
		INSTAR_VERSION);
}

int main(int argc, char **argv)
{
	/* jansson seeds its hash function from /dev/urandom on first use; do it
	 * now, before the guest run's seccomp filter forbids open(). One
	 * getrandom() instead of open, read and close; 0 (a failure, or the
	 * rare zero) lets jansson find its own seed. */
	size_t seed = 0;
	char nb[CLI_NAME_MAX];

	if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != (ssize_t)sizeof(seed))
		seed = 0;
	json_object_seed(seed);
	if (argc < 2) {
		fprintf(stderr, "instar: Not enough arguments\n%s\n", CLI_TRY_HELP);
		return 1;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		cli_help(stdout);
		return 0;
	}
	if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0) {
		printf("instar version %s\n", INSTAR_VERSION);
		return 0;
	}
	if (strcmp(argv[1], "resize") == 0)
		return cli_resize(argc - 1, argv + 1);
	if (strcmp(argv[1], "info") == 0)
		return cli_info(argc - 1, argv + 1);
	if (argv[1][0] == '-')
		fprintf(stderr, "instar: unrecognized option '%s'\n%s\n", cli_name(argv[1], nb),
			CLI_TRY_HELP);
	else
		fprintf(stderr, "instar: Command not found: %s\n%s\n", cli_name(argv[1], nb),
			CLI_TRY_HELP);
	return 1;
}
