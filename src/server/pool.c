/* pool.c - the master: forks the workers, reaps and replaces them, stops.
 *
 * Modelled on nginx's master cycle and php-fpm's children: signal handlers
 * only set a flag and write a byte to a self-pipe; everything else happens
 * in the loop of pool_run(), which sleeps in poll() on that pipe and, as
 * nginx's ngx_master_process_cycle() does, runs one step per turn: reap,
 * then stop, or replace and fill the pool. The master never calls
 * FCGX_Init() (its SIGTERM handler would make the master ignore TERM and
 * every later worker exit at once).
 *
 * - A worker that dies is replaced at once, unless workers keep crashing
 *   (CRASH_BURST abnormal exits within CRASH_WINDOW seconds): then respawns
 *   are delayed, 1 s doubling up to BACKOFF_MAX, until things calm down.
 *   A killed worker's temporary output file is removed here.
 * - SIGHUP replaces the workers one by one: a new worker starts, then the
 *   old one gets TERM and leaves after its current request. The listening
 *   socket stays open in the master throughout, so no request is dropped.
 * - SIGTERM/SIGINT: no more respawns, TERM to every worker (idle ones leave
 *   at once, busy ones after their request), KILL after -grace seconds;
 *   the master returns after the last worker. A second TERM/INT kills
 *   the workers at once.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "server.h"

#define CRASH_WINDOW 10.0
#define CRASH_BURST 5
#define BACKOFF_MAX 32.0
#define CALM_PERIOD 60.0

static volatile sig_atomic_t got_term, got_hup, got_chld;
static int selfpipe[2] = {-1, -1};

struct mslot {
	pid_t pid;
	bool retiring; /* got TERM as part of a SIGHUP replacement */
	bool replace;  /* to be replaced by the current SIGHUP round */
};

static struct mslot ms[SRV_MAX_SLOTS];

static void on_signal(int sig)
{
	int saved = errno;

	if (sig == SIGTERM || sig == SIGINT)
		got_term++;
	else if (sig == SIGHUP)
		got_hup = 1;
	else if (sig == SIGCHLD)
		got_chld = 1;
	(void)!write(selfpipe[1], "", 1);
	errno = saved;
}

static int nslots(void)
{
	/* the pool plus one slot for a SIGHUP replacement */
	return srv_cfg.workers + 1;
}

static bool spawn(int slot)
{
	sigset_t all, old;
	pid_t pid;

	memset(&srv_board->slots[slot], 0, sizeof(srv_board->slots[slot]));
	/* Block everything so the child cannot run a master handler before
	 * it has installed its own. */
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, &old);
	pid = fork();
	if (pid == 0) {
		signal(SIGTERM, SIG_DFL);
		signal(SIGINT, SIG_DFL);
		signal(SIGHUP, SIG_DFL);
		signal(SIGCHLD, SIG_DFL);
		close(selfpipe[0]);
		close(selfpipe[1]);
		worker_main(slot);
	}
	sigprocmask(SIG_SETMASK, &old, NULL);
	if (pid < 0) {
		srv_log("master: fork: %s", strerror(errno));
		return false;
	}
	ms[slot].pid = pid;
	ms[slot].retiring = false;
	ms[slot].replace = false;
	srv_board->slots[slot].pid = pid;
	return true;
}

static void signal_all(int sig)
{
	int i;

	for (i = 0; i < nslots(); i++)
		if (ms[i].pid > 0)
			kill(ms[i].pid, sig);
}

static int count(bool include_retiring)
{
	int i, n = 0;

	for (i = 0; i < nslots(); i++)
		if (ms[i].pid > 0 && (include_retiring || !ms[i].retiring))
			n++;
	return n;
}

/* The master's state between two turns of its loop. */
struct master {
	double next_spawn;   /* no spawn before this (crash back-off) */
	double backoff;      /* the current back-off delay, 0: none */
	double window_start; /* start of the current crash window */
	double last_crash;
	int crashes; /* abnormal exits in the window */
	bool stopping;
	bool killed;      /* SIGKILL went out */
	double deadline;  /* end of the grace period */
	double last_term; /* last TERM round while stopping */
};

static struct master m;

static bool install_signals(void)
{
	struct sigaction sa;

	if (pipe2(selfpipe, O_CLOEXEC | O_NONBLOCK) != 0) {
		srv_log("master: pipe: %s", strerror(errno));
		return false;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGCHLD, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGUSR1, SIG_IGN);
	return true;
}

/* A worker ended abnormally: say how, and remove its temporary output. */
static void log_crash(int i, pid_t pid, int st)
{
	const char *tmp = srv_board->slots[i].temp;

	if (WIFSIGNALED(st))
		srv_log("master: worker %d killed by signal %d", (int)pid, WTERMSIG(st));
	else
		srv_log("master: worker %d exited with status %d", (int)pid, WEXITSTATUS(st));
	if (tmp[0] != '\0' && unlink(tmp) == 0)
		srv_log("master: removed %s", tmp);
}

/* Count a crash that was not asked for; delay respawns when they keep
 * coming. */
