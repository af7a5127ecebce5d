/* guest/plan/unzstd.h — a Zstandard frame decoder (RFC 8878) for qcow2
 * compressed clusters (compression_type=zstd). Freestanding, allocation-free:
 * built into resize.bin and into the host planner library. */
#ifndef INSTAR_UNZSTD_H
#define INSTAR_UNZSTD_H

#include "abi.h"

/* Bytes of caller-provided workspace: the literals buffer (128 KiB), the
 * Huffman and FSE decoding tables and the state of the frame being decoded. */
#define PLAN_UNZSTD_WORK_SIZE (144u * 1024u)

/* Decodes zstd frames from in[0..in_len) into out[0..out_len), frame after
 * frame, like qemu's qcow2_zstd_decompress loop. Succeeds (returns 0) exactly
 * when out is completely filled; input left over after that is ignored.
 * Skippable frames are skipped. Returns INSTAR_ERR_PARSE_FAILED on malformed
 * input, a dictionary ID != 0, a reserved bit set, a Window_Size over
 * 128 MiB (libzstd's default limit, which qemu decodes with), content that would
 * overflow out, running out of input before out is full, or a content
 * checksum (XXH64, low 32 bits) that does not match when the frame has one.
 * Never reads in[] past in_len, never writes out[] past out_len, never copies
 * a match from before the current frame's first output byte. work must be
 * PLAN_UNZSTD_WORK_SIZE bytes, 8-aligned (INSTAR_ERR_INTERNAL otherwise).
 * out's contents are unspecified after a failure. */
int plan_unzstd(const uint8_t *in, size_t in_len, uint8_t *out, size_t out_len, void *work);

#endif
