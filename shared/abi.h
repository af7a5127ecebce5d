/* shared/abi.h — the host<->guest ABI of instar. Self-contained C99, built in
 * both worlds (hosted vmm/ and freestanding guest/). Bump INSTAR_ABI_VERSION on
 * every change to anything in this file. IN = host->guest, OUT = guest->host. */
#ifndef INSTAR_ABI_H
#define INSTAR_ABI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define INSTAR_ABI_VERSION 8u

/* ---- Guest-physical memory map (identity-mapped, long mode) ----
 * The whole guest (core and operation) runs at CPL3 from its first
 * instruction: on hosts that emulate CPL0 instruction by instruction (nested
 * KVM without VMX) only user mode runs natively. The host builds
 * the GDT, the TSS, the IDT (gates from the core header below) and the page
 * tables, and maps all of them, the exception stack and the core's exception
 * path supervisor-only, so that CPL3 can neither read nor change them. Only
 * the CPL0 exception handlers execute privileged instructions. */
#define INSTAR_GDT_ADDR 0x1000ull      /* host-built GDT, selectors below */
#define INSTAR_TSS_ADDR 0x1800ull      /* host-built 64-bit TSS (RSP0) */
#define INSTAR_BOOTINFO_ADDR 0x2000ull /* struct instar_boot_info, IN */
#define INSTAR_CONFIG_ADDR 0x3000ull   /* operation config, IN, <= 4 KiB */
#define INSTAR_CONFIG_MAX 0x1000u
#define INSTAR_CALLTAB_ADDR 0x5000ull	/* struct instar_calltab, built by core */
#define INSTAR_IDT_ADDR 0x6000ull	/* IDTR base; host-built gates */
#define INSTAR_IDT_VECTORS 32u		/* IDTR limit = 16 * vectors - 1 */
#define INSTAR_PAGETABLE_ADDR 0x8000ull /* host-built PML4/PDPT/PD/PT, 0x8000..0xBFFF */
#define INSTAR_PAGETABLE_SIZE 0x4000ull
#define INSTAR_EXC_STACK_ADDR 0x10000ull /* CPL0 exception stack; TSS.RSP0 = its end */
#define INSTAR_EXC_STACK_SIZE 0x10000ull
#define INSTAR_CORE_ADDR 0x100000ull /* core.bin load address and entry */
#define INSTAR_CORE_MAX 0x100000ull
#define INSTAR_OP_ADDR 0x200000ull /* operation binary (resize.bin) */
#define INSTAR_OP_MAX 0x200000ull
#define INSTAR_HEAP_ADDR 0x400000ull /* scratch for the operation up to ram end */
#define INSTAR_RAM_DEFAULT (32ull << 20)
#define INSTAR_VIRTIO_MMIO_BASE 0x10000000ull /* virtio-mmio block device 0 */
#define INSTAR_VIRTIO_MMIO_SIZE 0x1000ull
/* Block devices 1..INSTAR_BLK_MAX_DEVS-1: the image's backing chain, read
 * only (VIRTIO_BLK_F_RO; the host refuses a write and fails the run). Each
 * has its own page after the control page. */
#define INSTAR_BLK_MAX_DEVS 5u
#define INSTAR_VIRTIO_MMIO_DEV1_BASE (INSTAR_VIRTIO_MMIO_BASE + 0x2000ull)
#define INSTAR_VIRTIO_MMIO_DEV_BASE(i)                                                             \
	((i) == 0 ? INSTAR_VIRTIO_MMIO_BASE                                                        \
		  : INSTAR_VIRTIO_MMIO_DEV1_BASE + INSTAR_VIRTIO_MMIO_SIZE * ((uint64_t)(i)-1))
#define INSTAR_VIRTIO_IRQ 5u
#define INSTAR_COM1_PORT 0x3f8u /* frames from the CPL0 exception path only */

/* GDT selectors: the host starts the vCPU with CS = USER_CS, SS/DS/ES/FS/GS =
 * USER_DS (RPL 3); IDT gates use KERNEL_CS; TR = TSS. */
#define INSTAR_SEL_KERNEL_CS 0x08u
#define INSTAR_SEL_KERNEL_DS 0x10u
#define INSTAR_SEL_USER_DS 0x1bu /* GDT slot 3, RPL 3 */
#define INSTAR_SEL_USER_CS 0x23u /* GDT slot 4, RPL 3 */
#define INSTAR_SEL_TSS 0x30u	 /* GDT slots 6-7 (16-byte system descriptor) */
#define INSTAR_GDT_ENTRIES 8u

