#include "api/codec/cbor_codec.h"

#include <cbor.h>

#include <array>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include "vault/secret_bytes.h"

namespace pinvault::api {
namespace {

using protocol::SecretsRequest;
using protocol::SecretsResponse;

// ---------------------------------------------------------------------------------------
// Encoding: shortest-form heads written by libcbor's encoding helpers.

class Writer {
 public:
  // Every canonical message fits in kMaxJuiceboxBodySize; reserving it up front means the
  // buffer never reallocates, so no stray copy of a key share is left in freed memory.
  Writer() { out_.reserve(kMaxJuiceboxBodySize); }

  void MapStart(size_t entries) {
    Head(cbor_encode_map_start(entries, scratch_.data(), scratch_.size()));
  }
  void Text(std::string_view text) {
    Head(cbor_encode_string_start(text.size(), scratch_.data(), scratch_.size()));
    out_.insert(out_.end(), text.begin(), text.end());
  }
  void ByteString(std::span<const uint8_t> data) {
    Head(cbor_encode_bytestring_start(data.size(), scratch_.data(), scratch_.size()));
    out_.insert(out_.end(), data.begin(), data.end());
  }
  void Uint(uint64_t value) { Head(cbor_encode_uint(value, scratch_.data(), scratch_.size())); }

  // Key-value helpers for struct fields.
  void BytesField(std::string_view name, std::span<const uint8_t> data) {
    Text(name);
    ByteString(data);
  }
  void UintField(std::string_view name, uint64_t value) {
    Text(name);
    Uint(value);
  }
  // UnitVariant writes {"<outer>": "<inner>"}.
  void WrappedUnit(std::string_view outer, std::string_view inner) {
    MapStart(1);
    Text(outer);
    Text(inner);
  }

  Bytes Take() { return std::move(out_); }

 private:
  void Head(size_t written) {
    // libcbor returns 0 only if the scratch buffer is too small, which 9 bytes never is.
    out_.insert(out_.end(), scratch_.begin(), scratch_.begin() + written);
  }

