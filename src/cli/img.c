/* img.c - dsc-img: what an image is, whether it is intact, whether two
 * images hold the same disk, and where its data is, in qemu-img's manner.
 *
 *   dsc-img info    [-f FMT] [--output=human|json] [--header-only] SRC
 *   dsc-img check   [-f FMT] [--output=human|json] SRC
 *   dsc-img compare [-f FMT] [-F FMT] [-s] A B
 *   dsc-img map     [-f FMT] [--output=human|json] SRC
 *   dsc-img convert <dsc-convert's flags>
 *
 * Every SRC is a file, "-" or an http(s) URL, read through the same
 * readers and limits as a conversion. Exit statuses are qemu-img's: info
 * and map 0 or 1; check 0 clean, 2 corrupted, 3 leaked clusters only, 1
 * could not check; compare 0 identical, 1 different, 2 error.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <jansson.h>

#include "cli.h"
#include "dsc.h"
#include "info_json.h"
#include "progress.h"

static const char usage_text[] =
	"usage: dsc-img COMMAND [options] ...\n"
	"\n"
	"  info    [-f FMT] [--output=human|json] [--header-only] [-p] SRC\n"
	"          what the image is: format, virtual size, clusters, format-specific\n"
	"          fields, backing file (never opened); for a file or a pipe also the\n"
	"          data bytes and whether it streams from a pipe (reads it all once)\n"
	"  check   [-f FMT] [--output=human|json] [-p] SRC\n"
	"          read the whole image with every validation; qcow2: refcounts\n"
	"          exit 0 clean, 2 corrupted, 3 leaked clusters only, 1 could not check\n"
	"  compare [-f FMT] [-F FMT] [-s] [-p] A B\n"
	"          exit 0 when the disks read the same (-s: and have the same size),\n"
	"          1 at the first difference, 2 on error\n"
	"  map     [-f FMT] [--output=human|json] [-p] SRC\n"
	"          the disk's data and zero extents\n"
	"  convert dsc-convert's flags (see dsc-convert -help)\n"
	"\n"
	"SRC is a file, - (stdin) or an http(s) URL. FMT is a format name (qemu's\n"
	"names are accepted: vpc for vhd); without -f the format is detected.\n"
	"  --disk N|ID|FILE  the disk of an OVA to look at (default: the first)\n"
	"  -p                a progress line on stderr while the whole image is read\n";

enum output {
	OUT_HUMAN,
	OUT_JSON
};

struct img_opts {
	dsc_format fmt[2]; /* -f, -F */
	enum output output;
	bool strict;
	bool header_only;
	const char *disk;
	struct dsc_url_opts url;
	char *args[2];
	int nargs;
};

/* An open source. */
struct image {
	const char *src;
	dsc_stream *in;
	dsc_reader *r;
};

static const char *prog_cmd = "dsc-img";
static int usage_status = 1; /* compare: 2 */

static void fail_msg(const struct dsc_error *e, dsc_err rc)
{
	fprintf(stderr, "%s: %s\n", prog_cmd, e->message[0] ? e->message : dsc_strerror(rc));
}

static bool is_local(const char *src) { return strcmp(src, "-") && !dsc_looks_like_url(src); }

static void image_close(struct image *im)
{
	dsc_reader_close(im->r);
	dsc_stream_close(im->in);
	im->r = NULL;
	im->in = NULL;
}

static void progress_follow(dsc_stream *in, dsc_reader *r);

static dsc_err image_open(struct image *im, const char *src, dsc_format fmt,
			  const struct img_opts *o, struct dsc_error *e)
{
	struct dsc_reader_opts ro = {.disk = o->disk, .inspect = true};
	dsc_err rc;

	memset(im, 0, sizeof *im);
	im->src = src;
	rc = cli_open_source(src, &o->url, &im->in, e);
	if (rc == DSC_OK)
		rc = dsc_reader_open_opts(im->in, fmt, &ro, &im->r, e);
	if (rc != DSC_OK)
		image_close(im);
	else
		progress_follow(im->in, im->r);
	return rc;
}

