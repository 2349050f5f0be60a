#include "backup/client/configuration.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>
#include <utility>

namespace pinvault::backup {
namespace {

using Json = nlohmann::json;

bool HasHttpScheme(std::string_view address) {
  auto starts_with = [&](std::string_view prefix) {
    if (address.size() <= prefix.size()) return false;  // the host must follow
    for (size_t i = 0; i < prefix.size(); ++i) {
      char c = address[i];
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
      if (c != prefix[i]) return false;
    }
    return true;
  };
  return starts_with("http://") || starts_with("https://");
}

// ReadUint32 reads `key` of `object` as an unsigned 32-bit integer.
StatusOr<uint32_t> ReadUint32(const Json& object, const char* key) {
  auto it = object.find(key);
  if (it == object.end()) {
    return InvalidArgumentError(std::string("configuration: missing \"") + key + "\"");
  }
  if (!it->is_number_unsigned() || it->get<uint64_t>() > UINT32_MAX) {
    return InvalidArgumentError(std::string("configuration: \"") + key +
                                "\" must be an unsigned 32-bit integer");
  }
  return static_cast<uint32_t>(it->get<uint64_t>());
}

StatusOr<RealmEndpoint> ParseRealm(const Json& value, size_t position) {
  const std::string where = "configuration: realms[" + std::to_string(position) + "]";
  if (!value.is_object()) return InvalidArgumentError(where + " must be an object");
  RealmEndpoint realm;

  auto id = value.find("id");
  if (id == value.end() || !id->is_string()) {
    return InvalidArgumentError(where + ".id must be a string");
  }
  StatusOr<RealmId> parsed_id = ParseRealmId(id->get_ref<const std::string&>());
  if (!parsed_id.ok()) return parsed_id.status().WithContext(where + ".id");
  realm.id = *parsed_id;

  auto address = value.find("address");
  if (address == value.end() || !address->is_string()) {
    return InvalidArgumentError(where + ".address must be a string");
  }
  realm.address = address->get<std::string>();

  auto public_key = value.find("public_key");
  if (public_key != value.end() && !public_key->is_null()) {
    if (!public_key->is_string()) {
      return InvalidArgumentError(where + ".public_key must be a hex string or null");
    }
    StatusOr<Bytes> key = HexDecode(public_key->get_ref<const std::string&>());
    if (!key.ok() || key->size() != kRealmPublicKeySize) {
      return InvalidArgumentError(where + ".public_key must be 32 bytes of hex");
    }
    std::array<uint8_t, kRealmPublicKeySize> bytes{};
    std::copy(key->begin(), key->end(), bytes.begin());
    realm.public_key = bytes;
  }
  return realm;
}

StatusOr<Configuration> FromJsonValue(const Json& root) {
  if (!root.is_object()) return InvalidArgumentError("configuration: must be a JSON object");
  auto realms_json = root.find("realms");
  if (realms_json == root.end() || !realms_json->is_array()) {
    return InvalidArgumentError("configuration: \"realms\" must be an array");
  }
  std::vector<RealmEndpoint> realms;
  realms.reserve(realms_json->size());
  for (size_t i = 0; i < realms_json->size(); ++i) {
    ASSIGN_OR_RETURN(RealmEndpoint realm, ParseRealm((*realms_json)[i], i));
    realms.push_back(std::move(realm));
  }
  ASSIGN_OR_RETURN(uint32_t register_threshold, ReadUint32(root, "register_threshold"));
  ASSIGN_OR_RETURN(uint32_t recover_threshold, ReadUint32(root, "recover_threshold"));
  auto mode_json = root.find("pin_hashing_mode");
  if (mode_json == root.end() || !mode_json->is_string()) {
    return InvalidArgumentError(
        "configuration: \"pin_hashing_mode\" must be \"Standard2019\" or \"FastInsecure\"");
  }
  StatusOr<protocol::PinHashingMode> mode =
      protocol::ParsePinHashingMode(mode_json->get_ref<const std::string&>());
  if (!mode.ok()) {
    return InvalidArgumentError("configuration: unknown pin_hashing_mode \"" +
                                mode_json->get<std::string>().substr(0, 40) +
                                "\" (expected \"Standard2019\" or \"FastInsecure\")");
  }
  return Configuration::Create(std::move(realms), register_threshold, recover_threshold, *mode);
}

}  // namespace

StatusOr<Configuration> Configuration::Create(std::vector<RealmEndpoint> realms,
                                              uint32_t register_threshold,
                                              uint32_t recover_threshold,
                                              protocol::PinHashingMode pin_hashing_mode) {
  const size_t n = realms.size();
  if (n == 0) return InvalidArgumentError("configuration: at least one realm is required");
  if (n > kMaxRealms) {
    return InvalidArgumentError("configuration: " + std::to_string(n) + " realms given; at most " +
                                std::to_string(kMaxRealms) + " are supported");
  }
  std::set<RealmId> seen;
  for (const RealmEndpoint& realm : realms) {
    if (!seen.insert(realm.id).second) {
      return InvalidArgumentError("configuration: realm id " + RealmIdHex(realm.id) +
                                  " appears more than once; realm ids must be unique");
    }
    if (!HasHttpScheme(realm.address)) {
      return InvalidArgumentError("configuration: realm " + RealmIdHex(realm.id) + " address \"" +
                                  realm.address.substr(0, 100) +
                                  "\" is not an http:// or https:// URL");
    }
  }
  const std::string n_text = std::to_string(n) + (n == 1 ? " realm" : " realms");
  if (recover_threshold < 1) {
    return InvalidArgumentError("configuration: recover_threshold must be at least 1");
  }
  if (recover_threshold > n) {
    return InvalidArgumentError("configuration: recover_threshold " +
                                std::to_string(recover_threshold) + " exceeds the " + n_text);
  }
  if (2 * static_cast<uint64_t>(recover_threshold) <= n) {
    return InvalidArgumentError("configuration: recover_threshold " +
                                std::to_string(recover_threshold) +
                                " is not a strict majority of the " + n_text +
                                " (need 2 * recover_threshold > number of realms)");
  }
  if (register_threshold < recover_threshold) {
    return InvalidArgumentError("configuration: register_threshold " +
                                std::to_string(register_threshold) +
                                " is below recover_threshold " + std::to_string(recover_threshold));
  }
  if (register_threshold > n) {
    return InvalidArgumentError("configuration: register_threshold " +
                                std::to_string(register_threshold) + " exceeds the " + n_text);
  }

