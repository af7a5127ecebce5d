/* tests/liars/ops/split_sparse.c — for a vmdk twoGbMaxExtentSparse
 * descriptor d.vmdk (3 GiB: d-s001.vmdk of 2 GiB, d-s002.vmdk of 1 GiB)
 * shrunk to 1 GiB: the host's rule makes a copy of d-s001.vmdk cut to
 * 1 GiB under the next number, d-s003.vmdk. This liar writes a descriptor
 * of the right size naming d-s002.vmdk instead (an existing extent whose
 * header even holds 1 GiB) and claims success. The host must refuse it
 * before the commit and remove the copy it made. */
#include "liar.h"

static const char text[] = "# Disk DescriptorFile\nversion=1\nCID=12345678\n"
			   "parentCID=ffffffff\ncreateType=\"twoGbMaxExtentSparse\"\n"
			   "# Extent description\n"
			   "RW 2097152 SPARSE \"d-s002.vmdk\"\n";

TESTOP_ENTRY;
int _start(const struct instar_calltab *ct)
{
	return liar_descriptor(ct, text, sizeof(text) - 1);
}
