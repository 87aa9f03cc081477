/* crc32c.h - CRC-32C (Castagnoli), the checksum of VHDX headers, region
 * tables and log entries.
 */
#ifndef DSC_CRC32C_H
#define DSC_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* CRC-32C of n bytes, continuing `crc` (0 to start): the reflected
 * polynomial 0x82F63B78, initial value and final xor 0xFFFFFFFF, so
 * dscp_crc32c(0, "123456789", 9) == 0xE3069283. Thread safe. */
uint32_t dscp_crc32c(uint32_t crc, const void *buf, size_t n);

#endif /* DSC_CRC32C_H */
