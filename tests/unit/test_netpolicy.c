/* test_netpolicy.c - unit tests of the address policy URL sources apply at
 * every connect.
 *
 * The default policy must refuse every special-purpose range however the
 * address is written (IPv4, IPv4-mapped IPv6, NAT64, 6to4) and allow
 * global unicast; caller rules override it by prefix length, not order;
 * a bad rule list is refused whole.
 */
#include "testutil.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

static dsc_netpolicy *policy(void)
{
	struct dsc_error e = {0};
	dsc_netpolicy *p = NULL;

	if (dsc_netpolicy_new(&p, &e) != DSC_OK)
		tu_fail(__FILE__, __LINE__, "dsc_netpolicy_new: %s", e.message);
	return p;
}

#define DENIED(p, a)                                                             \
	do {                                                                     \
		if (dsc_netpolicy_allows_str((p), (a)))                          \
			tu_fail(__FILE__, __LINE__, "%s should be denied", (a)); \
	} while (0)
#define ALLOWED(p, a)                                                             \
	do {                                                                      \
		if (!dsc_netpolicy_allows_str((p), (a)))                          \
			tu_fail(__FILE__, __LINE__, "%s should be allowed", (a)); \
	} while (0)

static void test_default_denies_special(void)
{
	static const char *const denied[] = {
		"0.0.0.0",
		"0.1.2.3",
		"10.0.0.1",
		"10.255.255.255",
		"100.64.0.1",
		"100.127.255.254",
		"127.0.0.1",
		"127.1.2.3",
		"169.254.169.254",
		"172.16.0.1",
		"172.31.255.255",
		"192.0.0.8",
		"192.0.2.1",
		"192.88.99.1",
		"192.168.1.1",
		"198.18.0.1",
		"198.19.255.255",
		"198.51.100.7",
		"203.0.113.9",
		"224.0.0.1",
		"239.255.255.250",
		"240.0.0.1",
		"255.255.255.255",
		/* IPv6 */
		"::",
		"::1",
		"::127.0.0.1",
		"fc00::1",
		"fd12:3456::1",
		"fe80::1",
		"febf::1",
		"fec0::1",
		"ff02::1",
		"2001:db8::1",
		"2001::1",
		"100::1",
		/* IPv4 spelled in IPv6 */
		"::ffff:127.0.0.1",
		"::ffff:10.1.2.3",
		"::ffff:169.254.169.254",
		"::ffff:7f00:1",
		"64:ff9b::10.0.0.1",
		"64:ff9b::127.0.0.1",
		/* IPv4-translated (RFC 6052, SIIT): judged by the IPv4 inside */
		"::ffff:0:7f00:1",
		"::ffff:0:127.0.0.1",
		"::ffff:0:a9fe:a9fe",
		"::ffff:0:10.1.2.3",
		"0:0:0:0:ffff:0:c0a8:101",
		"2002:7f00:1::1",
		"2002:c0a8:101::1",
	};
	static const char *const allowed[] = {
		"1.1.1.1",           "8.8.8.8",           "100.63.255.255",   "100.128.0.0",
		"172.15.255.255",    "172.32.0.0",        "192.167.255.255",  "192.169.0.0",
		"198.17.255.255",    "198.20.0.0",        "223.255.255.255",  "11.0.0.1",
		"2606:4700::1111",   "2a00:1450:4001::1", "::ffff:8.8.8.8",   "64:ff9b::8.8.8.8",
		"2002:0808:0808::1", "::ffff:0:8.8.8.8",  "::ffff:0:101:101",
	};
	dsc_netpolicy *p = policy();
	size_t i;

	REQUIRE(p);
	for (i = 0; i < sizeof denied / sizeof *denied; i++)
		DENIED(p, denied[i]);
	for (i = 0; i < sizeof allowed / sizeof *allowed; i++)
		ALLOWED(p, allowed[i]);
	/* Not an address at all. */
	DENIED(p, "localhost");
	DENIED(p, "");
	DENIED(p, "10.0.0.0/8");
	dsc_netpolicy_free(p);
}

