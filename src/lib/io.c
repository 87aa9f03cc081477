/* io.c - the stream instance and the wrappers every reader and writer uses.
 *
 * A dsc_stream couples a constant ops table with a backend context. The
 * instance keeps the position, a byte counter, a small push-back buffer (so
 * format detection can look at the first bytes of a pipe and give them back)
 * and a sticky error: once an operation failed, every later call returns
 * the same error, so no layer can mistake a broken stream for a short one.
 */
#include "internal.h"

#include <fcntl.h>
#include <unistd.h>

dsc_err dsc_stream_new(const struct dsc_stream_ops *ops, void *ctx, const char *name,
		       dsc_stream **out, struct dsc_error *e)
{
	dsc_stream *s;

	*out = NULL;
	if (!ops || (!ops->read && !ops->write))
		return dsc_error_set(e, DSC_ERR_INVAL, 0, "stream: no read or write operation");
	s = calloc(1, sizeof *s);
	if (!s)
		return dsc_error_set(e, DSC_ERR_NOMEM, ENOMEM, "%s: out of memory",
				     name ? name : "stream");
	s->name = strdup(name ? name : ops->name);
	if (!s->name) {
		free(s);
		return dsc_error_set(e, DSC_ERR_NOMEM, ENOMEM, "%s: out of memory",
				     name ? name : "stream");
	}
	s->ops = ops;
	s->ctx = ctx;
	s->total = UINT64_MAX;
	*out = s;
	return DSC_OK;
}

dsc_err dsc_stream_new_wrapper(const struct dsc_stream_ops *ops, void *ctx, const char *name,
			       dsc_stream *inner, dsc_stream **out, struct dsc_error *e)
{
	dsc_err rc = dsc_stream_new(ops, ctx, name, out, e);

	if (rc == DSC_OK)
		(*out)->inner = inner;
	return rc;
}

const void *dscp_stream_query(const dsc_stream *s, int what)
{
	const void *answer;

	for (; s; s = s->inner)
		if (s->ops->query && (answer = s->ops->query(s->ctx, what)))
			return answer;
	return NULL;
}

unsigned dsc_stream_caps(const dsc_stream *s)
{
	const struct dsc_stream_ops *o = s->ops;

	return (o->read ? DSC_STREAM_READ : 0) | (o->write ? DSC_STREAM_WRITE : 0) |
	       (o->seek ? DSC_STREAM_SEEK : 0) | (o->next_data ? DSC_STREAM_NEXT_DATA : 0) |
	       (o->set_size ? DSC_STREAM_SET_SIZE : 0) | (o->finish ? DSC_STREAM_FINISH : 0);
}

void dsc_stream_close(dsc_stream *s)
{
	if (!s)
		return;
	if (s->ops->close)
		s->ops->close(s->ctx);
	free(s->name);
	free(s->extent_dir);
	if (s->extent_dirfd > 0)
		close(s->extent_dirfd);
	free(s);
}

dsc_err dsc_stream_set_extent_dir(dsc_stream *s, const char *dir, struct dsc_error *e)
{
	char *copy = NULL;

	if (dir && !(copy = strdup(dir)))
		return dsc_error_set(e, DSC_ERR_NOMEM, ENOMEM, "%s: out of memory", s->name);
	free(s->extent_dir);
	s->extent_dir = copy;
	if (s->extent_dirfd > 0)
		close(s->extent_dirfd);
	s->extent_dirfd = 0;
	return DSC_OK;
}

dsc_err dsc_stream_set_extent_dirfd(dsc_stream *s, int dirfd, struct dsc_error *e)
{
	int copy = 0;

	/* At 3 or above, so that 0 can mean none. */
	if (dirfd >= 0 && (copy = fcntl(dirfd, F_DUPFD_CLOEXEC, 3)) < 0)
		return dsc_error_set(e, dsc_err_from_errno(errno), errno,
				     "%s: the extent directory: %s", s->name, strerror(errno));
	free(s->extent_dir);
	s->extent_dir = NULL;
	if (s->extent_dirfd > 0)
		close(s->extent_dirfd);
	s->extent_dirfd = copy;
	return DSC_OK;
}

const char *dscp_stream_extent_dir(const dsc_stream *s, int *dirfd)
{
	*dirfd = -1;
	for (; s; s = s->inner) {
		if (s->extent_dirfd > 0) {
			*dirfd = s->extent_dirfd;
			return NULL;
		}
		if (s->extent_dir)
			return s->extent_dir;
	}
	return NULL;
}

