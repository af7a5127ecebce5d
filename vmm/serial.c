/* vmm/serial.c — COM1 frame decoder: header, bounded payload, CRC-32. Every
 * field comes from the guest, so each is checked before the next byte is
 * accepted and the first bad byte poisons the stream for good. */
#include <errno.h>
#include <string.h>

#include "crc32.h"
#include "byteorder.h"
#include "serial.h"

void vmm_frame_decoder_init(struct vmm_frame_decoder *d)
{
	d->hdr_got = 0;
	d->payload_len = 0;
	d->payload_got = 0;
	d->crc = 0;
	d->error = 0;
	d->what = NULL;
}

static int vmm_frame_reject(struct vmm_frame_decoder *d, const char *what)
{
	d->error = -EBADMSG;
	d->what = what;
	return d->error;
}

static int vmm_frame_check_hdr(struct vmm_frame_decoder *d)
{
	uint16_t type = get_le16(d->hdr + 4);

	if (get_le32(d->hdr) != INSTAR_FRAME_MAGIC)
		return vmm_frame_reject(d, "bad frame magic");
	if (type < INSTAR_FRAME_RESULT || type > INSTAR_FRAME_PANIC)
		return vmm_frame_reject(d, "unknown frame type");
	if (get_le16(d->hdr + 6) != 0)
		return vmm_frame_reject(d, "frame reserved field not zero");
	if (get_le32(d->hdr + 8) > INSTAR_FRAME_MAX_PAYLOAD)
		return vmm_frame_reject(d, "frame payload too long");
	d->payload_len = get_le32(d->hdr + 8);
	d->crc = get_le32(d->hdr + 12);
	d->payload_got = 0;
	return 0;
}

static int vmm_frame_finish(struct vmm_frame_decoder *d, vmm_frame_cb cb, void *ctx)
{
	struct vmm_frame f = {
	    .type = get_le16(d->hdr + 4),
	    .len = d->payload_len,
	    .payload = d->payload,
	};
	int r;

	if (instar_crc32(0, d->payload, d->payload_len) != d->crc)
		return vmm_frame_reject(d, "frame CRC mismatch");
	d->hdr_got = 0;
	d->payload_got = 0;
	d->payload_len = 0;
	r = cb(ctx, &f);
	if (r < 0) {
		d->error = r;
		d->what = "frame rejected by its consumer";
	}
	return r < 0 ? r : 0;
}

int vmm_frame_feed(struct vmm_frame_decoder *d, const void *buf, size_t len, vmm_frame_cb cb,
		   void *ctx)
{
	const uint8_t *b = buf;
	int r;

	if (d->error)
		return d->error;
	while (len) {
		size_t n;

		if (d->hdr_got < sizeof(d->hdr)) {
			n = sizeof(d->hdr) - d->hdr_got;
			if (n > len)
				n = len;
			memcpy(d->hdr + d->hdr_got, b, n);
			d->hdr_got += (uint32_t)n;
			b += n;
			len -= n;
			if (d->hdr_got < sizeof(d->hdr))
				break;
			r = vmm_frame_check_hdr(d);
			if (r)
				return r;
		} else {
			n = d->payload_len - d->payload_got;
			if (n > len)
				n = len;
			memcpy(d->payload + d->payload_got, b, n);
			d->payload_got += (uint32_t)n;
			b += n;
			len -= n;
		}
		if (d->hdr_got == sizeof(d->hdr) && d->payload_got == d->payload_len) {
			r = vmm_frame_finish(d, cb, ctx);
			if (r)
				return r;
		}
	}
	return 0;
}

int vmm_frame_decoder_idle(const struct vmm_frame_decoder *d)
{
	return d->hdr_got == 0 && d->error == 0;
}
