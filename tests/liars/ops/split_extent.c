/* tests/liars/ops/split_extent.c — for a vmdk twoGbMaxExtentFlat descriptor
 * d.vmdk grown to 3 GiB: writes a descriptor of the right size whose second
 * extent is another file ("evil.vmdk", not the rule's d-f002.vmdk), and
 * claims success. The host must refuse it before the commit and take back
 * the extent files it prepared. */
#include "liar.h"

static const char text[] = "# Disk DescriptorFile\nversion=1\nCID=12345678\n"
			   "parentCID=ffffffff\ncreateType=\"twoGbMaxExtentFlat\"\n"
			   "# Extent description\n"
			   "RW 4194304 FLAT \"d-f001.vmdk\" 0\n"
			   "RW 2097152 FLAT \"evil.vmdk\" 0\n";

TESTOP_ENTRY;
int _start(const struct instar_calltab *ct)
{
	return liar_descriptor(ct, text, sizeof(text) - 1);
}
