/* guest/plan/vhdx.c — the vhdx resize planner (placeholder until it lands). */
#include "plan.h"

int plan_resize_vhdx(const struct plan_opts *o, const struct plan_io *io,
		   struct plan_scratch *s, struct plan *p,
		   struct instar_resize_result *ret)
{
	(void)o;
	(void)io;
	(void)s;
	(void)p;
	ret->error = INSTAR_ERR_UNSUPPORTED_FORMAT;
	return ret->error;
}
