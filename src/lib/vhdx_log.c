/* vhdx_log.c - VHDX log replay into memory (MS-VHDX 2.3).
 *
 * A VHDX whose header names a log GUID was not closed cleanly: the log may
 * hold metadata and BAT updates that never reached their place. dsc never
 * writes to its input, so the replay is a list of patches (4 KiB data
 * sectors, zeroed ranges) that the reader lays over every byte it reads.
 *
 * The active sequence is found as MS-VHDX 2.3.3 describes: from each 4 KiB
 * position of the circular log, the longest run of valid entries with
 * consecutive sequence numbers, valid when the head entry's Tail points at
 * one of its entries; the one with the highest head sequence number wins.
 * An entry is valid when its header, every descriptor and data sector and
 * its CRC-32C check out. Validity is computed once per position, so a
 * hostile log costs O(positions^2) lookups at most, not repeated CRCs.
 * Memory: the log copy (<= VHDX_MAX_LOG_BYTES) and one 4 KiB patch per
 * data sector of the active sequence.
 */
#include "vhdx.h"
#include "crc32c.h"

#include <inttypes.h>
#include <stdio.h>

#define SECTOR 4096u

struct slot {
	uint64_t seq;  /* 0: no valid entry starts here */
	uint32_t len;  /* entry length */
	uint32_t tail; /* the entry's Tail */
};

/* Copy n bytes at log offset `pos`, wrapping at the end of the log. */
static void log_copy(const uint8_t *log, uint64_t len, uint64_t pos, uint8_t *out, size_t n)
{
	while (n) {
		size_t k = (size_t)DSC_MIN((uint64_t)n, len - pos);

		memcpy(out, log + pos, k);
		out += k;
		n -= k;
		pos = (pos + k) % len;
	}
}

/* The entry at `pos` into `ent` (entry length bytes); its header fields
 * in *s when valid. */
static bool entry_valid(const uint8_t *log, uint64_t len, uint64_t pos, const uint8_t guid[16],
			uint8_t *ent, struct slot *s, uint64_t *budget)
{
	uint8_t h[64];
	uint32_t elen, tail, ndesc, ndata = 0, want;
	uint64_t seq, dsec;

	log_copy(log, len, pos, h, sizeof h);
	if (dscp_le32(h) != VHDX_LOG_SIGNATURE)
		return false;
	elen = dscp_le32(h + 8);
	tail = dscp_le32(h + 12);
	seq = dscp_le64(h + 16);
	ndesc = dscp_le32(h + 24);
	if (!elen || elen % SECTOR || elen > len || tail % SECTOR || tail >= len || !seq ||
	    memcmp(h + 32, guid, 16) || ndesc > elen / 32)
		return false;
	dsec = ((uint64_t)ndesc * 32 + 64 + SECTOR - 1) / SECTOR;
	if (dsec * SECTOR > elen)
		return false;
	/* Entries of a real log do not overlap, so the bytes checked add up
	 * to about the log's size; a crafted one could make every sector
	 * start an entry as long as the log. */
	if (*budget < elen) {
		*budget = UINT64_MAX; /* spent: the caller reports it */
		return false;
	}
	*budget -= elen;
	log_copy(log, len, pos, ent, elen);
	want = dscp_le32(ent + 4);
	memset(ent + 4, 0, 4);
	if (dscp_crc32c(0, ent, elen) != want)
		return false;
	dscp_put32(ent + 4, want);
	for (uint32_t i = 0; i < ndesc; i++) {
		const uint8_t *d = ent + 64 + (size_t)i * 32;
		uint32_t sig = dscp_le32(d);

		if (dscp_le64(d + 24) != seq || dscp_le64(d + 16) % SECTOR ||
		    dscp_le64(d + 16) >= VHDX_MAX_FILE_OFFSET)
			return false;
		if (sig == 0x6f72657au) { /* "zero" */
			if (dscp_le64(d + 8) % SECTOR || dscp_le64(d + 8) > VHDX_MAX_FILE_OFFSET)
				return false;
		} else if (sig == 0x63736564u) { /* "desc" */
			const uint8_t *ds = ent + (dsec + ndata) * SECTOR;

			if ((dsec + ndata + 1) * SECTOR > elen || dscp_le32(ds) != 0x61746164u ||
			    dscp_le32(ds + 4) != (uint32_t)(seq >> 32) ||
			    dscp_le32(ds + 4092) != (uint32_t)seq)
				return false;
			ndata++;
		} else {
			return false;
		}
	}
	if (dscp_le64(h + 48) > VHDX_MAX_FILE_OFFSET || dscp_le64(h + 56) > VHDX_MAX_FILE_OFFSET)
		return false;
	s->seq = seq;
	s->len = elen;
	s->tail = tail;
	return true;
}

dsc_err vhdx_log_plan(const uint8_t *log, uint64_t len, const uint8_t guid[16],
		      struct vhdx_log *out, char *why, size_t cap)
{
	uint64_t npos = len / SECTOR, cur = 0, old = 0, best_seq = 0, best_tail = 0, best_head = 0;
	uint64_t budget = (uint64_t)VHDX_LOG_SCAN_FACTOR * len, again = UINT64_MAX - 1;
	struct slot *slots = NULL;
	uint8_t *ent = NULL;
	dsc_err rc = DSC_OK;

