/* main.c - dsc-convert, the command-line converter.
 *
 * Parses the flags, opens the source (a path or "-") and the destination
 * (an atomic file or "-"), runs dsc_convert() and maps the result once to
 * an exit status and a one-line message: 0 success, 1 failed conversion,
 * 2 bad usage. A signal during the conversion removes the temporary output
 * before the process dies, so an interrupted run leaves nothing behind.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "dsc.h"
#include "cli.h"
#include "progress.h"
#include "size.h"

#define EXIT_FAILED 1
#define EXIT_USAGE 2

enum opt_id {
	OPT_SRC,
	OPT_DST,
	OPT_SRC_FMT,
	OPT_DST_FMT,
	OPT_PREALLOC,
	OPT_PROGRESS,
	OPT_QUIET,
	OPT_JSON,
	OPT_LEVEL,
	OPT_THREADS,
	OPT_MAX_CAPACITY,
	OPT_CACERT,
	OPT_INSECURE,
	OPT_HEADER,
	OPT_RETRIES,
	OPT_IDLE_TIMEOUT,
	OPT_SHA256,
	OPT_HELP,
	OPT_VERSION,
	OPT_OPTIONS,
	OPT_COMPRESS,
	OPT_FORMATS,
	OPT_DISK,
	OPT_LIST,
};

struct opt {
	const char *name;
	bool has_arg;
	enum opt_id id;
};

static const struct opt options[] = {
	{"src", true, OPT_SRC},
	{"dst", true, OPT_DST},
	{"src-fmt", true, OPT_SRC_FMT},
	{"dst-fmt", true, OPT_DST_FMT},
	{"prealloc", false, OPT_PREALLOC},
	{"p", false, OPT_PROGRESS},
	{"progress", false, OPT_PROGRESS},
	{"q", false, OPT_QUIET},
	{"quiet", false, OPT_QUIET},
	{"json", false, OPT_JSON},
	{"level", true, OPT_LEVEL},
	{"threads", true, OPT_THREADS},
	{"max-capacity", true, OPT_MAX_CAPACITY},
	{"cacert", true, OPT_CACERT},
	{"insecure", false, OPT_INSECURE},
	{"header", true, OPT_HEADER},
	{"retries", true, OPT_RETRIES},
	{"idle-timeout", true, OPT_IDLE_TIMEOUT},
	{"sha256", true, OPT_SHA256},
	{"h", false, OPT_HELP},
	{"help", false, OPT_HELP},
	{"version", false, OPT_VERSION},
	{"o", true, OPT_OPTIONS},
	{"c", false, OPT_COMPRESS},
	{"formats", false, OPT_FORMATS},
	{"disk", true, OPT_DISK},
	{"list", false, OPT_LIST},
};

struct config {
	const char *src;
	const char *dst;
	dsc_format src_fmt;
	dsc_format dst_fmt;
	bool prealloc;
	int progress; /* -1: default (tty), 0 off, 1 on */
	bool json;
	int level;
	unsigned threads;
	uint64_t max_capacity;   /* bytes; 0: no limit */
	struct dsc_url_opts url; /* for http(s) sources */
	const char **headers;    /* -header values, NULL-terminated */
	size_t nheaders;
	const char *sha256;   /* expected digest of the source bytes */
	dsc_optlist *options; /* -o, for the destination format */
	bool options_help;    /* -o help */
	bool compress;        /* -c */
	const char *disk;     /* -disk: an OVA's disk */
	bool list;            /* -list: an OVA's disks, no conversion */
};