/* -p: a progress line on stderr while a whole image is read. */
static struct {
	bool on;
	struct progress line;
	double start, last;
	dsc_stream *in; /* the input whose bytes count */
	uint64_t pos;   /* the disk offset reached */
	uint64_t cap;   /* the capacity last seen */
} prog;

static double now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* How far the read is: the disk offset `pos` of `cap`; for a disk of
 * unknown size (a raw stream) the bytes read of the input (the first
 * image's, for compare) where its size is known. */
static void progress_show(uint64_t pos, uint64_t cap, bool now)
{
	struct dsc_progress d = {.in_total = UINT64_MAX, .out_bytes = 0};
	double t;

	if (!prog.on)
		return;
	t = now_seconds();
	if (prog.start == 0) {
		prog.start = t;
		now = true; /* the line appears at once */
	}
	prog.cap = cap;
	if (!now && t - prog.last < 0.25)
		return;
	prog.last = t;
	d.in_bytes = d.disk_pos = pos;
	/* By the disk when its size is known (holes are skipped, not read,
	 * so the input's bytes say little), else by the input's bytes. */
	if (cap == DSC_CAPACITY_UNKNOWN && prog.in && dsc_stream_total(prog.in) != UINT64_MAX) {
		d.in_bytes = dsc_stream_bytes(prog.in);
		d.in_total = dsc_stream_total(prog.in);
	}
	d.capacity = cap == DSC_CAPACITY_UNKNOWN ? UINT64_MAX : cap;
	d.seconds = t - prog.start;
	progress_update(&prog.line, &d);
}

static void progress_at(uint64_t pos, uint64_t cap) { progress_show(pos, cap, false); }

/* The readers' tick: between extents, while a long run is read. */
static bool on_tick(void *user)
{
	progress_at(prog.pos, dsc_reader_capacity(user));
	return true;
}

/* Show the progress of reading image `im` (of reader r). */
static void progress_follow(dsc_stream *in, dsc_reader *r)
{
	if (!prog.on)
		return;
	if (!prog.in)
		prog.in = in;
	dsc_reader_set_tick(r, on_tick, r);
}

/* The last state, then the end of the line. */
static void progress_done(void)
{
	if (!prog.on || prog.start == 0)
		return;
	progress_show(prog.pos, prog.cap, true);
	progress_end(&prog.line);
	prog.start = 0;
}

/* Read every extent; the bytes of data in *data (may be NULL). */
static dsc_err walk(dsc_reader *r, uint64_t *data, struct dsc_error *e)
{
	struct dsc_extent x;
	uint64_t n = 0;
	dsc_err rc;

	for (;;) {
		rc = dsc_reader_next(r, &x, e);
		if (rc != DSC_OK)
			return rc;
		if (!x.length) {
			if (dsc_reader_capacity(r) != DSC_CAPACITY_UNKNOWN)
				prog.pos = dsc_reader_capacity(r); /* the end */
			break;
		}
		n += x.length;
		prog.pos = x.offset + x.length;
		progress_at(prog.pos, dsc_reader_capacity(r));
	}
	if (data)
		*data = n;
	return DSC_OK;
}

/* ---- a forward-only view of a file (does it stream from a pipe?) -------- */

static dsc_err fwd_read(void *ctx, void *buf, size_t len, size_t *nread, struct dsc_error *e)
{
	return dsc_read_full(ctx, buf, len, nread, e);
}

/* The view is made with dsc_stream_new(), not as a wrapper: like a pipe it
 * has no directory beside it, so a VMDK descriptor's extents are not found. */
static const struct dsc_stream_ops fwd_ops = {
	.name = "forward",
	.read = fwd_read,
};

/* Read the image at src again as `cat src | dsc-convert -src - -src-fmt
 * FMT` would: *ordered says whether that works, and *data has the data
 * bytes when it does. `fmt`: the format to name (a fixed VHD, found by
 * its footer, is not found again without seeking). */
static void forward_walk(const char *src, dsc_format fmt, const struct img_opts *o, bool *ordered,
			 uint64_t *data, struct dsc_error *e)
{
	struct dsc_reader_opts ro = {.disk = o->disk};
	dsc_stream *file = NULL, *fwd = NULL;
	dsc_reader *r = NULL;
	dsc_err rc;

	rc = cli_open_source(src, &o->url, &file, e);
	if (rc == DSC_OK)
		rc = dsc_stream_new(&fwd_ops, file, dsc_stream_name(file), &fwd, e);
	if (rc == DSC_OK)
		rc = dsc_reader_open_opts(fwd, fmt, &ro, &r, e);
	if (rc == DSC_OK) {
		dsc_stream *shown = prog.in;

		prog.in = file; /* this read's bytes */
		progress_follow(file, r);
		rc = walk(r, data, e);
		prog.in = shown;
	}
	dsc_reader_close(r);
	dsc_stream_close(fwd);
	dsc_stream_close(file);
	*ordered = rc == DSC_OK;
}

/* ---- info ---------------------------------------------------------------- */

static void human_size(char *buf, size_t size, uint64_t n)
{
	static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
	double v = (double)n;
	size_t u = 0;

	while (v >= 1024 && u + 1 < sizeof units / sizeof units[0]) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, size, "%" PRIu64 " B", n);
	else
		snprintf(buf, size, "%.3g %s", v, units[u]);
}