	memset(out, 0, sizeof *out);
	if (!npos || len % SECTOR) {
		snprintf(why, cap, "a log of %" PRIu64 " bytes is not whole 4 KiB sectors", len);
		return DSC_ERR_FORMAT;
	}
	slots = calloc((size_t)npos, sizeof *slots);
	ent = malloc((size_t)len);
	if (!slots || !ent) {
		rc = DSC_ERR_NOMEM;
		goto out;
	}
	for (uint64_t p = 0; p < npos; p++) {
		if (!entry_valid(log, len, p * SECTOR, guid, ent, &slots[p], &budget))
			slots[p].seq = 0;
		if (budget == UINT64_MAX) {
			snprintf(why, cap,
				 "overlapping log entries would need more than %u times the log's "
				 "size checked",
				 VHDX_LOG_SCAN_FACTOR);
			rc = DSC_ERR_LIMIT;
			goto out;
		}
	}
	/* MS-VHDX 2.3.3, step by step. */
	for (;;) {
		uint64_t pos = cur, covered = 0, last = 0, n = 0, head = 0;
		bool valid = false;

		while (slots[pos / SECTOR].seq && (n == 0 || slots[pos / SECTOR].seq == last + 1) &&
		       covered + slots[pos / SECTOR].len <= len) {
			head = pos;
			last = slots[pos / SECTOR].seq;
			covered += slots[pos / SECTOR].len;
			n++;
			pos = (pos + slots[pos / SECTOR].len) % len;
		}
		if (n) {
			/* The head's tail must be one of the sequence's entries. */
			uint64_t t = slots[head / SECTOR].tail, q = cur;

			for (uint64_t k = 0; k < n; k++) {
				if (q == t) {
					valid = true;
					break;
				}
				q = (q + slots[q / SECTOR].len) % len;
			}
		}
		if (valid && last > best_seq) {
			best_seq = last;
			best_tail = slots[head / SECTOR].tail;
			best_head = head;
		}
		cur = !valid ? (cur + SECTOR) % len : pos;
		if (cur <= old)
			break;
		old = cur;
	}
	if (!best_seq) {
		snprintf(why, cap, "the log GUID is set but the log holds no valid sequence");
		rc = DSC_ERR_FORMAT;
		goto out;
	}
	/* Replay: every descriptor of every entry, tail to head. */
	{
		uint64_t pos = best_tail, entries = 0;

		for (;;) {
			struct slot s;
			uint32_t ndesc, dsec, k = 0;

			entry_valid(log, len, pos, guid, ent, &s, &again);
			ndesc = dscp_le32(ent + 24);
			dsec = (uint32_t)(((uint64_t)ndesc * 32 + 64 + SECTOR - 1) / SECTOR);
			/* The head entry's sizes are the ones that count. */
			out->flushed = dscp_le64(ent + 48);
			out->last = dscp_le64(ent + 56);
			for (uint32_t i = 0; i < ndesc; i++) {
				const uint8_t *d = ent + 64 + (size_t)i * 32;
				struct vhdx_patch *p;

				if (out->n == VHDX_MAX_LOG_PATCHES) {
					snprintf(why, cap, "more than %u descriptors to replay",
						 VHDX_MAX_LOG_PATCHES);
					rc = DSC_ERR_LIMIT;
					goto out;
				}
				if (out->n == out->cap) {
					size_t nc = out->cap ? 2 * out->cap : 64;
					struct vhdx_patch *np = realloc(out->p, nc * sizeof *np);

					if (!np) {
						rc = DSC_ERR_NOMEM;
						goto out;
					}
					out->p = np;
					out->cap = nc;
				}
				p = &out->p[out->n++];
				p->off = dscp_le64(d + 16);
				if (dscp_le32(d) == 0x6f72657au) {
					p->len = dscp_le64(d + 8);
					p->data = NULL;
				} else {
					const uint8_t *ds = ent + ((size_t)dsec + k++) * SECTOR;

					p->len = SECTOR;
					if (!(p->data = malloc(SECTOR))) {
						out->n--;
						rc = DSC_ERR_NOMEM;
						goto out;
					}
					memcpy(p->data, d + 8, 8);
					memcpy(p->data + 8, ds + 8, 4084);
					memcpy(p->data + 4092, d + 4, 4);
				}
			}
			entries++;
			if (pos == best_head)
				break;
			pos = (pos + s.len) % len;
		}
		out->entries = entries;
		out->seq = best_seq;
	}
out:
	if (rc == DSC_ERR_NOMEM)
		snprintf(why, cap, "out of memory replaying the log");
	if (rc != DSC_OK)
		vhdx_log_free(out);
	free(slots);
	free(ent);
	return rc;
}

void vhdx_log_apply(const struct vhdx_log *l, uint64_t off, uint8_t *buf, size_t len)
{
	for (size_t i = 0; i < l->n; i++) {
		const struct vhdx_patch *p = &l->p[i];
		uint64_t a = DSC_MAX(off, p->off), b = DSC_MIN(off + len, p->off + p->len);

		if (p->off >= off + len || off >= p->off + p->len || a >= b)
			continue;
		if (p->data)
			memcpy(buf + (a - off), p->data + (a - p->off), (size_t)(b - a));
		else
			memset(buf + (a - off), 0, (size_t)(b - a));
	}
}

uint64_t vhdx_log_end(const struct vhdx_log *l)
{
	uint64_t end = l->last;

	for (size_t i = 0; i < l->n; i++)
		end = DSC_MAX(end, l->p[i].off + l->p[i].len);
	return end;
}

void vhdx_log_free(struct vhdx_log *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->p[i].data);
	free(l->p);
	memset(l, 0, sizeof *l);
}
