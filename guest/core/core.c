/* guest/core/core.c — guest core: checks the boot info, brings up the IDT and
 * the block driver, publishes the call table and runs the operation. All of
 * it at CPL3: no privileged instruction outside the exception stubs. */
#include "abi.h"
#include "frame.h"
#include "idt.h"
#include "lib.h"
#include "virtio_blk.h"

void guest_main(const struct instar_boot_info *bi);

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

	guest_idt_init();
	if (bi->magic != INSTAR_BOOT_MAGIC || bi->abi_version != INSTAR_ABI_VERSION) {
		guest_panic("boot info magic or ABI version mismatch");
		return;
	}
	guest_boot = bi;
	if (bi->flags & INSTAR_BOOT_DEBUG)
		guest_log("core: up", 8);
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
	};
	entry = (instar_op_entry_fn)(uintptr_t)bi->op_addr;
	entry(ct);
}
