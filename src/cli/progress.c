/* progress.c - the one-line progress display of dsc-convert.
 *
 * The fraction done comes from the input bytes when the input's size is
 * known (a file, an HTTP body with Content-Length), else from the position
 * in the virtual disk when the capacity is known, else only the amount.
 */
#include "progress.h"

#include <stdint.h>

static void fmt_eta(char *buf, size_t size, double s)
{
	unsigned long t = s < 0 ? 0 : (unsigned long)(s + 0.5);

	if (t >= 3600)
		snprintf(buf, size, "%lu:%02lu:%02lu", t / 3600, t / 60 % 60, t % 60);
	else
		snprintf(buf, size, "%lu:%02lu", t / 60, t % 60);
}

void progress_update(struct progress *p, const struct dsc_progress *d)
{
	double frac = -1, rate, mb = (double)d->in_bytes / 1e6;
	char eta[32] = "";

	rate = d->seconds > 0 ? mb / d->seconds : 0;
	if (d->in_total != UINT64_MAX && d->in_total > 0)
		frac = (double)d->in_bytes / (double)d->in_total;
	else if (d->capacity != UINT64_MAX && d->capacity > 0)
		frac = (double)d->disk_pos / (double)d->capacity;
	if (frac > 1)
		frac = 1;
	if (frac >= 0) {
		if (frac > 0.001 && d->seconds > 0)
			fmt_eta(eta, sizeof eta, d->seconds / frac - d->seconds);
		fprintf(p->out, "\r%5.1f%%  %9.1f MB  %7.1f MB/s  ETA %-8s", frac * 100, mb, rate,
			eta[0] ? eta : "--:--");
	} else {
		fprintf(p->out, "\r%9.1f MB  %7.1f MB/s", mb, rate);
	}
	fflush(p->out);
	p->shown = true;
}

void progress_end(struct progress *p)
{
	if (p->shown)
		fputc('\n', p->out);
	p->shown = false;
}
