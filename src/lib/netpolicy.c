/* netpolicy.c - the address policy URL sources check before every connect.
 *
 * A policy is a list of allow/deny CIDR rules plus a built-in table of
 * special-purpose ranges (RFC 6890 and friends) that are denied unless a
 * rule says otherwise. Addresses are compared as 16-byte big-endian values
 * with a family tag; an IPv4-mapped IPv6 address is turned into its IPv4
 * form first, so "::ffff:127.0.0.1" meets exactly the rules of 127.0.0.1.
 * The most specific matching rule wins, which lets an operator deny a wide
 * range and allow a hole in it (or the reverse) without caring about order.
 */
#include "internal.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/socket.h>

/* A rule list is operator configuration, not input; still, bound it. */
#define NETPOLICY_MAX_RULES 4096

struct net {
	bool v6;
	uint8_t a[16]; /* IPv4 uses a[0..3] */
	unsigned plen; /* prefix length */
};

struct rule {
	struct net net;
	bool allow;
};

struct dsc_netpolicy {
	struct rule *rules;
	size_t n;
	bool default_allow;
};

/* Special-purpose ranges denied unless a rule allows them. */
static const char *const special_v4[] = {
	"0.0.0.0/8",       /* "this network" */
	"10.0.0.0/8",      /* private (RFC 1918) */
	"100.64.0.0/10",   /* carrier-grade NAT (RFC 6598) */
	"127.0.0.0/8",     /* loopback */
	"169.254.0.0/16",  /* link-local, cloud metadata endpoints */
	"172.16.0.0/12",   /* private */
	"192.0.0.0/24",    /* IETF protocol assignments */
	"192.0.2.0/24",    /* TEST-NET-1 */
	"192.31.196.0/24", /* AS112 */
	"192.52.193.0/24", /* AMT */
	"192.88.99.0/24",  /* 6to4 relay anycast */
	"192.168.0.0/16",  /* private */
	"192.175.48.0/24", /* AS112 direct delegation */
	"198.18.0.0/15",   /* benchmarking */
	"198.51.100.0/24", /* TEST-NET-2 */
	"203.0.113.0/24",  /* TEST-NET-3 */
	"224.0.0.0/4",     /* multicast */
	"240.0.0.0/4",     /* reserved, and the broadcast address */
};

static const char *const special_v6[] = {
	"::/128",         /* unspecified */
	"::1/128",        /* loopback */
	"::/96",          /* deprecated IPv4-compatible addresses */
	"64:ff9b:1::/48", /* local-use NAT64 */
	"100::/64",       /* discard-only */
	"2001::/32",      /* Teredo */
	"2001:2::/48",    /* benchmarking */
	"2001:10::/28",   /* ORCHID */
	"2001:20::/28",   /* ORCHIDv2 */
	"2001:db8::/32",  /* documentation */
	"3fff::/20",      /* documentation */
	"5f00::/16",      /* SRv6 SIDs */
	"fc00::/7",       /* unique local */
	"fe80::/10",      /* link-local */
	"fec0::/10",      /* deprecated site-local */
	"ff00::/8",       /* multicast */
};

static const uint8_t v4mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
static const uint8_t nat64_prefix[12] = {0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};
/* ::ffff:0:0/96, IPv4-translated addresses (RFC 6052 section 2.1, RFC 7915
 * SIIT): a translator forwards them to the IPv4 address in the last 32 bits. */
static const uint8_t v4translated_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0};

/* Turn ::ffff:a.b.c.d into a.b.c.d (and a /96+n prefix into /n). */
static void unmap(struct net *n)
{
	if (n->v6 && memcmp(n->a, v4mapped_prefix, 12) == 0 && n->plen >= 96) {
		memmove(n->a, n->a + 12, 4);
		memset(n->a + 4, 0, 12);
		n->v6 = false;
		n->plen -= 96;
	}
}

static bool contains(const struct net *net, const struct net *addr)
{
	unsigned full = net->plen / 8, rest = net->plen % 8;

	if (net->v6 != addr->v6)
		return false;
	if (memcmp(net->a, addr->a, full) != 0)
		return false;
	if (rest) {
		uint8_t mask = (uint8_t)(0xff << (8 - rest));
		if ((net->a[full] & mask) != (addr->a[full] & mask))
			return false;
	}
	return true;
}

/* Parse "addr" or "addr/len" (len within the family's width). */
static bool parse_net(const char *s, size_t len, struct net *n, const char **why)
{
	char buf[INET6_ADDRSTRLEN + 8], *slash, *end;
	unsigned long plen;
	unsigned width, i;

	*why = "not an IPv4 or IPv6 address";
	if (len == 0 || len >= sizeof buf)
		return false;
	memcpy(buf, s, len);
	buf[len] = '\0';
	memset(n, 0, sizeof *n);
	slash = strchr(buf, '/');
	if (slash)
		*slash = '\0';
	if (inet_pton(AF_INET, buf, n->a) == 1) {
		n->v6 = false;
		width = 32;
	} else if (inet_pton(AF_INET6, buf, n->a) == 1) {
		n->v6 = true;
		width = 128;
	} else {
		return false;
	}
	n->plen = width;
	if (slash) {
		if (!isdigit((unsigned char)slash[1])) {
			*why = "bad prefix length";
			return false;
		}
		errno = 0;
		plen = strtoul(slash + 1, &end, 10);
		if (errno || *end || plen > width) {
			*why = "bad prefix length";
			return false;
		}
		n->plen = (unsigned)plen;
	}
	for (i = n->plen; i < width; i++) {
		if (n->a[i / 8] & (0x80 >> (i % 8))) {
			*why = "address has bits set beyond the prefix length";
			return false;
		}
	}
	unmap(n);
	return true;
}

