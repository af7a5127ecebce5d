/* tests/fuzz/sparse_image.h — a compact encoding of a disk image for fuzz
 * inputs: most of an image is zeros, so an input lists only its non-zero
 * pieces. Layout (little-endian):
 *   u64 file_size
 *   records: u32 offset_in_512B_sectors, u16 length, length bytes
 * Bytes not covered by a record read as zero; a truncated record is ignored. */
#ifndef FUZZ_SPARSE_IMAGE_H
#define FUZZ_SPARSE_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#define SPARSE_MAX_RECORDS 4096

struct sparse_rec {
	uint64_t off;
	const uint8_t *data;
	uint32_t len;
};

struct sparse_image {
	uint64_t file_size;
	uint32_t nrec;
	struct sparse_rec rec[SPARSE_MAX_RECORDS];
};

/* Decodes data into img (records point into data). Returns 0 or -1. */
int sparse_image_decode(struct sparse_image *img, const uint8_t *data, size_t len);
/* plan_read_fn over a struct sparse_image; later records win. */
int sparse_image_read(void *ctx, uint64_t off, void *buf, uint32_t len);

#endif
