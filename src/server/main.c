/* main.c - dsc-server: options, the listening socket, then the pool.
 *
 * Options fill srv_cfg (checked: directories resolved and writable, the
 * import address policy built), then the listening socket is opened
 * (listen.c) and made non-blocking, because every worker polls and accepts
 * on it (worker.c), the shared scoreboard is mapped, and the master runs
 * the pool (pool.c) until it is told to stop.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "server.h"

struct srv_config srv_cfg;
struct srv_scoreboard *srv_board;
dsc_netpolicy *srv_policy;
int srv_my_slot = -1; /* set in each worker (worker.c) */

static void usage(FILE *f)
{
	fprintf(f, "Usage: dsc-server -outdir DIR [options]\n"
		   "A pre-forked FastCGI server converting disk images (raw, VMDK "
		   "streamOptimized).\n\n"
		   "  -outdir DIR            where /upload and /import write "
		   "(default /var/lib/dsc)\n"
		   "  -export-root DIR       /export serves files under DIR "
		   "(repeatable; default: outdir)\n"
		   "  -import-allow-net CIDR let /import reach these private or "
		   "special addresses\n"
		   "                         (repeatable; e.g. 10.0.0.0/8)\n"
		   "  -import-retries N      resume a broken /import download up "
		   "to N times (default 5)\n"
		   "  -import-idle-timeout S give up on a download after S "
		   "seconds without data (60)\n"
		   "  -max-capacity SIZE     largest virtual disk accepted "
		   "(default 4T; K, M, G, T, P)\n"
		   "  -workers N             worker processes (default: number "
		   "of CPUs)\n"
		   "  -codec-threads N       VMDK (de)compression threads per "
		   "conversion (default 1:\n"
		   "                         the workers run in parallel already; "
		   "0: one per CPU)\n"
		   "  -grace SECONDS         on SIGTERM, time left to running "
		   "requests (default 30)\n"
		   "  -max-requests N        recycle a worker after N requests "
		   "(default 0: never)\n"
		   "  -listen ADDR           unix:/path or HOST:PORT; without it, "
		   "the listening\n"
		   "                         socket on fd 0 (spawn-fcgi)\n"
		   "  -socket-group NAME     group of the unix socket (mode 0660)\n"
		   "  -version               print the version\n\n"
		   "Signals: TERM/INT stop gracefully, HUP replaces the workers "
		   "one by one.\n");
}

/* "4T", "512M", "1GiB", "1000000" -> bytes; false when malformed. */
static bool parse_size(const char *s, uint64_t *out)
{
	unsigned long long v;
	unsigned shift = 0;
	char *end;

	errno = 0;
	if (*s == '-' || *s == '\0')
		return false;
	v = strtoull(s, &end, 10);
	if (errno != 0 || end == s)
		return false;
	switch (*end) {
	case 'k':
	case 'K':
		shift = 10;
		end++;
		break;
	case 'm':
	case 'M':
		shift = 20;
		end++;
		break;
	case 'g':
	case 'G':
		shift = 30;
		end++;
		break;
	case 't':
	case 'T':
		shift = 40;
		end++;
		break;
	case 'p':
	case 'P':
		shift = 50;
		end++;
		break;
	}
	if (shift && (strcasecmp(end, "ib") == 0 || strcasecmp(end, "b") == 0))
		end += strlen(end);
	if (*end != '\0' || (shift && v > (UINT64_MAX >> shift)))
		return false;
	*out = (uint64_t)v << shift;
	return true;
}

static bool parse_uint(const char *s, unsigned long max, unsigned long *out)
{
	unsigned long v;
	char *end;

	errno = 0;
	if (*s == '-' || *s == '\0')
		return false;
	v = strtoul(s, &end, 10);
	if (errno != 0 || *end != '\0' || v > max)
		return false;
	*out = v;
	return true;
}

static char *resolve_dir(const char *what, const char *dir)
{
	char *real = realpath(dir, NULL);
	struct stat st;

	if (real == NULL || stat(real, &st) != 0 || !S_ISDIR(st.st_mode)) {
		fprintf(stderr, "dsc-server: %s %s: %s\n", what, dir,
			real ? "not a directory" : strerror(errno));
		free(real);
		return NULL;
	}
	return real;
}

