/* format.c - the format table, detection, and the reader/writer framework.
 *
 * The table is built from formats.def, in the manner of qemu's block
 * drivers and libarchive's bidders: every entry is a constant descriptor
 * with a probe, and detection gives the input to each probe and takes the
 * highest score. Raw scores 1 on anything, so it is chosen only when no
 * other format claims the input; a format dsc knows but cannot read is
 * refused by name. Probes look at the first DSCP_PROBE_HEAD bytes (pushed
 * back, so pipes work) and, on a seekable input, the last 512 bytes.
 *
 * The framework owns reader and writer instances: it allocates them with
 * the format's private state, keeps the first error of each (every later
 * call repeats it), checks writer options against the format's list, and
 * frees everything, so a format file holds only its own logic.
 */
#include "internal.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <strings.h>

#define DSCP_FORMAT(n) extern const struct dscp_format dscp_format_##n;
#include "formats.def"
#undef DSCP_FORMAT

static const struct dscp_format *const table[] = {
#define DSCP_FORMAT(n) &dscp_format_##n,
#include "formats.def"
#undef DSCP_FORMAT
};

#define N_FORMATS (sizeof table / sizeof table[0])

const struct dscp_format *dscp_format_at(size_t i) { return i < N_FORMATS ? table[i] : NULL; }

const struct dscp_format *dscp_format_by_id(dsc_format f)
{
	return f >= 1 && f <= N_FORMATS ? table[f - 1] : NULL;
}

dsc_format dscp_format_id(const struct dscp_format *f)
{
	size_t i;

	for (i = 0; i < N_FORMATS; i++)
		if (table[i] == f)
			return (dsc_format)(i + 1);
	return DSC_FORMAT_UNKNOWN;
}

size_t dsc_format_count(void) { return N_FORMATS; }

const struct dsc_format_info *dsc_format_at(size_t i)
{
	return i < N_FORMATS ? &table[i]->info : NULL;
}

const struct dsc_format_info *dsc_format_get(dsc_format f)
{
	const struct dscp_format *d = dscp_format_by_id(f);

	return d ? &d->info : NULL;
}

dsc_format dsc_format_from_name(const char *name)
{
	size_t i, k;

	if (!name)
		return DSC_FORMAT_UNKNOWN;
	for (i = 0; i < N_FORMATS; i++) {
		const struct dsc_format_info *f = &table[i]->info;

		if (!strcasecmp(name, f->name))
			return (dsc_format)(i + 1);
		for (k = 0; f->aliases && f->aliases[k]; k++)
			if (!strcasecmp(name, f->aliases[k]))
				return (dsc_format)(i + 1);
	}
	return DSC_FORMAT_UNKNOWN;
}

const char *dsc_format_name(dsc_format f)
{
	const struct dscp_format *d = dscp_format_by_id(f);

	return d ? d->info.name : "unknown";
}

const char *dsc_format_list(unsigned flags, char *buf, size_t size)
{
	size_t i, n = 0;
	int k;

	if (!buf || !size)
		return buf;
	buf[0] = '\0';
	for (i = 0; i < N_FORMATS && n < size; i++) {
		if ((table[i]->info.flags & flags) != flags)
			continue;
		k = snprintf(buf + n, size - n, "%s%s", n ? ", " : "", table[i]->info.name);
		n = k < 0 ? size : n + (size_t)k;
	}
	return buf;
}

dsc_format dsc_format_from_extension(const char *ext)
{
	size_t i, k;

	for (i = 0; ext && i < N_FORMATS; i++)
		for (k = 0; table[i]->info.extensions && table[i]->info.extensions[k]; k++)
			if (!strcasecmp(ext, table[i]->info.extensions[k]))
				return (dsc_format)(i + 1);
	return DSC_FORMAT_UNKNOWN;
}

/* ---- detection ---------------------------------------------------------- */