  std::array<unsigned char, 9> scratch_{};
  Bytes out_;
};

void WriteSignedPublicKey(Writer& w, const protocol::OprfSignedPublicKey& key) {
  w.Text("oprf_signed_public_key");
  w.MapStart(3);
  w.BytesField("public_key", key.public_key);
  w.BytesField("verifying_key", key.verifying_key);
  w.BytesField("signature", key.signature);
}

Status CheckSecretSize(const SecretBytes& secret, size_t size, std::string_view what) {
  if (secret.size() != size) {
    return InvalidArgumentError(std::string(what) + " must be " + std::to_string(size) +
                                " bytes, has " + std::to_string(secret.size()));
  }
  return OkStatus();
}

// ---------------------------------------------------------------------------------------
// Decoding: a pull reader over libcbor's streaming decoder. Each Next() decodes exactly one
// head (plus the payload of a definite string, which stays inside the input buffer).

enum class Kind {
  kNone,
  kUint,
  kNegint,
  kBytes,
  kText,
  kArray,
  kMap,
  kTag,
  kFloat,
  kSimple,
  kIndefinite,
  kBreak,
};

std::string_view KindName(Kind kind) {
  switch (kind) {
    case Kind::kNone:
      return "an unsupported item";
    case Kind::kUint:
      return "an unsigned integer";
    case Kind::kNegint:
      return "a negative integer";
    case Kind::kBytes:
      return "a byte string";
    case Kind::kText:
      return "a text string";
    case Kind::kArray:
      return "an array";
    case Kind::kMap:
      return "a map";
    case Kind::kTag:
      return "a tag";
    case Kind::kFloat:
      return "a float";
    case Kind::kSimple:
      return "a simple value";
    case Kind::kIndefinite:
      return "an indefinite-length item";
    case Kind::kBreak:
      return "a break code";
  }
  return "an unsupported item";
}

struct Item {
  Kind kind = Kind::kNone;
  uint64_t value = 0;             // integer value, or the entry count of an array or map
  std::span<const uint8_t> data;  // payload of a definite byte or text string
  std::string_view text() const {
    return std::string_view(reinterpret_cast<const char*>(data.data()), data.size());
  }
};

Item& Ctx(void* context) { return *static_cast<Item*>(context); }
void OnUint8(void* c, uint8_t v) { Ctx(c) = Item{Kind::kUint, v, {}}; }
void OnUint16(void* c, uint16_t v) { Ctx(c) = Item{Kind::kUint, v, {}}; }
void OnUint32(void* c, uint32_t v) { Ctx(c) = Item{Kind::kUint, v, {}}; }
void OnUint64(void* c, uint64_t v) { Ctx(c) = Item{Kind::kUint, v, {}}; }
void OnNeg8(void* c, uint8_t) { Ctx(c) = Item{Kind::kNegint, 0, {}}; }
void OnNeg16(void* c, uint16_t) { Ctx(c) = Item{Kind::kNegint, 0, {}}; }
void OnNeg32(void* c, uint32_t) { Ctx(c) = Item{Kind::kNegint, 0, {}}; }
void OnNeg64(void* c, uint64_t) { Ctx(c) = Item{Kind::kNegint, 0, {}}; }
void OnBytes(void* c, cbor_data d, size_t n) { Ctx(c) = Item{Kind::kBytes, 0, {d, n}}; }
void OnText(void* c, cbor_data d, size_t n) { Ctx(c) = Item{Kind::kText, 0, {d, n}}; }
void OnIndefinite(void* c) { Ctx(c) = Item{Kind::kIndefinite, 0, {}}; }
void OnArray(void* c, size_t n) { Ctx(c) = Item{Kind::kArray, n, {}}; }
void OnMap(void* c, size_t n) { Ctx(c) = Item{Kind::kMap, n, {}}; }
void OnTag(void* c, uint64_t) { Ctx(c) = Item{Kind::kTag, 0, {}}; }
void OnFloat(void* c, float) { Ctx(c) = Item{Kind::kFloat, 0, {}}; }
void OnDouble(void* c, double) { Ctx(c) = Item{Kind::kFloat, 0, {}}; }
void OnSimple(void* c) { Ctx(c) = Item{Kind::kSimple, 0, {}}; }
void OnBool(void* c, bool) { Ctx(c) = Item{Kind::kSimple, 0, {}}; }
void OnBreak(void* c) { Ctx(c) = Item{Kind::kBreak, 0, {}}; }

cbor_callbacks MakeCallbacks() {
  cbor_callbacks cb = cbor_empty_callbacks;
  cb.uint8 = OnUint8;
  cb.uint16 = OnUint16;
  cb.uint32 = OnUint32;
  cb.uint64 = OnUint64;
  cb.negint8 = OnNeg8;
  cb.negint16 = OnNeg16;
  cb.negint32 = OnNeg32;
  cb.negint64 = OnNeg64;
  cb.byte_string = OnBytes;  // definite
  cb.byte_string_start = OnIndefinite;
  cb.string = OnText;  // definite
  cb.string_start = OnIndefinite;
  cb.array_start = OnArray;
  cb.indef_array_start = OnIndefinite;
  cb.map_start = OnMap;
  cb.indef_map_start = OnIndefinite;
  cb.tag = OnTag;
  cb.float2 = OnFloat;
  cb.float4 = OnFloat;
  cb.float8 = OnDouble;
  cb.undefined = OnSimple;
  cb.null = OnSimple;
  cb.boolean = OnBool;
  cb.indef_break = OnBreak;
  return cb;
}

const cbor_callbacks& Callbacks() {
  static const cbor_callbacks kCallbacks = MakeCallbacks();
  return kCallbacks;
}

// Printable renders untrusted text for an error message: printable ASCII only, bounded.
std::string Printable(std::string_view text) {
  constexpr size_t kMax = 40;
  std::string out = "\"";
  for (size_t i = 0; i < text.size() && i < kMax; ++i) {
    char c = text[i];
    out.push_back(c >= 0x20 && c < 0x7f && c != '"' && c != '\\' ? c : '?');
  }
  if (text.size() > kMax) out += "...";
  out += "\"";
  return out;
}

class Reader {
 public:
  Reader(ByteView input, std::string_view message_kind)
      : input_(input), message_kind_(message_kind) {}