_Static_assert(INSTAR_GDT_ADDR + 8 * INSTAR_GDT_ENTRIES <= INSTAR_TSS_ADDR, "GDT overlaps TSS");
_Static_assert(INSTAR_TSS_ADDR + 0x68 <= INSTAR_BOOTINFO_ADDR, "TSS overlaps boot info");
_Static_assert(INSTAR_IDT_ADDR + 16 * INSTAR_IDT_VECTORS <= INSTAR_PAGETABLE_ADDR, "IDT overlap");
_Static_assert(INSTAR_PAGETABLE_ADDR + INSTAR_PAGETABLE_SIZE <= INSTAR_EXC_STACK_ADDR,
	       "page tables overlap the exception stack");
_Static_assert(INSTAR_EXC_STACK_ADDR + INSTAR_EXC_STACK_SIZE <= INSTAR_CORE_ADDR,
	       "exception stack overlaps core");
_Static_assert(INSTAR_SEL_TSS / 8 + 2 <= INSTAR_GDT_ENTRIES, "TSS descriptor outside the GDT");

/* ---- Core header: core.bin's layout, for the host's IDT and page tables ----
 * core.bin starts with a jump over it (the entry point stays the first byte);
 * the header follows at INSTAR_CORE_HEADER_ADDR. All bounds are 4 KiB-aligned
 * and ordered INSTAR_CORE_ADDR <= ktext <= kdata <= rodata <= data <=
 * INSTAR_CORE_ADDR + INSTAR_CORE_MAX:
 *   [INSTAR_CORE_ADDR, ktext)  code, user read-only
 *   [ktext, kdata)             the exception path's code, supervisor read-only
 *   [kdata, rodata)            the exception path's data, supervisor writable
 *   [rodata, data)             constants, user read-only
 *   [data, end)                data, bss and stack, user writable
 * exc_stubs[v] is the CPL0 entry of vector v, inside [ktext, kdata). */
#define INSTAR_CORE_HEADER_ADDR (INSTAR_CORE_ADDR + 8)
#define INSTAR_CORE_MAGIC 0x45524f43u /* "CORE" */
struct instar_core_header {
	uint32_t magic; /* INSTAR_CORE_MAGIC */
	uint32_t size;	/* sizeof(struct instar_core_header) */
	uint64_t ktext;
	uint64_t kdata;
	uint64_t rodata;
	uint64_t data;
	uint64_t exc_stubs[INSTAR_IDT_VECTORS];
};

/* ---- Control MMIO page: the guest's normal-path channel to the host ----
 * (port I/O and hlt fault at CPL3). Registers, little-endian, write-only;
 * reads and any other offset or width stop the run as a guest fault. */
#define INSTAR_CTRL_MMIO_BASE (INSTAR_VIRTIO_MMIO_BASE + 0x1000ull)
#define INSTAR_CTRL_MMIO_SIZE 0x1000ull
/* FRAME doorbell, OUT: ONE 8-byte write of the guest-physical address of a
 * complete frame in RAM: struct instar_frame_hdr immediately followed by
 * hdr.len (<= INSTAR_FRAME_MAX_PAYLOAD) payload bytes. The length comes from
 * the header; the host checks the header, then the payload range, once each,
 * and decodes it as if it had arrived on COM1. The frame may be reused as
 * soon as the write returns. */
#define INSTAR_CTRL_FRAME 0x000u
/* EXIT, OUT: a write of any width (value ignored) ends the run, as hlt did. */
#define INSTAR_CTRL_EXIT 0x008u

/* ---- Boot info (host writes at INSTAR_BOOTINFO_ADDR before the first run) ---- */
#define INSTAR_BOOT_MAGIC 0x544f4f42u /* "BOOT" */
#define INSTAR_BOOT_DEBUG (1u << 0)
struct instar_boot_info {
	uint32_t magic;	      /* IN: INSTAR_BOOT_MAGIC */
	uint32_t abi_version; /* IN: INSTAR_ABI_VERSION */
	uint64_t ram_size;    /* IN: bytes of guest RAM from 0 */
	uint64_t op_addr;     /* IN: where the operation binary was loaded */
	uint64_t op_size;     /* IN: its size in bytes */
	uint64_t config_addr; /* IN: INSTAR_CONFIG_ADDR */
	uint32_t config_len;  /* IN: bytes of config */
	uint32_t flags;	      /* IN: INSTAR_BOOT_* */
	uint64_t mmio_base;   /* IN: virtio-mmio device base */
	uint64_t heap_start;  /* IN: first free byte for the operation */
	uint64_t heap_end;    /* IN: end (exclusive) of free memory */
	uint32_t blk_devices; /* IN: block devices, 1..INSTAR_BLK_MAX_DEVS (device 0
				 at mmio_base, device i at INSTAR_VIRTIO_MMIO_DEV_BASE(i)) */
	uint32_t reserved;    /* IN: 0 */
};
_Static_assert(sizeof(struct instar_boot_info) == 80, "boot info layout");