const struct dscp_format *dscp_probe_table(const struct dscp_format *const *tab, size_t n,
					   const struct dscp_probe *p, int *score)
{
	const struct dscp_format *best = NULL;
	int best_score = DSCP_SCORE_NONE, s;
	size_t i;

	for (i = 0; i < n; i++) {
		if (!tab[i]->probe)
			continue;
		s = tab[i]->probe(p);
		if (s > best_score) {
			best_score = s;
			best = tab[i];
		}
	}
	if (score)
		*score = best_score;
	return best;
}

/* Whether detection reads the last bytes of `in` (see read_tail). */
bool dscp_detect_sees_tail(const dsc_stream *in)
{
	/* Not a URL (unless its opener asked): the seek to the end and back
	 * would be two ranged requests in every conversion, which otherwise
	 * makes one. The raw reader checks
	 * a URL's last bytes when it reaches them, as a pipe's. */
	return dsc_stream_can_seek(in) &&
	       (!dscp_stream_query(in, DSCP_Q_URL) || dscp_url_seeks_to_tail(in));
}

/* The last DSCP_PROBE_TAIL bytes of a seekable input of known size; the
 * position is put back where it was. *len = 0 when it cannot be done. */
static dsc_err read_tail(dsc_stream *in, uint8_t *tail, size_t *len, struct dsc_error *e)
{
	uint64_t total = dsc_stream_total(in), here = dsc_stream_tell(in), bytes = in->bytes;
	size_t got;
	dsc_err rc;

	*len = 0;
	if (!dscp_detect_sees_tail(in) || total == UINT64_MAX ||
	    total < here + 2 * (uint64_t)DSCP_PROBE_TAIL)
		return DSC_OK;
	rc = dsc_stream_seek(in, total - DSCP_PROBE_TAIL, e);
	if (rc == DSC_OK)
		rc = dsc_read_full(in, tail, DSCP_PROBE_TAIL, &got, e);
	if (rc == DSC_OK)
		rc = dsc_stream_seek(in, here, e);
	if (rc == DSC_OK && got == DSCP_PROBE_TAIL)
		*len = got;
	/* A look at the end is not input consumed: the counts that progress
	 * and statistics report stay those of the image read. */
	in->bytes = bytes;
	return rc;
}

dsc_err dsc_format_detect(dsc_stream *in, dsc_format *fmt, struct dsc_error *e)
{
	uint8_t *head = NULL, tail[DSCP_PROBE_TAIL];
	struct dscp_probe p = {.tail = tail};
	const struct dscp_format *best;
	dsc_err rc;

	*fmt = DSC_FORMAT_UNKNOWN;
	if (!in)
		return dsc_error_set(e, DSC_ERR_INVAL, 0, "detect: no input stream");
	head = malloc(DSCP_PROBE_HEAD);
	if (!head)
		return dsc_error_set(e, DSC_ERR_NOMEM, ENOMEM, "%s: out of memory",
				     dsc_stream_name(in));
	rc = read_tail(in, tail, &p.tail_len, e);
	if (rc == DSC_OK)
		rc = dsc_read_full(in, head, DSCP_PROBE_HEAD, &p.head_len, e);
	if (rc == DSC_OK)
		rc = dsc_stream_unread(in, head, p.head_len, e);
	if (rc == DSC_OK) {
		p.head = head;
		p.total = dsc_stream_total(in);
		best = dscp_probe_table(table, N_FORMATS, &p, NULL);
		*fmt = best ? dscp_format_id(best) : DSC_FORMAT_RAW;
	}
	free(head);
	return rc;
}

dsc_err dscp_format_refuse(const struct dscp_format *f, dsc_stream *in, struct dsc_error *e)
{
	char noun[64], why[64];

	if (!f->noun)
		snprintf(noun, sizeof noun, "a %s image", f->info.name);
	if (!f->refusal)
		snprintf(why, sizeof why, "%s is not supported yet", f->info.name);
	return dsc_error_set(e, DSC_ERR_UNSUPPORTED, 0, "%s: %s; %s", dsc_stream_name(in),
			     f->noun ? f->noun : noun, f->refusal ? f->refusal : why);
}