static const char usage_head[] =
	"Usage: dsc-convert -src SRC -dst DST [options]\n"
	"Convert a disk image in one forward pass.\n"
	"\n"
	"  -src PATH|-          source image ('-' reads standard input)\n"
	"  -dst PATH|-          destination ('-' writes standard output)\n"
	"  -src-fmt FMT         source format (default: detected)\n"
	"  -dst-fmt FMT         destination format (default: raw)\n"
	"  -o KEY=VALUE[,...]   options of the destination format (-o help lists\n"
	"                       them); repeatable\n"
	"  -c                   compress the output (qcow2; VMDK streamOptimized always is)\n"
	"  -prealloc            raw output: allocate the whole disk up front\n"
	"  -p, -progress        show progress on stderr (default on a terminal)\n"
	"  -q, -quiet           no progress\n"
	"  -json                print a JSON summary on stdout (file output only)\n"
	"  -level fast|default|best|N\n"
	"                       VMDK and qcow2 -c compression (N: 1-12); default is\n"
	"                       no larger than qemu-img's output; qcow2 1-3: ISA-L\n"
	"                       (fastest); zstd levels with -o compression_type=zstd\n"
	"  -threads N           compression threads (default: one per CPU)\n"
	"  -max-capacity SIZE   refuse disks larger than SIZE bytes (K, M, G, T, P\n"
	"                       suffixes: 500G, 4T; default and 0: no limit)\n"
	"  -sha256 HEX          fail, leaving no output, unless the source's bytes\n"
	"                       have this SHA-256 (-json reports the output's)\n"
	"  -disk N|ID|FILE      an OVA's disk to convert: its number (from 1), its\n"
	"                       ovf:diskId or its file (default: the first)\n"
	"  -list                list an OVA's disks (with -json: as JSON); no -dst\n"
	"\n"
	"http(s) sources (-src https://host/disk.vmdk):\n"
	"  -cacert FILE         trust the CAs in this PEM file\n"
	"  -insecure            do not verify the server's certificate\n"
	"  -header 'Name: value'  extra request header (repeatable)\n"
	"  -retries N           resume a broken transfer up to N times in a row\n"
	"                       (default 5)\n"
	"  -idle-timeout SECS   resume when no byte arrives for SECS seconds\n"
	"                       (default 60; 0: wait forever)\n"
	"  -formats             list the formats and what dsc does with each\n"
	"  -h, -help            this help;  -version  the version\n"
	"\n";

static const char usage_tail[] =
	"\n"
	"Flags take one or two dashes; a value may follow as the next argument\n"
	"or after '='. Exit status: 0 success, 1 conversion failed, 2 bad usage.\n";

static void print_usage(void)
{
	char rd[256], wr[256];

	fputs(usage_head, stdout);
	printf("Formats read: %s (and recognised, refused by name: every other format\n"
	       "of -formats). Formats written: %s.\n",
	       dsc_format_list(DSC_FMT_READ, rd, sizeof rd),
	       dsc_format_list(DSC_FMT_WRITE, wr, sizeof wr));
	fputs(usage_tail, stdout);
}

/* -formats: one line per table entry, then the options of each writer. */
static void print_formats(void)
{
	const struct dsc_format_info *f;
	const struct dsc_option_info *o;
	size_t i, k;

	printf("%-10s %-5s %-16s %s\n", "FORMAT", "DOES", "ALIASES", "DESCRIPTION");
	for (i = 0; (f = dsc_format_at(i)) != NULL; i++) {
		char aliases[64] = "-", does[8];
		size_t n = 0;

		for (k = 0; f->aliases && f->aliases[k] && n < sizeof aliases; k++)
			n += (size_t)snprintf(aliases + n, sizeof aliases - n, "%s%s", k ? "," : "",
					      f->aliases[k]);
		snprintf(does, sizeof does, "%s%s", f->flags & DSC_FMT_READ ? "r" : "",
			 f->flags & DSC_FMT_WRITE ? "w" : "");
		printf("%-10s %-5s %-16s %s\n", f->name, does[0] ? does : "-", aliases,
		       f->description);
	}
	printf("\nr: read, w: written; '-': recognised and refused by name.\n");
	for (i = 0; (f = dsc_format_at(i)) != NULL; i++) {
		if (!(f->flags & DSC_FMT_WRITE) || !f->options || !f->options->name)
			continue;
		printf("\n%s options (-o):\n", f->name);
		for (o = f->options; o->name; o++)
			printf("  %-14s %s (default %s)\n", o->name, o->help,
			       o->default_value ? o->default_value : "none");
	}
}