/* ---- Call table: core offers it to the operation binary. Append only. ---- */
#define INSTAR_CALLTAB_MAGIC 0x4c4c4143u /* "CALL" */
#define INSTAR_CALLTAB_VERSION 2u
struct instar_calltab {
	uint32_t magic;	  /* INSTAR_CALLTAB_MAGIC */
	uint32_t version; /* INSTAR_CALLTAB_VERSION */
	uint32_t size;	  /* sizeof(struct instar_calltab) as built by core */
	uint32_t reserved;
	/* Block device 0, 512-byte sectors. Return 0 or a negative errno. */
	int (*read_sectors)(uint64_t sector, void *buf, uint32_t nsect);
	int (*write_sectors)(uint64_t sector, const void *buf, uint32_t nsect);
	int (*write_zeroes)(uint64_t sector, uint64_t nsect);
	int (*discard)(uint64_t sector, uint64_t nsect);
	int (*flush)(void);
	uint64_t (*capacity_sectors)(void);
	/* The operation's config blob (INSTAR_CONFIG_ADDR). */
	const void *(*get_config)(uint32_t *ret_len);
	/* Sends a framed result (INSTAR_FRAME_RESULT) through the doorbell. */
	int (*send_result)(const void *buf, uint32_t len);
	/* Log text: a LOG frame, shown by the host only in debug mode. */
	void (*log)(const char *msg, uint32_t len);
	/* Heap for the operation: [start, end). */
	uint64_t heap_start;
	uint64_t heap_end;
	/* Version 2: read-only block devices 1..blk_devices-1 (the backing
	 * chain), set up on first use. -ENODEV for a device that does not
	 * exist; capacity 0 then. Device 0 goes through the calls above. */
	int (*read_dev_sectors)(uint32_t dev, uint64_t sector, void *buf, uint32_t nsect);
	uint64_t (*dev_capacity_sectors)(uint32_t dev);
};
_Static_assert(sizeof(struct instar_calltab) == 120, "call table layout");

/* Entry of an operation binary: first byte of the image at INSTAR_OP_ADDR,
 * called at CPL3. Returns 0 after having sent its result; core writes the
 * EXIT register afterwards either way. */
typedef int (*instar_op_entry_fn)(const struct instar_calltab *ct);

/* ---- Frames (doorbell or COM1): header + payload, little-endian ---- */
#define INSTAR_FRAME_MAGIC 0x4d415246u /* "FRAM" */
#define INSTAR_FRAME_MAX_PAYLOAD 4096u
enum instar_frame_type {
	INSTAR_FRAME_RESULT = 1,    /* payload: struct instar_resize_result */
	INSTAR_FRAME_LOG = 2,	    /* payload: text */
	INSTAR_FRAME_EXCEPTION = 3, /* payload: struct instar_exception */
	INSTAR_FRAME_PANIC = 4,	    /* payload: text; core gave up */
};
struct instar_frame_hdr {
	uint32_t magic;	   /* OUT: INSTAR_FRAME_MAGIC */
	uint16_t type;	   /* OUT: enum instar_frame_type */
	uint16_t reserved; /* OUT: 0 */
	uint32_t len;	   /* OUT: payload bytes, <= INSTAR_FRAME_MAX_PAYLOAD */
	uint32_t crc32;	   /* OUT: CRC-32 (IEEE, zlib's) of the payload */
};
_Static_assert(sizeof(struct instar_frame_hdr) == 16, "frame header layout");
_Static_assert(offsetof(struct instar_frame_hdr, len) == 8, "frame header layout");

struct instar_exception {
	uint64_t vector;     /* OUT */
	uint64_t error_code; /* OUT: 0 for vectors without one */
	uint64_t rip;	     /* OUT: faulting instruction */
	uint64_t cr2;	     /* OUT: page-fault address */
};
_Static_assert(sizeof(struct instar_exception) == 32, "exception layout");