  // Next decodes the next head. `path` names what is being read, for error messages.
  StatusOr<Item> Next(std::string_view path) {
    if (pos_ >= input_.size()) return Error(path, "unexpected end of input");
    Item item;
    cbor_decoder_result result =
        cbor_stream_decode(input_.data() + pos_, input_.size() - pos_, &Callbacks(), &item);
    if (result.status == CBOR_DECODER_NEDATA) return Error(path, "unexpected end of input");
    if (result.status != CBOR_DECODER_FINISHED || item.kind == Kind::kNone || result.read == 0 ||
        result.read > input_.size() - pos_) {
      return Error(path, "malformed CBOR at offset " + std::to_string(pos_));
    }
    if (item.kind == Kind::kIndefinite) {
      return Error(path, "indefinite-length items are not accepted");
    }
    pos_ += result.read;
    return item;
  }

  bool AtEnd() const { return pos_ == input_.size(); }
  size_t Remaining() const { return input_.size() - pos_; }

  Status Error(std::string_view path, std::string_view what) const {
    std::string message = "invalid CBOR ";
    message += message_kind_;
    if (!path.empty()) {
      message += " at ";
      message += path;
    }
    message += ": ";
    message += what;
    return InvalidArgumentError(std::move(message));
  }

  Status TypeError(std::string_view path, std::string_view expected, const Item& got) const {
    return Error(path,
                 "expected " + std::string(expected) + ", got " + std::string(KindName(got.kind)));
  }