static void test_rules_override(void)
{
	struct dsc_error e = {0};
	dsc_netpolicy *p = policy();

	REQUIRE(p);
	/* Loopback allowed for tests; IPv4 rules cover the mapped form. */
	ASSERT_OK(dsc_netpolicy_add(p, "127.0.0.0/8, ::1", true, &e), &e);
	ALLOWED(p, "127.0.0.1");
	ALLOWED(p, "::ffff:127.0.0.1");
	ALLOWED(p, "::1");
	DENIED(p, "10.0.0.1");
	/* A narrower deny inside the allowed range wins, whatever the order. */
	ASSERT_OK(dsc_netpolicy_add(p, "127.0.0.2", false, &e), &e);
	DENIED(p, "127.0.0.2");
	ALLOWED(p, "127.0.0.3");
	/* A global range denied; a hole allowed in it. */
	ASSERT_OK(dsc_netpolicy_add(p, "203.0.0.0/8", false, &e), &e);
	ASSERT_OK(dsc_netpolicy_add(p, "8.8.8.0/24", false, &e), &e);
	ASSERT_OK(dsc_netpolicy_add(p, "8.8.8.8/32", true, &e), &e);
	DENIED(p, "8.8.8.9");
	ALLOWED(p, "8.8.8.8");
	/* IPv4 rules reach the IPv4-translated form too (as NAT64). */
	DENIED(p, "::ffff:0:8.8.8.9");
	ALLOWED(p, "::ffff:0:8.8.8.8");
	/* Equal prefixes: deny wins. */
	ASSERT_OK(dsc_netpolicy_add(p, "9.9.9.0/24", true, &e), &e);
	ASSERT_OK(dsc_netpolicy_add(p, "9.9.9.0/24", false, &e), &e);
	DENIED(p, "9.9.9.9");
	/* IPv4-mapped rules are IPv4 rules. */
	ASSERT_OK(dsc_netpolicy_add(p, "::ffff:192.168.7.0/120", true, &e), &e);
	ALLOWED(p, "192.168.7.1");
	DENIED(p, "192.168.8.1");
	/* Everything: 0.0.0.0/0 overrides the special table too. */
	ASSERT_OK(dsc_netpolicy_add(p, "0.0.0.0/0", true, &e), &e);
	ALLOWED(p, "10.0.0.1");
	DENIED(p, "fd00::1");
	dsc_netpolicy_free(p);
}

static void test_default_deny(void)
{
	struct dsc_error e = {0};
	dsc_netpolicy *p = policy();

	REQUIRE(p);
	dsc_netpolicy_set_default(p, false);
	DENIED(p, "8.8.8.8");
	ASSERT_OK(dsc_netpolicy_add(p, "8.8.0.0/16 2001:4860::/32", true, &e), &e);
	ALLOWED(p, "8.8.4.4");
	ALLOWED(p, "2001:4860:4860::8888");
	DENIED(p, "1.1.1.1");
	/* Specials stay denied in an allow-list policy too. */
	DENIED(p, "127.0.0.1");
	dsc_netpolicy_free(p);
}

static void test_bad_rules(void)
{
	static const char *const bad[] = {
		"",
		" , ",
		"10.0.0.0/33",
		"10.0.0.1/8",
		"::1/129",
		"fe80::/",
		"10.0.0.0/-1",
		"10.0.0.0/8x",
		"host.example",
		"10.0.0.256",
		"1.2.3.4, nonsense",
	};
	dsc_netpolicy *p = policy();
	size_t i;

	REQUIRE(p);
	for (i = 0; i < sizeof bad / sizeof *bad; i++) {
		struct dsc_error e = {0};
		dsc_err rc = dsc_netpolicy_add(p, bad[i], true, &e);
		if (rc != DSC_ERR_INVAL)
			tu_fail(__FILE__, __LINE__, "'%s': got %s, want INVAL", bad[i],
				dsc_err_name(rc));
		else
			ASSERT(strstr(e.message, "address policy") != NULL);
	}
	/* Nothing of the bad list "1.2.3.4, nonsense" was added. */
	dsc_netpolicy_set_default(p, false);
	DENIED(p, "1.2.3.4");
	dsc_netpolicy_free(p);
	dsc_netpolicy_free(NULL);
}

static void test_sockaddr(void)
{
	struct sockaddr_in in4 = {.sin_family = AF_INET};
	struct sockaddr_in6 in6 = {.sin6_family = AF_INET6};
	struct sockaddr sa = {.sa_family = AF_UNIX};
	dsc_netpolicy *p = policy();

	REQUIRE(p);
	inet_pton(AF_INET, "169.254.169.254", &in4.sin_addr);
	ASSERT(!dsc_netpolicy_allows(p, (struct sockaddr *)&in4));
	inet_pton(AF_INET, "93.184.216.34", &in4.sin_addr);
	ASSERT(dsc_netpolicy_allows(p, (struct sockaddr *)&in4));
	inet_pton(AF_INET6, "::ffff:169.254.169.254", &in6.sin6_addr);
	ASSERT(!dsc_netpolicy_allows(p, (struct sockaddr *)&in6));
	inet_pton(AF_INET6, "2606:2800:220:1::1", &in6.sin6_addr);
	ASSERT(dsc_netpolicy_allows(p, (struct sockaddr *)&in6));
	ASSERT(!dsc_netpolicy_allows(p, &sa));
	ASSERT(!dsc_netpolicy_allows(NULL, (struct sockaddr *)&in4));
	dsc_netpolicy_free(p);
}

int main(void)
{
	TU_RUN(test_default_denies_special);
	TU_RUN(test_rules_override);
	TU_RUN(test_default_deny);
	TU_RUN(test_bad_rules);
	TU_RUN(test_sockaddr);
	return tu_exit();
}
