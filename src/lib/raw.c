/* raw.c - the raw image reader and writer.
 *
 * The reader pulls the input in 1 MiB chunks and reports only the 64 KiB
 * units that hold a non-zero byte, so zero runs become holes whatever the
 * output format. On a regular file it first asks SEEK_DATA where the next
 * data is and jumps over holes without reading them.
 *
 * The writer keeps holes as holes on seekable output (seek forward, then
 * ftruncate to the capacity at the end), writes zeros into pipes, and can
 * reserve the whole capacity up front with posix_fallocate.
 */
#include "internal.h"

#include <stdio.h>
#include <strings.h>

struct raw_reader {
	uint8_t *buf;
	uint64_t buf_off; /* logical offset of buf[0] */
	size_t buf_len;
	size_t scan;    /* next unit of buf to look at */
	uint64_t pos;   /* stream offset of the next byte to read */
	uint64_t start; /* stream offset of the image's first byte */
	bool eof;
	/* The last bytes of the previous chunk: with the current one they
	 * give the input's last 512 bytes at its end (see footer_check). */
	uint8_t tail[512];
	size_t tail_len;
};

/* A VHD footer (facts §2): "conectix", then a one's-complement checksum of
 * the 512 bytes at 64 (big-endian), taken with the checksum field as 0. */
static bool is_vhd_footer(const uint8_t *f)
{
	uint32_t sum = 0;
	size_t i;

	if (memcmp(f, "conectix", 8))
		return false;
	for (i = 0; i < 512; i++)
		sum += i >= 64 && i < 68 ? 0 : f[i];
	return ~sum == dscp_be32(f + 64);
}

/* Detection could not look at the end of a pipe (or a URL), where a fixed VHD and a
 * DMG keep their only signature: a detected raw input that ends with a
 * valid VHD footer or a DMG trailer is refused rather than converted with
 * it as data. */
static dsc_err footer_check(dsc_reader *r, struct raw_reader *rr, struct dsc_error *e)
{
	uint8_t last[512];
	size_t from_buf = DSC_MIN(rr->buf_len, sizeof last), from_tail = sizeof last - from_buf;

	if (!r->detected || dscp_detect_sees_tail(r->in) || from_tail > rr->tail_len)
		return DSC_OK;
	memcpy(last, rr->tail + rr->tail_len - from_tail, from_tail);
	memcpy(last + from_tail, rr->buf + rr->buf_len - from_buf, from_buf);
	/* A DMG's UDIF trailer: "koly", version 4, header size 512. */
	if (!memcmp(last, "koly", 4) && dscp_be32(last + 4) == 4 && dscp_be32(last + 8) == 512)
		return dsc_error_set(e, DSC_ERR_UNSUPPORTED, 0,
				     "%s: ends with a DMG trailer: an Apple disk image (detection "
				     "does not see the end of a pipe or URL); dmg is not supported "
				     "yet",
				     dsc_stream_name(r->in));
	if (!is_vhd_footer(last))
		return DSC_OK;
	return dsc_error_set(e, DSC_ERR_UNSUPPORTED, 0,
			     "%s: ends with a VHD footer: a fixed VHD (detection does not see the "
			     "end of a pipe or URL): name the format with -src-fmt vhd",
			     dsc_stream_name(r->in));
}