 private:
  ByteView input_;
  std::string_view message_kind_;
  size_t pos_ = 0;
};

std::string Join(std::string_view path, std::string_view name) {
  std::string out(path);
  if (!out.empty()) out += ".";
  out += name;
  return out;
}

template <size_t N>
Status ReadFixedBytes(Reader& r, std::string_view path, std::array<uint8_t, N>& out) {
  ASSIGN_OR_RETURN(Item item, r.Next(path));
  if (item.kind != Kind::kBytes) return r.TypeError(path, "a byte string", item);
  if (item.data.size() != N) {
    return r.Error(path, "expected a byte string of " + std::to_string(N) + " bytes, got " +
                             std::to_string(item.data.size()));
  }
  std::copy(item.data.begin(), item.data.end(), out.begin());
  return OkStatus();
}

Status ReadSecret(Reader& r, std::string_view path, size_t size, SecretBytes& out) {
  ASSIGN_OR_RETURN(Item item, r.Next(path));
  if (item.kind != Kind::kBytes) return r.TypeError(path, "a byte string", item);
  if (item.data.size() != size) {
    return r.Error(path, "expected a byte string of " + std::to_string(size) + " bytes, got " +
                             std::to_string(item.data.size()));
  }
  out = SecretBytes::CopyFrom(item.data);
  return OkStatus();
}

Status ReadUint16(Reader& r, std::string_view path, uint16_t& out) {
  ASSIGN_OR_RETURN(Item item, r.Next(path));
  if (item.kind != Kind::kUint) return r.TypeError(path, "an unsigned integer", item);
  if (item.value > 0xffff) {
    return r.Error(path, std::to_string(item.value) + " is out of range (0..65535)");
  }
  out = static_cast<uint16_t>(item.value);
  return OkStatus();
}

// ReadStruct reads a map whose keys are exactly `names` (any order, each once) and calls
// `read_field(index, field_path)` to read each value.
template <typename ReadField>
Status ReadStruct(Reader& r, std::string_view path, std::initializer_list<std::string_view> names,
                  ReadField&& read_field) {
  ASSIGN_OR_RETURN(Item head, r.Next(path));
  if (head.kind != Kind::kMap) return r.TypeError(path, "a map", head);
  if (head.value != names.size()) {
    return r.Error(path, "expected a map of " + std::to_string(names.size()) + " entries, got " +
                             std::to_string(head.value));
  }
  uint32_t seen = 0;  // bit i: names[i] was read (no struct here has more than 32 fields)
  for (uint64_t entry = 0; entry < head.value; ++entry) {
    ASSIGN_OR_RETURN(Item key, r.Next(path));
    if (key.kind != Kind::kText) return r.TypeError(path, "a text key", key);
    size_t index = 0;
    for (std::string_view name : names) {
      if (name == key.text()) break;
      ++index;
    }
    if (index == names.size()) {
      return r.Error(path, "unknown field " + Printable(key.text()));
    }
    if (seen & (1u << index)) {
      return r.Error(path, "duplicate field " + Printable(key.text()));
    }
    seen |= 1u << index;
    RETURN_IF_ERROR(read_field(index, Join(path, key.text())));
  }
  // With exactly names.size() entries, no unknown and no duplicate keys, every field was
  // present; this is a guard against a future edit breaking that reasoning.
  if (seen != (1u << names.size()) - 1) return r.Error(path, "missing field");
  return OkStatus();
}

Status ReadSignedPublicKey(Reader& r, std::string_view path, protocol::OprfSignedPublicKey& out) {
  return ReadStruct(r, path, {"public_key", "verifying_key", "signature"},
                    [&](size_t i, const std::string& p) -> Status {
                      switch (i) {
                        case 0:
                          return ReadFixedBytes(r, p, out.public_key);
                        case 1:
                          return ReadFixedBytes(r, p, out.verifying_key);
                        default:
                          return ReadFixedBytes(r, p, out.signature);
                      }
                    });
}

Status ReadRegister2(Reader& r, std::string_view path, protocol::Register2Request& out) {
  return ReadStruct(
      r, path,
      {"version", "oprf_private_key", "oprf_signed_public_key", "unlock_key_commitment",
       "unlock_key_tag", "encryption_key_scalar_share", "encrypted_secret",
       "encrypted_secret_commitment", "policy"},
      [&](size_t i, const std::string& p) -> Status {
        switch (i) {
          case 0:
            return ReadFixedBytes(r, p, out.version);
          case 1:
            return ReadSecret(r, p, protocol::kScalarSize, out.oprf_private_key);
          case 2:
            return ReadSignedPublicKey(r, p, out.oprf_signed_public_key);
          case 3:
            return ReadFixedBytes(r, p, out.unlock_key_commitment);
          case 4:
            return ReadFixedBytes(r, p, out.unlock_key_tag);
          case 5:
            return ReadSecret(r, p, protocol::kScalarSize, out.encryption_key_scalar_share);
          case 6:
            return ReadFixedBytes(r, p, out.encrypted_secret);
          case 7:
            return ReadFixedBytes(r, p, out.encrypted_secret_commitment);
          default:
            return ReadStruct(r, p, {"num_guesses"}, [&](size_t, const std::string& q) {
              return ReadUint16(r, q, out.policy.num_guesses);
            });
        }
      });
}

Status CheckSize(ByteView body, std::string_view message_kind) {
  if (body.empty()) return InvalidArgumentError("empty " + std::string(message_kind) + " body");
  if (body.size() > kMaxJuiceboxBodySize) {
    return InvalidArgumentError(std::string(message_kind) + " body is " +
                                std::to_string(body.size()) + " bytes; the limit is " +
                                std::to_string(kMaxJuiceboxBodySize));
  }
  return OkStatus();
}

Status CheckEnd(const Reader& r) {
  if (!r.AtEnd()) {
    return r.Error("", std::to_string(r.Remaining()) + " trailing bytes after the message");
  }
  return OkStatus();
}

// ReadVariantHead reads the top of an externally tagged enum: either a text string (a unit
// variant; `unit` is set) or a one-entry map whose key is the variant name (`unit` unset, the
// reader is then positioned at the value).
struct VariantHead {
  std::string_view name;
  bool unit = false;
};

StatusOr<VariantHead> ReadVariantHead(Reader& r, std::string_view path) {
  ASSIGN_OR_RETURN(Item item, r.Next(path));
  if (item.kind == Kind::kText) return VariantHead{item.text(), true};
  if (item.kind != Kind::kMap) {
    return r.TypeError(path, "a text string or a map of one entry", item);
  }
  if (item.value != 1) {
    return r.Error(path, "expected a map of one entry, got " + std::to_string(item.value));
  }
  ASSIGN_OR_RETURN(Item key, r.Next(path));
  if (key.kind != Kind::kText) return r.TypeError(path, "a text key", key);
  return VariantHead{key.text(), false};
}

// ---- request decoding ----

StatusOr<SecretsRequest> ReadRequest(Reader& r) {
  ASSIGN_OR_RETURN(VariantHead head, ReadVariantHead(r, ""));
  const std::string_view name = head.name;
  const bool is_unit_name = name == "Register1" || name == "Recover1" || name == "Delete";
  const bool is_struct_name = name == "Register2" || name == "Recover2" || name == "Recover3";
  if (!is_unit_name && !is_struct_name) {
    return r.Error("", "unknown request variant " + Printable(name));
  }
  if (head.unit != is_unit_name) {
    return r.Error(name, is_unit_name ? "a unit variant must be a bare text string"
                                      : "this variant needs a map value");
  }
  if (name == "Register1") return SecretsRequest(protocol::Register1Request{});
  if (name == "Recover1") return SecretsRequest(protocol::Recover1Request{});
  if (name == "Delete") return SecretsRequest(protocol::DeleteRequest{});
  if (name == "Register2") {
    protocol::Register2Request request;
    RETURN_IF_ERROR(ReadRegister2(r, name, request));
    return SecretsRequest(std::move(request));
  }
  if (name == "Recover2") {
    protocol::Recover2Request request;
    RETURN_IF_ERROR(ReadStruct(r, name, {"version", "oprf_blinded_input"},
                               [&](size_t i, const std::string& p) -> Status {
                                 return i == 0 ? ReadFixedBytes(r, p, request.version)
                                               : ReadFixedBytes(r, p, request.oprf_blinded_input);
                               }));
    return SecretsRequest(request);
  }
  protocol::Recover3Request request;
  RETURN_IF_ERROR(ReadStruct(r, name, {"version", "unlock_key_tag"},
                             [&](size_t i, const std::string& p) -> Status {
                               return i == 0 ? ReadFixedBytes(r, p, request.version)
                                             : ReadFixedBytes(r, p, request.unlock_key_tag);
                             }));
  return SecretsRequest(request);
}

// ---- response decoding ----

// ReadStatusVariant reads the value of {"RecoverN": ...}: a unit status name from
// `unit_names` (returned as its index) or a one-entry map keyed by one of `struct_names`
// (returned as unit_names.size() + its index, the reader positioned at the struct).
StatusOr<size_t> ReadStatusVariant(Reader& r, std::string_view path,
                                   std::initializer_list<std::string_view> unit_names,
                                   std::initializer_list<std::string_view> struct_names) {
  ASSIGN_OR_RETURN(VariantHead head, ReadVariantHead(r, path));
  size_t index = 0;
  for (std::string_view name : unit_names) {
    if (name == head.name) {
      if (!head.unit) return r.Error(path, "a unit variant must be a bare text string");
      return index;
    }
    ++index;
  }
  for (std::string_view name : struct_names) {
    if (name == head.name) {
      if (head.unit) return r.Error(path, Printable(name) + " needs a map value");
      return index;
    }
    ++index;
  }
  return r.Error(path, "unknown variant " + Printable(head.name));
}

Status ReadOkUnit(Reader& r, std::string_view path) {
  ASSIGN_OR_RETURN(size_t index, ReadStatusVariant(r, path, {"Ok"}, {}));
  (void)index;
  return OkStatus();
}

StatusOr<SecretsResponse> ReadResponse(Reader& r) {
  ASSIGN_OR_RETURN(VariantHead head, ReadVariantHead(r, ""));
  const std::string_view name = head.name;
  static constexpr std::string_view kNames[] = {"Register1", "Register2", "Recover1",
                                                "Recover2",  "Recover3",  "Delete"};
  bool known = false;
  for (std::string_view n : kNames) known = known || n == name;
  if (!known) return r.Error("", "unknown response variant " + Printable(name));
  if (head.unit) return r.Error(name, "a response variant needs a value");

  if (name == "Register1") {
    RETURN_IF_ERROR(ReadOkUnit(r, name));
    return SecretsResponse(protocol::Register1Response{});
  }
  if (name == "Register2") {
    RETURN_IF_ERROR(ReadOkUnit(r, name));
    return SecretsResponse(protocol::Register2Response{});
  }
  if (name == "Delete") {
    RETURN_IF_ERROR(ReadOkUnit(r, name));
    return SecretsResponse(protocol::DeleteResponse{});
  }
  const std::string ok_path = Join(name, "Ok");
  if (name == "Recover1") {
    using S = protocol::Recover1Response::Status;
    protocol::Recover1Response response;
    ASSIGN_OR_RETURN(size_t v, ReadStatusVariant(r, name, {"NotRegistered", "NoGuesses"}, {"Ok"}));
    response.status = v == 0 ? S::kNotRegistered : v == 1 ? S::kNoGuesses : S::kOk;
    if (response.status == S::kOk) {
      RETURN_IF_ERROR(ReadStruct(r, ok_path, {"version"}, [&](size_t, const std::string& p) {
        return ReadFixedBytes(r, p, response.version);
      }));
    }
    return SecretsResponse(response);
  }
  if (name == "Recover2") {
    using S = protocol::Recover2Response::Status;
    protocol::Recover2Response response;
    ASSIGN_OR_RETURN(
        size_t v,
        ReadStatusVariant(r, name, {"VersionMismatch", "NotRegistered", "NoGuesses"}, {"Ok"}));
    static constexpr S kStatus[] = {S::kVersionMismatch, S::kNotRegistered, S::kNoGuesses, S::kOk};
    response.status = kStatus[v];
    if (response.status == S::kOk) {
      RETURN_IF_ERROR(ReadStruct(
          r, ok_path,
          {"oprf_signed_public_key", "oprf_blinded_result", "oprf_proof", "unlock_key_commitment",
           "num_guesses", "guess_count"},
          [&](size_t i, const std::string& p) -> Status {
            switch (i) {
              case 0:
                return ReadSignedPublicKey(r, p, response.oprf_signed_public_key);
              case 1:
                return ReadFixedBytes(r, p, response.oprf_blinded_result);
              case 2:
                return ReadStruct(r, p, {"c", "beta_z"}, [&](size_t j, const std::string& q) {
                  return j == 0 ? ReadFixedBytes(r, q, response.oprf_proof.c)
                                : ReadFixedBytes(r, q, response.oprf_proof.beta_z);
                });
              case 3:
                return ReadFixedBytes(r, p, response.unlock_key_commitment);
              case 4:
                return ReadUint16(r, p, response.num_guesses);
              default:
                return ReadUint16(r, p, response.guess_count);
            }
          }));
    }
    return SecretsResponse(std::move(response));
  }
  // Recover3
  using S = protocol::Recover3Response::Status;
  protocol::Recover3Response response;
  ASSIGN_OR_RETURN(size_t v,
                   ReadStatusVariant(r, name, {"VersionMismatch", "NotRegistered", "NoGuesses"},
                                     {"Ok", "BadUnlockKeyTag"}));
  static constexpr S kStatus[] = {S::kVersionMismatch, S::kNotRegistered, S::kNoGuesses, S::kOk,
                                  S::kBadUnlockKeyTag};
  response.status = kStatus[v];
  if (response.status == S::kOk) {
    RETURN_IF_ERROR(ReadStruct(
        r, ok_path,
        {"encryption_key_scalar_share", "encrypted_secret", "encrypted_secret_commitment"},
        [&](size_t i, const std::string& p) -> Status {
          switch (i) {
            case 0:
              return ReadSecret(r, p, protocol::kScalarSize, response.encryption_key_scalar_share);
            case 1:
              return ReadFixedBytes(r, p, response.encrypted_secret);
            default:
              return ReadFixedBytes(r, p, response.encrypted_secret_commitment);
          }
        }));
  } else if (response.status == S::kBadUnlockKeyTag) {
    RETURN_IF_ERROR(ReadStruct(r, Join(name, "BadUnlockKeyTag"), {"guesses_remaining"},
                               [&](size_t, const std::string& p) {
                                 return ReadUint16(r, p, response.guesses_remaining);
                               }));
  }
  return SecretsResponse(std::move(response));
}

// ---- response encoding ----

struct ResponseEncoder {
  Writer& w;

