/* vmm/main.c — the `instar` command line (foundation stage). */
#include <stdio.h>
#include <string.h>

#include "config.h"

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "--version") == 0) {
		printf("instar version %s\n", INSTAR_VERSION);
		return 0;
	}
	fprintf(stderr, "usage: instar resize [options] FILE [+-]SIZE\n");
	return 1;
}