static void print_value(const json_t *v)
{
	if (json_is_string(v))
		printf("%s", json_string_value(v));
	else if (json_is_integer(v))
		printf("%" JSON_INTEGER_FORMAT, json_integer_value(v));
	else
		printf("%s", json_is_true(v) ? "true" : "false");
}

static void print_info_human(const json_t *o)
{
	const json_t *v, *spec;
	const char *key;
	char buf[64];

	printf("image: %s\n", json_string_value(json_object_get(o, "filename")));
	printf("file format: %s\n", json_string_value(json_object_get(o, "format")));
	if ((v = json_object_get(o, "virtual-size"))) {
		human_size(buf, sizeof buf, (uint64_t)json_integer_value(v));
		printf("virtual size: %s (%" JSON_INTEGER_FORMAT " bytes)\n", buf,
		       json_integer_value(v));
	} else
		printf("virtual size: unknown (a raw stream's size is known at its end: leave "
		       "out --header-only)\n");
	if ((v = json_object_get(o, "actual-size"))) {
		human_size(buf, sizeof buf, (uint64_t)json_integer_value(v));
		printf("disk size: %s\n", buf);
	}
	if ((v = json_object_get(o, "cluster-size")))
		printf("cluster_size: %" JSON_INTEGER_FORMAT "\n", json_integer_value(v));
	if ((v = json_object_get(o, "backing-filename")))
		printf("backing file: %s (not opened)\n", json_string_value(v));
	if ((v = json_object_get(o, "backing-filename-format")))
		printf("backing file format: %s\n", json_string_value(v));
	if ((v = json_object_get(o, "dsc-compression")))
		printf("compression: %s\n", json_string_value(v));
	if ((v = json_object_get(o, "dsc-archive")))
		printf("archive: %s\n", json_string_value(v));
	if ((v = json_object_get(o, "dsc-data-bytes"))) {
		human_size(buf, sizeof buf, (uint64_t)json_integer_value(v));
		printf("data: %s (%" JSON_INTEGER_FORMAT " bytes)\n", buf, json_integer_value(v));
	}
	if ((v = json_object_get(o, "dsc-stream-ordered")))
		printf("streams from a pipe: %s\n", json_is_true(v) ? "yes" : "no");
	spec = json_object_get(json_object_get(o, "format-specific"), "data");
	if (!spec)
		return;
	printf("Format specific information:\n");
	json_object_foreach((json_t *)spec, key, v)
	{
		size_t i;
		const json_t *entry;

		if (!json_is_array(v)) {
			printf("    %s: ", key);
			print_value(v);
			putchar('\n');
			continue;
		}
		printf("    %s:\n", key);
		json_array_foreach(v, i, entry)
		{
			const char *k2;
			const json_t *v2;
			bool first = true;

			json_object_foreach((json_t *)entry, k2, v2)
			{
				printf("        %s%s: ", first ? "[" : " ", k2);
				first = false;
				print_value(v2);
				putchar('\n');
			}
			if (!first)
				printf("        ]\n");
		}
	}
}