/* ---- readers ------------------------------------------------------------ */

/* dscp_find_layer(), also giving the format detected. */
static dsc_err find_layer(dsc_stream *in, const struct dscp_format **layer, dsc_format *id,
			  struct dsc_error *e)
{
	const struct dscp_format *f;
	dsc_err rc;

	*layer = NULL;
	rc = dsc_format_detect(in, id, e);
	if (rc != DSC_OK)
		return rc;
	f = dscp_format_by_id(*id);
	if (f && f->unwrap)
		*layer = f;
	return DSC_OK;
}

dsc_err dscp_find_layer(dsc_stream *in, const struct dscp_format **layer, struct dsc_error *e)
{
	dsc_format id;

	return find_layer(in, layer, &id, e);
}

dsc_err dsc_reader_open(dsc_stream *in, dsc_format fmt, dsc_reader **out, struct dsc_error *e)
{
	return dsc_reader_open_opts(in, fmt, NULL, out, e);
}

dsc_err dsc_reader_open_opts(dsc_stream *in, dsc_format fmt, const struct dsc_reader_opts *o,
			     dsc_reader **out, struct dsc_error *e)
{
	const struct dscp_format *f = NULL, *named_layer = NULL, *layer, *comp = NULL, *arch = NULL;
	dsc_stream *layers[2] = {NULL, NULL};
	size_t n = 0;
	bool detected = fmt == DSC_FORMAT_UNKNOWN;
	dsc_err rc = DSC_OK;

	*out = NULL;
	if (!in)
		return dsc_error_set(e, DSC_ERR_INVAL, 0, "reader: no input stream");
	if (!detected) {
		f = dscp_format_by_id(fmt);
		if (!f)
			return dsc_error_set(e, DSC_ERR_INVAL, 0, "%s: unknown input format %u",
					     dsc_stream_name(in), fmt);
		if (f->unwrap) {
			named_layer = f; /* the layer is named: detect the image inside */
			f = NULL;
		}
	}
	/* Layers are found by their magic whatever the format named:
	 * -src-fmt names the image inside (or a layer itself; named raw, an
	 * archive is not looked into). At most one
	 * archive and one compression, in either order (.ova with gzip
	 * members, .ova.gz). */
	for (;;) {
		uint64_t at = dsc_stream_tell(in), bytes = in->bytes;

		rc = find_layer(in, &layer, &fmt, e);
		if (rc != DSC_OK)
			goto fail;
		/* A named format on a file: the look for a layer found none,
		 * so the reader starts as if it had not been made (the bytes
		 * it counts are those of the image, read once). */
		if (!layer && n == 0 && f && dscp_detect_sees_tail(in)) {
			rc = dsc_stream_seek(in, at, e);
			if (rc != DSC_OK)
				goto fail;
			in->bytes = bytes;
		}
		if (n == 0 && named_layer && layer != named_layer) {
			rc = dsc_error_set(e, DSC_ERR_FORMAT, 0, "%s: not %s", dsc_stream_name(in),
					   named_layer->noun);
			goto fail;
		}
		/* A raw disk may start like a tar (a tape image, a tar written
		 * to a disk): named raw, it is read as raw, not as an OVA. */
		if (!layer || (layer->archive && f && f == dscp_format_by_id(DSC_FORMAT_RAW)))
			break;
		if ((layer->archive && arch) || (!layer->archive && comp) || n == 2) {
			rc = dsc_error_set(
				e, DSC_ERR_UNSUPPORTED, 0,
				"%s: %s inside %s; one compression layer and one archive "
				"are read, not more",
				dsc_stream_name(in), layer->noun,
				(layer->archive ? arch : comp)->noun);
			goto fail;
		}
		rc = layer->unwrap(in, o, &layers[n], e);
		if (rc != DSC_OK)
			goto fail;
		in = layers[n++];
		if (layer->archive)
			arch = layer;
		else
			comp = layer;
	}
	if (!f) {
		/* What the last look found is the image inside. */
		f = dscp_format_by_id(fmt);
		detected = true;
	}
	rc = dscp_reader_open_format(in, f, detected, o && o->inspect, out, e);
	if (rc != DSC_OK)
		goto fail;
	(*out)->wrapper = comp;
	(*out)->archive = arch;
	(*out)->layers[0] = layers[0];
	(*out)->layers[1] = layers[1];
	return DSC_OK;
fail:
	while (n > 0)
		dsc_stream_close(layers[--n]);
	return rc;
}

