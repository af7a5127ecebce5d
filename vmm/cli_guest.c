/* vmm/cli_guest.c — the CLI's message for a failed guest result: qemu-img's
 * words where qemu has them, the guest's detail (escaped by cli_error, as
 * every line), "Could not open 'NAME': " before the detail of a failed open
 * of the image (INSTAR_RESULT_OPEN), and the block layer's "Could not open
 * 'FILE': " before an errno's text (INSTAR_RESULT_OPEN_ERRNO), after the
 * driver's own line (INSTAR_RESULT_OPEN_PRELINE). */
#include <stdint.h>
#include <string.h>

#include "abi_names.h"
#include "cli.h"
#include "cli_limits.h"

/* The guest's detail text, bounded and NUL-terminated; cli_error escapes it
 * (shared/escape.c) as it does every line it prints. */
void cli_guest_detail(const char *in, char *out, size_t outlen)
{
	size_t n = 0;

	while (n < INSTAR_DETAIL_MAX && n + 1 < outlen && in[n])
		n++;
	memcpy(out, in, n);
	out[n] = '\0';
}

/* qemu's hint behind the detail's NUL (INSTAR_RESULT_HINT), bounded; ""
 * when there is none. */
static void guest_hint(const struct instar_resize_result *gr, char *out, size_t outlen)
{
	size_t n = 0;

	out[0] = '\0';
	if (!(gr->flags & INSTAR_RESULT_HINT))
		return;
	while (n < INSTAR_DETAIL_MAX && gr->detail[n])
		n++;
	if (n + 1 < INSTAR_DETAIL_MAX)
		cli_guest_detail(gr->detail + n + 1, out,
				 outlen < INSTAR_DETAIL_MAX - n ? outlen : INSTAR_DETAIL_MAX - n);
}

/* "Could not open 'NAME': DETAIL", then qemu's hint on a line of its own
 * without the program name (escaped, as every line). */
static void report_open(struct cli_ctx *c, const struct instar_resize_result *gr,
			const char *display, const char *detail)
{
	char hint[INSTAR_DETAIL_MAX + 1];

	cli_error(c, gr->error, 0, "Could not open '%s': %s", display, detail);
	guest_hint(gr, hint, sizeof(hint));
	if (hint[0])
		cli_hint(c, "%s", hint);
}

void cli_guest_error(struct cli_ctx *c, const char *f, const char *display, uint32_t prealloc,
		     uint64_t max_staged, const struct instar_resize_result *gr)
{
	char detail[INSTAR_DETAIL_MAX + 1];

	cli_guest_detail(gr->detail, detail, sizeof(detail));
	/* the driver's open failed: qemu-img's "Could not open 'NAME': DETAIL",
	 * NAME as the command line gave it (--image-opts: the option string) */
	if ((gr->flags & INSTAR_RESULT_OPEN) && detail[0]) {
		bool pre = (gr->flags & INSTAR_RESULT_OPEN_PRELINE) != 0;

		if (pre) /* the driver's own line; its errno is EINVAL */
			cli_error(c, gr->error, 0, "%s", detail);
		if (pre || (gr->flags & INSTAR_RESULT_OPEN_ERRNO))
			cli_error(c, gr->error, 0, "Could not open '%s': Could not open '%s': %s",
				  display, f, pre ? "Invalid argument" : detail);
		else
			report_open(c, gr, display, detail);
		return;
	}
	switch (gr->error) {
	case INSTAR_ERR_UNSUPPORTED_FORMAT:
		cli_error(c, gr->error, 0, "Image format driver does not support resize");
		return;
	case INSTAR_ERR_HEADER_MISMATCH:
		cli_error(c, gr->error, 0,
			  "Could not resize '%s': image changed while we looked; retry%s%s", f,
			  detail[0] ? ": " : "", detail);
		return;
	case INSTAR_ERR_PREALLOCATION_UNSUPPORTED:
		if (!detail[0]) {
			cli_error(c, gr->error, 0, "Unsupported preallocation mode '%s'",
				  instar_prealloc_name(prealloc));
			return;
		}
		break;
	case INSTAR_ERR_NOT_MULTIPLE_512:
		cli_error(c, gr->error, 0, "The new size must be a multiple of 512");
		return;
	case INSTAR_ERR_TIMEOUT:
		cli_error(c, gr->error, 0, "Could not resize '%s': timed out%s%s", f,
			  detail[0] ? ": " : "", detail);
		return;
	case INSTAR_ERR_GUEST_FAULT:
		cli_error(c, gr->error, 0, "Could not resize '%s': the resize guest failed%s%s", f,
			  detail[0] ? ": " : "", detail);
		return;
	case INSTAR_ERR_OVERLAY_LIMIT:
		/* The image is untouched; a larger --max-staged lets it through. */
		cli_error(
		    c, gr->error, 0,
		    "Could not resize '%s': the resize would stage more than --max-staged "
		    "allows (%llu bytes)",
		    f, (unsigned long long)(max_staged ? max_staged : INSTAR_MAX_STAGED_DEFAULT));
		return;
	default:
		break;
	}
	if (detail[0]) {
		cli_error(c, gr->error, 0, "%s", detail);
		return;
	}
	switch (gr->error) {
	case INSTAR_ERR_UNSUPPORTED_SUBFORMAT:
	case INSTAR_ERR_UNSUPPORTED_SHRINK:
		cli_error(c, gr->error, 0, "Image format driver does not support resize");
		break;
	case INSTAR_ERR_SHRINK_BELOW_ALLOCATED:
		cli_error(c, gr->error, 0, "Could not shrink '%s' below its allocated data", f);
		break;
	case INSTAR_ERR_REQUIRES_CHECK:
		cli_error(c, gr->error, 0,
			  "Could not open '%s': image needs repair; run 'qemu-img check -r all'",
			  f);
		break;
	case INSTAR_ERR_CORRUPT:
		cli_error(c, gr->error, 0,
			  "Could not open '%s': Image is corrupt; cannot be opened read/write", f);
		break;
	case INSTAR_ERR_TOO_LARGE:
		cli_error(c, gr->error, 0, "Could not resize image: File too large");
		break;
	case INSTAR_ERR_NO_SPACE:
		cli_error(c, gr->error, 0, "Could not resize image: No space left on device");
		break;
	case INSTAR_ERR_PARSE_FAILED:
		cli_error(c, gr->error, 0, "Could not open '%s': invalid image header", f);
		break;
	case INSTAR_ERR_UNSUPPORTED_FEATURE:
		cli_error(c, gr->error, 0,
			  "Could not resize '%s': image uses an unsupported feature", f);
		break;
	default:
		cli_error(c, gr->error, 0, "Could not resize '%s': %s", f,
			  instar_err_name(gr->error));
		break;
	}
}