static dsc_err raw_fill(dsc_reader *r, struct raw_reader *rr, struct dsc_error *e)
{
	dsc_stream *in = r->in;
	uint64_t data_off;
	size_t got;
	dsc_err rc;

	if (dsc_stream_total(in) != UINT64_MAX && dsc_stream_can_seek(in)) {
		rc = dsc_stream_next_data(in, rr->pos, &data_off, e);
		if (rc == DSC_OK && data_off == UINT64_MAX) {
			/* Only a hole up to the end of the file. */
			rr->pos = DSC_MAX(rr->pos, dsc_stream_total(in));
			rr->eof = true;
			rr->buf_len = rr->scan = 0;
			return DSC_OK;
		}
		if (rc == DSC_OK && data_off > rr->pos + DSCP_ZERO_UNIT) {
			/* Land on a unit boundary so unit alignment holds. */
			uint64_t to = data_off & ~(uint64_t)(DSCP_ZERO_UNIT - 1);

			rc = dsc_stream_seek(in, to, e);
			if (rc != DSC_OK)
				return rc;
			rr->pos = to;
		} else if (rc != DSC_OK && rc != DSC_ERR_UNSUPPORTED) {
			return rc;
		}
	}
	/* Keep the end of the chunk about to be overwritten. */
	if (rr->buf_len >= sizeof rr->tail) {
		memcpy(rr->tail, rr->buf + rr->buf_len - sizeof rr->tail, sizeof rr->tail);
		rr->tail_len = sizeof rr->tail;
	} else if (rr->buf_len) {
		size_t keep = DSC_MIN(rr->tail_len, sizeof rr->tail - rr->buf_len);

		memmove(rr->tail, rr->tail + rr->tail_len - keep, keep);
		memcpy(rr->tail + keep, rr->buf, rr->buf_len);
		rr->tail_len = keep + rr->buf_len;
	}
	rc = dsc_read_full(in, rr->buf, DSCP_IO_CHUNK, &got, e);
	if (rc != DSC_OK)
		return rc;
	rr->buf_off = rr->pos;
	rr->buf_len = got;
	rr->scan = 0;
	rr->pos += got;
	if (got < DSCP_IO_CHUNK) {
		rr->eof = true;
		return footer_check(r, rr, e);
	}
	return DSC_OK;
}

static dsc_err raw_next(dsc_reader *r, struct dsc_extent *ext, struct dsc_error *e)
{
	struct raw_reader *rr = r->impl;
	size_t start, end, unit;
	dsc_err rc;

	memset(ext, 0, sizeof *ext);
	for (;;) {
		/* Skip zero units, then take the run of non-zero ones. */
		while (rr->scan < rr->buf_len) {
			unit = DSC_MIN((size_t)DSCP_ZERO_UNIT, rr->buf_len - rr->scan);
			if (!dscp_is_zero(rr->buf + rr->scan, unit))
				break;
			rr->scan += unit;
		}
		if (rr->scan < rr->buf_len) {
			start = rr->scan;
			end = start;
			while (end < rr->buf_len) {
				unit = DSC_MIN((size_t)DSCP_ZERO_UNIT, rr->buf_len - end);
				if (end > start && dscp_is_zero(rr->buf + end, unit))
					break;
				end += unit;
			}
			rr->scan = end;
			ext->offset = rr->buf_off + start - rr->start;
			ext->length = end - start;
			ext->data = rr->buf + start;
			return DSC_OK;
		}
		if (rr->eof) {
			uint64_t total = dsc_stream_total(r->in);

			/* A file that shrank or a body cut short must not pass
			 * for a smaller disk. */
			if (total != UINT64_MAX && rr->pos < total)
				return dsc_error_set(
					e, DSC_ERR_TRUNCATED, 0,
					"%s: truncated: input ends at byte %llu of %llu",
					dsc_stream_name(r->in), (unsigned long long)rr->pos,
					(unsigned long long)total);
			r->capacity = rr->pos - rr->start;
			return DSC_OK;
		}
		rc = dscp_reader_tick(r, e);
		if (rc == DSC_OK && r->max_capacity && rr->pos - rr->start > r->max_capacity)
			rc = dsc_error_set(e, DSC_ERR_LIMIT, 0,
					   "%s: image exceeds the limit of %llu bytes",
					   dsc_stream_name(r->in),
					   (unsigned long long)r->max_capacity);
		if (rc == DSC_OK)
			rc = raw_fill(r, rr, e);
		if (rc != DSC_OK)
			return rc;
	}
}

static void raw_reader_close(dsc_reader *r)
{
	struct raw_reader *rr = r->impl;

	free(rr->buf);
}

