/* server.h - shared declarations of dsc-server (master, workers, routes).
 *
 * dsc-server is a pre-forked FastCGI pool: the master (pool.c) owns the
 * listening socket and the workers; each worker (worker.c) accepts requests
 * with libfcgi and hands them to one route table (routes.c), whose handlers
 * have a file each (upload.c, import.c, export.c, status.c). The request
 * body and response are dsc_streams (io_fcgx.c), so libdsc never sees
 * libfcgi. Workers publish their state in a shared scoreboard that /status
 * reads. Declarations are grouped by the file that defines them.
 */
#ifndef DSC_SERVER_H
#define DSC_SERVER_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <fcgiapp.h>
#include <jansson.h>

#include "dsc.h"

#define DSC_MIN_D(a, b) ((a) < (b) ? (a) : (b))

#define SRV_MAX_ROOTS 16
#define SRV_MAX_NETS 32
#define SRV_MAX_CODEC_THREADS 256
/* A plain output name: at most this many bytes (NAME_MAX). */
#define SRV_NAME_MAX 255
/* Caps on what a client can make us hold in memory. */
#define SRV_JSON_BODY_MAX (64u * 1024u)
#define SRV_QUERY_MAX (16u * 1024u)
/* Extra response header lines a handler may pass (Content-Disposition with
 * its capped filename* part, Content-Length, Allow); longer is an error. */
#define SRV_EXTRA_MAX 2048

struct srv_config {
	const char *outdir;
	const char *export_roots[SRV_MAX_ROOTS];
	int n_export_roots;
	const char *allow_nets[SRV_MAX_NETS];
	int n_allow_nets;
	uint64_t max_capacity;
	unsigned import_retries;      /* URL source retries (default 5) */
	unsigned import_idle_timeout; /* seconds without data (default 60) */
	int workers;
	/* dsc_convert_opts.threads of every conversion (default 1; 0: one
	 * per CPU, per direction, in every worker). */
	unsigned codec_threads;
	int grace;                  /* seconds */
	unsigned long max_requests; /* 0: unlimited */
	const char *listen;         /* NULL: inherited fd 0 */
	const char *socket_group;
	char *unix_path; /* the socket we bound, removed when stopping */
	dev_t unix_dev;  /* ... and its inode, so that only it is removed */
	ino_t unix_ino;
	int listen_fd;
};

/* One slot per worker in a MAP_SHARED scoreboard (written by the worker,
 * read by /status and the master). */
struct srv_slot {
	pid_t pid; /* 0: free */
	int busy;
	uint64_t requests;
	/* The temporary output file of the current request, so the master can
	 * remove it if the worker is killed before it could. */
	char temp[1024];
};

#define SRV_MAX_SLOTS 256

struct srv_scoreboard {
	pid_t master_pid;
	double start;    /* CLOCK_MONOTONIC seconds at master start */
	int pool_size;   /* configured workers */
	uint64_t served; /* requests completed by all workers, ever */
	struct srv_slot slots[SRV_MAX_SLOTS];
};

extern struct srv_config srv_cfg;
extern struct srv_scoreboard *srv_board;
/* The import address policy (built by main from -import-allow-net). */
extern dsc_netpolicy *srv_policy;
/* This worker's scoreboard slot. */
extern int srv_my_slot;

/* main.c defines srv_cfg, srv_board, srv_policy and srv_my_slot. */

/* listen.c: the socket -listen names (bound now), else the listening
 * socket inherited on fd 0; -1 after a message on stderr. */
int srv_listen_open(void);
/* Remove the unix socket this master bound, once, and only while the path
 * still is that socket (a successor may have bound it since). */
void srv_unlink_socket(void);

/* log.c */
/* CLOCK_MONOTONIC in seconds. */
double srv_now(void);
/* One line on stderr with time and pid, written with one write(). */
void srv_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* pool.c: run the master until it is told to stop; returns the exit code. */
int pool_run(void);

/* worker.c: the accept loop of one worker; never returns. */
void worker_main(int slot) __attribute__((noreturn));