dsc_err dscp_reader_open_format(dsc_stream *in, const struct dscp_format *f, bool detected,
				bool inspect, dsc_reader **out, struct dsc_error *e)
{
	dsc_reader *r;
	dsc_err rc;

	*out = NULL;
	if (!f->reader)
		return dscp_format_refuse(f, in, e);
	r = calloc(1, sizeof *r);
	if (!r || (f->reader->size && !(r->impl = calloc(1, f->reader->size)))) {
		free(r);
		return dsc_error_set(e, DSC_ERR_NOMEM, ENOMEM, "%s: out of memory",
				     dsc_stream_name(in));
	}
	r->fmt = f;
	r->in = in;
	r->capacity = DSC_CAPACITY_UNKNOWN;
	r->detected = detected;
	r->inspect = inspect;
	rc = f->reader->open(r, e);
	if (rc == DSC_OK && r->info_nomem)
		rc = dsc_error_set(e, DSC_ERR_NOMEM, ENOMEM, "%s: out of memory",
				   dsc_stream_name(in));
	if (rc != DSC_OK) {
		dsc_reader_close(r);
		return rc;
	}
	*out = r;
	return DSC_OK;
}

dsc_err dsc_reader_next(dsc_reader *r, struct dsc_extent *ext, struct dsc_error *e)
{
	struct dsc_error local = {0};
	dsc_err rc;

	if (r->failed == DSC_OK && r->inspect_refusal != DSC_OK) {
		r->failed = r->inspect_refusal;
		dsc_error_set(&r->failure, r->inspect_refusal, 0, "%s: %s", dsc_stream_name(r->in),
			      r->inspect_why);
	}
	if (r->failed == DSC_OK) {
		rc = r->fmt->reader->next(r, ext, &local);
		/* At the image's end, a layer is read to its own end: bytes
		 * after the image must still be valid compressed data, and an
		 * archive's manifest, which may follow, must match. */
		if (rc == DSC_OK && ext->length == 0 && r->layers[0] && !r->drained) {
			uint64_t rest;

			r->drained = true;
			rc = dsc_stream_skip(r->in, UINT64_MAX, &rest, &local);
		}
		if (rc == DSC_OK)
			return DSC_OK;
		/* Readers are sticky like streams: asking again after an error
		 * must not skip the bad part and report a clean end. */
		r->failed = rc;
		r->failure = local;
	}
	memset(ext, 0, sizeof *ext);
	if (e && e->code == DSC_OK)
		*e = r->failure;
	return r->failed;
}

dsc_err dscp_reader_tick(dsc_reader *r, struct dsc_error *e)
{
	if (r->tick && !r->tick(r->tick_user))
		return dsc_error_set(e, DSC_ERR_CANCELLED, 0, "%s: conversion cancelled",
				     dsc_stream_name(r->in));
	return DSC_OK;
}

uint64_t dsc_reader_capacity(const dsc_reader *r) { return r->capacity; }
dsc_format dsc_reader_format(const dsc_reader *r) { return dscp_format_id(r->fmt); }
dsc_format dsc_reader_compression(const dsc_reader *r)
{
	return r->wrapper ? dscp_format_id(r->wrapper) : DSC_FORMAT_UNKNOWN;
}
dsc_format dsc_reader_archive(const dsc_reader *r)
{
	return r->archive ? dscp_format_id(r->archive) : DSC_FORMAT_UNKNOWN;
}
void dsc_reader_set_threads(dsc_reader *r, unsigned threads) { r->threads = threads; }
void dsc_reader_set_tick(dsc_reader *r, bool (*tick)(void *user), void *user)
{
	r->tick = tick;
	r->tick_user = user;
}

