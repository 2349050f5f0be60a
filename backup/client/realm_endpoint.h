// RealmEndpoint: how the client addresses one realm (id, network address, optional hardware-realm
// public key), and the realm-id spelling rules of the Juicebox configuration.
//
// Header-only so that transports and test fixtures can use it without linking the client
// library.
#ifndef PINVAULT_BACKUP_CLIENT_REALM_ENDPOINT_H_
#define PINVAULT_BACKUP_CLIENT_REALM_ENDPOINT_H_

#include <algorithm>
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "vault/bytes.h"
#include "vault/protocol/messages.h"
#include "vault/status.h"

namespace pinvault::backup {

using protocol::RealmId;

// kRealmPublicKeySize is the size of a hardware realm's X25519 Noise public key.
inline constexpr size_t kRealmPublicKeySize = 32;

// RealmEndpoint is one entry of a configuration. Plain value; thread-compatible.
struct RealmEndpoint {
  RealmId id{};
  // address is the realm's base URL (e.g. "https://realm.example/"); the HTTP transport
  // joins "req" onto it.
  std::string address;
  // public_key is set for a hardware realm (Noise over HTTP). Only software realms (no
  // public key) are supported by this library.
  std::optional<std::array<uint8_t, kRealmPublicKeySize>> public_key;

  // is_hardware reports whether the realm is a hardware realm.
  bool is_hardware() const { return public_key.has_value(); }

  friend bool operator==(const RealmEndpoint&, const RealmEndpoint&) = default;
};

// RealmIdHex returns the realm id as 32 lowercase hex characters (the JWT `aud` spelling).
inline std::string RealmIdHex(const RealmId& id) { return HexEncode(id); }

// ParseRealmId parses a realm id as the SDK does: '-' characters are removed, the rest must
// be exactly 16 bytes of hex (either case). INVALID_ARGUMENT otherwise (the message quotes
// the input, which is not secret).
inline StatusOr<RealmId> ParseRealmId(std::string_view text) {
  std::string stripped;
  stripped.reserve(text.size());
  for (char c : text) {
    if (c != '-') stripped.push_back(c);
  }
  StatusOr<Bytes> bytes = HexDecode(stripped);
  if (!bytes.ok() || bytes->size() != protocol::kRealmIdSize) {
    constexpr size_t kQuoteLimit = 80;  // keep messages short for absurd inputs
    std::string quoted(text.substr(0, kQuoteLimit));
    if (text.size() > kQuoteLimit) quoted += "...";
    return InvalidArgumentError("realm id \"" + quoted +
                                "\" is not 16 bytes of hex (32 hex digits, '-' allowed)");
  }
  RealmId id{};
  std::copy(bytes->begin(), bytes->end(), id.begin());
  return id;
}

}  // namespace pinvault::backup

#endif  // PINVAULT_BACKUP_CLIENT_REALM_ENDPOINT_H_