  Status operator()(const protocol::Register1Response&) {
    w.WrappedUnit("Register1", "Ok");
    return OkStatus();
  }
  Status operator()(const protocol::Register2Response&) {
    w.WrappedUnit("Register2", "Ok");
    return OkStatus();
  }
  Status operator()(const protocol::DeleteResponse&) {
    w.WrappedUnit("Delete", "Ok");
    return OkStatus();
  }
  Status operator()(const protocol::Recover1Response& r) {
    using S = protocol::Recover1Response::Status;
    switch (r.status) {
      case S::kOk:
        w.MapStart(1);
        w.Text("Recover1");
        w.MapStart(1);
        w.Text("Ok");
        w.MapStart(1);
        w.BytesField("version", r.version);
        return OkStatus();
      case S::kNotRegistered:
        w.WrappedUnit("Recover1", "NotRegistered");
        return OkStatus();
      case S::kNoGuesses:
        w.WrappedUnit("Recover1", "NoGuesses");
        return OkStatus();
    }
    return InvalidArgumentError("Recover1 response has an invalid status");
  }
  Status operator()(const protocol::Recover2Response& r) {
    using S = protocol::Recover2Response::Status;
    switch (r.status) {
      case S::kOk:
        w.MapStart(1);
        w.Text("Recover2");
        w.MapStart(1);
        w.Text("Ok");
        w.MapStart(6);
        WriteSignedPublicKey(w, r.oprf_signed_public_key);
        w.BytesField("oprf_blinded_result", r.oprf_blinded_result);
        w.Text("oprf_proof");
        w.MapStart(2);
        w.BytesField("c", r.oprf_proof.c);
        w.BytesField("beta_z", r.oprf_proof.beta_z);
        w.BytesField("unlock_key_commitment", r.unlock_key_commitment);
        w.UintField("num_guesses", r.num_guesses);
        w.UintField("guess_count", r.guess_count);
        return OkStatus();
      case S::kVersionMismatch:
        w.WrappedUnit("Recover2", "VersionMismatch");
        return OkStatus();
      case S::kNotRegistered:
        w.WrappedUnit("Recover2", "NotRegistered");
        return OkStatus();
      case S::kNoGuesses:
        w.WrappedUnit("Recover2", "NoGuesses");
        return OkStatus();
    }
    return InvalidArgumentError("Recover2 response has an invalid status");
  }
  Status operator()(const protocol::Recover3Response& r) {
    using S = protocol::Recover3Response::Status;
    switch (r.status) {
      case S::kOk:
        RETURN_IF_ERROR(CheckSecretSize(r.encryption_key_scalar_share, protocol::kScalarSize,
                                        "Recover3 encryption_key_scalar_share"));
        w.MapStart(1);
        w.Text("Recover3");
        w.MapStart(1);
        w.Text("Ok");
        w.MapStart(3);
        w.BytesField("encryption_key_scalar_share", r.encryption_key_scalar_share.Reveal());
        w.BytesField("encrypted_secret", r.encrypted_secret);
        w.BytesField("encrypted_secret_commitment", r.encrypted_secret_commitment);
        return OkStatus();
      case S::kBadUnlockKeyTag:
        w.MapStart(1);
        w.Text("Recover3");
        w.MapStart(1);
        w.Text("BadUnlockKeyTag");
        w.MapStart(1);
        w.UintField("guesses_remaining", r.guesses_remaining);
        return OkStatus();
      case S::kVersionMismatch:
        w.WrappedUnit("Recover3", "VersionMismatch");
        return OkStatus();
      case S::kNotRegistered:
        w.WrappedUnit("Recover3", "NotRegistered");
        return OkStatus();
      case S::kNoGuesses:
        w.WrappedUnit("Recover3", "NoGuesses");
        return OkStatus();
    }
    return InvalidArgumentError("Recover3 response has an invalid status");
  }
};

struct RequestEncoder {
  Writer& w;