/* ---- image facts ---------------------------------------------------------- */

static struct dsc_info_item *info_add(dsc_reader *r, const char *list, size_t index,
				      const char *key, enum dsc_info_type type)
{
	struct dsc_info_item *it;

	if (r->info_n == r->info_cap) {
		size_t cap = r->info_cap ? 2 * r->info_cap : 16;
		struct dsc_info_item *n =
			cap <= DSCP_INFO_MAX_ITEMS ? realloc(r->info, cap * sizeof *n) : NULL;

		if (!n) {
			r->info_nomem = true;
			return NULL;
		}
		r->info = n;
		r->info_cap = cap;
	}
	it = &r->info[r->info_n];
	memset(it, 0, sizeof *it);
	it->list = list; /* string constants of the readers */
	it->index = index;
	it->key = key;
	it->type = type;
	r->info_n++;
	return it;
}

void dscp_info_str(dsc_reader *r, const char *list, size_t index, const char *key,
		   const char *value)
{
	struct dsc_info_item *it = info_add(r, list, index, key, DSC_INFO_STRING);

	if (it && !(it->str = strdup(value))) {
		r->info_n--;
		r->info_nomem = true;
	}
}

void dscp_info_uint(dsc_reader *r, const char *list, size_t index, const char *key, uint64_t value)
{
	struct dsc_info_item *it = info_add(r, list, index, key, DSC_INFO_UINT);

	if (it)
		it->num = value;
}

void dscp_info_bool(dsc_reader *r, const char *list, size_t index, const char *key, bool value)
{
	struct dsc_info_item *it = info_add(r, list, index, key, DSC_INFO_BOOL);

	if (it)
		it->num = value;
}

/* A copy of len bytes of name with control bytes as '?'. */
static char *printable_copy(const char *name, size_t len)
{
	char *s = malloc(len + 1);
	size_t i;

	if (!s)
		return NULL;
	for (i = 0; i < len; i++)
		s[i] = (unsigned char)name[i] < 0x20 || name[i] == 0x7f ? '?' : name[i];
	s[len] = '\0';
	return s;
}

void dscp_info_backing(dsc_reader *r, const char *name, size_t len, const char *format)
{
	/* Copies first: name may be r->backing_file itself. */
	char *file = printable_copy(name, len);
	char *fmt = format ? printable_copy(format, strlen(format)) : NULL;

	if (!file || (format && !fmt)) {
		free(file);
		free(fmt);
		r->info_nomem = true;
		return;
	}
	free(r->backing_file);
	free(r->backing_format);
	r->backing_file = file;
	r->backing_format = fmt;
}

bool dscp_inspect_only(dsc_reader *r, dsc_err code, const char *fmt, ...)
{
	va_list ap;

	if (!r->inspect)
		return false;
	if (r->inspect_refusal == DSC_OK) {
		r->inspect_refusal = code;
		va_start(ap, fmt);
		vsnprintf(r->inspect_why, sizeof r->inspect_why, fmt, ap);
		va_end(ap);
	}
	return true;
}

size_t dsc_reader_info_count(const dsc_reader *r) { return r->info_n; }
const struct dsc_info_item *dsc_reader_info_at(const dsc_reader *r, size_t i)
{
	return i < r->info_n ? &r->info[i] : NULL;
}
uint64_t dsc_reader_cluster_size(const dsc_reader *r) { return r->cluster_size; }
const char *dsc_reader_backing_file(const dsc_reader *r) { return r->backing_file; }
const char *dsc_reader_backing_format(const dsc_reader *r) { return r->backing_format; }
bool dsc_reader_dirty(const dsc_reader *r) { return r->dirty; }