/* -o help: the options of the destination format. */
static void print_options(dsc_format fmt)
{
	const struct dsc_format_info *f = dsc_format_get(fmt);
	const struct dsc_option_info *o;
	size_t k;

	if (!f->options || !f->options->name) {
		printf("%s has no options\n", f->name);
		return;
	}
	printf("Options of %s (-o KEY=VALUE[,KEY=VALUE...]):\n", f->name);
	for (o = f->options; o->name; o++) {
		printf("  %-14s %s\n", o->name, o->help);
		if (o->type == DSC_OPTION_ENUM) {
			printf("  %-14s values:", "");
			for (k = 0; o->choices[k]; k++)
				printf("%s %s", k ? "," : "", o->choices[k]);
			printf("; default %s\n", o->default_value);
		} else if (o->type == DSC_OPTION_UINT || o->type == DSC_OPTION_SIZE) {
			printf("  %-14s %llu to %llu; default %s\n", "", (unsigned long long)o->min,
			       (unsigned long long)o->max, o->default_value);
		} else if (o->type == DSC_OPTION_BOOL) {
			printf("  %-14s on or off; default %s\n", "", o->default_value);
		}
	}
}

static void usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void usage_error(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "dsc-convert: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'dsc-convert -help' for more information.\n");
	exit(EXIT_USAGE);
}

/* A -src-fmt / -dst-fmt name: a table entry that reads (writes). */
static dsc_format parse_format(const char *flag, const char *v, unsigned need)
{
	dsc_format f = dsc_format_from_name(v);
	char list[256];

	dsc_format_list(need, list, sizeof list);
	if (f == DSC_FORMAT_UNKNOWN)
		usage_error("%s: unknown format '%s' (%s: %s)", flag, v,
			    need == DSC_FMT_READ ? "readable" : "writable", list);
	if (!(dsc_format_get(f)->flags & need))
		usage_error("%s: %s %s is not supported%s (%s: %s)", flag,
			    need == DSC_FMT_READ ? "reading" : "writing", dsc_format_name(f),
			    dsc_format_get(f)->flags & (DSC_FMT_READ | DSC_FMT_WRITE) ? "" : " yet",
			    need == DSC_FMT_READ ? "readable" : "writable", list);
	return f;
}

static void parse_options(struct config *cfg, const char *v)
{
	struct dsc_error err = {0};

	if (!strcmp(v, "help") || !strcmp(v, "?")) {
		cfg->options_help = true;
		return;
	}
	if (!cfg->options && dsc_optlist_new(&cfg->options, &err) != DSC_OK)
		usage_error("%s", err.message);
	if (dsc_optlist_parse(cfg->options, v, &err) != DSC_OK)
		usage_error("-o: %s", err.message);
}

static int parse_level(const char *v)
{
	struct dsc_error e = {0};
	int level;

	if (dsc_level_parse(v, &level, &e) != DSC_OK)
		usage_error("-%s", e.message); /* "-level must be fast, ..." */
	return level;
}

static unsigned parse_threads(const char *v)
{
	char *end;
	long n = strtol(v, &end, 10);

	if (*v == '\0' || *end != '\0' || n < 1 || n > 256)
		usage_error("-threads: '%s' is not a number from 1 to 256", v);
	return (unsigned)n;
}

static unsigned parse_uint(const char *flag, const char *v, unsigned long max)
{
	char *end;
	unsigned long n;

	errno = 0;
	n = strtoul(v, &end, 10);
	if (*v < '0' || *v > '9' || *end != '\0' || errno || n > max)
		usage_error("%s: '%s' is not a number from 0 to %lu", flag, v, max);
	return (unsigned)n;
}

/* After all flags: -o and -c against the destination format. */
static void check_format_options(struct config *cfg)
{
	struct dsc_error err = {0};

	if (cfg->options_help) {
		print_options(cfg->dst_fmt);
		exit(0);
	}
	if (dsc_format_check_options(cfg->dst_fmt, cfg->options, &err) != DSC_OK)
		usage_error("-o: %s", err.message);
	if (cfg->compress && !(dsc_format_get(cfg->dst_fmt)->flags & DSC_FMT_WRITE_COMPRESSED))
		usage_error("-c: %s output cannot be compressed", dsc_format_name(cfg->dst_fmt));
}