static int cmd_info(const struct img_opts *o)
{
	const char *src = o->args[0];
	struct dsc_error e = {0};
	struct info_walk w = {0};
	struct image im;
	int64_t actual = -1;
	json_t *j;
	dsc_err rc;

	rc = image_open(&im, src, o->fmt[0], o, &e);
	if (rc != DSC_OK) {
		fail_msg(&e, rc);
		return 1;
	}
	if (is_local(src)) {
		struct stat st;

		if (stat(src, &st) == 0)
			actual = (int64_t)st.st_blocks * 512;
	}
	/* The data bytes, and whether the image streams, need a walk through
	 * it all: done for a file and a pipe; a URL is asked only for what
	 * the header needs; an image with a backing file is not read. */
	if (!o->header_only && !dsc_looks_like_url(src) && !dsc_reader_backing_file(im.r)) {
		struct dsc_error we = {0};
		bool layered = dsc_reader_compression(im.r) || dsc_reader_archive(im.r);
		bool ok;

		if (is_local(src) && (dsc_stream_caps(im.in) & DSC_STREAM_SEEK)) {
			forward_walk(src, layered ? o->fmt[0] : dsc_reader_format(im.r), o,
				     &w.stream_ordered, &w.data_bytes, &we);
			w.ordered_known = true;
			ok = w.walked = w.stream_ordered;
			if (!ok) {
				/* Not from a pipe: the data bytes from the file. */
				memset(&we, 0, sizeof we);
				rc = walk(im.r, &w.data_bytes, &we);
				ok = w.walked = rc == DSC_OK;
			}
		} else {
			rc = walk(im.r, &w.data_bytes, &we);
			ok = rc == DSC_OK || rc == DSC_ERR_SEEK;
			w.walked = rc == DSC_OK;
			w.ordered_known = ok;
			w.stream_ordered = rc == DSC_OK;
		}
		progress_done();
		if (!ok)
			fprintf(stderr, "%s: warning: %s\n", prog_cmd,
				we.message[0] ? we.message :
						"the image could not be read to its end");
	}
	j = info_json(im.r, src, actual, &w);
	image_close(&im);
	if (!j) {
		fprintf(stderr, "%s: out of memory\n", prog_cmd);
		return 1;
	}
	if (o->output == OUT_JSON) {
		json_dumpf(j, stdout, JSON_INDENT(4) | JSON_PRESERVE_ORDER);
		putchar('\n');
	} else
		print_info_human(j);
	json_decref(j);
	return 0;
}

/* ---- check --------------------------------------------------------------- */

struct problems {
	enum output output;
	unsigned shown;
};

#define CHECK_MAX_SHOWN 100u /* problems printed one per line, then counted */

static void on_problem(void *user, bool leak, const char *msg)
{
	struct problems *p = user;

	if (p->shown++ < CHECK_MAX_SHOWN)
		fprintf(p->output == OUT_JSON ? stderr : stdout, "%s %s\n",
			leak ? "Leaked:" : "ERROR", msg);
}

/* Is a failure to read the image a corruption (exit 2), or a failure to
 * check it (exit 1)? */
static bool is_corruption(dsc_err rc)
{
	return rc == DSC_ERR_FORMAT || rc == DSC_ERR_TRUNCATED || rc == DSC_ERR_INTEGRITY;
}