dsc_err dsc_reader_check(dsc_reader *r, struct dsc_check_report *rep, struct dsc_error *e)
{
	dsc_err rc;

	rep->checked = false;
	if (!r->fmt->reader->check || !(dsc_stream_caps(r->in) & DSC_STREAM_SEEK) || r->layers[0])
		return DSC_OK;
	rc = r->fmt->reader->check(r, rep, e);
	/* The input has moved: nothing more is read from it. */
	if (r->failed == DSC_OK) {
		r->failed = DSC_ERR_INVAL;
		dsc_error_set(&r->failure, DSC_ERR_INVAL, 0,
			      "%s: the image was checked; open it "
			      "again to read it",
			      dsc_stream_name(r->in));
	}
	if (rc == DSC_OK)
		rep->checked = true;
	return rc;
}

void dsc_reader_close(dsc_reader *r)
{
	size_t i;

	if (!r)
		return;
	for (i = 0; i < r->info_n; i++)
		free((char *)r->info[i].str);
	free(r->info);
	free(r->backing_file);
	free(r->backing_format);
	if (r->fmt->reader->close)
		r->fmt->reader->close(r);
	dsc_stream_close(r->layers[1]);
	dsc_stream_close(r->layers[0]);
	free(r->impl);
	free(r);
}

/* ---- options ------------------------------------------------------------ */

static const struct dsc_option_info *find_option(const struct dscp_format *f, const char *key)
{
	const struct dsc_option_info *o;

	for (o = f->info.options; o && o->name; o++)
		if (!strcmp(o->name, key))
			return o;
	return NULL;
}

bool dscp_option_value(const struct dsc_option_info *o, const char *v, uint64_t *num)
{
	static const char *const yes[] = {"on", "true", "yes", "1", NULL};
	static const char *const no[] = {"off", "false", "no", "0", NULL};
	uint64_t n = 0, mul = 1;
	const char *p;
	size_t k;

	*num = 0;
	switch (o->type) {
	case DSC_OPTION_BOOL:
		for (k = 0; yes[k]; k++)
			if (!strcasecmp(v, yes[k])) {
				*num = 1;
				return true;
			}
		for (k = 0; no[k]; k++)
			if (!strcasecmp(v, no[k]))
				return true;
		return false;
	case DSC_OPTION_ENUM:
		for (k = 0; o->choices && o->choices[k]; k++)
			if (!strcasecmp(v, o->choices[k])) {
				*num = k;
				return true;
			}
		return false;
	case DSC_OPTION_STRING: return true;
	case DSC_OPTION_UINT:
	case DSC_OPTION_SIZE:
		if (*v < '0' || *v > '9')
			return false;
		for (p = v; *p >= '0' && *p <= '9'; p++) {
			if (n > (UINT64_MAX - 9) / 10)
				return false;
			n = n * 10 + (uint64_t)(*p - '0');
		}
		if (*p && o->type == DSC_OPTION_SIZE) {
			static const char units[] = "kmgt";
			const char *u = strchr(units, *p | 0x20);

			if (!u)
				return false;
			for (k = 0; k <= (size_t)(u - units); k++)
				mul *= 1024;
			p++;
			if ((*p | 0x20) == 'b') /* "64k" or "64kb" */
				p++;
		}
		if (*p || n > UINT64_MAX / mul)
			return false;
		n *= mul;
		if (n < o->min || n > o->max)
			return false;
		*num = n;
		return true;
	}
	return false;
}

/* "subformat, adapter_type, hwversion" into buf. */
static const char *option_names(const struct dscp_format *f, char *buf, size_t size)
{
	const struct dsc_option_info *o;
	size_t n = 0;

	buf[0] = '\0';
	for (o = f->info.options; o && o->name && n < size; o++)
		n += (size_t)snprintf(buf + n, size - n, "%s%s", n ? ", " : "", o->name);
	return buf;
}

