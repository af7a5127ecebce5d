/* shared/virtio_mmio.h — virtio 1.x constants for the virtio-mmio (version 2)
 * block device: one definition for the host device model (vmm/virtio_blk.c),
 * the guest driver (guest/core/virtio_blk.c) and their tests. Values from the
 * virtio 1.x specification (§4.2.2 MMIO registers, §2.1 status, §5.2 block). */
#ifndef INSTAR_VIRTIO_MMIO_H
#define INSTAR_VIRTIO_MMIO_H

/* Register offsets */
#define VIRTIO_R_MAGIC 0x000
#define VIRTIO_R_VERSION 0x004
#define VIRTIO_R_DEVICE_ID 0x008
#define VIRTIO_R_VENDOR_ID 0x00c
#define VIRTIO_R_DEVICE_FEATURES 0x010
#define VIRTIO_R_DEVICE_FEATURES_SEL 0x014
#define VIRTIO_R_DRIVER_FEATURES 0x020
#define VIRTIO_R_DRIVER_FEATURES_SEL 0x024
#define VIRTIO_R_QUEUE_SEL 0x030
#define VIRTIO_R_QUEUE_NUM_MAX 0x034
#define VIRTIO_R_QUEUE_NUM 0x038
#define VIRTIO_R_QUEUE_READY 0x044
#define VIRTIO_R_QUEUE_NOTIFY 0x050
#define VIRTIO_R_INTERRUPT_STATUS 0x060
#define VIRTIO_R_INTERRUPT_ACK 0x064
#define VIRTIO_R_STATUS 0x070
#define VIRTIO_R_QUEUE_DESC_LOW 0x080
#define VIRTIO_R_QUEUE_DESC_HIGH 0x084
#define VIRTIO_R_QUEUE_DRIVER_LOW 0x090
#define VIRTIO_R_QUEUE_DRIVER_HIGH 0x094
#define VIRTIO_R_QUEUE_DEVICE_LOW 0x0a0
#define VIRTIO_R_QUEUE_DEVICE_HIGH 0x0a4
#define VIRTIO_R_CONFIG_GENERATION 0x0fc
#define VIRTIO_R_CONFIG 0x100

#define VIRTIO_MMIO_MAGIC 0x74726976u /* "virt" */
#define VIRTIO_MMIO_VERSION 2u
#define VIRTIO_DEVICE_ID_BLOCK 2u

/* Device status bits */
#define VIRTIO_ST_ACKNOWLEDGE 1u
#define VIRTIO_ST_DRIVER 2u
#define VIRTIO_ST_DRIVER_OK 4u
#define VIRTIO_ST_FEATURES_OK 8u
#define VIRTIO_ST_NEEDS_RESET 64u
#define VIRTIO_ST_FAILED 128u

/* InterruptStatus bits */
#define VIRTIO_INT_USED_BUFFER 1u
#define VIRTIO_INT_CONFIG_CHANGE 2u

/* Feature bits */
#define VIRTIO_F_BLK_SEG_MAX (1ull << 2)
#define VIRTIO_F_BLK_RO (1ull << 5) /* device is read-only */
#define VIRTIO_F_BLK_FLUSH (1ull << 9)
#define VIRTIO_F_BLK_DISCARD (1ull << 13)
#define VIRTIO_F_BLK_WRITE_ZEROES (1ull << 14)
#define VIRTIO_F_VERSION_1 (1ull << 32)

/* Block config space offsets (from VIRTIO_R_CONFIG) */
#define VIRTIO_C_CAPACITY 0
#define VIRTIO_C_MAX_DISCARD_SECTORS 36
#define VIRTIO_C_MAX_DISCARD_SEG 40
#define VIRTIO_C_MAX_WZ_SECTORS 48
#define VIRTIO_C_MAX_WZ_SEG 52

/* Split virtqueue descriptors */
#define VIRTIO_DESC_SIZE 16u
#define VIRTIO_DESC_F_NEXT 1u
#define VIRTIO_DESC_F_WRITE 2u
#define VIRTIO_DESC_F_INDIRECT 4u

/* Block requests */
#define VIRTIO_T_IN 0u
#define VIRTIO_T_OUT 1u
#define VIRTIO_T_FLUSH 4u
#define VIRTIO_T_GET_ID 8u
#define VIRTIO_T_DISCARD 11u
#define VIRTIO_T_WRITE_ZEROES 13u
#define VIRTIO_S_OK 0u
#define VIRTIO_S_IOERR 1u
#define VIRTIO_S_UNSUPP 2u
#define VIRTIO_REQ_HDR_SIZE 16u
#define VIRTIO_SEG_SIZE 16u /* discard / write-zeroes segment */
#define VIRTIO_WZ_F_UNMAP 1u
#define VIRTIO_ID_BYTES 20u

/* instar's device: the most data bytes one read or write request may carry.
 * The guest splits longer transfers at this size; the host fails a longer
 * request with IOERR. */
#define INSTAR_BLK_MAX_REQ_BYTES (1u << 20)

#endif
