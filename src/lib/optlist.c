/* optlist.c - format options as an ordered key/value list.
 *
 * Text is taken as qemu-img's -o: "key=value,key=value", where ",," is a
 * literal comma in a value. Keys are case-sensitive as in qemu. A list
 * holds at most DSCP_OPTLIST_MAX entries of at most DSCP_OPTION_TEXT_MAX
 * bytes each, so a client cannot make it grow without bound.
 */
#include "internal.h"

#define DSCP_OPTLIST_MAX 64
#define DSCP_OPTION_TEXT_MAX 1024

struct dsc_optlist {
	size_t n;
	char *key[DSCP_OPTLIST_MAX];
	char *value[DSCP_OPTLIST_MAX];
};

dsc_err dsc_optlist_new(dsc_optlist **out, struct dsc_error *e)
{
	*out = calloc(1, sizeof **out);
	if (!*out)
		return dsc_error_set(e, DSC_ERR_NOMEM, ENOMEM, "options: out of memory");
	return DSC_OK;
}

void dsc_optlist_free(dsc_optlist *l)
{
	size_t i;

	if (!l)
		return;
	for (i = 0; i < l->n; i++) {
		free(l->key[i]);
		free(l->value[i]);
	}
	free(l);
}

static bool key_valid(const char *k)
{
	if (!*k)
		return false;
	for (; *k; k++)
		if (!((*k >= 'a' && *k <= 'z') || (*k >= 'A' && *k <= 'Z') ||
		      (*k >= '0' && *k <= '9') || *k == '_' || *k == '-' || *k == '.'))
			return false;
	return true;
}

dsc_err dsc_optlist_set(dsc_optlist *l, const char *key, const char *value, struct dsc_error *e)
{
	char *k, *v;
	size_t i;

	if (!l || !key || !value)
		return dsc_error_set(e, DSC_ERR_INVAL, 0, "options: no list, key or value");
	if (!key_valid(key) || strlen(key) > DSCP_OPTION_TEXT_MAX)
		return dsc_error_set(e, DSC_ERR_INVAL, 0, "options: '%.64s' is not an option name",
				     key);
	if (strlen(value) > DSCP_OPTION_TEXT_MAX)
		return dsc_error_set(e, DSC_ERR_LIMIT, 0,
				     "options: the value of %s exceeds %d bytes", key,
				     DSCP_OPTION_TEXT_MAX);
	for (i = 0; i < l->n; i++) {
		if (strcmp(l->key[i], key))
			continue;
		if (!(v = strdup(value)))
			return dsc_error_set(e, DSC_ERR_NOMEM, ENOMEM, "options: out of memory");
		free(l->value[i]);
		l->value[i] = v;
		return DSC_OK;
	}
	if (l->n == DSCP_OPTLIST_MAX)
		return dsc_error_set(e, DSC_ERR_LIMIT, 0, "options: more than %d options",
				     DSCP_OPTLIST_MAX);
	k = strdup(key);
	v = strdup(value);
	if (!k || !v) {
		free(k);
		free(v);
		return dsc_error_set(e, DSC_ERR_NOMEM, ENOMEM, "options: out of memory");
	}
	l->key[l->n] = k;
	l->value[l->n] = v;
	l->n++;
	return DSC_OK;
}

/* Split `text` into a scratch list first, so a bad item adds nothing. */
dsc_err dsc_optlist_parse(dsc_optlist *l, const char *text, struct dsc_error *e)
{
	dsc_optlist *tmp = NULL;
	char *buf = NULL, *key, *val, *w;
	const char *p;
	size_t i, fresh;
	dsc_err rc;

	if (!l || !text)
		return dsc_error_set(e, DSC_ERR_INVAL, 0, "options: no list or text");
	if (strlen(text) > DSCP_OPTLIST_MAX * 2 * (size_t)DSCP_OPTION_TEXT_MAX)
		return dsc_error_set(e, DSC_ERR_LIMIT, 0, "options: text too long");
	rc = dsc_optlist_new(&tmp, e);
	if (rc != DSC_OK)
		return rc;
	buf = malloc(strlen(text) + 1);
	if (!buf) {
		rc = dsc_error_set(e, DSC_ERR_NOMEM, ENOMEM, "options: out of memory");
		goto out;
	}
	p = text;
	while (*p) {
		/* One item: the key up to '=', the value up to a lone ','. */
		w = key = buf;
		val = NULL;
		for (; *p; p++) {
			if (*p == ',') {
				if (p[1] != ',' || !val)
					break;
				p++; /* ",," is a comma in a value */
			} else if (*p == '=' && !val) {
				*w++ = '\0';
				val = w;
				continue;
			}
			*w++ = *p;
		}
		*w = '\0';
		if (!val) {
			rc = dsc_error_set(e, DSC_ERR_INVAL, 0, "options: '%.64s' is not key=value",
					   key);
			goto out;
		}
		rc = dsc_optlist_set(tmp, key, val, e);
		if (rc != DSC_OK)
			goto out;
		if (*p == ',' && p[1] == '\0') {
			rc = dsc_error_set(e, DSC_ERR_INVAL, 0,
					   "options: '%.64s' ends with a comma", text);
			goto out;
		}
		if (*p == ',')
			p++;
	}
	if (tmp->n == 0) {
		rc = dsc_error_set(e, DSC_ERR_INVAL, 0, "options: empty option list");
		goto out;
	}
	for (i = 0, fresh = 0; i < tmp->n; i++)
		fresh += dsc_optlist_get(l, tmp->key[i]) == NULL;
	if (l->n + fresh > DSCP_OPTLIST_MAX) {
		rc = dsc_error_set(e, DSC_ERR_LIMIT, 0, "options: more than %d options",
				   DSCP_OPTLIST_MAX);
		goto out;
	}
	for (i = 0; i < tmp->n && rc == DSC_OK; i++)
		rc = dsc_optlist_set(l, tmp->key[i], tmp->value[i], e);
out:
	free(buf);
	dsc_optlist_free(tmp);
	return rc;
}

const char *dsc_optlist_get(const dsc_optlist *l, const char *key)
{
	size_t i;

	for (i = 0; l && key && i < l->n; i++)
		if (!strcmp(l->key[i], key))
			return l->value[i];
	return NULL;
}

size_t dsc_optlist_count(const dsc_optlist *l) { return l ? l->n : 0; }

const char *dsc_optlist_key(const dsc_optlist *l, size_t i)
{
	return l && i < l->n ? l->key[i] : NULL;
}

const char *dsc_optlist_value(const dsc_optlist *l, size_t i)
{
	return l && i < l->n ? l->value[i] : NULL;
}
