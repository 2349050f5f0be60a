// Configuration: the realms a client spreads a secret over, the register and recover
// thresholds, and the PIN hashing mode, parsed from the JSON the Juicebox SDK takes:
//
//   {"realms": [{"id": "<32 hex, '-' allowed>", "address": "https://…/",
//                "public_key": "<64 hex, optional: hardware realm>"}, …],
//    "register_threshold": 3, "recover_threshold": 2, "pin_hashing_mode": "Standard2019"}
//
// A Configuration is always valid: ids unique, 1 <= recover_threshold <= n with a strict
// majority (2·t > n), recover_threshold <= register_threshold <= n, n <= 255. Its realms
// are kept sorted by id (the SDK's order); a realm's Shamir share index is 1 + its position
// in that order (protocol::ShareIndices), whatever the order in the JSON.
//
// Thread-safety: immutable after Create; safe to share between threads.
#ifndef PINVAULT_BACKUP_CLIENT_CONFIGURATION_H_
#define PINVAULT_BACKUP_CLIENT_CONFIGURATION_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "backup/client/realm_endpoint.h"
#include "vault/protocol/pin_hash.h"
#include "vault/protocol/shamir.h"
#include "vault/status.h"

namespace pinvault::backup {

// kMaxRealms is the largest number of realms a configuration may list (the SDK's limit).
inline constexpr size_t kMaxRealms = 255;

class Configuration {
 public:
  // Create validates and builds a configuration. `realms` may be in any order. Every
  // violation is INVALID_ARGUMENT with a message naming the offending value: no realms,
  // more than kMaxRealms, a duplicate id, an empty or non-http(s) address, a thresholds
  // rule broken (see the file comment).
  static StatusOr<Configuration> Create(std::vector<RealmEndpoint> realms,
                                        uint32_t register_threshold, uint32_t recover_threshold,
                                        protocol::PinHashingMode pin_hashing_mode);

  // FromJson parses the SDK's configuration JSON (snake_case keys; unknown keys are
  // ignored, as the SDK does) and validates it as Create does. INVALID_ARGUMENT for
  // malformed JSON, a missing or mistyped field, a bad realm id or public key, an unknown
  // pin_hashing_mode, or a failed validation rule.
  static StatusOr<Configuration> FromJson(std::string_view json);

  // ListFromJson parses a JSON array of configurations (e.g. previous configurations,
  // most recent first). INVALID_ARGUMENT naming the element that failed.
  static StatusOr<std::vector<Configuration>> ListFromJson(std::string_view json);

  // ToJson writes the configuration in the SDK's JSON form (realms sorted by id, ids as
  // lowercase hex). FromJson(ToJson()) gives an equal configuration.
  std::string ToJson() const;

  // realms returns the realms sorted bytewise by id.
  const std::vector<RealmEndpoint>& realms() const { return realms_; }

  // size returns the number of realms, n.
  size_t size() const { return realms_.size(); }

  uint32_t register_threshold() const { return register_threshold_; }
  uint32_t recover_threshold() const { return recover_threshold_; }
  protocol::PinHashingMode pin_hashing_mode() const { return pin_hashing_mode_; }

  // share_index returns the share index of realms()[position] (= position + 1).
  protocol::ShareIndex share_index(size_t position) const { return share_indices_[position]; }

  // ShareIndexOf returns the share index of the realm with `id`; NOT_FOUND if the
  // configuration has no such realm.
  StatusOr<protocol::ShareIndex> ShareIndexOf(const RealmId& id) const;

  // has_hardware_realms reports whether any realm has a public_key (a hardware realm,
  // reached over Noise, which this library does not speak; Client::Create rejects it).
  bool has_hardware_realms() const;

  friend bool operator==(const Configuration&, const Configuration&) = default;

 private:
  Configuration(std::vector<RealmEndpoint> realms, std::vector<protocol::ShareIndex> share_indices,
                uint32_t register_threshold, uint32_t recover_threshold,
                protocol::PinHashingMode pin_hashing_mode)
      : realms_(std::move(realms)),
        share_indices_(std::move(share_indices)),
        register_threshold_(register_threshold),
        recover_threshold_(recover_threshold),
        pin_hashing_mode_(pin_hashing_mode) {}

  std::vector<RealmEndpoint> realms_;                // sorted by id
  std::vector<protocol::ShareIndex> share_indices_;  // parallel to realms_
  uint32_t register_threshold_ = 0;
  uint32_t recover_threshold_ = 0;
  protocol::PinHashingMode pin_hashing_mode_ = protocol::PinHashingMode::kStandard2019;
};

}  // namespace pinvault::backup

#endif  // PINVAULT_BACKUP_CLIENT_CONFIGURATION_H_
