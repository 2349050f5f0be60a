// Big-endian length prefixes used by the Juicebox byte layouts (PROTOCOL-NOTES section 1):
// be2 in the signed OPRF public key message, be4 in every MAC input.
#ifndef PINVAULT_VAULT_PROTOCOL_BE_H_
#define PINVAULT_VAULT_PROTOCOL_BE_H_

#include <cstdint>
#include <span>
#include <vector>

namespace pinvault::protocol {

// AppendBe2 appends `value` as 2 big-endian bytes to `out`.
inline void AppendBe2(std::vector<uint8_t>& out, uint16_t value) {
  out.push_back(static_cast<uint8_t>(value >> 8));
  out.push_back(static_cast<uint8_t>(value));
}

// AppendBe4 appends `value` as 4 big-endian bytes to `out`.
inline void AppendBe4(std::vector<uint8_t>& out, uint32_t value) {
  out.push_back(static_cast<uint8_t>(value >> 24));
  out.push_back(static_cast<uint8_t>(value >> 16));
  out.push_back(static_cast<uint8_t>(value >> 8));
  out.push_back(static_cast<uint8_t>(value));
}

// StoreBe4 writes `value` as 4 big-endian bytes at out[0..4]; `out` must hold 4 bytes.
inline void StoreBe4(std::span<uint8_t, 4> out, uint32_t value) {
  out[0] = static_cast<uint8_t>(value >> 24);
  out[1] = static_cast<uint8_t>(value >> 16);
  out[2] = static_cast<uint8_t>(value >> 8);
  out[3] = static_cast<uint8_t>(value);
}

}  // namespace pinvault::protocol

#endif  // PINVAULT_VAULT_PROTOCOL_BE_H_