static const char *allowed_values(const struct dsc_option_info *o, char *buf, size_t size)
{
	size_t n = 0, k;

	switch (o->type) {
	case DSC_OPTION_BOOL: return "on or off";
	case DSC_OPTION_ENUM:
		buf[0] = '\0';
		for (k = 0; o->choices && o->choices[k] && n < size; k++)
			n += (size_t)snprintf(buf + n, size - n, "%s%s", k ? ", " : "one of ",
					      o->choices[k]);
		return buf;
	case DSC_OPTION_UINT:
	case DSC_OPTION_SIZE:
		snprintf(buf, size, "%s from %" PRIu64 " to %" PRIu64,
			 o->type == DSC_OPTION_SIZE ? "a size (k, M, G suffixes)" : "a number",
			 o->min, o->max);
		return buf;
	case DSC_OPTION_STRING: break;
	}
	return "text";
}

dsc_err dsc_format_check_options(dsc_format fmt, const dsc_optlist *l, struct dsc_error *e)
{
	const struct dscp_format *f = dscp_format_by_id(fmt);
	const struct dsc_option_info *o;
	char names[256], vals[256];
	uint64_t num;
	size_t i;

	if (!f)
		return dsc_error_set(e, DSC_ERR_INVAL, 0, "options: unknown format %u", fmt);
	for (i = 0; i < dsc_optlist_count(l); i++) {
		const char *key = dsc_optlist_key(l, i), *val = dsc_optlist_value(l, i);

		o = find_option(f, key);
		if (!o) {
			if (f->info.options && f->info.options->name)
				return dsc_error_set(e, DSC_ERR_INVAL, 0,
						     "%s: unknown option '%s' (%s options: %s)",
						     f->info.name, key, f->info.name,
						     option_names(f, names, sizeof names));
			return dsc_error_set(e, DSC_ERR_INVAL, 0,
					     "%s: unknown option '%s' (%s has no options)",
					     f->info.name, key, f->info.name);
		}
		if (!dscp_option_value(o, val, &num))
			return dsc_error_set(e, DSC_ERR_INVAL, 0, "%s: option %s: '%s' is not %s",
					     f->info.name, key, val,
					     allowed_values(o, vals, sizeof vals));
	}
	return DSC_OK;
}

const char *dscp_writer_option(const dsc_writer *w, const char *key)
{
	const struct dsc_option_info *o = find_option(w->fmt, key);
	const char *v = dsc_optlist_get(w->opts.options, key);
	uint64_t k;

	if (!o)
		return NULL;
	if (!v)
		return o->default_value;
	/* A choice as the table spells it, whatever case was given. */
	if (o->type == DSC_OPTION_ENUM && dscp_option_value(o, v, &k))
		return o->choices[k];
	return v;
}

uint64_t dscp_writer_option_uint(const dsc_writer *w, const char *key)
{
	const struct dsc_option_info *o = find_option(w->fmt, key);
	const char *v = dscp_writer_option(w, key);
	uint64_t n = 0;

	if (o && v)
		dscp_option_value(o, v, &n);
	return n;
}

/* ---- writers ------------------------------------------------------------ */

dsc_err dsc_writer_open(dsc_stream *out, dsc_format fmt, const struct dsc_writer_opts *opts,
			dsc_writer **wp, struct dsc_error *e)
{
	struct dsc_writer_opts defaults = {.capacity = DSC_CAPACITY_UNKNOWN};
	const struct dscp_format *f = dscp_format_by_id(fmt);
	dsc_writer *w;
	dsc_err rc;

	*wp = NULL;
	if (!out)
		return dsc_error_set(e, DSC_ERR_INVAL, 0, "writer: no output stream");
	if (!opts)
		opts = &defaults;
	if (!f)
		return dsc_error_set(e, DSC_ERR_INVAL, 0, "%s: unknown output format %u",
				     dsc_stream_name(out), fmt);
	if (!f->writer)
		return dsc_error_set(e, DSC_ERR_UNSUPPORTED, 0, "%s: writing %s is not supported",
				     dsc_stream_name(out), f->info.name);
	rc = dsc_format_check_options(fmt, opts->options, e);
	if (rc != DSC_OK)
		return rc;
	w = calloc(1, sizeof *w);
	if (!w || (f->writer->size && !(w->impl = calloc(1, f->writer->size)))) {
		free(w);
		return dsc_error_set(e, DSC_ERR_NOMEM, ENOMEM, "%s: out of memory",
				     dsc_stream_name(out));
	}
	w->fmt = f;
	w->out = out;
	w->opts = *opts;
	rc = f->writer->open(w, e);
	if (rc != DSC_OK) {
		dsc_writer_close(w);
		return rc;
	}
	*wp = w;
	return DSC_OK;
}

