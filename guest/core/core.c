/* guest/core/core.c — guest core: the core header (for the host's IDT and
 * page tables), then checks the boot info, brings up the block driver,
 * publishes the call table and runs the operation. All of it at CPL3: no
 * privileged instruction outside the exception path (idt.c, entry.S). */
#include "abi.h"
#include "frame.h"
#include "lib.h"
#include "virtio_blk.h"

void guest_main(const struct instar_boot_info *bi);

/* Bounds from guest.ld; the stubs from entry.S. */
extern const char __ktext_start[], __kdata_start[], __rodata_start[], __data_start[];
#define GUEST_STUB(n) extern const char guest_exc_##n[];
/* Left as written: clang-format reflows this list differently each pass. */
// clang-format off
#define GUEST_STUBS(X)                                                   \
	X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)     \
	X(12) X(13) X(14) X(15) X(16) X(17) X(18) X(19) X(20) X(21) X(22) \
	X(23) X(24) X(25) X(26) X(27) X(28) X(29) X(30) X(31)
// clang-format on
GUEST_STUBS(GUEST_STUB)
#define GUEST_ADDR(sym) ((uint64_t)(uintptr_t)(sym))
#define GUEST_STUB_ADDR(n) GUEST_ADDR(guest_exc_##n),

/* Right behind the entry jump (guest.ld keeps .text.header there): what the
 * host needs to build the IDT and to map each part of core with its own
 * rights. */
__attribute__((section(".text.header"), used, aligned(8)))
const struct instar_core_header guest_core_header = {
    .magic = INSTAR_CORE_MAGIC,
    .size = sizeof(struct instar_core_header),
    .ktext = GUEST_ADDR(__ktext_start),
    .kdata = GUEST_ADDR(__kdata_start),
    .rodata = GUEST_ADDR(__rodata_start),
    .data = GUEST_ADDR(__data_start),
    .exc_stubs = {GUEST_STUBS(GUEST_STUB_ADDR)},
};
_Static_assert(INSTAR_IDT_VECTORS == 32, "one stub per vector");

static const struct instar_boot_info *guest_boot;

static const void *guest_get_config(uint32_t *ret_len)
{
	*ret_len = guest_boot->config_len;
	return (const void *)(uintptr_t)guest_boot->config_addr;
}

static int guest_send_result(const void *buf, uint32_t len)
{
	return guest_frame_send(INSTAR_FRAME_RESULT, buf, len);
}

/* LOG frames cost exits, so they are only sent when the host listens. */
static void guest_log(const char *msg, uint32_t len)
{
	if (!(guest_boot->flags & INSTAR_BOOT_DEBUG))
		return;
	if (len > INSTAR_FRAME_MAX_PAYLOAD)
		len = INSTAR_FRAME_MAX_PAYLOAD;
	guest_frame_send(INSTAR_FRAME_LOG, msg, len);
}

static void guest_panic(const char *msg)
{
	guest_frame_send(INSTAR_FRAME_PANIC, msg, (uint32_t)strlen(msg));
}

void guest_main(const struct instar_boot_info *bi)
{
	struct instar_calltab *ct = (struct instar_calltab *)(uintptr_t)INSTAR_CALLTAB_ADDR;
	instar_op_entry_fn entry;

	if (bi->magic != INSTAR_BOOT_MAGIC || bi->abi_version != INSTAR_ABI_VERSION) {
		guest_panic("boot info magic or ABI version mismatch");
		return;
	}
	guest_boot = bi;
	if (bi->flags & INSTAR_BOOT_DEBUG)
		guest_log("core: up", 8);
	guest_blk_set_count(bi->blk_devices);
	if (guest_blk_init(bi->mmio_base) != 0) {
		guest_panic("virtio-blk initialisation failed");
		return;
	}

	*ct = (struct instar_calltab){
	    .magic = INSTAR_CALLTAB_MAGIC,
	    .version = INSTAR_CALLTAB_VERSION,
	    .size = sizeof(*ct),
	    .read_sectors = guest_blk_read,
	    .write_sectors = guest_blk_write,
	    .write_zeroes = guest_blk_write_zeroes,
	    .discard = guest_blk_discard,
	    .flush = guest_blk_flush,
	    .capacity_sectors = guest_blk_capacity,
	    .get_config = guest_get_config,
	    .send_result = guest_send_result,
	    .log = guest_log,
	    .heap_start = bi->heap_start,
	    .heap_end = bi->heap_end,
	    .read_dev_sectors = guest_blk_dev_read,
	    .dev_capacity_sectors = guest_blk_dev_capacity,
	};
	entry = (instar_op_entry_fn)(uintptr_t)bi->op_addr;
	entry(ct);
}