  std::sort(realms.begin(), realms.end(),
            [](const RealmEndpoint& a, const RealmEndpoint& b) { return a.id < b.id; });
  std::vector<RealmId> ids;
  ids.reserve(n);
  for (const RealmEndpoint& realm : realms) ids.push_back(realm.id);
  StatusOr<std::vector<protocol::ShareIndex>> indices = protocol::ShareIndices(ids);
  if (!indices.ok()) return indices.status().WithContext("configuration");
  return Configuration(std::move(realms), std::move(indices).value(), register_threshold,
                       recover_threshold, pin_hashing_mode);
}

StatusOr<Configuration> Configuration::FromJson(std::string_view json) {
  Json root = Json::parse(json, /*cb=*/nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded()) return InvalidArgumentError("configuration: not valid JSON");
  return FromJsonValue(root);
}

StatusOr<std::vector<Configuration>> Configuration::ListFromJson(std::string_view json) {
  Json root = Json::parse(json, /*cb=*/nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded()) return InvalidArgumentError("configurations: not valid JSON");
  if (!root.is_array()) return InvalidArgumentError("configurations: must be a JSON array");
  std::vector<Configuration> out;
  out.reserve(root.size());
  for (size_t i = 0; i < root.size(); ++i) {
    StatusOr<Configuration> configuration = FromJsonValue(root[i]);
    if (!configuration.ok()) {
      return configuration.status().WithContext("configurations[" + std::to_string(i) + "]");
    }
    out.push_back(std::move(configuration).value());
  }
  return out;
}

std::string Configuration::ToJson() const {
  Json realms = Json::array();
  for (const RealmEndpoint& realm : realms_) {
    Json entry = Json::object();
    entry["id"] = RealmIdHex(realm.id);
    entry["address"] = realm.address;
    if (realm.public_key) entry["public_key"] = HexEncode(*realm.public_key);
    realms.push_back(std::move(entry));
  }
  Json root = Json::object();
  root["realms"] = std::move(realms);
  root["register_threshold"] = register_threshold_;
  root["recover_threshold"] = recover_threshold_;
  root["pin_hashing_mode"] = std::string(protocol::PinHashingModeName(pin_hashing_mode_));
  // Addresses given to Create may hold invalid UTF-8; replace rather than fail.
  return root.dump(2, ' ', /*ensure_ascii=*/false, Json::error_handler_t::replace);
}

StatusOr<protocol::ShareIndex> Configuration::ShareIndexOf(const RealmId& id) const {
  for (size_t i = 0; i < realms_.size(); ++i) {
    if (realms_[i].id == id) return share_indices_[i];
  }
  return NotFoundError("realm " + RealmIdHex(id) + " is not in the configuration");
}

bool Configuration::has_hardware_realms() const {
  return std::any_of(realms_.begin(), realms_.end(),
                     [](const RealmEndpoint& realm) { return realm.is_hardware(); });
}

}  // namespace pinvault::backup
