/* fuzz_netpolicy.c - libFuzzer harness: the /import address policy
 * (dsc_netpolicy_add's CIDR lists, dsc_netpolicy_allows_str's addresses).
 *
 * The input is "RULES\nADDRESS\n...": RULES go through dsc_netpolicy_add
 * (allow when the first byte is even, deny when odd); each ADDRESS is
 * judged. Promises of dsc.h checked here:
 *  - a failed add names the bad item and adds nothing (the verdicts of a
 *    policy are the same as a fresh one's);
 *  - an IPv4 address and its IPv4-mapped IPv6 form (::ffff:a.b.c.d) always
 *    get the same verdict;
 *  - with no rules, loopback, private, link-local and CGNAT addresses are
 *    denied, as are their mapped forms.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dsc.h"

static void check_mapped(const dsc_netpolicy *p, const char *addr)
{
	struct in_addr a4;
	char mapped[64];

	if (inet_pton(AF_INET, addr, &a4) != 1)
		return;
	snprintf(mapped, sizeof mapped, "::ffff:%s", addr);
	if (dsc_netpolicy_allows_str(p, addr) != dsc_netpolicy_allows_str(p, mapped))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const denied[] = {"127.0.0.1",   "10.1.2.3",        "172.16.0.1",
					     "192.168.1.1", "169.254.169.254", "100.64.0.1",
					     "::1",         "fe80::1",         "fc00::1",
					     "0.0.0.0",     "224.0.0.1"};
	struct dsc_error e = {0};
	dsc_netpolicy *p = NULL, *fresh = NULL;
	char *s, *line, *save = NULL;
	bool allow;
	size_t i;

	if (size == 0)
		return 0;
	s = malloc(size + 1);
	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	allow = !(s[0] & 1);
	if (dsc_netpolicy_new(&p, &e) != DSC_OK || dsc_netpolicy_new(&fresh, &e) != DSC_OK)
		abort();
	for (i = 0; i < sizeof denied / sizeof denied[0]; i++) {
		if (dsc_netpolicy_allows_str(fresh, denied[i]))
			abort();
		check_mapped(fresh, denied[i]);
	}
	line = strtok_r(s + 1, "\n", &save);
	if (line) {
		memset(&e, 0, sizeof e);
		if (dsc_netpolicy_add(p, line, allow, &e) != DSC_OK) {
			if (!e.message[0])
				abort();
			/* Nothing of a refused list was added. */
			for (i = 0; i < sizeof denied / sizeof denied[0]; i++)
				if (dsc_netpolicy_allows_str(p, denied[i]) !=
				    dsc_netpolicy_allows_str(fresh, denied[i]))
					abort();
		}
		while ((line = strtok_r(NULL, "\n", &save)) != NULL) {
			(void)dsc_netpolicy_allows_str(p, line);
			check_mapped(p, line);
			check_mapped(fresh, line);
		}
	}
	dsc_netpolicy_free(p);
	dsc_netpolicy_free(fresh);
	free(s);
	return 0;
}