static int cmd_check(const struct img_opts *o)
{
	const char *src = o->args[0];
	struct problems pr = {.output = o->output};
	struct dsc_check_report rep = {.problem = on_problem, .user = &pr};
	struct dsc_error e = {0};
	struct image im;
	uint64_t data = 0, corruptions;
	bool read_ok;
	int status;
	dsc_err rc;

	rc = image_open(&im, src, o->fmt[0], o, &e);
	if (rc != DSC_OK) {
		/* A header that fails to parse is a damaged image too. */
		fail_msg(&e, rc);
		return is_corruption(rc) ? 2 : 1;
	}
	rc = walk(im.r, &data, &e);
	progress_done();
	read_ok = rc == DSC_OK;
	if (!read_ok) {
		if (o->output == OUT_HUMAN)
			printf("ERROR %s\n", e.message[0] ? e.message : dsc_strerror(rc));
		else
			fail_msg(&e, rc);
	}
	/* The tables are checked after a clean read, and after a damaged
	 * one too: they may say more about what is wrong. */
	if (read_ok || is_corruption(rc)) {
		struct dsc_error ce = {0};
		dsc_err crc = dsc_reader_check(im.r, &rep, &ce);

		if (crc != DSC_OK && read_ok) {
			fail_msg(&ce, crc);
			image_close(&im);
			return 1;
		}
	}
	/* A read error the tables do not explain counts as one corruption. */
	corruptions = rep.corruptions + (!read_ok && is_corruption(rc) && !rep.corruptions);
	if (!read_ok && !is_corruption(rc))
		status = 1;
	else
		status = corruptions ? 2 : rep.leaks ? 3 : 0;

	if (o->output == OUT_JSON) {
		json_t *j = json_object();

		if (rep.checked) {
			json_object_set_new(j, "image-end-offset",
					    json_integer((json_int_t)rep.image_end_offset));
			json_object_set_new(j, "total-clusters",
					    json_integer((json_int_t)rep.total_clusters));
		}
		json_object_set_new(j, "check-errors", json_integer(status == 1 ? 1 : 0));
		if (rep.checked)
			json_object_set_new(j, "allocated-clusters",
					    json_integer((json_int_t)rep.allocated_clusters));
		json_object_set_new(j, "filename", json_string(src));
		json_object_set_new(j, "format",
				    json_string(dsc_format_name(dsc_reader_format(im.r))));
		if (corruptions)
			json_object_set_new(j, "corruptions",
					    json_integer((json_int_t)corruptions));
		if (rep.leaks)
			json_object_set_new(j, "leaks", json_integer((json_int_t)rep.leaks));
		if (read_ok)
			json_object_set_new(j, "dsc-data-bytes", json_integer((json_int_t)data));
		else
			json_object_set_new(j, "dsc-error",
					    json_string(e.message[0] ? e.message :
								       dsc_strerror(rc)));
		json_dumpf(j, stdout, JSON_INDENT(4) | JSON_PRESERVE_ORDER);
		putchar('\n');
		json_decref(j);
	} else {
		if (pr.shown > CHECK_MAX_SHOWN)
			printf("(%u more problems not shown)\n", pr.shown - CHECK_MAX_SHOWN);
		if (status == 0)
			printf("No errors were found on the image.\n");
		else if (status == 1)
			printf("The image could not be checked.\n");
		if (corruptions)
			printf("%" PRIu64 " errors were found on the image.\n"
			       "Data may be corrupted, or further writes to the image may corrupt "
			       "it.\n",
			       corruptions);
		if (rep.leaks)
			printf("%" PRIu64 " leaked clusters were found on the image.\n"
			       "This means waste of disk space, but no harm to data.\n",
			       rep.leaks);
		if (rep.checked && rep.total_clusters)
			printf("%" PRIu64 "/%" PRIu64 " = %.2f%% allocated clusters\n"
			       "Image end offset: %" PRIu64 "\n",
			       rep.allocated_clusters, rep.total_clusters,
			       100.0 * (double)rep.allocated_clusters / (double)rep.total_clusters,
			       rep.image_end_offset);
	}
	image_close(&im);
	return status;
}

