/* format_known.c - formats dsc recognises but does not convert yet.
 *
 * Each entry is probe-only: its probe claims the format's files so that
 * detection never takes them for raw disks, and the framework refuses them
 * with the entry's noun and reason. When a format gains a reader or writer
 * its entry moves to a file of its own and keeps its line in formats.def.
 *
 * Signatures (offsets in bytes), as the formats' specifications and
 * qemu's block drivers define them (../shared/docs/formats.md):
 *   qcow2/qcow  "QFI\xfb" at 0, big-endian version at 4 (1: qcow, 2-3: qcow2)
 *   QED         "QED\0" at 0
 *   Parallels   "WithoutFreeSpace" or "WithouFreSpacExt" at 0, version 2 at 16
 *   LUKS        "LUKS\xba\xbe" at 0, big-endian version 1 or 2 at 6
 *   DMG         "koly" at size - 512 (the UDIF trailer)
 *   Bochs       "Bochs Virtual HD Image" at 0
 *   cloop       "#!/bin/sh" + "#V2.0 Format" in the first line pair
 */
#include "internal.h"

static bool at(const struct dscp_probe *p, size_t off, const void *magic, size_t n)
{
	return p->head_len >= off + n && !memcmp(p->head + off, magic, n);
}

static bool tail_at(const struct dscp_probe *p, size_t off, const void *magic, size_t n)
{
	return p->tail_len >= off + n && !memcmp(p->tail + off, magic, n);
}

static int score(bool hit) { return hit ? DSCP_SCORE_CERTAIN : DSCP_SCORE_NONE; }

static int probe_qcow(const struct dscp_probe *p)
{
	return score(at(p, 0, "QFI\xfb", 4) && p->head_len >= 8 && dscp_be32(p->head + 4) == 1);
}

static int probe_qed(const struct dscp_probe *p) { return score(at(p, 0, "QED\0", 4)); }

static int probe_parallels(const struct dscp_probe *p)
{
	return score((at(p, 0, "WithoutFreeSpace", 16) || at(p, 0, "WithouFreSpacExt", 16)) &&
		     p->head_len >= 20 && dscp_le32(p->head + 16) == 2);
}

static int probe_luks(const struct dscp_probe *p)
{
	return score(at(p, 0, "LUKS\xba\xbe", 6) && p->head_len >= 8 &&
		     (dscp_be16(p->head + 6) == 1 || dscp_be16(p->head + 6) == 2));
}

static int probe_dmg(const struct dscp_probe *p)
{
	/* The trailer's version (4) and header size (512) follow the magic. */
	return score(tail_at(p, 0, "koly", 4) && dscp_be32(p->tail + 4) == 4 &&
		     dscp_be32(p->tail + 8) == 512);
}

static int probe_bochs(const struct dscp_probe *p)
{
	return score(at(p, 0, "Bochs Virtual HD Image", 22));
}

static int probe_cloop(const struct dscp_probe *p)
{
	return score(at(p, 0, "#!/bin/sh\n#V2.0 Format\n", 23));
}

#define NAMES(...) ((const char *const[]){__VA_ARGS__, NULL})
#define NONE ((const char *const[]){NULL})

#define KNOWN(id_, name_, desc_, aliases_, exts_, flags_, probe_, noun_, refusal_) \
	const struct dscp_format dscp_format_##id_ = {                             \
		.info = {.name = name_,                                            \
			 .description = desc_,                                     \
			 .aliases = aliases_,                                      \
			 .extensions = exts_,                                      \
			 .flags = flags_},                                         \
		.probe = probe_,                                                   \
		.noun = noun_,                                                     \
		.refusal = refusal_,                                               \
	}

KNOWN(qcow, "qcow", "QEMU copy-on-write v1 (obsolete)", NONE, NAMES(".qcow"), 0, probe_qcow,
      "a qcow (version 1) image", NULL);
KNOWN(qed, "qed", "QEMU enhanced disk", NONE, NAMES(".qed"), 0, probe_qed, "a QED image", NULL);
KNOWN(parallels, "parallels", "Parallels disk", NONE, NAMES(".hdd", ".hds"), 0, probe_parallels,
      "a Parallels image", NULL);
KNOWN(luks, "luks", "LUKS-encrypted image", NONE, NAMES(".luks"), 0, probe_luks,
      "a LUKS-encrypted image", "encrypted images are not supported");
KNOWN(dmg, "dmg", "Apple disk image", NONE, NAMES(".dmg"), 0, probe_dmg,
      "an Apple disk image (DMG)", NULL);
KNOWN(bochs, "bochs", "Bochs growing disk", NONE, NONE, 0, probe_bochs, "a Bochs image", NULL);
KNOWN(cloop, "cloop", "compressed loop image", NONE, NAMES(".cloop"), 0, probe_cloop,
      "a cloop image", NULL);
