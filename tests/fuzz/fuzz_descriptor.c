/* fuzz_descriptor.c - libFuzzer harness: the embedded VMDK descriptor parser
 * (dscp_vmdk_descriptor_parse, internal to libdsc).
 *
 * The input is handed over as it is, without a terminating NUL, as the
 * reader does with the sectors it read; a copy of exactly `size` bytes in
 * its own allocation lets ASan catch a read one byte past the text. On
 * success the parsed strings must be NUL terminated inside their fields.
 */
#include "vmdk.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vmdk_descriptor d;
	struct dsc_error e = {0};
	char *text = malloc(size ? size : 1);
	dsc_err rc;

	if (!text)
		return 0;
	memcpy(text, data, size);
	rc = dscp_vmdk_descriptor_parse(text, size, "fuzz.vmdk", &d, &e);
	if (rc != DSC_OK) {
		if (e.code != rc || !e.message[0])
			abort();
	} else if (!memchr(d.create_type, '\0', sizeof d.create_type) ||
		   !memchr(d.extent_type, '\0', sizeof d.extent_type) ||
		   !memchr(d.extent_file, '\0', sizeof d.extent_file) || !d.create_type[0]) {
		abort();
	}
	free(text);
	return 0;
}