/* ---- compare ------------------------------------------------------------- */

/* Where one side of a comparison is. */
struct cursor {
	dsc_reader *r;
	struct dsc_extent x; /* the current extent; x.length 0 at the end */
	bool started, done;
};

enum piece {
	P_DATA,
	P_ZERO,
	P_BEYOND
};

/* What the disk holds at `off`: data (*p, *n bytes), zeros (*n bytes, up
 * to the next extent; UINT64_MAX at the end) or nothing (past its size). */
static dsc_err cursor_at(struct cursor *c, uint64_t off, enum piece *kind, const uint8_t **p,
			 uint64_t *n, struct dsc_error *e)
{
	dsc_err rc;

	while (!c->done && (!c->started || c->x.offset + c->x.length <= off)) {
		rc = dsc_reader_next(c->r, &c->x, e);
		if (rc != DSC_OK)
			return rc;
		c->started = true;
		if (!c->x.length)
			c->done = true;
	}
	if (c->done) {
		uint64_t cap = dsc_reader_capacity(c->r);

		*kind = off >= cap ? P_BEYOND : P_ZERO;
		*n = off >= cap ? UINT64_MAX : cap - off;
		return DSC_OK;
	}
	if (c->x.offset > off) {
		*kind = P_ZERO;
		*n = c->x.offset - off;
		return DSC_OK;
	}
	*kind = P_DATA;
	*p = c->x.data + (off - c->x.offset);
	*n = c->x.offset + c->x.length - off;
	return DSC_OK;
}

/* The first nonzero byte of p[0..n), or n. */
static uint64_t first_nonzero(const uint8_t *p, uint64_t n)
{
	uint64_t i;

	for (i = 0; i < n; i++)
		if (p[i])
			return i;
	return n;
}

static uint64_t first_diff(const uint8_t *a, const uint8_t *b, uint64_t n)
{
	uint64_t i;

	/* Chunks first: memcmp is fast on equal runs. */
	for (i = 0; i + 4096 <= n && !memcmp(a + i, b + i, 4096); i += 4096)
		;
	for (; i < n; i++)
		if (a[i] != b[i])
			return i;
	return n;
}

static int cmd_compare(const struct img_opts *o)
{
	struct image im[2] = {{0}, {0}};
	struct cursor c[2];
	struct dsc_error e = {0};
	uint64_t off = 0;
	bool size_warned = false;
	int status = 2, i;
	dsc_err rc = DSC_OK;

	if (!strcmp(o->args[0], "-") && !strcmp(o->args[1], "-")) {
		fprintf(stderr, "%s: only one of the two images can be read from stdin\n",
			prog_cmd);
		return 2;
	}
	for (i = 0; i < 2; i++) {
		rc = image_open(&im[i], o->args[i], o->fmt[i], o, &e);
		if (rc != DSC_OK)
			goto out;
		memset(&c[i], 0, sizeof c[i]);
		c[i].r = im[i].r;
	}
	/* With -s, sizes known from the headers are compared first, as
	 * qemu-img does; else the size differs only when the shorter disk
	 * ends (a raw stream's size is known at its end). */
	if (o->strict && dsc_reader_capacity(c[0].r) != DSC_CAPACITY_UNKNOWN &&
	    dsc_reader_capacity(c[1].r) != DSC_CAPACITY_UNKNOWN &&
	    dsc_reader_capacity(c[0].r) != dsc_reader_capacity(c[1].r)) {
		printf("Strict mode: Image size mismatch!\n");
		status = 1;
		goto out;
	}
	for (;;) {
		enum piece k[2];
		const uint8_t *p[2] = {NULL, NULL};
		uint64_t n[2], len, at;

		for (i = 0; i < 2; i++) {
			rc = cursor_at(&c[i], off, &k[i], &p[i], &n[i], &e);
			if (rc != DSC_OK)
				goto out;
		}
		if (k[0] == P_BEYOND && k[1] == P_BEYOND)
			break;
		if ((k[0] == P_BEYOND || k[1] == P_BEYOND) && !size_warned) {
			if (o->strict) {
				printf("Strict mode: Image size mismatch!\n");
				status = 1;
				goto out;
			}
			printf("Warning: Image size mismatch!\n");
			size_warned = true;
		}
		len = n[0] < n[1] ? n[0] : n[1];
		if (k[0] == P_DATA && k[1] == P_DATA)
			at = first_diff(p[0], p[1], len);
		else if (k[0] == P_DATA)
			at = first_nonzero(p[0], len);
		else if (k[1] == P_DATA)
			at = first_nonzero(p[1], len);
		else
			at = len;
		if (at < len) {
			progress_done();
			/* qemu-img names the sector the first difference is in. */
			printf("Content mismatch at offset %" PRIu64 "!\n",
			       (uint64_t)((off + at) & ~(uint64_t)511));
			status = 1;
			goto out;
		}
		off += len;
		prog.pos = off;
		progress_at(off, dsc_reader_capacity(c[0].r));
	}
	progress_done();
	printf("Images are identical.\n");
	status = 0;
out:
	progress_done();
	if (status == 2)
		fail_msg(&e, rc);
	image_close(&im[1]);
	image_close(&im[0]);
	return status;
}

