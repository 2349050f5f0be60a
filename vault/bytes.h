// Byte-string helpers for non-secret data (public keys, ciphertexts, record ids).
// Secrets never go in these types; they live in SecretBytes (vault/secret_bytes.h).
#ifndef PINVAULT_VAULT_BYTES_H_
#define PINVAULT_VAULT_BYTES_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "vault/status.h"

namespace pinvault {

using Bytes = std::vector<uint8_t>;
using ByteView = std::span<const uint8_t>;

// AsBytes views the characters of `s` as bytes (no copy; `s` must outlive the view).
inline ByteView AsBytes(std::string_view s) {
  return ByteView(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

// ToBytes copies `s` into a new byte vector.
inline Bytes ToBytes(std::string_view s) { return Bytes(s.begin(), s.end()); }

// HexEncode returns the lowercase hex spelling of `data`.
std::string HexEncode(ByteView data);

// HexDecode parses hex (either case, even length); InvalidArgument on anything else.
StatusOr<Bytes> HexDecode(std::string_view hex);

// Concat appends the views in order into one vector.
Bytes Concat(std::initializer_list<ByteView> parts);

}  // namespace pinvault

#endif  // PINVAULT_VAULT_BYTES_H_
