/* guest/core/virtio_blk.h — guest core: polled driver of the virtio-mmio block
 * devices: 0 the image, 1.. its backing chain, read-only (virtio 1.x, one
 * split queue each, synchronous requests). */
#ifndef GUEST_VIRTIO_BLK_H
#define GUEST_VIRTIO_BLK_H

#include <stdint.h>

/* Resets and sets up the device at mmio_base. 0 or a negative errno
 * (-ENODEV: not a virtio 1.x block device, -EIO: feature negotiation or
 * queue setup refused). */
int guest_blk_init(uint64_t mmio_base);

/* 512-byte sectors; buf may be any (identity-mapped) address. 0 or -errno:
 * -EIO (device error or refused request), -EOPNOTSUPP, -ERANGE (beyond the
 * device), -ENODEV (not initialised or the device needs a reset). */
int guest_blk_read(uint64_t sector, void *buf, uint32_t nsect);
int guest_blk_write(uint64_t sector, const void *buf, uint32_t nsect);
int guest_blk_write_zeroes(uint64_t sector, uint64_t nsect);
int guest_blk_discard(uint64_t sector, uint64_t nsect);
int guest_blk_flush(void);
uint64_t guest_blk_capacity(void);

/* The boot info's device count (1..INSTAR_BLK_MAX_DEVS; anything else: 1). */
void guest_blk_set_count(uint32_t n);

/* Reads from device dev: 0 is the image, 1.. the read-only backing devices
 * (set up on first use at INSTAR_VIRTIO_MMIO_DEV_BASE(dev); they must offer
 * VIRTIO_BLK_F_RO). -ENODEV for a device that does not exist or could not
 * be set up; its capacity reads as 0. */
int guest_blk_dev_read(uint32_t dev, uint64_t sector, void *buf, uint32_t nsect);
uint64_t guest_blk_dev_capacity(uint32_t dev);

#endif
