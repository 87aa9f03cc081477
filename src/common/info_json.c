/* info_json.c - `dsc-img info` as JSON, for dsc-img and dsc-server. */
#include "config.h"

#include "info_json.h"

static json_t *item_value(const struct dsc_info_item *it)
{
	switch (it->type) {
	case DSC_INFO_STRING: return json_string(it->str);
	case DSC_INFO_UINT: return json_integer((json_int_t)it->num);
	case DSC_INFO_BOOL: return json_boolean(it->num != 0);
	}
	return json_null();
}

/* The format-specific data: plain fields, and list entries as objects in
 * arrays (a VMDK's "extents"). */
static json_t *specific_data(const dsc_reader *r)
{
	json_t *data = json_object();
	size_t i, n = dsc_reader_info_count(r);

	for (i = 0; data && i < n; i++) {
		const struct dsc_info_item *it = dsc_reader_info_at(r, i);
		json_t *v = item_value(it), *list, *entry;

		if (!v)
			goto fail;
		if (!it->list) {
			json_object_set_new(data, it->key, v);
			continue;
		}
		list = json_object_get(data, it->list);
		if (!list) {
			list = json_array();
			if (!list || json_object_set_new(data, it->list, list)) {
				json_decref(v);
				goto fail;
			}
		}
		while (json_array_size(list) <= it->index)
			if (json_array_append_new(list, json_object())) {
				json_decref(v);
				goto fail;
			}
		entry = json_array_get(list, it->index);
		json_object_set_new(entry, it->key, v);
	}
	return data;
fail:
	json_decref(data);
	return NULL;
}

json_t *info_json(const dsc_reader *r, const char *filename, int64_t actual_size,
		  const struct info_walk *walk)
{
	json_t *o = json_object(), *data;
	uint64_t cap = dsc_reader_capacity(r);
	const char *fmt = dsc_format_name(dsc_reader_format(r));

	if (!o)
		return NULL;
	if (cap != DSC_CAPACITY_UNKNOWN)
		json_object_set_new(o, "virtual-size", json_integer((json_int_t)cap));
	json_object_set_new(o, "filename", json_string(filename));
	if (dsc_reader_cluster_size(r))
		json_object_set_new(o, "cluster-size",
				    json_integer((json_int_t)dsc_reader_cluster_size(r)));
	json_object_set_new(o, "format", json_string(fmt));
	if (actual_size >= 0)
		json_object_set_new(o, "actual-size", json_integer(actual_size));
	if (dsc_reader_info_count(r)) {
		data = specific_data(r);
		if (!data) {
			json_decref(o);
			return NULL;
		}
		json_object_set_new(o, "format-specific",
				    json_pack("{s:s, s:o}", "type", fmt, "data", data));
	}
	if (dsc_reader_backing_file(r))
		json_object_set_new(o, "backing-filename", json_string(dsc_reader_backing_file(r)));
	if (dsc_reader_backing_format(r))
		json_object_set_new(o, "backing-filename-format",
				    json_string(dsc_reader_backing_format(r)));
	json_object_set_new(o, "dirty-flag", json_boolean(dsc_reader_dirty(r)));
	if (dsc_reader_compression(r))
		json_object_set_new(o, "dsc-compression",
				    json_string(dsc_format_name(dsc_reader_compression(r))));
	if (dsc_reader_archive(r))
		json_object_set_new(o, "dsc-archive",
				    json_string(dsc_format_name(dsc_reader_archive(r))));
	if (walk && walk->ordered_known)
		json_object_set_new(o, "dsc-stream-ordered", json_boolean(walk->stream_ordered));
	if (walk && walk->walked)
		json_object_set_new(o, "dsc-data-bytes",
				    json_integer((json_int_t)walk->data_bytes));
	return o;
}