/* ---- map ----------------------------------------------------------------- */

static void map_entry(enum output out, uint64_t start, uint64_t len, bool data, const char *src,
		      bool *first)
{
	if (out == OUT_JSON) {
		printf("%s{ \"start\": %" PRIu64 ", \"length\": %" PRIu64 ", \"depth\": 0, "
		       "\"present\": %s, \"zero\": %s, \"data\": %s}",
		       *first ? "[" : ",\n", start, len, data ? "true" : "false",
		       data ? "false" : "true", data ? "true" : "false");
		*first = false;
	} else if (data)
		printf("%#-15" PRIx64 " %#-15" PRIx64 " %s\n", start, len, src);
}

static int cmd_map(const struct img_opts *o)
{
	const char *src = o->args[0];
	struct dsc_error e = {0};
	struct dsc_extent x;
	struct image im;
	uint64_t run_start = 0, run_end = 0, pos = 0, cap;
	bool have_run = false, first = true;
	dsc_err rc;

	rc = image_open(&im, src, o->fmt[0], o, &e);
	if (rc != DSC_OK) {
		fail_msg(&e, rc);
		return 1;
	}
	if (o->output == OUT_HUMAN)
		printf("%-15s %-15s %s\n", "Offset", "Length", "File");
	for (;;) {
		rc = dsc_reader_next(im.r, &x, &e);
		if (rc != DSC_OK)
			break;
		if (!x.length)
			break;
		prog.pos = x.offset + x.length;
		progress_at(prog.pos, dsc_reader_capacity(im.r));
		if (have_run && x.offset == run_end) {
			run_end += x.length;
			continue;
		}
		if (have_run) {
			map_entry(o->output, run_start, run_end - run_start, true, src, &first);
			pos = run_end;
		}
		if (x.offset > pos)
			map_entry(o->output, pos, x.offset - pos, false, src, &first);
		run_start = x.offset;
		run_end = x.offset + x.length;
		have_run = true;
	}
	if (rc == DSC_OK) {
		if (have_run) {
			map_entry(o->output, run_start, run_end - run_start, true, src, &first);
			pos = run_end;
		}
		cap = dsc_reader_capacity(im.r);
		if (cap != DSC_CAPACITY_UNKNOWN)
			prog.pos = cap; /* the end */
		if (cap != DSC_CAPACITY_UNKNOWN && cap > pos)
			map_entry(o->output, pos, cap - pos, false, src, &first);
		if (o->output == OUT_JSON)
			printf("%s\n", first ? "[]" : "]");
	}
	progress_done();
	image_close(&im);
	if (rc != DSC_OK) {
		fflush(stdout);
		fail_msg(&e, rc);
		return 1;
	}
	return 0;
}