/* ---- one request ------------------------------------------------------ */

struct srv_request {
	FCGX_Request *fcgx;
	char method[16]; /* copied: libfcgi frees its params at Finish */
	char path[1024]; /* route path: REQUEST_URI without the query */
	const char *query;
	int status;
	uint64_t bytes_in;
	uint64_t bytes_out;
	bool headers_sent;
	bool abort_conn;  /* the reply broke off: drop the connection */
	bool client_gone; /* reading the body or writing the reply failed */
	char error[256];  /* for the log line */
	/* Headers prepared by reply_defer_headers(), sent with the first byte
	 * of the body. */
	int pending_status;
	char pending_ctype[64];
	char pending_extra[SRV_EXTRA_MAX];
	/* reply_headers() could not fit the headers and sent a complete 500
	 * instead: everything written after it is dropped. */
	bool reply_broken;
};

/* routes.c: the table; runs the handler of rq's method and path. */
void routes_dispatch(struct srv_request *rq);

/* reply.c: every error reply's status and code come from one map
 * (error_status), from a dsc_err or one of these faults. */
enum srv_fault {
	SRV_FAULT_LIB,    /* the dsc_err of the error: 400 INVAL ... 507 NOSPACE */
	SRV_FAULT_METHOD, /* 405 METHOD: a known path, another method */
	SRV_FAULT_CLIENT, /* 499 CLIENT: the client's connection failed */
};
/* An error reply for `code` with a sentence naming the thing. */
void reply_err(struct srv_request *rq, dsc_err code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* 405 with Allow: `allow` lists the path's methods. */
void reply_method_not_allowed(struct srv_request *rq, const char *allow);
/* The library's error; `client_side`: it was the client's connection. */
void reply_dsc_error(struct srv_request *rq, const struct dsc_error *e, bool client_side);
/* Send headers (with the terminating blank line). `extra` may be NULL; it
 * holds complete "Name: value\r\n" lines. Headers that do not fit are never
 * sent cut: a complete 500 reply goes out instead, rq->reply_broken is set
 * and false is returned. */
bool reply_headers(struct srv_request *rq, int status, const char *ctype, const char *extra);
/* Prepare headers to be sent by the reply stream's first write. False
 * (nothing prepared) when they would not fit: reply 500 before streaming. */
bool reply_defer_headers(struct srv_request *rq, int status, const char *ctype, const char *extra);
bool reply_flush_pending(struct srv_request *rq);
/* Serialize and send a jansson object as the body; steals the reference. */
struct json_t;
void reply_json(struct srv_request *rq, int status, struct json_t *obj);
/* Seconds rounded to the microsecond, for the JSON replies: reply_json()
 * prints such a value with at most 6 decimals (0.082454). */
double srv_json_seconds(double s);

/* utf8.c: the one UTF-8 decoder. */
/* Length of the valid UTF-8 sequence at s[0..n), 0 when it is not one
 * (overlong forms, surrogates and code points past U+10FFFF included). */
size_t utf8_seq(const unsigned char *s, size_t n);
/* Length of the character at s[0..n): a valid sequence's, else 1 (a stray
 * byte counts alone); 0 when n is 0. */
size_t utf8_char_len(const char *s, size_t n);
/* At most `max` bytes of s into buf (of bufsz bytes), never cutting a
 * UTF-8 character in two, with "..." when something was left off. For
 * quoting client text in error messages. Returns buf. */
const char *utf8_clip(char *buf, size_t bufsz, const char *s, size_t max);

/* io_fcgx.c: the request body and the response body as dsc_streams. */
struct body_ctx {
	struct srv_request *rq;
	uint64_t length; /* CONTENT_LENGTH, or UINT64_MAX when absent */
	uint64_t got;
	bool eof;
	bool failed; /* the client went away / body shorter than length */
};
dsc_err fcgx_body_stream(struct srv_request *rq, struct body_ctx *ctx, dsc_stream **out,
			 struct dsc_error *e);
dsc_err fcgx_reply_stream(struct srv_request *rq, dsc_stream **out, struct dsc_error *e);

/* multipart.c: the content of the part named `field` of a
 * multipart/form-data body read from `body`. Ends (EOF) only at that part's
 * closing delimiter; a body that breaks off is an error. */
struct srv_multipart;
dsc_err multipart_stream(dsc_stream *body, const char *content_type, const char *field,
			 struct srv_multipart **handle, dsc_stream **out, struct dsc_error *e);
/* After the converter is done with the part: read the rest of the field
 * and of the body, and require the close delimiter. */
dsc_err multipart_finish(struct srv_multipart *handle, dsc_stream *part, struct dsc_error *e);

/* params.c */
struct srv_params {
	char *names[32];
	char *values[32];
	int n;
};
/* Parse an application/x-www-form-urlencoded string. Returns false when
 * it is malformed (bad %-escape, too many fields). */
bool params_parse(struct srv_params *p, const char *query);
const char *params_get(const struct srv_params *p, const char *name);
void params_free(struct srv_params *p);
/* "true"/"1"/"yes"/"on" and "false"/"0"/"no"/"off"/"" ; false when neither. */
bool parse_bool(const char *s, bool *out);
bool name_is_valid(const char *name);

/* output.c: an output file in outdir (atomic) whose commit first runs
 * `hook` (e.g. checking the rest of the request body). Closing *out before
 * dsc_convert() finished it discards the file. The srv_output outlives the
 * stream: free it with output_free(). */
typedef dsc_err (*out_prefinish_fn)(void *user, struct dsc_error *e);
struct srv_output;
dsc_err output_create(const char *dir, const char *name, bool overwrite, out_prefinish_fn hook,
		      void *hook_user, struct srv_output **o, dsc_stream **out,
		      struct dsc_error *e);
/* The temporary file while the output is being written, else NULL. */
const char *output_temp_path(const struct srv_output *o);
void output_free(struct srv_output *o);

/* import_body.c: POST /import's JSON body. The strings point into `root`
 * (or hdr_store) and live until import_body_free(). */
#define IMPORT_HEADERS_MAX 32
#define IMPORT_OPTIONS_MAX 32
struct import_body {
	json_t *root;
	json_t *options; /* the "options" object (borrowed from root), or NULL */
	const char *url, *src, *dst, *prealloc, *overwrite, *name, *sha256, *digest, *level,
		*compress;
	const char *headers[IMPORT_HEADERS_MAX + 1]; /* NULL-terminated */
	char *hdr_store[IMPORT_HEADERS_MAX];
	size_t nheaders;
};
/* 0 on success; -1 with a sentence for a 400 reply in err. */
int import_body_parse(const char *buf, size_t n, struct import_body *b, char *err, size_t errsize);
void import_body_free(struct import_body *b);

/* ---- the handlers and what they share ---------------------------------- */

/* The handlers: upload.c (POST and PUT), import.c, export.c, status.c. */
void h_upload(struct srv_request *rq);
void h_import_get(struct srv_request *rq);
void h_import_post(struct srv_request *rq);
void h_export(struct srv_request *rq);
void h_status(struct srv_request *rq);
/* info.c: GET /info?path= (a file under the export roots), POST /info (a body). */
void h_info_get(struct srv_request *rq);
void h_info_post(struct srv_request *rq);

/* conv_params.c: a conversion's parameters, checked. Each getter returns
 * false after it sent the reply (400 or 415) naming the parameter. */
struct conv_params {
	dsc_format src;
	dsc_format dst;
	bool prealloc;
	bool overwrite;
	const char *name;     /* NULL: the route's default */
	const char *sha256;   /* expected SHA-256 of the source, or NULL */
	bool digest;          /* reply with the source's SHA-256 */
	int level;            /* VMDK compression level, 0: default */
	bool compress;        /* compress=: qcow2 compressed clusters (-c) */
	dsc_optlist *options; /* o= / "options": the dst format's options */
};
/* Parse the query string into p. */
bool parse_query(struct srv_request *rq, struct srv_params *p);
/* Every parameter of p is one of `known` (NULL-terminated). */
bool check_known(struct srv_request *rq, const struct srv_params *p, const char *const *known);
/* src= (dflt DSC_FORMAT_UNKNOWN: a readable format, or auto) or dst= (a
 * writable one); empty is dflt. */
bool get_format(struct srv_request *rq, const char *what, const char *v, dsc_format dflt,
		dsc_format *out);
/* o=key=value,... or the JSON "options" object, for format dst; *out stays
 * NULL when there are none. */
bool get_options(struct srv_request *rq, const char *text, const json_t *obj, dsc_format dst,
		 dsc_optlist **out);
/* level= as dsc_level_parse() reads it; empty is the default. */
bool get_level(struct srv_request *rq, const char *v, int *out);
/* compress= for format dst: a boolean, true only where the writer
 * compresses (DSC_FMT_WRITE_COMPRESSED). */
bool get_compress(struct srv_request *rq, const char *v, dsc_format dst, bool *out);
/* Fill cp from string values (query parameters or JSON strings). */
bool get_conv_params(struct srv_request *rq, const char *src, const char *dst, const char *prealloc,
		     const char *overwrite, const char *name, const char *sha256,
		     const char *digest, const char *level, const char *compress,
		     const char *options, const json_t *options_obj, struct conv_params *cp);
/* The conversion parameters of /upload and GET /import from the query. */
bool query_conv_params(struct srv_request *rq, const struct srv_params *p, const char *const *known,
		       struct conv_params *cp);
/* Is the media type of Content-Type `ctype` `want` (parameters ignored)? */
bool media_type_is(const char *ctype, const char *want);
/* The extension an output of format f gets: the table's first. */
const char *format_ext(dsc_format f);

/* convert_outdir.c: what the commit hook must check before the output
 * appears. */
struct source {
	dsc_stream *raw_in; /* request body or URL stream */
	struct body_ctx *body;
	struct srv_multipart *mp;
	dsc_stream *part;                 /* multipart field, or NULL */
	dsc_stream *hashed;               /* SHA-256 read wrapper, or NULL */
	const char *expect;               /* expected SHA-256, or NULL */
	dsc_stream *in;                   /* what the converter reads */
	char hex[DSC_SHA256_HEX_LEN + 1]; /* the source's digest, once read */
};
/* 409 (false) before reading anything when outdir/name is taken. */
bool check_free(struct srv_request *rq, const struct conv_params *cp, const char *name);
/* The web server dropped the connection (rq's client went away). For
 * dsc_url_opts.cancel. */
bool connection_dropped(void *user);
/* Convert src->in into outdir/name and reply. Owns nothing of src.
 * `watch_client`: cancel when the connection drops (imports). */
void convert_to_outdir(struct srv_request *rq, struct source *src, const struct conv_params *cp,
		       const char *name, bool watch_client);

/* export_path.c: open `path` (relative: from the first export root) for
 * reading if it is a regular file inside the export roots, into *fd (-1
 * on failure), and its resolved path into real. PERM outside the roots
 * (existing or not), NOTFOUND, UNSUPPORTED for a FIFO, device or
 * directory (never opened), IO. */
dsc_err export_open(const char *path, int *fd, char *real, size_t realsz, struct dsc_error *e);
dsc_err export_open_dir(int fd, const char *real, const char *path, int *dirfd,
			struct dsc_error *e);

/* disposition.c: the Content-Disposition line of an /export. */
/* Bytes of percent-encoding filename*= may take (RFC 8187 value without
 * the UTF-8'' prefix): a long non-ASCII name takes 9 bytes a character. */
#define CD_ENC_MAX 512
/* The longest Content-Disposition line content_disposition() writes. */
#define CD_LINE_MAX (80 + SRV_NAME_MAX + CD_ENC_MAX)
/* "Content-Disposition: attachment; filename=...; filename*=...\r\n" for
 * fname into out (CD_LINE_MAX + 1 bytes). */
void content_disposition(const char *fname, char *out, size_t outsz);

#endif /* DSC_SERVER_H */
