/* vmm/serial.h — COM1 frame decoder: a pure byte-stream parser (no I/O), so
 * it can be unit-tested and fuzzed on its own. */
#ifndef VMM_SERIAL_H
#define VMM_SERIAL_H

#include <stddef.h>
#include <stdint.h>

#include "abi.h"

struct vmm_frame {
	uint16_t type; /* enum instar_frame_type */
	uint32_t len;
	const uint8_t *payload; /* valid only during the callback */
};

/* Returns 0 to go on, or a negative errno to stop decoding (returned by
 * vmm_frame_feed as is). */
typedef int (*vmm_frame_cb)(void *ctx, const struct vmm_frame *f);

struct vmm_frame_decoder {
	uint8_t hdr[sizeof(struct instar_frame_hdr)];
	uint32_t hdr_got;
	uint32_t payload_len; /* from a validated header */
	uint32_t payload_got;
	uint32_t crc;
	int error;	  /* sticky: 0 or the first negative errno */
	const char *what; /* why the stream was rejected */
	uint8_t payload[INSTAR_FRAME_MAX_PAYLOAD];
};

void vmm_frame_decoder_init(struct vmm_frame_decoder *d);

/* Consumes len bytes, calling cb once per complete valid frame. Returns 0,
 * -EBADMSG on a malformed stream (bad magic, type, reserved, length or CRC;
 * d->what says which) or cb's error. Errors are sticky: later calls return
 * the same error without consuming anything. */
int vmm_frame_feed(struct vmm_frame_decoder *d, const void *buf, size_t len, vmm_frame_cb cb,
		   void *ctx);

/* True when no frame is partially received. */
int vmm_frame_decoder_idle(const struct vmm_frame_decoder *d);

#endif