dsc_err dsc_netpolicy_new(dsc_netpolicy **out, struct dsc_error *e)
{
	dsc_netpolicy *p = calloc(1, sizeof *p);

	*out = NULL;
	if (!p)
		return dsc_error_set(e, DSC_ERR_NOMEM, ENOMEM, "address policy: out of memory");
	p->default_allow = true;
	*out = p;
	return DSC_OK;
}

void dsc_netpolicy_free(dsc_netpolicy *p)
{
	if (!p)
		return;
	free(p->rules);
	free(p);
}

void dsc_netpolicy_set_default(dsc_netpolicy *p, bool allow) { p->default_allow = allow; }

static bool is_sep(char c) { return c == ',' || isspace((unsigned char)c); }

dsc_err dsc_netpolicy_add(dsc_netpolicy *p, const char *cidrs, bool allow, struct dsc_error *e)
{
	const char *s, *start, *why;
	size_t count = 0, len;
	struct rule *grown;
	struct net n;

	if (!cidrs)
		return dsc_error_set(e, DSC_ERR_INVAL, 0, "address policy: no address given");
	/* Validate everything first so a bad item adds nothing. */
	for (s = cidrs;;) {
		while (*s && is_sep(*s))
			s++;
		if (!*s)
			break;
		start = s;
		while (*s && !is_sep(*s))
			s++;
		len = (size_t)(s - start);
		if (!parse_net(start, len, &n, &why))
			return dsc_error_set(e, DSC_ERR_INVAL, 0, "address policy: '%.*s': %s",
					     (int)DSC_MIN(len, (size_t)100), start, why);
		count++;
	}
	if (count == 0)
		return dsc_error_set(e, DSC_ERR_INVAL, 0, "address policy: no address in '%.100s'",
				     cidrs);
	if (count > NETPOLICY_MAX_RULES - p->n)
		return dsc_error_set(e, DSC_ERR_LIMIT, 0, "address policy: more than %d rules",
				     NETPOLICY_MAX_RULES);
	grown = realloc(p->rules, (p->n + count) * sizeof *grown);
	if (!grown)
		return dsc_error_set(e, DSC_ERR_NOMEM, ENOMEM, "address policy: out of memory");
	p->rules = grown;
	for (s = cidrs;;) {
		while (*s && is_sep(*s))
			s++;
		if (!*s)
			break;
		start = s;
		while (*s && !is_sep(*s))
			s++;
		parse_net(start, (size_t)(s - start), &n, &why);
		p->rules[p->n].net = n;
		p->rules[p->n].allow = allow;
		p->n++;
	}
	return DSC_OK;
}

static bool in_table(const char *const *table, size_t count, const struct net *addr)
{
	const char *why;
	struct net n;
	size_t i;

	/* The tables are short and constant; parsing them on each check keeps
	 * them readable and costs nothing next to a TCP connect. */
	for (i = 0; i < count; i++) {
		if (parse_net(table[i], strlen(table[i]), &n, &why) && contains(&n, addr))
			return true;
	}
	return false;
}

static bool verdict(const dsc_netpolicy *p, const struct net *addr)
{
	const struct rule *best = NULL;
	struct net v4;
	size_t i;

	for (i = 0; i < p->n; i++) {
		const struct rule *r = &p->rules[i];
		if (!contains(&r->net, addr))
			continue;
		if (!best || r->net.plen > best->net.plen ||
		    (r->net.plen == best->net.plen && !r->allow))
			best = r;
	}
	if (best)
		return best->allow;
	if (!addr->v6)
		return in_table(special_v4, sizeof special_v4 / sizeof *special_v4, addr) ?
			       false :
			       p->default_allow;
	if (in_table(special_v6, sizeof special_v6 / sizeof *special_v6, addr))
		return false;
	/* NAT64, IPv4-translated (SIIT) and 6to4 addresses carry an IPv4
	 * address that the packets end up at. */
	memset(&v4, 0, sizeof v4);
	v4.plen = 32;
	if (memcmp(addr->a, nat64_prefix, 12) == 0 ||
	    memcmp(addr->a, v4translated_prefix, 12) == 0) {
		memcpy(v4.a, addr->a + 12, 4);
		if (!verdict(p, &v4))
			return false;
	} else if (addr->a[0] == 0x20 && addr->a[1] == 0x02) {
		memcpy(v4.a, addr->a + 2, 4);
		if (!verdict(p, &v4))
			return false;
	}
	return p->default_allow;
}

bool dsc_netpolicy_allows(const dsc_netpolicy *p, const struct sockaddr *sa)
{
	struct net n;

	if (!p || !sa)
		return false;
	memset(&n, 0, sizeof n);
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
		memcpy(n.a, &in->sin_addr, 4);
		n.plen = 32;
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
		memcpy(n.a, &in6->sin6_addr, 16);
		n.v6 = true;
		n.plen = 128;
		unmap(&n);
	} else {
		return false;
	}
	return verdict(p, &n);
}

bool dsc_netpolicy_allows_str(const dsc_netpolicy *p, const char *addr)
{
	const char *why;
	struct net n;

	if (!p || !addr || strchr(addr, '/'))
		return false;
	if (!parse_net(addr, strlen(addr), &n, &why))
		return false;
	return verdict(p, &n);
}
