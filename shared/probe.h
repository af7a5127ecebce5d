/* shared/probe.h — the host's format probe: format and (where cheap and safe)
 * virtual size from a few bounded windows of an untrusted image. Pure and
 * freestanding; every offset and length read from the image is checked
 * against the windows, so a hostile image can only make the answer
 * "unknown". The guest re-reads and validates the real header; this probe is
 * only advisory (a disagreement there is HEADER_MISMATCH). */
#ifndef INSTAR_PROBE_H
#define INSTAR_PROBE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "abi.h"
#include "vmdk_split.h"

#define INSTAR_PROBE_HEAD_LEN (64u * 1024) /* the caller reads [0, 64 KiB) */
#define INSTAR_PROBE_TAIL_LEN 1024u	   /* and the last 1 KiB */
#define INSTAR_PROBE_MAX_WINDOWS 8
#define INSTAR_PROBE_MAX_EXTRA 65536u /* largest extra window ever asked for */
#define INSTAR_PROBE_UNKNOWN UINT64_MAX
#define INSTAR_PROBE_QEMU_LEN 512u /* what qemu 7.2's probe reads */

/* A copy of bytes [offset, offset + len) of the file. */
struct instar_probe_window {
	uint64_t offset;
	const uint8_t *data;
	size_t len;
};

struct instar_probe_input {
	uint64_t file_size;
	const char *name;  /* the name the image is opened by (qemu's dmg probe
			      goes by it), or NULL */
	const char *force; /* the driver -f names (open_error), or NULL */
	unsigned nwindows; /* <= INSTAR_PROBE_MAX_WINDOWS; the head and the tail
			      first, then any windows asked for (need_*) */
	struct instar_probe_window windows[INSTAR_PROBE_MAX_WINDOWS];
};

/* The longest backing name the probe holds: qed's (qemu reads fewer than
 * PATH_MAX = 4096 bytes); qcow2's are at most 1023. */
#define INSTAR_PROBE_BACKING_MAX 4095u

struct instar_probe_info {
	uint32_t format;       /* enum instar_format; UNKNOWN with other set */
	const char *driver;    /* qemu 7.2's driver for the image, as its probe
				  picks it ("raw", "qcow2", "vpc", "cloop", ...) */
	const char *other;     /* driver, when instar does not resize that
				  format ("qed", "luks", "dmg", ...), else NULL */
	uint64_t virtual_size; /* INSTAR_PROBE_UNKNOWN when not known */
	uint64_t file_size;
	/* Details for `instar info`; 0 / "" when not known. */
	uint32_t version;      /* qcow2 2/3, vmdk sparse version, vhdx 1 */
	uint32_t cluster_size; /* qcow2 cluster, vmdk grain, vhd/vhdx/vdi block */
	bool has_backing;      /* qcow2 backing file, vhd/vhdx differencing */
	bool encrypted;	       /* qcow2 crypt_method other than 0 */
	uint32_t crypt_method; /* qcow2 header @32 (0 none, 1 aes, 2 luks) */
	char subformat[32];    /* vmdk createType; vhd/vhdx fixed, dynamic,
				  differencing; vdi dynamic, static */
	/* qcow2: the names the header gives, as stored (untrusted bytes, not
	 * NUL-terminated; *_len 0 = none): the backing file (header @8/@16),
	 * its format (extension 0xE2792ACA) and the external data file
	 * (extension 0x44415441, incompatible bit 2). qed: the backing file
	 * (header @56/@60, the text before its first NUL; an empty one is
	 * none), its format "raw" with feature bit 2. names_known is false
	 * when the bytes holding them were not all in the windows. */
	bool names_known;
	bool data_file;	    /* incompatible bit 2 */
	bool data_file_raw; /* autoclear bit 1 */
	uint32_t backing_len, backing_fmt_len, data_file_len;
	uint8_t backing[INSTAR_PROBE_BACKING_MAX];
	uint8_t backing_fmt[32];
	uint8_t data_file_name[1023];
	/* vmdk createType "twoGbMaxExtentFlat" whose extents are all "RW N
	 * FLAT \"name\" 0", named and sized by the split rule (vmdk_split.h):
	 * vmdk_split holds their layout and data_file_name the first one's name
	 * (data_file stays false: the host handles the extents itself). */
	bool vmdk_split_ok;
	struct instar_vmdk_split vmdk_split;
	/* What qemu 7.2's driver (force, else the probed one) says when it
	 * fails to open this file read-write, without "Could not open 'F': ";
	 * "" when it opens or only the guest can tell. A second line is a
	 * hint. Secrets (luks, encrypted qcow2) are not judged here. */
	char open_error[160];
	/* When not 0: reading [need_offset, need_offset + need_len) and probing
	 * again with that window added would tell more (vhdx metadata). */
	uint64_t need_offset;
	uint32_t need_len;
};

/* Probes in by qemu 7.2's rules: every driver's score over the first 512
 * bytes (zero past the end of the file) and in->name, the highest wins, ties
 * in qemu's order; an empty file, or one no driver claims, is raw. Beyond
 * qemu: a file with a VHD footer in its last sector only (a fixed VHD) is
 * vpc, never raw. Always fills ret and returns 0; returns -1 only for an
 * input that breaks the rules above (the head window must hold the first
 * min(512, file_size) bytes). */
int instar_probe(const struct instar_probe_input *in, struct instar_probe_info *ret);

/* The drivers the probe knows besides raw, in qemu's order (*ret_n of them). */
const char *const *instar_probe_driver_names(size_t *ret_n);

/* What the host tells the guest of the names ret holds (the qcow2 and qed
 * planners refuse a header that disagrees): INSTAR_RESIZE_BACKING and
 * INSTAR_RESIZE_DATA_FILE, with the names' CRC-32s. 0 when the names are not
 * known. */
uint32_t instar_probe_name_flags(const struct instar_probe_info *info, uint32_t *ret_backing_crc,
				 uint32_t *ret_data_crc);

/* The size qemu reports for a raw file: file_size rounded up to 512. */
uint64_t instar_probe_raw_size(uint64_t file_size);

#endif
