/* guest/plan/inflate.h — raw DEFLATE (RFC 1951) decoder for compressed qcow2
 * clusters and vmdk grains. Freestanding: no allocation, no globals, the
 * caller provides the workspace; built into resize.bin and into the host
 * planner library. */
#ifndef INSTAR_PLAN_INFLATE_H
#define INSTAR_PLAN_INFLATE_H

#include "abi.h"

/* Bytes of caller-provided workspace plan_inflate needs (8-aligned). */
#define PLAN_INFLATE_WORK_SIZE 12288u

/* Decodes raw deflate (no zlib/gzip wrapper) from in[0..in_len) into
 * out[0..out_len). Returns 0 when out was completely filled, whether or not
 * the final block ended there; trailing input after that is ignored. Returns
 * INSTAR_ERR_PARSE_FAILED on malformed input, on running out of input before
 * out is full, or on a final block that ends before out is full.
 *
 * This is qemu's rule for compressed clusters (inflate(Z_FINISH) with
 * Z_STREAM_END or Z_BUF_ERROR and avail_out == 0), including zlib's edge:
 * once out is full, decoding goes on until the next byte would be written
 * (the next literal, match or stored byte) or the input ends, and a
 * malformation met on the way (a bad block header, code or distance) still
 * fails.
 *
 * The whole output is the window: distances up to 32768 back from the current
 * position, never before out[0]. Never reads in[] past in_len or writes out[]
 * past out_len. work must be PLAN_INFLATE_WORK_SIZE bytes, 8-aligned; its
 * contents need no initialisation and are garbage afterwards. */
int plan_inflate(const uint8_t *in, size_t in_len, uint8_t *out, size_t out_len, void *work);

/* Decodes one whole raw deflate stream, up to the end of its final block,
 * into out[0..out_len): 0, the bytes written in *ret_out (at most out_len)
 * and the input bytes the stream took in *ret_in (up to the byte holding
 * its last bit; what follows, e.g. a zlib trailer, is not read). Returns
 * INSTAR_ERR_PARSE_FAILED on malformed input, on input that ends before the
 * final block does, and on a stream that would write more than out_len
 * bytes (zlib's uncompress() into a buffer of out_len fails then too).
 * Same bounds and workspace as plan_inflate; vmdk's compressed grains. */
int plan_inflate_whole(const uint8_t *in, size_t in_len, uint8_t *out, size_t out_len, void *work,
		       size_t *ret_out, size_t *ret_in);

#endif
