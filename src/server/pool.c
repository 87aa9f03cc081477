/* pool.c - the master: forks the workers, reaps and replaces them, stops.
 *
 * Modelled on nginx's master cycle and php-fpm's children: signal handlers
 * only set a flag and write a byte to a self-pipe; everything else happens
 * in the loop below, which sleeps in poll() on that pipe. The master never
 * calls FCGX_Init() (its SIGTERM handler would make the master ignore TERM
 * and every later worker exit at once).
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

int pool_run(void)
{
	struct sigaction sa;
	double next_spawn = 0, backoff = 0, window_start = 0, last_crash = 0;
	double deadline = 0, last_term = 0;
	int crashes = 0, i;
	bool stopping = false, killed = false;

	if (pipe2(selfpipe, O_CLOEXEC | O_NONBLOCK) != 0) {
		srv_log("master: pipe: %s", strerror(errno));
		return 1;
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

	srv_log("master: started, %d workers, outdir %s", srv_cfg.workers, srv_cfg.outdir);
	for (;;) {
		struct pollfd pfd = {.fd = selfpipe[0], .events = POLLIN};
		char drain[64];
		double now = srv_now(), wait = 1.0;
		pid_t pid;
		int st;

		/* Reap. */
		got_chld = 0;
		while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
			bool crash = !(WIFEXITED(st) && WEXITSTATUS(st) == 0);

			for (i = 0; i < nslots(); i++)
				if (ms[i].pid == pid)
					break;
			if (i == nslots())
				continue;
			if (crash) {
				const char *tmp = srv_board->slots[i].temp;

				if (WIFSIGNALED(st))
					srv_log("master: worker %d killed by "
						"signal %d",
						(int)pid, WTERMSIG(st));
				else
					srv_log("master: worker %d exited "
						"with status %d",
						(int)pid, WEXITSTATUS(st));
				if (tmp[0] != '\0' && unlink(tmp) == 0)
					srv_log("master: removed %s", tmp);
			}
			if (crash && !ms[i].retiring && !stopping) {
				if (now - window_start > CRASH_WINDOW) {
					window_start = now;
					crashes = 0;
				}
				last_crash = now;
				/* Workers dying together (one event) or
				 * while a delay runs count once. */
				if (++crashes >= CRASH_BURST && now >= next_spawn) {
					backoff = backoff == 0 ? 1 : backoff * 2;
					if (backoff > BACKOFF_MAX)
						backoff = BACKOFF_MAX;
					next_spawn = now + backoff;
					srv_log("master: workers keep crashing; "
						"next start in %.0f s",
						backoff);
				}
			}
			ms[i].pid = 0;
			ms[i].retiring = false;
			ms[i].replace = false;
			memset(&srv_board->slots[i], 0, sizeof(srv_board->slots[i]));
		}
		if (backoff > 0 && now - last_crash > CALM_PERIOD)
			backoff = 0;

		/* Stop. */
		if (got_term && !stopping) {
			stopping = true;
			deadline = now + srv_cfg.grace;
			/* New connections fail at once rather than queue
			 * for workers that are leaving. */
			srv_unlink_socket();
			srv_log("master: stopping; waiting up to %d s for %d "
				"workers",
				srv_cfg.grace, count(true));
			signal_all(SIGTERM);
			last_term = now;
		}
		if (stopping) {
			if (count(true) == 0)
				break;
			if (!killed && (now >= deadline || got_term > 1)) {
				srv_log("master: killing %d workers", count(true));
				signal_all(SIGKILL);
				killed = true;
			} else if (now - last_term >= 1.0) {
				/* Harmless repeat: a busy worker still has
				 * it pending. */
				signal_all(SIGTERM);
				last_term = now;
			}
			wait = killed ? 0.1 : DSC_MIN_D(1.0, deadline - now);
		} else {
			/* SIGHUP: queue every current worker for
			 * replacement, then replace one at a time. */
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
			/* Fill the pool (the retiring worker's successor
			 * first, so capacity never drops). */
			while (count(false) < srv_cfg.workers && now >= next_spawn) {
				int free_slot = -1;

				for (i = 0; i < nslots(); i++)
					if (ms[i].pid == 0) {
						free_slot = i;
						break;
					}
				if (free_slot < 0 || !spawn(free_slot)) {
					next_spawn = now + 1;
					break;
				}
			}
			for (i = 0; i < nslots(); i++)
				if (ms[i].pid > 0 && ms[i].retiring)
					kill(ms[i].pid, SIGTERM);
			if (count(false) < srv_cfg.workers && next_spawn > now)
				wait = DSC_MIN_D(wait, next_spawn - now);
		}
		if (wait < 0.01)
			wait = 0.01;
		if (poll(&pfd, 1, (int)(wait * 1000)) > 0)
			while (read(selfpipe[0], drain, sizeof(drain)) > 0)
				;
	}
	srv_log("master: stopped");
	close(selfpipe[0]);
	close(selfpipe[1]);
	return 0;
}
