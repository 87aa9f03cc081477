/* ova.h - what ova_read.c (the format's entry) takes from ova_write.c. */
#ifndef DSC_OVA_H
#define DSC_OVA_H

#include "internal.h"

extern const struct dscp_writer_class dscp_ova_writer;
extern const struct dsc_option_info dscp_ova_options[];

#endif