enum {
	O_OUTDIR = 256,
	O_ROOT,
	O_NET,
	O_MAXCAP,
	O_WORKERS,
	O_GRACE,
	O_MAXREQ,
	O_LISTEN,
	O_GROUP,
	O_VERSION,
	O_HELP,
	O_RETRIES,
	O_IDLE,
	O_CODEC
};

/* The -export-root values as given, resolved by check_dirs(). */
static const char *roots[SRV_MAX_ROOTS];
static int nroots;

static void set_defaults(long ncpu)
{
	srv_cfg.outdir = "/var/lib/dsc";
	srv_cfg.max_capacity = (uint64_t)4 << 40;
	srv_cfg.workers = ncpu > 0 ? (int)ncpu : 2;
	srv_cfg.grace = 30;
	srv_cfg.codec_threads = 1;
	srv_cfg.import_retries = 5;
	srv_cfg.import_idle_timeout = 60;
}

/* A repeatable option: list[(*n)++] = arg, at most max of them. */
static bool opt_append(const char **list, int *n, int max, const char *arg, const char *name)
{
	if (*n >= max) {
		fprintf(stderr, "dsc-server: at most %d %s\n", max, name);
		return false;
	}
	list[(*n)++] = arg;
	return true;
}

/* One option with a number for a value; false after a message. */
static bool set_number(int c, const char *arg)
{
	unsigned long v;

	switch (c) {
	case O_RETRIES:
	case O_IDLE:
		if (!parse_uint(arg, 100000, &v)) {
			fprintf(stderr, "dsc-server: %s: a number\n",
				c == O_IDLE ? "-import-idle-timeout" : "-import-retries");
			return false;
		}
		if (c == O_IDLE)
			srv_cfg.import_idle_timeout = (unsigned)v;
		else
			srv_cfg.import_retries = (unsigned)v;
		return true;
	case O_WORKERS:
		if (!parse_uint(arg, SRV_MAX_SLOTS - 1, &v) || v == 0) {
			fprintf(stderr, "dsc-server: -workers: 1-%d\n", SRV_MAX_SLOTS - 1);
			return false;
		}
		srv_cfg.workers = (int)v;
		return true;
	case O_CODEC:
		if (!parse_uint(arg, SRV_MAX_CODEC_THREADS, &v)) {
			fprintf(stderr, "dsc-server: -codec-threads: 0-%d (0: one per CPU)\n",
				SRV_MAX_CODEC_THREADS);
			return false;
		}
		srv_cfg.codec_threads = (unsigned)v;
		return true;
	case O_GRACE:
		if (!parse_uint(arg, 86400, &v)) {
			fprintf(stderr, "dsc-server: -grace: seconds, 0-86400\n");
			return false;
		}
		srv_cfg.grace = (int)v;
		return true;
	case O_MAXREQ:
		if (!parse_uint(arg, ULONG_MAX, &v)) {
			fprintf(stderr, "dsc-server: -max-requests: a number\n");
			return false;
		}
		srv_cfg.max_requests = v;
		return true;
	}
	return false;
}

