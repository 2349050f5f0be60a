// Header-only helpers shared by the vault/protocol tests: hex to fixed arrays and
// SecretBytes, and loading the Juicebox vector files under PINVAULT_TEST_DATA.
#ifndef PINVAULT_TESTS_VAULT_PROTOCOL_TEST_UTIL_H_
#define PINVAULT_TESTS_VAULT_PROTOCOL_TEST_UTIL_H_

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "vault/bytes.h"
#include "vault/secret_bytes.h"

namespace pinvault::protocol::testing {

// Hex decodes `hex`, failing the current test (and returning empty) on bad input.
inline Bytes Hex(std::string_view hex) {
  auto decoded = HexDecode(hex);
  EXPECT_TRUE(decoded.ok()) << decoded.status() << " for " << hex;
  return decoded.ok() ? *decoded : Bytes();
}

// HexArray decodes `hex` into an N-byte array; the size must match exactly.
template <size_t N>
std::array<uint8_t, N> HexArray(std::string_view hex) {
  std::array<uint8_t, N> out{};
  Bytes bytes = Hex(hex);
  EXPECT_EQ(bytes.size(), N) << "for " << hex;
  if (bytes.size() == N) std::copy(bytes.begin(), bytes.end(), out.begin());
  return out;
}

// HexSecret decodes `hex` into secure memory.
inline SecretBytes HexSecret(std::string_view hex) {
  Bytes bytes = Hex(hex);
  return SecretBytes::CopyFrom(bytes);
}

// HexOf spells a secret in hex for comparisons with recorded vectors in tests only.
inline std::string HexOf(const SecretBytes& secret) { return HexEncode(secret.Reveal()); }

// LoadJson parses PINVAULT_TEST_DATA/<relative>; an unreadable file fails the test.
inline nlohmann::json LoadJson(const std::string& relative) {
  const std::string path = std::string(PINVAULT_TEST_DATA) + "/" + relative;
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << "cannot open " << path;
  if (!in.good()) return nlohmann::json();
  return nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
}

}  // namespace pinvault::protocol::testing

#endif  // PINVAULT_TESTS_VAULT_PROTOCOL_TEST_UTIL_H_