static dsc_err raw_reader_open(dsc_reader *r, struct dsc_error *e)
{
	struct raw_reader *rr = r->impl;
	dsc_stream *in = r->in;

	if (!(rr->buf = malloc(DSCP_IO_CHUNK)))
		return dsc_error_set(e, DSC_ERR_NOMEM, ENOMEM, "%s: out of memory",
				     dsc_stream_name(in));
	rr->pos = rr->start = dsc_stream_tell(in);
	/* An announced size (a regular file's, an HTTP Content-Length) is the
	 * capacity: the reader fails if the input ends short of it. Otherwise
	 * the capacity is known at the end. */
	r->capacity = dsc_stream_total(in) != UINT64_MAX && dsc_stream_total(in) >= rr->pos ?
			      dsc_stream_total(in) - rr->pos :
			      DSC_CAPACITY_UNKNOWN;
	return DSC_OK;
}

/* ---- writer ----------------------------------------------------------- */

struct raw_writer {
	uint64_t pos; /* where the output stream is */
	uint64_t end; /* highest byte written + 1 */
	bool seekable;
	bool prealloc;
	uint8_t *zeros; /* DSCP_IO_CHUNK of zeros, for pipes */
	/* Small adjacent extents (a VMDK reader yields one grain at a time)
	 * are gathered into one large write. */
	uint8_t *buf;
	uint64_t buf_off;
	size_t buf_len;
};

static dsc_err write_zeros(dsc_writer *w, struct raw_writer *rw, uint64_t n, struct dsc_error *e)
{
	dsc_err rc;
	size_t k;

	if (!rw->zeros && !(rw->zeros = calloc(1, DSCP_IO_CHUNK)))
		return dsc_error_set(e, DSC_ERR_NOMEM, ENOMEM, "%s: out of memory",
				     dsc_stream_name(w->out));
	while (n > 0) {
		k = (size_t)DSC_MIN(n, (uint64_t)DSCP_IO_CHUNK);
		rc = dsc_write_all(w->out, rw->zeros, k, e);
		if (rc != DSC_OK)
			return rc;
		rw->pos += k;
		n -= k;
	}
	return DSC_OK;
}

static dsc_err write_at(dsc_writer *w, struct raw_writer *rw, uint64_t offset, const uint8_t *data,
			size_t length, struct dsc_error *e)
{
	dsc_err rc;

	if (offset != rw->pos) {
		if (rw->seekable) {
			rc = dsc_stream_seek(w->out, offset, e);
		} else if (offset > rw->pos) {
			rc = write_zeros(w, rw, offset - rw->pos, e);
		} else {
			rc = dsc_error_set(
				e, DSC_ERR_UNSUPPORTED, 0,
				"%s: data for byte %llu arrives after byte %llu: the "
				"input's data comes out of disk order (as a VM wrote it) and the output "
				"cannot seek: write to a file, or read the input from one",
				dsc_stream_name(w->out), (unsigned long long)offset,
				(unsigned long long)rw->pos);
		}
		if (rc != DSC_OK)
			return rc;
		rw->pos = offset;
	}
	rc = dsc_write_all(w->out, data, length, e);
	if (rc != DSC_OK)
		return rc;
	rw->pos += length;
	rw->end = DSC_MAX(rw->end, rw->pos);
	return DSC_OK;
}

static dsc_err flush_buf(dsc_writer *w, struct raw_writer *rw, struct dsc_error *e)
{
	size_t n = rw->buf_len;

	rw->buf_len = 0;
	return n ? write_at(w, rw, rw->buf_off, rw->buf, n, e) : DSC_OK;
}

static dsc_err raw_put(dsc_writer *w, const struct dsc_extent *ext, struct dsc_error *e)
{
	struct raw_writer *rw = w->impl;
	dsc_err rc;

	if (rw->buf_len && ext->offset == rw->buf_off + rw->buf_len &&
	    ext->length <= DSCP_IO_CHUNK - rw->buf_len) {
		memcpy(rw->buf + rw->buf_len, ext->data, ext->length);
		rw->buf_len += ext->length;
		return DSC_OK;
	}
	rc = flush_buf(w, rw, e);
	if (rc != DSC_OK)
		return rc;
	if (ext->length >= DSCP_IO_CHUNK / 2)
		return write_at(w, rw, ext->offset, ext->data, ext->length, e);
	memcpy(rw->buf, ext->data, ext->length);
	rw->buf_off = ext->offset;
	rw->buf_len = ext->length;
	return DSC_OK;
}