dsc_err dscp_stream_fail(dsc_stream *s, dsc_err code, struct dsc_error *e)
{
	if (s->sticky == DSC_OK) {
		s->sticky = code;
		if (e && e->code == code)
			s->sticky_detail = *e;
		else
			dsc_error_set(&s->sticky_detail, code, 0, "%s: %s", s->name,
				      dsc_strerror(code));
	}
	return code;
}

/* Repeat the stored failure into the caller's error record. */
static dsc_err sticky(dsc_stream *s, struct dsc_error *e)
{
	if (e && e->code == DSC_OK)
		*e = s->sticky_detail;
	return s->sticky;
}

/* One backend read with the error made sticky. */
static dsc_err backend_read(dsc_stream *s, void *buf, size_t len, size_t *nread,
			    struct dsc_error *e)
{
	struct dsc_error local = {0};
	dsc_err rc;

	*nread = 0;
	if (!s->ops->read)
		return dsc_error_set(e, DSC_ERR_INVAL, 0, "%s: stream is not readable", s->name);
	rc = s->ops->read(s->ctx, buf, len, nread, &local);
	if (rc != DSC_OK) {
		if (local.code == DSC_OK)
			dsc_error_set(&local, rc, 0, "%s: read failed: %s", s->name,
				      dsc_strerror(rc));
		dscp_stream_fail(s, rc, &local);
		return sticky(s, e);
	}
	if (*nread > len)
		*nread = len;
	s->bytes += *nread;
	return DSC_OK;
}

dsc_err dsc_read_full(dsc_stream *s, void *buf, size_t len, size_t *nread, struct dsc_error *e)
{
	uint8_t *p = buf;
	size_t done = 0, n;
	dsc_err rc;

	if (nread)
		*nread = 0;
	if (s->sticky)
		return sticky(s, e);
	if (s->unread_len > s->unread_off) {
		n = DSC_MIN(len, s->unread_len - s->unread_off);
		memcpy(p, s->unread + s->unread_off, n);
		s->unread_off += n;
		done = n;
	}
	while (done < len) {
		rc = backend_read(s, p + done, len - done, &n, e);
		if (rc != DSC_OK) {
			s->pos += done;
			return rc;
		}
		if (n == 0)
			break;
		done += n;
	}
	s->pos += done;
	if (nread)
		*nread = done;
	else if (done < len)
		return dsc_error_set(e, DSC_ERR_TRUNCATED, 0,
				     "%s: unexpected end of input at byte %llu", s->name,
				     (unsigned long long)s->pos);
	return DSC_OK;
}

dsc_err dsc_stream_unread(dsc_stream *s, const void *buf, size_t len, struct dsc_error *e)
{
	size_t left = s->unread_len - s->unread_off;

	if (len > DSC_UNREAD_MAX - left || len > s->pos)
		return dsc_error_set(e, DSC_ERR_INVAL, 0, "%s: cannot push back %zu bytes", s->name,
				     len);
	/* Keep what is still pending behind the bytes pushed back now. */
	memmove(s->unread + len, s->unread + s->unread_off, left);
	memcpy(s->unread, buf, len);
	s->unread_off = 0;
	s->unread_len = len + left;
	s->pos -= len;
	return DSC_OK;
}

dsc_err dsc_write_all(dsc_stream *s, const void *buf, size_t len, struct dsc_error *e)
{
	const uint8_t *p = buf;
	struct dsc_error local = {0};
	size_t n;
	dsc_err rc;

	if (s->sticky)
		return sticky(s, e);
	if (!s->ops->write)
		return dsc_error_set(e, DSC_ERR_INVAL, 0, "%s: stream is not writable", s->name);
	while (len > 0) {
		n = 0;
		rc = s->ops->write(s->ctx, p, len, &n, &local);
		if (rc == DSC_OK && n == 0)
			rc = dsc_error_set(&local, DSC_ERR_IO, 0, "%s: write made no progress",
					   s->name);
		if (rc != DSC_OK) {
			if (local.code == DSC_OK)
				dsc_error_set(&local, rc, 0, "%s: write failed: %s", s->name,
					      dsc_strerror(rc));
			dscp_stream_fail(s, rc, &local);
			return sticky(s, e);
		}
		if (n > len)
			n = len;
		p += n;
		len -= n;
		s->pos += n;
		s->bytes += n;
	}
	return DSC_OK;
}

bool dsc_stream_can_seek(const dsc_stream *s) { return s->ops->seek != NULL; }

