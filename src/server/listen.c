/* listen.c - the listening socket: bound here or inherited from spawn-fcgi.
 *
 * -listen unix:/path binds a unix socket with mode 0660 from the start (and
 * the -socket-group), replacing a stale socket but never a live server's;
 * HOST:PORT binds TCP, IPv4 or IPv6. Without -listen, fd 0 must be the
 * unconnected listening socket spawn-fcgi passes (getpeername() fails with
 * ENOTCONN). We bind ourselves rather than use FCGX_OpenSocket, which
 * exit()s on a bad address and does IPv4 only. The unix socket this master
 * bound is removed when it stops, and only while the path is still that
 * socket (same device and inode): a successor may have bound it since.
 */
#include "config.h"

#include <errno.h>
#include <grp.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "server.h"

static int listen_unix(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct stat st;
	mode_t old;
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "dsc-server: %s: socket path too long\n", path);
		return -1;
	}
	strcpy(sa.sun_path, path);
	if (lstat(path, &st) == 0) {
		int probe;

		if (!S_ISSOCK(st.st_mode)) {
			fprintf(stderr, "dsc-server: %s: exists and is not a socket\n", path);
			return -1;
		}
		/* Replace a stale socket, never a live server's. */
		probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
			close(probe);
			fprintf(stderr,
				"dsc-server: %s: another server is listening "
				"there\n",
				path);
			return -1;
		}
		if (probe >= 0)
			close(probe);
		unlink(path);
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		perror("dsc-server: socket");
		return -1;
	}
	/* Mode 0660 from the start: no moment in which others could
	 * connect (the FastCGI socket must only be reachable by the web
	 * server; see CVE-2025-23016 in the docs). */
	old = umask(0117);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		umask(old);
		fprintf(stderr, "dsc-server: %s: bind: %s\n", path, strerror(errno));
		close(fd);
		return -1;
	}
	umask(old);
	srv_cfg.unix_path = strdup(path);
	if (srv_cfg.socket_group != NULL) {
		struct group *g = getgrnam(srv_cfg.socket_group);

		if (g == NULL || chown(path, (uid_t)-1, g->gr_gid) != 0) {
			fprintf(stderr,
				"dsc-server: %s: cannot give it to "
				"group %s: %s\n",
				path, srv_cfg.socket_group, g ? strerror(errno) : "no such group");
			close(fd);
			return -1;
		}
	}
	if (chmod(path, 0660) != 0 || lstat(path, &st) != 0 || listen(fd, 1024) != 0) {
		fprintf(stderr, "dsc-server: %s: %s\n", path, strerror(errno));
		close(fd);
		return -1;
	}
	srv_cfg.unix_dev = st.st_dev;
	srv_cfg.unix_ino = st.st_ino;
	return fd;
}

static int listen_tcp(const char *spec)
{
	char host[256];
	const char *colon = strrchr(spec, ':'), *port;
	struct addrinfo hints = {0}, *res = NULL, *ai;
	int fd = -1, one = 1, rc;
	size_t hl;

	if (colon == NULL) {
		fprintf(stderr,
			"dsc-server: -listen %s: want unix:/path or "
			"HOST:PORT\n",
			spec);
		return -1;
	}
	port = colon + 1;
	hl = (size_t)(colon - spec);
	if (hl >= 2 && spec[0] == '[' && spec[hl - 1] == ']') {
		spec++;
		hl -= 2;
	}
	if (hl >= sizeof(host)) {
		fprintf(stderr, "dsc-server: -listen: host too long\n");
		return -1;
	}
	memcpy(host, spec, hl);
	host[hl] = '\0';
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE;
	rc = getaddrinfo(hl ? host : NULL, port, &hints, &res);
	if (rc != 0) {
		fprintf(stderr, "dsc-server: -listen %s: %s\n", spec, gai_strerror(rc));
		return -1;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd < 0)
			continue;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 1024) == 0)
			break;
		rc = errno;
		close(fd);
		fd = -1;
		errno = rc;
	}
	if (fd < 0)
		fprintf(stderr, "dsc-server: -listen %s: %s\n", spec, strerror(errno));
	freeaddrinfo(res);
	return fd;
}

int srv_listen_open(void)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	int acc = 0;
	socklen_t alen = sizeof(acc);

	if (srv_cfg.listen != NULL) {
		if (strncmp(srv_cfg.listen, "unix:", 5) == 0)
			return listen_unix(srv_cfg.listen + 5);
		if (srv_cfg.listen[0] == '/')
			return listen_unix(srv_cfg.listen);
		return listen_tcp(srv_cfg.listen);
	}
	/* spawn-fcgi: an unconnected listening socket on fd 0. */
	if (getpeername(0, (struct sockaddr *)&ss, &len) != 0 && errno == ENOTCONN &&
	    getsockopt(0, SOL_SOCKET, SO_ACCEPTCONN, &acc, &alen) == 0 && acc)
		return 0;
	fprintf(stderr, "dsc-server: no -listen given and fd 0 is not a "
			"listening socket (start it with -listen or from "
			"spawn-fcgi)\n");
	return -1;
}

void srv_unlink_socket(void)
{
	struct stat st;

	if (srv_cfg.unix_path == NULL)
		return;
	if (lstat(srv_cfg.unix_path, &st) == 0 && S_ISSOCK(st.st_mode) &&
	    st.st_dev == srv_cfg.unix_dev && st.st_ino == srv_cfg.unix_ino)
		unlink(srv_cfg.unix_path);
	free(srv_cfg.unix_path);
	srv_cfg.unix_path = NULL;
}
