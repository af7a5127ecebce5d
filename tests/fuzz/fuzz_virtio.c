/* tests/fuzz/fuzz_virtio.c — libFuzzer target for the virtio-blk request
 * parser (vmm/virtio_blk.c): the input is the whole guest memory (64 KiB)
 * plus the queue geometry; the device must answer or go to needs-reset,
 * never touch memory outside the guest. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "virtio_blk.h"

#define GUEST_MEM (64u * 1024)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void wr(struct vmm_blk *b, uint64_t off, uint32_t v)
{
	vmm_blk_mmio_write(b, off, &v, 4);
}

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t *mem;
	static int fd = -1;
	struct vmm_guestmem gm;
	struct vmm_blk_opts o;
	struct vmm_blk *b;

	if (size < 16)
		return 0;
	if (!mem) {
		/* An exact-size mapping: any stray access past it faults. */
		mem = mmap(NULL, GUEST_MEM, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
			   0);
		fd = memfd_create("fuzz-virtio", 0);
		if (mem == MAP_FAILED || fd < 0 || ftruncate(fd, 1 << 20) != 0)
			abort();
	}
	memset(mem, 0, GUEST_MEM);
	memcpy(mem, data + 16, size - 16 < GUEST_MEM ? size - 16 : GUEST_MEM);
	gm.host = mem;
	gm.size = GUEST_MEM;
	o = (struct vmm_blk_opts){
	    .fd = fd, .file_size = 1 << 20, .capacity_bytes = 2 << 20, .overlay_limit = 1 << 20};
	if (vmm_blk_create(&b, &gm, &o) != 0)
		abort();
	wr(b, 0x070, 1 | 2); /* ACKNOWLEDGE | DRIVER */
	wr(b, 0x024, 1);     /* DriverFeaturesSel = 1 */
	wr(b, 0x020, 1);     /* VIRTIO_F_VERSION_1 */
	wr(b, 0x024, 0);
	wr(b, 0x020, rd32(data)); /* low feature bits from the input */
	wr(b, 0x070, 1 | 2 | 8);  /* FEATURES_OK */
	wr(b, 0x030, 0);	  /* QueueSel */
	wr(b, 0x038, data[4] | (uint32_t)(data[5] & 1) << 8);
	wr(b, 0x080, rd32(data + 6) % GUEST_MEM); /* desc */
	wr(b, 0x084, 0);
	wr(b, 0x090, (uint32_t)(data[10] | data[11] << 8) % GUEST_MEM); /* avail */
	wr(b, 0x094, 0);
	wr(b, 0x0a0, (uint32_t)(data[12] | data[13] << 8) % GUEST_MEM); /* used */
	wr(b, 0x0a4, 0);
	wr(b, 0x044, 1);	     /* QueueReady */
	wr(b, 0x070, 1 | 2 | 8 | 4); /* DRIVER_OK */
	for (int i = 0; i < 1 + (data[14] & 3); i++)
		(void)vmm_blk_process_queue(b);
	vmm_blk_destroy(b);
	return 0;
}
