/* worker.c - one worker of the pool: accept, dispatch, log, repeat.
 *
 * Signals and libfcgi do not mix well (see docs/fastcgi-and-web-servers.md):
 * libfcgi's own SIGTERM handler makes every later read fail, and a handler
 * that interrupts its reads breaks the request in flight. So a worker keeps
 * SIGTERM/SIGINT/SIGUSR1 blocked at all times except inside ppoll(), which
 * waits for a connection with the signals atomically unblocked: a TERM
 * while idle ends the worker at once, a TERM during a request is delivered
 * when the request is done. There is no window in which a signal can be
 * lost (the classic race between checking a flag and blocking in accept).
 *
 * The worker therefore accepts connections itself (the listening socket is
 * non-blocking and shared by all workers) and gives each one to libfcgi by
 * setting the request's ipcFd: FCGX_Accept_r() only accepts when no
 * connection is open. Its listen_sock is /dev/null, so that if libfcgi ever
 * drops a malformed connection and tries to accept again it fails at once
 * (ENOTSOCK) instead of spinning on the non-blocking socket.
 *
 * Each request ends with one log line on stderr, written with a single
 * write() so lines from different workers never interleave.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "server.h"

#define PARAMS_TIMEOUT 10 /* seconds */

static volatile sig_atomic_t w_stop;

static void on_stop(int sig)
{
	(void)sig;
	w_stop = 1;
}

/* Append `s` to the log line, escaping what could break the line or its
 * fields apart (the path is client-controlled and decoded by nginx). */
static size_t put_quoted(char *out, size_t pos, size_t cap, const char *s, bool field)
{
	for (; *s != '\0' && pos + 5 < cap; s++) {
		unsigned char c = (unsigned char)*s;

		if (field && c == ' ') {
			pos += (size_t)snprintf(out + pos, cap - pos, "\\x%02x", c);
		} else if (c == '"' || c == '\\') {
			out[pos++] = '\\';
			out[pos++] = (char)c;
		} else if (c < 0x20 || c == 0x7f) {
			pos += (size_t)snprintf(out + pos, cap - pos, "\\x%02x", c);
		} else {
			out[pos++] = (char)c;
		}
	}
	out[pos] = '\0';
	return pos;
}

static void log_request(const struct srv_request *rq, double secs)
{
	char err[700] = "", method[80], path[1200];

	if (rq->error[0] != '\0') {
		size_t p = (size_t)snprintf(err, sizeof(err), " error=\"");

		p = put_quoted(err, p, sizeof(err) - 2, rq->error, false);
		err[p++] = '"';
		err[p] = '\0';
	}
	put_quoted(method, 0, sizeof(method), rq->method, true);
	put_quoted(path, 0, sizeof(path), rq->path, true);
	srv_log("%s %s %d in=%llu out=%llu %.3fs%s%s", method, path, rq->status,
		(unsigned long long)rq->bytes_in, (unsigned long long)rq->bytes_out, secs,
		rq->abort_conn ? " aborted" : "", err);
}

/* The reply broke off after its headers: make the web server fail the
 * response. Closing the connection without FCGI_END_REQUEST is not enough:
 * nginx 1.22 (unbuffered) takes that as a normal end, sends the closing
 * chunk of a chunked reply (a short file that looks complete) and, with a
 * Content-Length, leaves the client waiting for bytes that never come.
 * A record header with protocol version 0 after the last complete record
 * is a protocol error to nginx ("upstream sent unsupported FastCGI protocol
 * version"), which then drops the client connection mid-body. */
static void abort_connection(FCGX_Request *req)
{
	static const unsigned char bad_record[8] = {0};

	FCGX_FFlush(req->out);
	(void)!write(req->ipcFd, bad_record, sizeof(bad_record));
	shutdown(req->ipcFd, SHUT_RDWR);
}

static void handle(FCGX_Request *req)
{
	struct srv_request rq;
	const char *uri;
	double t0 = srv_now();

	memset(&rq, 0, sizeof(rq));
	rq.fcgx = req;
	uri = FCGX_GetParam("REQUEST_METHOD", req->envp);
	snprintf(rq.method, sizeof(rq.method), "%s", uri ? uri : "-");
	rq.query = FCGX_GetParam("QUERY_STRING", req->envp);
	/* nginx's DOCUMENT_URI is decoded and normalized; else the raw
	 * REQUEST_URI without its query (Debian's fastcgi_params has no
	 * PATH_INFO). */
	uri = FCGX_GetParam("DOCUMENT_URI", req->envp);
	if (uri != NULL && *uri != '\0') {
		snprintf(rq.path, sizeof(rq.path), "%s", uri);
	} else {
		uri = FCGX_GetParam("REQUEST_URI", req->envp);
		if (uri == NULL)
			uri = FCGX_GetParam("SCRIPT_NAME", req->envp);
		snprintf(rq.path, sizeof(rq.path), "%.*s", uri ? (int)strcspn(uri, "?") : 1,
			 uri ? uri : "/");
	}
	routes_dispatch(&rq);
	if (rq.status == 0)
		rq.status = 200;
	if (rq.abort_conn)
		abort_connection(req);
	FCGX_Finish_r(req);
	log_request(&rq, srv_now() - t0);
}

