/* progress.h - the one-line progress display of dsc-convert. */
#ifndef DSC_CLI_PROGRESS_H
#define DSC_CLI_PROGRESS_H

#include <stdbool.h>
#include <stdio.h>

#include "dsc.h"

struct progress {
	FILE *out;
	bool shown; /* a line is on screen and needs a newline at the end */
};

/* Redraw the line: percent, MB/s and ETA when the total is known. */
void progress_update(struct progress *p, const struct dsc_progress *d);
/* End the line (after the final update). */
void progress_end(struct progress *p);

#endif