/* ---- Formats, preallocation, actions ---- */
enum instar_format {
	INSTAR_FMT_UNKNOWN = 0,
	INSTAR_FMT_RAW = 1,
	INSTAR_FMT_QCOW2 = 2,
	INSTAR_FMT_VMDK = 3,
	INSTAR_FMT_VHD = 4, /* qemu's name: vpc */
	INSTAR_FMT_VHDX = 5,
	INSTAR_FMT_QED = 6,
	INSTAR_FMT_LUKS = 7, /* LUKS1 container (qemu's "luks") */
	INSTAR_FMT_VDI = 8,  /* VirtualBox */
	INSTAR_FMT_COUNT
};

enum instar_prealloc {
	INSTAR_PREALLOC_OFF = 0,
	INSTAR_PREALLOC_METADATA = 1,
	INSTAR_PREALLOC_FALLOC = 2,
	INSTAR_PREALLOC_FULL = 3,
};

enum instar_action {
	INSTAR_ACTION_NOOP = 0, /* same size: still "Image resized." */
	INSTAR_ACTION_GROW = 1,
	INSTAR_ACTION_SHRINK = 2,
};

/* Error vocabulary. Stable: the names (instar_err_name) appear in JSON. */
enum instar_err {
	INSTAR_OK = 0,
	INSTAR_ERR_INVALID_OPTION = 1,
	INSTAR_ERR_INVALID_NEW_SIZE = 2,
	INSTAR_ERR_SHRINK_WITHOUT_FLAG = 3,
	INSTAR_ERR_SHRINK_BELOW_ALLOCATED = 4,
	INSTAR_ERR_UNSUPPORTED_FORMAT = 5,
	INSTAR_ERR_UNSUPPORTED_SUBFORMAT = 6,
	INSTAR_ERR_UNSUPPORTED_SHRINK = 7,
	INSTAR_ERR_PREALLOCATION_UNSUPPORTED = 8,
	INSTAR_ERR_SCRATCH_TOO_SMALL = 9,
	INSTAR_ERR_READ_FAILED = 10,
	INSTAR_ERR_WRITE_FAILED = 11,
	INSTAR_ERR_PARSE_FAILED = 12,
	INSTAR_ERR_HEADER_MISMATCH = 13,
	INSTAR_ERR_REQUIRES_CHECK = 14,	     /* dirty qcow2, vhdx log to replay */
	INSTAR_ERR_UNSUPPORTED_FEATURE = 15, /* e.g. v2 qcow2 with snapshots */
	INSTAR_ERR_TOO_LARGE = 16,	     /* EFBIG: table or file limit */
	INSTAR_ERR_CORRUPT = 17,	     /* image marked or found corrupt */
	INSTAR_ERR_NO_SPACE = 18,
	INSTAR_ERR_TIMEOUT = 19,
	INSTAR_ERR_GUEST_FAULT = 20, /* exception, bad frame, no result */
	INSTAR_ERR_IO = 21,	     /* host I/O failure */
	INSTAR_ERR_LOCKED = 22,	     /* QEMU image lock held elsewhere */
	INSTAR_ERR_OPEN_FAILED = 23,
	INSTAR_ERR_OVERLAY_LIMIT = 24, /* staged writes exceeded the bound */
	INSTAR_ERR_PREALLOC_NOT_GROWING = 25,
	INSTAR_ERR_NOT_MULTIPLE_512 = 26,
	INSTAR_ERR_INTERNAL = 27,
	INSTAR_ERR_GUEST_MISBEHAVED = 28, /* guest claimed success; the staged view disagrees */
	INSTAR_ERR_COUNT
};

/* ---- resize operation: config IN, result OUT ---- */
#define INSTAR_RESIZE_MAGIC 0x5a534552u /* "RESZ" */
#define INSTAR_RESIZE_SHRINK_ALLOWED (1u << 0)
/* qcow2: the host found a backing file name in the header (its CRC-32 is
 * backing_name_crc) and opened the chain; the guest refuses a disagreement
 * (HEADER_MISMATCH). */
#define INSTAR_RESIZE_BACKING (1u << 1)
/* backing_len holds the backing file's length (qemu's bdrv_getlength). Without
 * it the guest treats the backing file as longer than the image. */
#define INSTAR_RESIZE_BACKING_LEN (1u << 2)
/* qcow2: the host opened the external data file named by the header
 * extension (CRC-32 in data_file_name_crc) and resizes it itself: to the new
 * virtual size before the commit of a grow, after the commit of a shrink.
 * vmdk: the same for the one FLAT/VMFS extent a descriptor file names. */