/* Our handlers go in before FCGX_Init(), which then leaves SIGTERM and
 * SIGUSR1 alone. No SA_RESTART: ppoll() must return. TERM, INT and USR1
 * stay blocked except inside ppoll(), with *waitmask. */
static void worker_signals(sigset_t *waitmask)
{
	struct sigaction sa;
	sigset_t blocked;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);
	signal(SIGHUP, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGCHLD, SIG_DFL);
	sigemptyset(&blocked);
	sigaddset(&blocked, SIGTERM);
	sigaddset(&blocked, SIGINT);
	sigaddset(&blocked, SIGUSR1);
	sigprocmask(SIG_SETMASK, &blocked, NULL);
	sigemptyset(waitmask); /* inside ppoll() everything is deliverable */
}

/* Wait for a connection and accept it: its fd, or -1 to look at w_stop
 * and the master again. Exits on an accept error that will not pass. */
static int accept_one(const sigset_t *waitmask)
{
	struct pollfd pfd = {.fd = srv_cfg.listen_fd, .events = POLLIN};
	struct timespec tick = {1, 0};
	int fd;

	if (ppoll(&pfd, 1, &tick, waitmask) <= 0)
		return -1; /* timeout, or EINTR: w_stop says which */
	fd = accept4(srv_cfg.listen_fd, NULL, NULL, SOCK_CLOEXEC);
	if (fd >= 0)
		return fd;
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == ECONNABORTED ||
	    errno == EPROTO)
		return -1;
	if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
		srv_log("worker: accept: %s", strerror(errno));
		sleep(1);
		return -1;
	}
	srv_log("worker: accept: %s", strerror(errno));
	_exit(2);
}

/* Hand the connection to libfcgi (see the top of the file). A peer that
 * connects and sends no request would pin this worker: the begin record
 * and params must arrive within PARAMS_TIMEOUT. The body and reply have no
 * such limit (the web server's own timeouts govern slow clients). False
 * when libfcgi dropped a malformed connection. */
static bool hand_over(FCGX_Request *req, int fd)
{
	static const struct timeval params_timeout = {PARAMS_TIMEOUT, 0};
	static const struct timeval no_timeout = {0, 0};

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &params_timeout, sizeof(params_timeout));
	req->ipcFd = fd;
	req->keepConnection = 1;
	if (FCGX_Accept_r(req) >= 0) {
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &no_timeout, sizeof(no_timeout));
		return true;
	}
	if (req->ipcFd >= 0) {
		close(req->ipcFd);
		req->ipcFd = -1;
	}
	req->keepConnection = 0;
	return false;
}

/* One request, counted in the scoreboard. */
static void serve(FCGX_Request *req, struct srv_slot *me)
{
	me->busy = 1;
	handle(req);
	me->busy = 0;
	if (req->ipcFd >= 0) {
		/* FCGI_KEEP_CONN: a kept connection would pin this worker; the
		 * docs say never to enable it. */
		close(req->ipcFd);
		req->ipcFd = -1;
	}
	me->requests++;
	__atomic_add_fetch(&srv_board->served, 1, __ATOMIC_RELAXED);
}

void worker_main(int slot)
{
	struct srv_slot *me = &srv_board->slots[slot];
	sigset_t waitmask;
	FCGX_Request req;
	unsigned long served = 0;
	int nullfd, fd;

	srv_my_slot = slot;
	worker_signals(&waitmask);
	/* The master dying takes us with it (after the current request). */
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() != srv_board->master_pid)
		_exit(0);
	me->pid = getpid();
	if (FCGX_Init() != 0) {
		srv_log("worker: FCGX_Init failed");
		_exit(3);
	}
	nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	FCGX_InitRequest(&req, nullfd, 0);
	while (!w_stop) {
		if (srv_cfg.max_requests && served >= srv_cfg.max_requests)
			break;
		if (getppid() != srv_board->master_pid)
			break;
		fd = accept_one(&waitmask);
		if (fd < 0 || !hand_over(&req, fd))
			continue;
		serve(&req, me);
		served++;
	}
	_exit(0);
}