  Status operator()(const protocol::Register1Request&) {
    w.Text("Register1");
    return OkStatus();
  }
  Status operator()(const protocol::Recover1Request&) {
    w.Text("Recover1");
    return OkStatus();
  }
  Status operator()(const protocol::DeleteRequest&) {
    w.Text("Delete");
    return OkStatus();
  }
  Status operator()(const protocol::Register2Request& r) {
    RETURN_IF_ERROR(
        CheckSecretSize(r.oprf_private_key, protocol::kScalarSize, "Register2 oprf_private_key"));
    RETURN_IF_ERROR(CheckSecretSize(r.encryption_key_scalar_share, protocol::kScalarSize,
                                    "Register2 encryption_key_scalar_share"));
    w.MapStart(1);
    w.Text("Register2");
    w.MapStart(9);
    w.BytesField("version", r.version);
    w.BytesField("oprf_private_key", r.oprf_private_key.Reveal());
    WriteSignedPublicKey(w, r.oprf_signed_public_key);
    w.BytesField("unlock_key_commitment", r.unlock_key_commitment);
    w.BytesField("unlock_key_tag", r.unlock_key_tag);
    w.BytesField("encryption_key_scalar_share", r.encryption_key_scalar_share.Reveal());
    w.BytesField("encrypted_secret", r.encrypted_secret);
    w.BytesField("encrypted_secret_commitment", r.encrypted_secret_commitment);
    w.Text("policy");
    w.MapStart(1);
    w.UintField("num_guesses", r.policy.num_guesses);
    return OkStatus();
  }
  Status operator()(const protocol::Recover2Request& r) {
    w.MapStart(1);
    w.Text("Recover2");
    w.MapStart(2);
    w.BytesField("version", r.version);
    w.BytesField("oprf_blinded_input", r.oprf_blinded_input);
    return OkStatus();
  }
  Status operator()(const protocol::Recover3Request& r) {
    w.MapStart(1);
    w.Text("Recover3");
    w.MapStart(2);
    w.BytesField("version", r.version);
    w.BytesField("unlock_key_tag", r.unlock_key_tag);
    return OkStatus();
  }
};

}  // namespace

StatusOr<Bytes> EncodeRequestCbor(const protocol::SecretsRequest& request) {
  Writer w;
  RETURN_IF_ERROR(std::visit(RequestEncoder{w}, request));
  return w.Take();
}

StatusOr<protocol::SecretsRequest> DecodeRequestCbor(ByteView body) {
  RETURN_IF_ERROR(CheckSize(body, "request"));
  Reader r(body, "request");
  ASSIGN_OR_RETURN(SecretsRequest request, ReadRequest(r));
  RETURN_IF_ERROR(CheckEnd(r));
  return request;
}

StatusOr<Bytes> EncodeResponseCbor(const protocol::SecretsResponse& response) {
  Writer w;
  RETURN_IF_ERROR(std::visit(ResponseEncoder{w}, response));
  return w.Take();
}

StatusOr<protocol::SecretsResponse> DecodeResponseCbor(ByteView body) {
  RETURN_IF_ERROR(CheckSize(body, "response"));
  Reader r(body, "response");
  ASSIGN_OR_RETURN(SecretsResponse response, ReadResponse(r));
  RETURN_IF_ERROR(CheckEnd(r));
  return response;
}

}  // namespace pinvault::api
