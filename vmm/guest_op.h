/* vmm/guest_op.h — run any operation binary under the resize contract of
 * guest_run.h; vmm_guest_resize() runs <guest dir>/resize.bin through it and
 * the kvm tests run their own small fault-injecting operations. */
#ifndef VMM_GUEST_OP_H
#define VMM_GUEST_OP_H

#include "guest_run.h"

/* As vmm_guest_resize(), with op_path naming the operation binary; NULL means
 * "resize.bin" in the guest directory. */
int vmm_guest_run_op(int fd, const struct instar_resize_config *cfg, const struct vmm_guest_opts *o,
		     const char *op_path, struct instar_resize_result *ret);

#endif
