/* guest/core/virtio_blk.h — guest core: polled driver of the virtio-mmio block
 * device 0 (virtio 1.x, one split queue, synchronous requests). */
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

#endif
