/* status.c - GET /status: the pool as the shared scoreboard shows it.
 *
 * Workers and the master write their slots of the MAP_SHARED scoreboard;
 * this only reads them, so the numbers are a snapshot, not a transaction.
 */
#include "config.h"

#include <jansson.h>

#include "server.h"

void h_status(struct srv_request *rq)
{
	int i, alive = 0, busy = 0;
	json_t *j;

	if (rq->query != NULL && *rq->query != '\0') {
		reply_err(rq, DSC_ERR_INVAL, "/status takes no parameters");
		return;
	}
	for (i = 0; i < SRV_MAX_SLOTS; i++) {
		if (srv_board->slots[i].pid == 0)
			continue;
		alive++;
		/* This request's own worker counts as busy. */
		if (srv_board->slots[i].busy)
			busy++;
	}
	j = json_pack("{s:i, s:i, s:i, s:I, s:f, s:i, s:s}", "poolSize", srv_board->pool_size,
		      "workers", alive, "busyWorkers", busy, "requestsServed",
		      (json_int_t)__atomic_load_n(&srv_board->served, __ATOMIC_RELAXED),
		      "uptimeSeconds", srv_json_seconds(srv_now() - srv_board->start), "masterPid",
		      (int)srv_board->master_pid, "version", dsc_version());
	reply_json(rq, 200, j);
}
