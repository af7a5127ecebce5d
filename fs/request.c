/* fs/request.c — the words written to `size`: the tail of an `instar resize`
 * command line ("+10G", "--shrink -5G", "--preallocation=falloc +1G",
 * "--max-staged 256M +1G"). Split on blanks, no shell. Only the options that
 * make sense for one image are accepted, so nothing written here can steer
 * the child otherwise. The size itself is only checked for its shape; instar
 * parses it for real. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "abi_names.h"
#include "instarfs.h"
#include "size.h"

static bool is_blank(char c)
{
	return c == ' ' || c == '\t';
}

static bool size_shape_ok(const char *w)
{
	if (*w == '+' || *w == '-')
		w++;
	if (*w < '0' || *w > '9')
		return false;
	for (; *w; w++)
		if (!((*w >= '0' && *w <= '9') || (*w >= 'a' && *w <= 'z') ||
		      (*w >= 'A' && *w <= 'Z') || *w == '.'))
			return false;
	return true;
}

int ifs_request_parse(const char *data, size_t len, struct ifs_request *ret, char *err,
		      size_t errlen)
{
	char *words[8];
	size_t n = 0, i;
	char *p;

	memset(ret, 0, offsetof(struct ifs_request, buf));
	ret->prealloc = -1;
	ret->code = INSTAR_ERR_INVALID_OPTION;
	if (len > IFS_WRITE_MAX) {
		snprintf(err, errlen, "value longer than %u bytes", IFS_WRITE_MAX);
		return -E2BIG;
	}
	memcpy(ret->buf, data, len);
	ret->buf[len] = '\0';
	if (len > 0 && ret->buf[len - 1] == '\n')
		ret->buf[--len] = '\0';
	if (strlen(ret->buf) != len || strpbrk(ret->buf, "\n\r\v\f")) {
		snprintf(err, errlen, "value must be one line of text");
		return -EINVAL;
	}
	for (p = ret->buf; *p;) {
		while (is_blank(*p))
			*p++ = '\0';
		if (!*p)
			break;
		if (n == sizeof(words) / sizeof(words[0])) {
			snprintf(err, errlen, "too many words");
			return -EINVAL;
		}
		words[n++] = p;
		while (*p && !is_blank(*p))
			p++;
	}
	for (i = 0; i < n; i++) {
		const char *w = words[i], *mode = NULL, *staged = NULL;

		if (strcmp(w, "--shrink") == 0) {
			ret->shrink = true;
		} else if (strcmp(w, "-q") == 0) {
			ret->quiet = true;
		} else if (strncmp(w, "--preallocation=", 16) == 0) {
			mode = w + 16;
		} else if (strcmp(w, "--preallocation") == 0) {
			if (i + 1 == n) {
				snprintf(err, errlen, "--preallocation needs a mode");
				return -EINVAL;
			}
			mode = words[++i];
		} else if (strncmp(w, "--max-staged=", 13) == 0) {
			staged = w + 13;
		} else if (strcmp(w, "--max-staged") == 0) {
			if (i + 1 == n) {
				snprintf(err, errlen, "--max-staged needs a size");
				return -EINVAL;
			}
			staged = words[++i];
		} else if (size_shape_ok(w) && !ret->size) {
			ret->size = w;
		} else if (size_shape_ok(w)) {
			snprintf(err, errlen, "more than one size given");
			return -EINVAL;
		} else if (w[0] == '-' && w[1] == '-') {
			snprintf(err, errlen,
				 "unsupported option '%.64s' (use --shrink, "
				 "--preallocation=MODE, --max-staged=SIZE)",
				 w);
			return -EINVAL;
		} else {
			ret->code = INSTAR_ERR_INVALID_NEW_SIZE;
			snprintf(err, errlen, "invalid size '%.64s'", w);
			return -EINVAL;
		}
		if (staged) {
			bool hex;

			if (ret->max_staged) {
				snprintf(err, errlen, "--max-staged given twice");
				return -EINVAL;
			}
			if (instar_strtosz(staged, &ret->max_staged, &hex) != INSTAR_SIZE_OK ||
			    ret->max_staged == 0) {
				ret->max_staged = 0;
				snprintf(err, errlen,
					 "invalid --max-staged '%.64s': expected a size above 0",
					 staged);
				return -EINVAL;
			}
		}
		if (mode) {
			if (ret->prealloc >= 0) {
				snprintf(err, errlen, "--preallocation given twice");
				return -EINVAL;
			}
			ret->prealloc = instar_prealloc_from_name(mode);
			if (ret->prealloc < 0) {
				snprintf(err, errlen, "invalid preallocation mode '%.64s'", mode);
				return -EINVAL;
			}
		}
	}
	if (!ret->size) {
		ret->code = INSTAR_ERR_INVALID_NEW_SIZE;
		snprintf(err, errlen, "no size given (e.g. +10G, 20G, --shrink -5G)");
		return -EINVAL;
	}
	return 0;
}