dsc_err dsc_stream_seek(dsc_stream *s, uint64_t off, struct dsc_error *e)
{
	struct dsc_error local = {0};
	dsc_err rc;

	if (s->sticky)
		return sticky(s, e);
	if (!s->ops->seek)
		return dsc_error_set(e, DSC_ERR_UNSUPPORTED, 0, "%s: stream cannot seek", s->name);
	/* Within the bytes pushed back: they are the stream's bytes there, and
	 * the backend need not move (for a URL, a backward seek is a request). */
	if (s->unread_len > s->unread_off && off >= s->pos &&
	    off - s->pos <= s->unread_len - s->unread_off) {
		s->unread_off += (size_t)(off - s->pos);
		s->pos = off;
		return DSC_OK;
	}
	rc = s->ops->seek(s->ctx, off, &local);
	if (rc != DSC_OK) {
		if (local.code == DSC_OK)
			dsc_error_set(&local, rc, 0, "%s: seek failed", s->name);
		dscp_stream_fail(s, rc, &local);
		return sticky(s, e);
	}
	s->unread_len = s->unread_off = 0;
	s->pos = off;
	return DSC_OK;
}

dsc_err dsc_stream_skip(dsc_stream *s, uint64_t n, uint64_t *skipped, struct dsc_error *e)
{
	uint8_t buf[16384];
	uint64_t done = 0;
	size_t got, want;
	dsc_err rc;

	if (skipped)
		*skipped = 0;
	/* Seeking past the end of a file cannot tell us the input ended, so
	 * seek only within a known total and read otherwise. */
	if (s->ops->seek && s->unread_len == s->unread_off && s->total != UINT64_MAX &&
	    n <= s->total - DSC_MIN(s->pos, s->total)) {
		rc = dsc_stream_seek(s, s->pos + n, e);
		if (rc == DSC_OK && skipped)
			*skipped = n;
		return rc;
	}
	while (done < n) {
		want = (size_t)DSC_MIN(n - done, (uint64_t)sizeof buf);
		rc = dsc_read_full(s, buf, want, &got, e);
		if (rc != DSC_OK)
			return rc;
		done += got;
		if (got < want)
			break;
	}
	if (skipped)
		*skipped = done;
	else if (done < n)
		return dsc_error_set(e, DSC_ERR_TRUNCATED, 0,
				     "%s: unexpected end of input at byte %llu", s->name,
				     (unsigned long long)s->pos);
	return DSC_OK;
}

dsc_err dsc_stream_next_data(dsc_stream *s, uint64_t off, uint64_t *data_off, struct dsc_error *e)
{
	*data_off = off;
	if (s->sticky)
		return sticky(s, e);
	if (!s->ops->next_data || s->unread_len != s->unread_off)
		return DSC_ERR_UNSUPPORTED;
	return s->ops->next_data(s->ctx, off, data_off, e);
}

dsc_err dsc_stream_set_size(dsc_stream *s, uint64_t size, bool allocate, struct dsc_error *e)
{
	struct dsc_error local = {0};
	dsc_err rc;

	if (s->sticky)
		return sticky(s, e);
	if (!s->ops->set_size)
		return dsc_error_set(e, DSC_ERR_UNSUPPORTED, 0, "%s: stream cannot be resized",
				     s->name);
	rc = s->ops->set_size(s->ctx, size, allocate, &local);
	if (rc != DSC_OK) {
		if (local.code == DSC_OK)
			dsc_error_set(&local, rc, 0, "%s: cannot set size", s->name);
		dscp_stream_fail(s, rc, &local);
		return sticky(s, e);
	}
	return DSC_OK;
}

dsc_err dsc_stream_finish(dsc_stream *s, struct dsc_error *e)
{
	struct dsc_error local = {0};
	dsc_err rc;

	if (s->sticky)
		return sticky(s, e);
	if (!s->ops->finish)
		return DSC_OK;
	rc = s->ops->finish(s->ctx, &local);
	if (rc != DSC_OK) {
		if (local.code == DSC_OK)
			dsc_error_set(&local, rc, 0, "%s: cannot complete output", s->name);
		dscp_stream_fail(s, rc, &local);
		return sticky(s, e);
	}
	return DSC_OK;
}

uint64_t dsc_stream_tell(const dsc_stream *s) { return s->pos; }
uint64_t dsc_stream_bytes(const dsc_stream *s) { return s->bytes; }
uint64_t dsc_stream_total(const dsc_stream *s) { return s->total; }
void dsc_stream_set_total(dsc_stream *s, uint64_t total) { s->total = total; }
const char *dsc_stream_name(const dsc_stream *s) { return s->name; }