static void parse_args(int argc, char **argv, struct config *cfg)
{
	int i;

	for (i = 1; i < argc; i++) {
		const char *arg = argv[i], *name, *val = NULL, *eq;
		const struct opt *o = NULL;
		size_t n, k;

		if (arg[0] != '-' || arg[1] == '\0')
			usage_error("unexpected argument '%s'", arg);
		name = arg + (arg[1] == '-' ? 2 : 1);
		eq = strchr(name, '=');
		n = eq ? (size_t)(eq - name) : strlen(name);
		for (k = 0; k < sizeof options / sizeof options[0]; k++) {
			if (strlen(options[k].name) == n && !strncmp(options[k].name, name, n)) {
				o = &options[k];
				break;
			}
		}
		if (!o)
			usage_error("unknown option '%s'", arg);
		if (o->has_arg) {
			if (eq)
				val = eq + 1;
			else if (i + 1 < argc)
				val = argv[++i];
			else
				usage_error("option '%s' needs a value", arg);
		} else if (eq) {
			usage_error("option '%s' takes no value", arg);
		}
		switch (o->id) {
		case OPT_SRC: cfg->src = val; break;
		case OPT_DST: cfg->dst = val; break;
		case OPT_SRC_FMT: cfg->src_fmt = parse_format("-src-fmt", val, DSC_FMT_READ); break;
		case OPT_DST_FMT:
			cfg->dst_fmt = parse_format("-dst-fmt", val, DSC_FMT_WRITE);
			break;
		case OPT_OPTIONS: parse_options(cfg, val); break;
		case OPT_COMPRESS: cfg->compress = true; break;
		case OPT_FORMATS: print_formats(); exit(0);
		case OPT_DISK:
			if (!*val)
				usage_error("%s", "-disk: empty");
			cfg->disk = val;
			break;
		case OPT_LIST: cfg->list = true; break;
		case OPT_PREALLOC: cfg->prealloc = true; break;
		case OPT_PROGRESS: cfg->progress = 1; break;
		case OPT_QUIET: cfg->progress = 0; break;
		case OPT_JSON: cfg->json = true; break;
		case OPT_LEVEL: cfg->level = parse_level(val); break;
		case OPT_THREADS: cfg->threads = parse_threads(val); break;
		case OPT_MAX_CAPACITY:
			if (!size_parse(val, &cfg->max_capacity))
				usage_error("-max-capacity: '%s' is not a size (e.g. 500G, 4T)",
					    val);
			break;
		case OPT_CACERT: cfg->url.cacert = val; break;
		case OPT_INSECURE: cfg->url.insecure = true; break;
		case OPT_HEADER:
			if (!strchr(val, ':') || *val == ':')
				usage_error("-header: '%s' is not 'Name: value'", val);
			cfg->headers[cfg->nheaders++] = val;
			break;
		case OPT_RETRIES: cfg->url.retries = parse_uint("-retries", val, 1000); break;
		case OPT_IDLE_TIMEOUT:
			cfg->url.idle_timeout = parse_uint("-idle-timeout", val, 86400);
			break;
		case OPT_SHA256:
			if (!dsc_sha256_hex_valid(val))
				usage_error("-sha256: '%s' is not 64 hex digits", val);
			cfg->sha256 = val;
			/* The digest proves the bytes: a URL without ETag or
			 * Last-Modified may be resumed. */
			cfg->url.resume_without_validator = true;
			break;
		case OPT_HELP: print_usage(); exit(0);
		case OPT_VERSION: printf("dsc-convert %s\n", dsc_version()); exit(0);
		}
	}
	check_format_options(cfg);
	if (!cfg->src)
		usage_error("%s", "missing -src");
	if (cfg->list) {
		if (cfg->dst)
			usage_error("%s", "-list takes no -dst (it converts nothing)");
		if (!*cfg->src)
			usage_error("%s", "-src must not be empty");
		return;
	}
	if (!cfg->dst)
		usage_error("%s", "missing -dst");
	if (!*cfg->src || !*cfg->dst)
		usage_error("%s", "-src and -dst must not be empty");
	if (cfg->json && !strcmp(cfg->dst, "-"))
		usage_error("%s", "-json needs -dst to name a file (stdout carries the image)");
}