/* ---- command line ---------------------------------------------------------- */

static void usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void usage_error(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", prog_cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n(dsc-img --help lists the commands)\n");
	exit(usage_status);
}

static dsc_format parse_fmt(const char *v)
{
	dsc_format f = dsc_format_from_name(v);
	const struct dsc_format_info *fi = dsc_format_get(f);

	if (!fi || !(fi->flags & DSC_FMT_READ)) {
		char names[512];

		usage_error("unknown or unreadable format '%s' (dsc reads: %s)", v,
			    dsc_format_list(DSC_FMT_READ, names, sizeof names));
	}
	return f;
}

static void parse_args(int argc, char **argv, struct img_opts *o, int want)
{
	static const struct option longs[] = {
		{"output", required_argument, NULL, 'o'},
		{"header-only", no_argument, NULL, 'H'},
		{"disk", required_argument, NULL, 'd'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int c;

	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "f:F:sUph", longs, NULL)) != -1) {
		switch (c) {
		case 'f': o->fmt[0] = parse_fmt(optarg); break;
		case 'F': o->fmt[1] = parse_fmt(optarg); break;
		case 's': o->strict = true; break;
		case 'U': break; /* qemu's --force-share: dsc never locks */
		case 'p': prog.on = true; break;
		case 'H': o->header_only = true; break;
		case 'd': o->disk = optarg; break;
		case 'o':
			if (!strcmp(optarg, "json"))
				o->output = OUT_JSON;
			else if (!strcmp(optarg, "human"))
				o->output = OUT_HUMAN;
			else
				usage_error("--output takes human or json, not '%s'", optarg);
			break;
		case 'h': fputs(usage_text, stdout); exit(0);
		default: usage_error("unknown option '%s'", argv[optind - 1]);
		}
	}
	/* getopt_long moved the image names last: options may follow them. */
	for (; optind < argc; optind++) {
		if (o->nargs == want)
			usage_error("too many arguments ('%s')", argv[optind]);
		o->args[o->nargs++] = argv[optind];
	}
	if (o->nargs != want)
		usage_error("%s needs %s", argv[0], want == 2 ? "two images" : "an image");
}

int main(int argc, char **argv)
{
	static char cmd_name[64];
	struct img_opts o = {.output = OUT_HUMAN};
	const char *cmd;

	if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") ||
	    !strcmp(argv[1], "-help") || !strcmp(argv[1], "help")) {
		fputs(usage_text, argc < 2 ? stderr : stdout);
		return argc < 2 ? 1 : 0;
	}
	cmd = argv[1];
	prog.line.out = stderr;
	if (!strcmp(cmd, "convert"))
		return convert_main(argc - 1, argv + 1);
	snprintf(cmd_name, sizeof cmd_name, "dsc-img %.20s", cmd);
	prog_cmd = cmd_name;
	dsc_url_opts_init(&o.url);
	if (!strcmp(cmd, "info")) {
		/* A URL: what the headers need, the end too (Range). */
		o.url.seek_to_tail = true;
		parse_args(argc - 1, argv + 1, &o, 1);
		return cmd_info(&o);
	}
	if (!strcmp(cmd, "check")) {
		parse_args(argc - 1, argv + 1, &o, 1);
		return cmd_check(&o);
	}
	if (!strcmp(cmd, "compare")) {
		usage_status = 2;
		parse_args(argc - 1, argv + 1, &o, 2);
		return cmd_compare(&o);
	}
	if (!strcmp(cmd, "map")) {
		parse_args(argc - 1, argv + 1, &o, 1);
		return cmd_map(&o);
	}
	prog_cmd = "dsc-img";
	usage_error("unknown command '%s' (info, check, compare, map, convert)", cmd);
}