/* Read the options into srv_cfg. -1: go on; else the exit code. */
static int parse_options(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"outdir", required_argument, NULL, O_OUTDIR},
		{"export-root", required_argument, NULL, O_ROOT},
		{"import-allow-net", required_argument, NULL, O_NET},
		{"max-capacity", required_argument, NULL, O_MAXCAP},
		{"import-retries", required_argument, NULL, O_RETRIES},
		{"import-idle-timeout", required_argument, NULL, O_IDLE},
		{"workers", required_argument, NULL, O_WORKERS},
		{"codec-threads", required_argument, NULL, O_CODEC},
		{"grace", required_argument, NULL, O_GRACE},
		{"max-requests", required_argument, NULL, O_MAXREQ},
		{"listen", required_argument, NULL, O_LISTEN},
		{"socket-group", required_argument, NULL, O_GROUP},
		{"version", no_argument, NULL, O_VERSION},
		{"help", no_argument, NULL, O_HELP},
		{NULL, 0, NULL, 0},
	};
	bool ok = true;
	int c;

	while (ok && (c = getopt_long_only(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case O_OUTDIR: srv_cfg.outdir = optarg; break;
		case O_ROOT:
			ok = opt_append(roots, &nroots, SRV_MAX_ROOTS, optarg, "-export-root");
			break;
		case O_NET:
			ok = opt_append(srv_cfg.allow_nets, &srv_cfg.n_allow_nets, SRV_MAX_NETS,
					optarg, "-import-allow-net");
			break;
		case O_MAXCAP:
			ok = parse_size(optarg, &srv_cfg.max_capacity);
			if (!ok)
				fprintf(stderr, "dsc-server: -max-capacity %s: not a size\n",
					optarg);
			break;
		case O_RETRIES:
		case O_IDLE:
		case O_WORKERS:
		case O_CODEC:
		case O_GRACE:
		case O_MAXREQ: ok = set_number(c, optarg); break;
		case O_LISTEN: srv_cfg.listen = optarg; break;
		case O_GROUP: srv_cfg.socket_group = optarg; break;
		case O_VERSION:
			printf("dsc-server %s (libdsc %s)\n", PACKAGE_VERSION, dsc_version());
			return 0;
		case 'h':
		case O_HELP: usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!ok)
		return 2;
	if (optind < argc) {
		fprintf(stderr, "dsc-server: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	return -1;
}

/* -outdir must be a writable directory; the export roots (default: the
 * outdir) directories. All are resolved. */
static bool check_dirs(void)
{
	int i;

	srv_cfg.outdir = resolve_dir("-outdir", srv_cfg.outdir);
	if (srv_cfg.outdir == NULL)
		return false;
	if (access(srv_cfg.outdir, W_OK | X_OK) != 0) {
		fprintf(stderr, "dsc-server: -outdir %s: not writable: %s\n", srv_cfg.outdir,
			strerror(errno));
		return false;
	}
	if (nroots == 0)
		roots[nroots++] = srv_cfg.outdir;
	for (i = 0; i < nroots; i++) {
		srv_cfg.export_roots[i] = resolve_dir("-export-root", roots[i]);
		if (srv_cfg.export_roots[i] == NULL)
			return false;
	}
	srv_cfg.n_export_roots = nroots;
	return true;
}

/* The /import address policy with the -import-allow-net exceptions; the
 * exit code on failure, else -1. */
static int build_policy(void)
{
	struct dsc_error err = {0};
	int i;

	if (dsc_netpolicy_new(&srv_policy, &err) != DSC_OK) {
		fprintf(stderr, "dsc-server: %s\n", err.message);
		return 1;
	}
	for (i = 0; i < srv_cfg.n_allow_nets; i++)
		if (dsc_netpolicy_add(srv_policy, srv_cfg.allow_nets[i], true, &err) != DSC_OK) {
			fprintf(stderr, "dsc-server: -import-allow-net: %s\n", err.message);
			return 2;
		}
	return -1;
}

/* The scoreboard every process of the pool shares. */
static bool map_scoreboard(void)
{
	srv_board = mmap(NULL, sizeof(*srv_board), PROT_READ | PROT_WRITE,
			 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (srv_board == MAP_FAILED) {
		perror("dsc-server: mmap");
		return false;
	}
	memset(srv_board, 0, sizeof(*srv_board));
	srv_board->master_pid = getpid();
	srv_board->start = srv_now();
	srv_board->pool_size = srv_cfg.workers;
	return true;
}

int main(int argc, char **argv)
{
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	int rc;

	set_defaults(ncpu);
	rc = parse_options(argc, argv);
	if (rc >= 0)
		return rc;
	if (srv_cfg.workers > ncpu * 64 && ncpu > 0)
		fprintf(stderr, "dsc-server: warning: %d workers on %ld CPUs\n", srv_cfg.workers,
			ncpu);
	if (!check_dirs())
		return 2;
	rc = build_policy();
	if (rc >= 0)
		return rc;
	srv_cfg.listen_fd = srv_listen_open();
	if (srv_cfg.listen_fd < 0)
		return 1;
	/* Every worker polls, then accepts without blocking (worker.c). */
	fcntl(srv_cfg.listen_fd, F_SETFL, fcntl(srv_cfg.listen_fd, F_GETFL) | O_NONBLOCK);
	if (!map_scoreboard())
		return 1;
	rc = pool_run();
	srv_unlink_socket(); /* normally done when stopping */
	dsc_netpolicy_free(srv_policy);
	return rc;
}
