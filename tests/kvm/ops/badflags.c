/* tests/kvm/ops/badflags.c — a failed result whose flags hold a bit the ABI
 * does not define (beside INSTAR_RESULT_OPEN): the host must refuse it as out
 * of range, not print it as an open failure. */
#include "testop.h"

TESTOP_ENTRY;
int _start(const struct instar_calltab *ct)
{
	struct instar_resize_result res;

	memset(&res, 0, sizeof(res));
	res.error = INSTAR_ERR_PARSE_FAILED;
	res.flags = INSTAR_RESULT_OPEN | (1u << 7);
	res.file_size_before = testop_cfg(ct)->file_size;
	res.file_size_after = res.file_size_before;
	memcpy(res.detail, "lie", 4);
	return ct->send_result(&res, sizeof(res));
}