dsc_err dsc_writer_put(dsc_writer *w, const struct dsc_extent *ext, struct dsc_error *e)
{
	dsc_err rc;

	if (w->finished || w->failed)
		return dsc_error_set(e, DSC_ERR_INVAL, 0, "%s: writer is %s",
				     dsc_stream_name(w->out), w->finished ? "finished" : "failed");
	if (w->needs_plan && !w->planned)
		return dsc_error_set(e, DSC_ERR_INVAL, 0,
				     "%s: this writer needs the first pass (a plan) before data",
				     dsc_stream_name(w->out));
	if (ext->length == 0)
		return DSC_OK;
	rc = w->fmt->writer->put(w, ext, e);
	if (rc != DSC_OK)
		w->failed = true;
	return rc;
}

dsc_err dsc_writer_finish(dsc_writer *w, uint64_t capacity, struct dsc_error *e)
{
	dsc_err rc;

	if (w->finished || w->failed)
		return dsc_error_set(e, DSC_ERR_INVAL, 0, "%s: writer is %s",
				     dsc_stream_name(w->out), w->finished ? "finished" : "failed");
	if (capacity == DSC_CAPACITY_UNKNOWN)
		return dsc_error_set(e, DSC_ERR_INVAL, 0, "%s: capacity unknown at finish",
				     dsc_stream_name(w->out));
	if (w->needs_plan && !w->planned)
		return dsc_error_set(e, DSC_ERR_INVAL, 0,
				     "%s: this writer needs the first pass (a plan) before data",
				     dsc_stream_name(w->out));
	w->image_size = capacity;
	w->file_size = UINT64_MAX;
	rc = w->fmt->writer->finish(w, capacity, e);
	if (rc != DSC_OK) {
		w->failed = true;
		return rc;
	}
	if (w->file_size == UINT64_MAX)
		w->file_size = dsc_stream_bytes(w->out);
	w->finished = true;
	return DSC_OK;
}

dsc_err dscp_writer_plan(dsc_writer *w, const struct dsc_extent *ext, struct dsc_error *e)
{
	dsc_err rc;

	if (w->finished || w->failed || !w->needs_plan || w->planned)
		return dsc_error_set(e, DSC_ERR_INVAL, 0, "%s: writer takes no plan now",
				     dsc_stream_name(w->out));
	if (ext->length == 0)
		return DSC_OK;
	rc = w->fmt->writer->plan(w, ext, e);
	if (rc != DSC_OK)
		w->failed = true;
	return rc;
}

dsc_err dscp_writer_plan_done(dsc_writer *w, uint64_t capacity, uint64_t *file_size,
			      struct dsc_error *e)
{
	dsc_err rc;

	*file_size = 0;
	if (w->finished || w->failed || !w->needs_plan || w->planned)
		return dsc_error_set(e, DSC_ERR_INVAL, 0, "%s: writer takes no plan now",
				     dsc_stream_name(w->out));
	if (capacity == DSC_CAPACITY_UNKNOWN)
		return dsc_error_set(e, DSC_ERR_INVAL, 0,
				     "%s: capacity unknown after the first pass",
				     dsc_stream_name(w->out));
	rc = w->fmt->writer->plan_done(w, capacity, file_size, e);
	if (rc != DSC_OK) {
		w->failed = true;
		return rc;
	}
	w->planned = true;
	return DSC_OK;
}

void dsc_writer_close(dsc_writer *w)
{
	if (!w)
		return;
	if (w->fmt->writer->close)
		w->fmt->writer->close(w);
	free(w->impl);
	free(w);
}
