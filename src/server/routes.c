/* routes.c - the route table: (method, path) -> handler.
 *
 * One table maps a method and an exact path to a handler; a known path
 * with another method is 405 with Allow built from the same table, any
 * other path 404. The handlers live in a file each (upload.c, import.c,
 * export.c, status.c, info.c); what they share is in conv_params.c (parameters),
 * convert_outdir.c (converting into outdir) and reply.c (replies).
 */
#include "config.h"

#include <string.h>

#include "server.h"

struct route {
	const char *method;
	const char *path;
	void (*handler)(struct srv_request *rq);
};

static const struct route routes[] = {
	/* PUT is an upload too: `curl -T FILE URL` sends it, and so do
	 * clients written for ovirt-imageio. */
	{"POST", "/upload", h_upload},    {"PUT", "/upload", h_upload},
	{"GET", "/import", h_import_get}, {"POST", "/import", h_import_post},
	{"GET", "/export", h_export},     {"GET", "/status", h_status},
	{"GET", "/info", h_info_get},     {"POST", "/info", h_info_post},
};

void routes_dispatch(struct srv_request *rq)
{
	char allow[64] = "", q[216];
	size_t i;

	for (i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
		if (strcmp(routes[i].path, rq->path) != 0)
			continue;
		if (strcmp(routes[i].method, rq->method) == 0) {
			routes[i].handler(rq);
			return;
		}
		if (allow[0] != '\0')
			strncat(allow, ", ", sizeof(allow) - strlen(allow) - 1);
		strncat(allow, routes[i].method, sizeof(allow) - strlen(allow) - 1);
	}
	if (allow[0] != '\0')
		reply_method_not_allowed(rq, allow);
	else
		reply_err(rq, DSC_ERR_NOTFOUND, "no route for %s",
			  utf8_clip(q, sizeof(q), rq->path, 200));
}
