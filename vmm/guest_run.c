/* vmm/guest_run.c — guest launch and commit (placeholder until the KVM host
 * lands: every non-raw format reports UNSUPPORTED_FORMAT). */
#include <errno.h>
#include <string.h>

#include "guest_run.h"

int vmm_guest_resize(int fd, const struct instar_resize_config *cfg,
		     const struct vmm_guest_opts *o, struct instar_resize_result *ret)
{
	(void)fd;
	(void)cfg;
	(void)o;
	memset(ret, 0, sizeof(*ret));
	ret->error = INSTAR_ERR_UNSUPPORTED_FORMAT;
	return 0;
}