static void count_crash(double now)
{
	if (now - m.window_start > CRASH_WINDOW) {
		m.window_start = now;
		m.crashes = 0;
	}
	m.last_crash = now;
	/* Workers dying together (one event) or while a delay runs count
	 * once. */
	if (++m.crashes >= CRASH_BURST && now >= m.next_spawn) {
		m.backoff = m.backoff == 0 ? 1 : m.backoff * 2;
		if (m.backoff > BACKOFF_MAX)
			m.backoff = BACKOFF_MAX;
		m.next_spawn = now + m.backoff;
		srv_log("master: workers keep crashing; next start in %.0f s", m.backoff);
	}
}

/* Collect every worker that ended and free its slot. */
static void reap(double now)
{
	pid_t pid;
	int st, i;

	got_chld = 0;
	while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
		bool crash = !(WIFEXITED(st) && WEXITSTATUS(st) == 0);

		for (i = 0; i < nslots(); i++)
			if (ms[i].pid == pid)
				break;
		if (i == nslots())
			continue;
		if (crash)
			log_crash(i, pid, st);
		if (crash && !ms[i].retiring && !m.stopping)
			count_crash(now);
		ms[i].pid = 0;
		ms[i].retiring = false;
		ms[i].replace = false;
		memset(&srv_board->slots[i], 0, sizeof(srv_board->slots[i]));
	}
	if (m.backoff > 0 && now - m.last_crash > CALM_PERIOD)
		m.backoff = 0;
}

/* Stopping: TERM to every worker (again each second), KILL after the grace
 * period or a second TERM. False once the last worker is gone. */
static bool stop(double now, double *wait)
{
	if (!m.stopping) {
		m.stopping = true;
		m.deadline = now + srv_cfg.grace;
		/* New connections fail at once rather than queue for
		 * workers that are leaving. */
		srv_unlink_socket();
		srv_log("master: stopping; waiting up to %d s for %d workers", srv_cfg.grace,
			count(true));
		signal_all(SIGTERM);
		m.last_term = now;
	}
	if (count(true) == 0)
		return false;
	if (!m.killed && (now >= m.deadline || got_term > 1)) {
		srv_log("master: killing %d workers", count(true));
		signal_all(SIGKILL);
		m.killed = true;
	} else if (now - m.last_term >= 1.0) {
		/* Harmless repeat: a busy worker still has it pending. */
		signal_all(SIGTERM);
		m.last_term = now;
	}
	*wait = m.killed ? 0.1 : DSC_MIN_D(1.0, m.deadline - now);
	return true;
}

/* SIGHUP: queue every current worker for replacement; then retire them
 * one at a time, each once the previous one's successor runs. */
static void replace(void)
{
	int i;

	if (got_hup) {
		got_hup = 0;
		srv_log("master: replacing %d workers", count(false));
		for (i = 0; i < nslots(); i++)
			if (ms[i].pid > 0 && !ms[i].retiring)
				ms[i].replace = true;
	}
	if (count(true) == count(false)) {
		for (i = 0; i < nslots(); i++)
			if (ms[i].pid > 0 && ms[i].replace)
				break;
		if (i < nslots()) {
			ms[i].replace = false;
			ms[i].retiring = true;
		}
	}
}

/* Fill the pool (the retiring worker's successor first, so capacity never
 * drops), then tell the retiring worker to leave. */
static void fill(double now, double *wait)
{
	int i;

	while (count(false) < srv_cfg.workers && now >= m.next_spawn) {
		int free_slot = -1;

		for (i = 0; i < nslots(); i++)
			if (ms[i].pid == 0) {
				free_slot = i;
				break;
			}
		if (free_slot < 0 || !spawn(free_slot)) {
			m.next_spawn = now + 1;
			break;
		}
	}
	for (i = 0; i < nslots(); i++)
		if (ms[i].pid > 0 && ms[i].retiring)
			kill(ms[i].pid, SIGTERM);
	if (count(false) < srv_cfg.workers && m.next_spawn > now)
		*wait = DSC_MIN_D(*wait, m.next_spawn - now);
}

/* Sleep until a signal arrives (a byte in the self-pipe) or `wait` s. */
static void sleep_for(double wait)
{
	struct pollfd pfd = {.fd = selfpipe[0], .events = POLLIN};
	char drain[64];

	if (wait < 0.01)
		wait = 0.01;
	if (poll(&pfd, 1, (int)(wait * 1000)) > 0)
		while (read(selfpipe[0], drain, sizeof(drain)) > 0)
			;
}

int pool_run(void)
{
	if (!install_signals())
		return 1;
	srv_log("master: started, %d workers, outdir %s", srv_cfg.workers, srv_cfg.outdir);
	for (;;) {
		double now = srv_now(), wait = 1.0;

		reap(now);
		if (got_term || m.stopping) {
			if (!stop(now, &wait))
				break;
		} else {
			replace();
			fill(now, &wait);
		}
		sleep_for(wait);
	}
	srv_log("master: stopped");
	close(selfpipe[0]);
	close(selfpipe[1]);
	return 0;
}