/* The temporary output, for the signal handler to remove. */
static const char *volatile temp_to_remove;

static void on_fatal_signal(int sig)
{
	const char *t = temp_to_remove;

	if (t)
		unlink(t);
	signal(sig, SIG_DFL);
	raise(sig);
}

static void install_signals(void)
{
	static const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
	struct sigaction sa;
	size_t i;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_fatal_signal;
	sigemptyset(&sa.sa_mask);
	for (i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
		sigaction(sigs[i], &sa, NULL);
	/* A closed stdout pipe becomes a write error with a message. */
	signal(SIGPIPE, SIG_IGN);
}

static bool on_progress(void *user, const struct dsc_progress *d)
{
	progress_update(user, d);
	return true;
}

/* Seconds rounded to the microsecond. Printed with 15 significant digits
 * (DBL_DIG) the value shows those decimals and no binary noise
 * (0.082454, not 0.082454014999939318). */
#define JSON_SECONDS_FLAGS JSON_REAL_PRECISION(15)
static double json_seconds(double s) { return s > 0 ? (double)(uint64_t)(s * 1e6 + 0.5) / 1e6 : 0; }

static void print_json(const struct config *cfg, const struct dsc_convert_stats *st,
		       const char *sha256)
{
	json_t *o =
		json_pack("{s:s, s:I, s:I, s:f}", "output", cfg->dst, "writtenBytes",
			  (json_int_t)st->bytes_written, "capacityBytes", (json_int_t)st->capacity,
			  "elapsedSeconds", json_seconds(st->seconds));

	if (o && sha256)
		json_object_set_new(o, "sha256", json_string(sha256));
	if (o && st->src_format)
		json_object_set_new(o, "sourceFormat",
				    json_string(dsc_format_name(st->src_format)));
	if (o && st->src_compression)
		json_object_set_new(o, "sourceCompression",
				    json_string(dsc_format_name(st->src_compression)));
	if (o && st->src_archive)
		json_object_set_new(o, "sourceArchive",
				    json_string(dsc_format_name(st->src_archive)));
	if (o) {
		json_dumpf(o, stdout, JSON_COMPACT | JSON_SECONDS_FLAGS);
		fputc('\n', stdout);
		json_decref(o);
	}
}

dsc_err cli_open_source(const char *src, const struct dsc_url_opts *url, dsc_stream **in,
			struct dsc_error *err)
{
	dsc_stream *raw = NULL;
	dsc_err rc;

	if (!strcmp(src, "-"))
		rc = dsc_stream_open_fd(STDIN_FILENO, "stdin", 0, &raw, err);
	else if (dsc_looks_like_url(src))
		rc = dsc_stream_open_url(src, url, &raw, err);
	else {
		/* A VMDK descriptor's extents are looked for beside a local
		 * source, and only there (never for stdin or a URL). */
		const char *slash = strrchr(src, '/');
		char *dir = slash ? strndup(src, (size_t)(slash - src) + 1) : NULL;

		rc = dsc_stream_open_file(src, &raw, err);
		if (rc == DSC_OK && slash && !dir)
			rc = dsc_error_set(err, DSC_ERR_NOMEM, ENOMEM, "out of memory");
		if (rc == DSC_OK)
			rc = dsc_stream_set_extent_dir(raw, dir ? dir : ".", err);
		free(dir);
		if (rc != DSC_OK) {
			dsc_stream_close(raw);
			raw = NULL;
		}
	}
	*in = raw;
	return rc;
}

static dsc_err open_source(const struct config *cfg, dsc_stream **in, struct dsc_error *err)
{
	dsc_stream *raw = NULL;
	dsc_err rc = cli_open_source(cfg->src, &cfg->url, &raw, err);

	if (rc != DSC_OK || !cfg->sha256) {
		*in = raw;
		return rc;
	}
	/* Every byte read is hashed; the output is gated on the digest. */
	rc = dsc_stream_open_sha256(raw, DSC_SHA256_OWN, in, err);
	if (rc != DSC_OK)
		dsc_stream_close(raw);
	return rc;
}

/* The SHA-256 of a finished file, read back: for outputs that were not
 * written in one forward sequence. */
static dsc_err hash_file(const char *path, char hex[DSC_SHA256_HEX_LEN + 1], struct dsc_error *err)
{
	dsc_stream *f = NULL, *h = NULL;
	uint64_t n;
	dsc_err rc;

	rc = dsc_stream_open_file(path, &f, err);
	if (rc == DSC_OK)
		rc = dsc_stream_open_sha256(f, DSC_SHA256_OWN, &h, err);
	if (rc != DSC_OK) {
		dsc_stream_close(f);
		return rc;
	}
	rc = dsc_stream_skip(h, UINT64_MAX, &n, err);
	if (rc == DSC_OK)
		rc = dsc_stream_sha256_hex(h, hex, err);
	dsc_stream_close(h);
	return rc;
}

static dsc_err open_destination(const struct config *cfg, dsc_stream **out, struct dsc_error *err)
{
	struct stat st;

	if (!strcmp(cfg->dst, "-")) {
		if (isatty(STDOUT_FILENO))
			return dsc_error_set(
				err, DSC_ERR_INVAL, 0,
				"stdout: refusing to write a disk image to a terminal");
		return dsc_stream_open_fd(STDOUT_FILENO, "stdout", 0, out, err);
	}
	/* An existing device or FIFO is written in place, like qemu-img
	 * writing to /dev/sdb: replacing it by a regular file would be wrong. */
	if (stat(cfg->dst, &st) == 0 && !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) {
		int fd = open(cfg->dst, O_WRONLY | O_CLOEXEC);
		dsc_err rc;

		if (fd < 0)
			return dsc_error_set(err, dsc_err_from_errno(errno), errno, "%s: %s",
					     cfg->dst, strerror(errno));
		rc = dsc_stream_open_fd(fd, cfg->dst, DSC_FD_OWN, out, err);
		if (rc != DSC_OK)
			close(fd);
		return rc;
	}
	/* A symlink stays a link: its target is replaced, as when qemu-img
	 * writes through it (a dangling link is replaced itself). */
	if (lstat(cfg->dst, &st) == 0 && S_ISLNK(st.st_mode)) {
		char *target = realpath(cfg->dst, NULL);

		if (target) {
			dsc_err rc = dsc_stream_create_file(target, DSC_CREATE_REPLACE, out, err);

			free(target);
			return rc;
		}
	}
	return dsc_stream_create_file(cfg->dst, DSC_CREATE_REPLACE, out, err);
}

/* -list: an OVA's disks from its OVF descriptor, one line each (or JSON). */
static int list_disks(struct config *cfg)
{
	struct dsc_ova_disk disks[64];
	struct dsc_error err = {0};
	dsc_stream *in = NULL;
	size_t n = 0, i;
	dsc_err rc;

	rc = open_source(cfg, &in, &err);
	if (rc == DSC_OK)
		rc = dsc_ova_list(in, disks, sizeof disks / sizeof disks[0], &n, &err);
	dsc_stream_close(in);
	free(cfg->headers);
	dsc_optlist_free(cfg->options);
	if (rc != DSC_OK) {
		fprintf(stderr, "dsc-convert: %s\n",
			err.message[0] ? err.message : dsc_strerror(rc));
		return EXIT_FAILED;
	}
	if (cfg->json) {
		json_t *a = json_array();

		for (i = 0; a && i < n; i++) {
			json_t *d =
				json_pack("{s:I, s:s, s:s, s:s, s:I, s:b}", "disk",
					  (json_int_t)(i + 1), "id", disks[i].id, "file",
					  disks[i].file, "format", disks[i].format, "capacityBytes",
					  (json_int_t)disks[i].capacity, "gzip", disks[i].gzip);

			if (d && disks[i].chunk_size)
				json_object_set_new(d, "chunkSize",
						    json_integer((json_int_t)disks[i].chunk_size));
			json_array_append_new(a, d);
		}
		if (a) {
			json_dumpf(a, stdout, JSON_COMPACT);
			fputc('\n', stdout);
			json_decref(a);
		}
		return 0;
	}
	printf("%-5s %-20s %-30s %-20s %s\n", "DISK", "ID", "FILE", "FORMAT", "CAPACITY");
	for (i = 0; i < n; i++)
		printf("%-5zu %-20s %-30s %-20s %llu%s\n", i + 1, disks[i].id, disks[i].file,
		       disks[i].format, (unsigned long long)disks[i].capacity,
		       disks[i].gzip ? " (gzip)" : "");
	return 0;
}

int convert_main(int argc, char **argv)
{
	struct config cfg = {.progress = -1, .dst_fmt = DSC_FORMAT_RAW};
	struct dsc_convert_opts copts = {0};
	struct dsc_convert_stats stats;
	struct dsc_error err = {0};
	struct progress prog = {.out = stderr};
	dsc_stream *in = NULL, *out = NULL, *hashed_out = NULL, *s;
	char sha256[DSC_SHA256_HEX_LEN + 1] = "";
	dsc_err rc;

	dsc_url_opts_init(&cfg.url);
	cfg.headers = calloc((size_t)argc + 1, sizeof *cfg.headers);
	if (!cfg.headers) {
		fprintf(stderr, "dsc-convert: out of memory\n");
		return EXIT_FAILED;
	}
	cfg.url.headers = cfg.headers;
	parse_args(argc, argv, &cfg);
	if (cfg.list)
		return list_disks(&cfg);
	if (cfg.progress < 0)
		cfg.progress = isatty(STDERR_FILENO);
	install_signals();

	rc = open_source(&cfg, &in, &err);
	if (rc == DSC_OK)
		rc = open_destination(&cfg, &out, &err);
	if (rc == DSC_OK)
		temp_to_remove = dsc_stream_temp_path(out);
	/* -json reports the output's digest: hash what is written. */
	if (rc == DSC_OK && cfg.json) {
		rc = dsc_stream_open_sha256(out, DSC_SHA256_WRITE | DSC_SHA256_OWN, &s, &err);
		if (rc == DSC_OK)
			out = hashed_out = s;
	}
	if (rc == DSC_OK && cfg.sha256) {
		rc = dsc_stream_open_sha256_gate(out, in, cfg.sha256, DSC_SHA256_OWN, &s, &err);
		if (rc == DSC_OK)
			out = s;
	}
	if (rc == DSC_OK) {
		copts.src_fmt = cfg.src_fmt;
		copts.dst_fmt = cfg.dst_fmt;
		copts.prealloc = cfg.prealloc;
		copts.level = cfg.level;
		copts.threads = cfg.threads;
		copts.options = cfg.options;
		copts.compress = cfg.compress;
		copts.max_capacity = cfg.max_capacity;
		copts.disk = cfg.disk;
		if (cfg.progress) {
			copts.progress = on_progress;
			copts.progress_user = &prog;
		}
		rc = dsc_convert(in, out, &copts, &stats, &err);
		progress_end(&prog);
	}
	if (rc == DSC_OK && hashed_out && dsc_stream_sha256_hex(hashed_out, sha256, NULL) != DSC_OK)
		rc = hash_file(cfg.dst, sha256, &err);
	temp_to_remove = NULL;
	dsc_stream_close(out);
	dsc_stream_close(in);
	free(cfg.headers);
	dsc_optlist_free(cfg.options);
	if (rc != DSC_OK) {
		fprintf(stderr, "dsc-convert: %s\n",
			err.message[0] ? err.message : dsc_strerror(rc));
		return EXIT_FAILED;
	}
	if (cfg.json)
		print_json(&cfg, &stats, sha256[0] ? sha256 : NULL);
	return 0;
}
