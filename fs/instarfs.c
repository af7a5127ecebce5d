/* fs/instarfs.c — instarfs (foundation stage: mounts an empty directory). */
#define FUSE_USE_VERSION 35
#include <errno.h>
#include <fuse.h>
#include <string.h>
#include <sys/stat.h>

static int ifs_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
	(void)fi;
	memset(st, 0, sizeof(*st));
	if (strcmp(path, "/") != 0)
		return -ENOENT;
	st->st_mode = S_IFDIR | 0755;
	st->st_nlink = 2;
	return 0;
}

static int ifs_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t off,
		       struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
	(void)off;
	(void)fi;
	(void)flags;
	if (strcmp(path, "/") != 0)
		return -ENOENT;
	fill(buf, ".", NULL, 0, 0);
	fill(buf, "..", NULL, 0, 0);
	return 0;
}

static const struct fuse_operations ifs_ops = {
	.getattr = ifs_getattr,
	.readdir = ifs_readdir,
};

int main(int argc, char *argv[])
{
	return fuse_main(argc, argv, &ifs_ops, NULL);
}
