/* info_json.h - `dsc-img info` as JSON, for dsc-img and dsc-server. */
#ifndef DSC_INFO_JSON_H
#define DSC_INFO_JSON_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "dsc.h"

/* What a walk through the whole image (every extent) found. */
struct info_walk {
	bool walked;         /* the image was read to its end */
	bool ordered_known;  /* stream_ordered holds an answer */
	bool stream_ordered; /* dsc reads it from a pipe in one pass */
	uint64_t data_bytes; /* bytes of the disk that hold data (not zero) */
};

/* qemu-img info's object for the image `r` reads (qemu's keys where it
 * has them: virtual-size, filename, cluster-size, format, actual-size,
 * format-specific, backing-filename, backing-filename-format, dirty-flag),
 * with dsc's own under "dsc-": dsc-compression, dsc-archive,
 * dsc-stream-ordered, dsc-data-bytes. actual_size < 0: not a local file.
 * walk may be NULL. NULL when out of memory. */
json_t *info_json(const dsc_reader *r, const char *filename, int64_t actual_size,
		  const struct info_walk *walk);

#endif