#define INSTAR_RESIZE_DATA_FILE (1u << 3)
#define INSTAR_BACKING_MAX_DEVS (INSTAR_BLK_MAX_DEVS - 1)
struct instar_resize_config {
	uint32_t magic;			    /* IN: INSTAR_RESIZE_MAGIC */
	uint32_t abi_version;		    /* IN */
	uint32_t format;		    /* IN: enum instar_format */
	uint32_t prealloc;		    /* IN: enum instar_prealloc */
	uint32_t flags;			    /* IN: INSTAR_RESIZE_* */
	uint32_t reserved;		    /* IN: 0 */
	uint64_t expected_old_virtual_size; /* IN: what the host probe saw */
	uint64_t new_virtual_size;	    /* IN: resolved absolute size */
	uint64_t file_size;		    /* IN: image file length in bytes */
	uint64_t backing_len;		    /* IN: with INSTAR_RESIZE_BACKING_LEN */
	uint32_t backing_name_crc;	    /* IN: with INSTAR_RESIZE_BACKING */
	uint32_t data_file_name_crc;	    /* IN: with INSTAR_RESIZE_DATA_FILE */
	/* The backing chain as read-only block devices: backing_fmt[i] and
	 * backing_dev_len[i] (the file's length in bytes) describe device i+1,
	 * the file i+1 links down the chain (0: the image's own backing file).
	 * backing_devs = 0: none (no backing file, or the first one in a format
	 * the guest does not read); the chain stops at the first file of
	 * another format or at INSTAR_BACKING_MAX_DEVS. */
	uint32_t backing_devs;				   /* IN */
	uint32_t reserved2;				   /* IN: 0 */
	uint32_t backing_fmt[INSTAR_BACKING_MAX_DEVS];	   /* IN: INSTAR_FMT_RAW or _QCOW2 */
	uint64_t backing_dev_len[INSTAR_BACKING_MAX_DEVS]; /* IN: bytes */
};
_Static_assert(sizeof(struct instar_resize_config) == 120, "config layout");

#define INSTAR_DETAIL_MAX 128
/* The failure is the image's open: the format driver's parse of its header
 * (and what qemu 7.2's driver checks on open), before any resize decision.
 * qemu-img prints such a detail as "Could not open 'NAME': DETAIL". Only
 * with an error. */
#define INSTAR_RESULT_OPEN (1u << 0)
/* With INSTAR_RESULT_OPEN: the driver failed without a message of its own
 * and the detail is the errno's text ("Invalid argument"), which qemu's
 * block layer prints as "Could not open 'FILE': DETAIL", FILE the image
 * file's name (also under --image-opts); qemu-img then prints
 * "Could not open 'NAME': Could not open 'FILE': DETAIL". */
#define INSTAR_RESULT_OPEN_ERRNO (1u << 1)
/* With INSTAR_RESULT_OPEN_ERRNO: the driver printed a line of its own first
 * (qemu's error_report) and failed with EINVAL: the detail is that line,
 * and qemu-img's last line is "Could not open 'NAME': Could not open
 * 'FILE': Invalid argument". */
#define INSTAR_RESULT_OPEN_PRELINE (1u << 2)
/* The detail's NUL is followed by a second NUL-terminated text inside
 * detail[]: qemu's hint (error_append_hint), which qemu-img prints on a
 * line of its own without its name. (A newline in the detail itself is
 * escaped like any control character: text from an image cannot make a
 * line of its own.) */
#define INSTAR_RESULT_HINT (1u << 3)
#define INSTAR_RESULT_KNOWN                                                                        \
	(INSTAR_RESULT_OPEN | INSTAR_RESULT_OPEN_ERRNO | INSTAR_RESULT_OPEN_PRELINE |              \
	 INSTAR_RESULT_HINT)
struct instar_resize_result {
	uint32_t error;			/* OUT: enum instar_err */
	uint32_t action;		/* OUT: enum instar_action */
	uint64_t old_virtual_size;	/* OUT: from the header the guest read */
	uint64_t new_virtual_size;	/* OUT */
	uint64_t file_size_before;	/* OUT */
	uint64_t file_size_after;	/* OUT: the host sets this length */
	uint32_t flags;			/* OUT: INSTAR_RESULT_* */
	uint32_t reserved;		/* OUT: 0 */
	char detail[INSTAR_DETAIL_MAX]; /* OUT: NUL-terminated message detail */
};
_Static_assert(sizeof(struct instar_resize_result) == 176, "result layout");

#endif