static dsc_err raw_finish(dsc_writer *w, uint64_t capacity, struct dsc_error *e)
{
	struct raw_writer *rw = w->impl;
	dsc_err rc;

	rc = flush_buf(w, rw, e);
	if (rc != DSC_OK)
		return rc;
	/* The size became known only now (a pipe): reserve it now. */
	if (rw->prealloc && rw->seekable && w->opts.capacity == DSC_CAPACITY_UNKNOWN) {
		rc = dsc_stream_set_size(w->out, capacity, true, e);
		if (rc != DSC_OK)
			return rc;
	}
	if (rw->end > capacity)
		return dsc_error_set(e, DSC_ERR_INVAL, 0, "%s: data past the capacity (%llu bytes)",
				     dsc_stream_name(w->out), (unsigned long long)capacity);
	if (rw->seekable)
		rc = dsc_stream_set_size(w->out, capacity, false, e);
	else
		rc = write_zeros(w, rw, capacity - rw->pos, e);
	if (rc != DSC_OK)
		return rc;
	return dsc_stream_finish(w->out, e);
}

static void raw_writer_close(dsc_writer *w)
{
	struct raw_writer *rw = w->impl;

	free(rw->zeros);
	free(rw->buf);
}

static dsc_err raw_writer_open(dsc_writer *w, struct dsc_error *e)
{
	struct raw_writer *rw = w->impl;
	dsc_stream *out = w->out;
	const struct dsc_writer_opts *o = &w->opts;

	if (!(rw->buf = malloc(DSCP_IO_CHUNK)))
		return dsc_error_set(e, DSC_ERR_NOMEM, ENOMEM, "%s: out of memory",
				     dsc_stream_name(out));
	rw->prealloc = o->prealloc || strcasecmp(dscp_writer_option(w, "preallocation"), "off");
	/* Holes need both seeking and a final resize, from byte 0: a stream
	 * that starts elsewhere (appending to stdout) is written forward. */
	rw->seekable = (dsc_stream_caps(out) & (DSC_STREAM_SEEK | DSC_STREAM_SET_SIZE)) ==
			       (DSC_STREAM_SEEK | DSC_STREAM_SET_SIZE) &&
		       dsc_stream_tell(out) == 0;
	rw->pos = rw->end = 0;
	/* Fail before writing anything if the disk cannot hold it. */
	if (rw->prealloc && rw->seekable && o->capacity != DSC_CAPACITY_UNKNOWN)
		return dsc_stream_set_size(out, o->capacity, true, e);
	return DSC_OK;
}

static const struct dscp_reader_class raw_reader = {
	.size = sizeof(struct raw_reader),
	.open = raw_reader_open,
	.next = raw_next,
	.close = raw_reader_close,
};

static const struct dscp_writer_class raw_writer = {
	.size = sizeof(struct raw_writer),
	.open = raw_writer_open,
	.put = raw_put,
	.finish = raw_finish,
	.close = raw_writer_close,
};

static int raw_probe(const struct dscp_probe *p)
{
	(void)p;
	return DSCP_SCORE_FALLBACK;
}

static const char *const raw_aliases[] = {"img", NULL};
static const char *const raw_extensions[] = {".img", ".raw", NULL};
static const char *const raw_prealloc_modes[] = {"off", "falloc", NULL};
static const struct dsc_option_info raw_options[] = {
	{"preallocation", DSC_OPTION_ENUM, "off",
	 "falloc: reserve the whole disk before writing (as -prealloc)", raw_prealloc_modes, 0, 0},
	{NULL, DSC_OPTION_BOOL, NULL, NULL, NULL, 0, 0},
};

const struct dscp_format dscp_format_raw = {
	.info = {.name = "raw",
		 .description = "raw disk image (zero runs kept as holes)",
		 .aliases = raw_aliases,
		 .extensions = raw_extensions,
		 .flags = DSC_FMT_READ | DSC_FMT_WRITE | DSC_FMT_READ_STREAMS,
		 .options = raw_options},
	.probe = raw_probe,
	.reader = &raw_reader,
	.writer = &raw_writer,
};
