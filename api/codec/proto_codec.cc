#include "api/codec/proto_codec.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>
#include <google/protobuf/unknown_field_set.h>
#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <cctype>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "api/proto/secrets.pb.h"
#include "vault/secret_bytes.h"

namespace pinvault::api {
namespace {

namespace pb = ::pinvault::api::v1;
using protocol::SecretsRequest;
using protocol::SecretsResponse;

Status Invalid(std::string_view kind, std::string_view path, std::string_view what) {
  std::string message = "invalid protobuf ";
  message += kind;
  if (!path.empty()) {
    message += " at ";
    message += path;
  }
  message += ": ";
  message += what;
  return InvalidArgumentError(std::move(message));
}

void WipeString(std::string* s) {
  if (s != nullptr && !s->empty()) {
    SecureWipe(std::span<uint8_t>(reinterpret_cast<uint8_t*>(s->data()), s->size()));
  }
}

std::string ToString(std::span<const uint8_t> data) {
  return std::string(reinterpret_cast<const char*>(data.data()), data.size());
}

// Reader converts one parsed message into C++ values, collecting the first error.
class Reader {
 public:
  explicit Reader(std::string_view kind) : kind_(kind) {}

  template <size_t N>
  Status Fixed(const std::string& in, std::string_view path, std::array<uint8_t, N>& out) const {
    if (in.size() != N) {
      return Invalid(kind_, path,
                     "expected " + std::to_string(N) + " bytes, got " + std::to_string(in.size()));
    }
    std::copy(in.begin(), in.end(), out.begin());
    return OkStatus();
  }

  // Secret copies `in` into `out` and wipes `in` (also on error).
  Status Secret(std::string* in, std::string_view path, size_t size, SecretBytes& out) const {
    if (in->size() != size) {
      size_t got = in->size();
      WipeString(in);
      return Invalid(kind_, path,
                     "expected " + std::to_string(size) + " bytes, got " + std::to_string(got));
    }
    out = SecretBytes::CopyFrom(
        std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(in->data()), in->size()));
    WipeString(in);
    return OkStatus();
  }

  Status Uint16(uint32_t in, std::string_view path, uint16_t& out) const {
    if (in > 0xffff) {
      return Invalid(kind_, path, std::to_string(in) + " is out of range (0..65535)");
    }
    out = static_cast<uint16_t>(in);
    return OkStatus();
  }

  Status Present(bool has, std::string_view path) const {
    return has ? OkStatus() : Invalid(kind_, path, "missing");
  }

  Status SignedPublicKey(const pb::OprfSignedPublicKey& in, const std::string& path,
                         protocol::OprfSignedPublicKey& out) const {
    RETURN_IF_ERROR(Fixed(in.public_key(), path + ".public_key", out.public_key));
    RETURN_IF_ERROR(Fixed(in.verifying_key(), path + ".verifying_key", out.verifying_key));
    return Fixed(in.signature(), path + ".signature", out.signature);
  }

  std::string_view kind() const { return kind_; }

 private:
  std::string_view kind_;
};

// CheckNoUnknownFields rejects unknown field numbers anywhere in `message` (binary input
// from a newer or hostile client is not silently half-understood).
Status CheckNoUnknownFields(const google::protobuf::Message& message, std::string_view kind,
                            const std::string& path) {
  const google::protobuf::Reflection* reflection = message.GetReflection();
  const google::protobuf::UnknownFieldSet& unknown = reflection->GetUnknownFields(message);
  if (!unknown.empty()) {
    return Invalid(kind, path, "unknown field number " + std::to_string(unknown.field(0).number()));
  }
  std::vector<const google::protobuf::FieldDescriptor*> fields;
  reflection->ListFields(message, &fields);
  for (const auto* field : fields) {
    if (field->cpp_type() == google::protobuf::FieldDescriptor::CPPTYPE_MESSAGE &&
        !field->is_repeated()) {
      RETURN_IF_ERROR(
          CheckNoUnknownFields(reflection->GetMessage(message, field), kind,
                               path.empty() ? field->name() : path + "." + field->name()));
    }
  }
  return OkStatus();
}

Status Parse(ByteView body, ProtoFormat format, std::string_view kind, bool* quotes_body,
             google::protobuf::Message& message) {
  if (body.size() > kMaxProtoBodySize) {
    return InvalidArgumentError(std::string(kind) + " body is " + std::to_string(body.size()) +
                                " bytes; the limit is " + std::to_string(kMaxProtoBodySize));
  }
  if (format == ProtoFormat::kBinary) {
    if (!message.ParseFromArray(body.data(), static_cast<int>(body.size()))) {
      return Invalid(kind, "", "not a valid " + message.GetDescriptor()->name() + " message");
    }
    return CheckNoUnknownFields(message, kind, "");
  }
  std::string json(reinterpret_cast<const char*>(body.data()), body.size());
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  auto status = google::protobuf::util::JsonStringToMessage(json, &message, options);
  WipeString(&json);
  if (!status.ok()) {
    // The JSON parser's reason may quote the body.
    if (quotes_body != nullptr) *quotes_body = true;
    std::string reason(status.message().data(), status.message().size());
    if (reason.size() > 160) reason = reason.substr(0, 160) + "...";
    return Invalid(kind, "",
                   "JSON does not match " + message.GetDescriptor()->name() + ": " + reason);
  }
  return OkStatus();
}

StatusOr<Bytes> Serialize(google::protobuf::Message& message, ProtoFormat format) {
  std::string out;
  if (format == ProtoFormat::kBinary) {
    if (!message.SerializeToString(&out)) return InternalError("protobuf serialization failed");
  } else {
    google::protobuf::util::JsonPrintOptions options;
    auto status = google::protobuf::util::MessageToJsonString(message, &out, options);
    if (!status.ok()) return InternalError("protobuf JSON printing failed");
  }
  Bytes bytes(out.begin(), out.end());
  WipeString(&out);
  return bytes;
}

// ---- requests ----

StatusOr<SecretsRequest> FromProto(pb::SecretsRequest& in) {
  Reader r("request");
  switch (in.request_case()) {
    case pb::SecretsRequest::kRegister1:
      return SecretsRequest(protocol::Register1Request{});
    case pb::SecretsRequest::kRecover1:
      return SecretsRequest(protocol::Recover1Request{});
    case pb::SecretsRequest::kDelete:
      return SecretsRequest(protocol::DeleteRequest{});
    case pb::SecretsRequest::kRegister2: {
      pb::Register2Request* m = in.mutable_register2();
      protocol::Register2Request out;
      Status status = [&]() -> Status {
        RETURN_IF_ERROR(r.Fixed(m->version(), "register2.version", out.version));
        RETURN_IF_ERROR(r.Secret(m->mutable_oprf_private_key(), "register2.oprf_private_key",
                                 protocol::kScalarSize, out.oprf_private_key));
        RETURN_IF_ERROR(
            r.Present(m->has_oprf_signed_public_key(), "register2.oprf_signed_public_key"));
        RETURN_IF_ERROR(r.SignedPublicKey(m->oprf_signed_public_key(),
                                          "register2.oprf_signed_public_key",
                                          out.oprf_signed_public_key));
        RETURN_IF_ERROR(r.Fixed(m->unlock_key_commitment(), "register2.unlock_key_commitment",
                                out.unlock_key_commitment));
        RETURN_IF_ERROR(
            r.Fixed(m->unlock_key_tag(), "register2.unlock_key_tag", out.unlock_key_tag));
        RETURN_IF_ERROR(r.Secret(m->mutable_encryption_key_scalar_share(),
                                 "register2.encryption_key_scalar_share", protocol::kScalarSize,
                                 out.encryption_key_scalar_share));
        RETURN_IF_ERROR(
            r.Fixed(m->encrypted_secret(), "register2.encrypted_secret", out.encrypted_secret));
        RETURN_IF_ERROR(r.Fixed(m->encrypted_secret_commitment(),
                                "register2.encrypted_secret_commitment",
                                out.encrypted_secret_commitment));
        RETURN_IF_ERROR(r.Present(m->has_policy(), "register2.policy"));
        return r.Uint16(m->policy().num_guesses(), "register2.policy.num_guesses",
                        out.policy.num_guesses);
      }();
      WipeString(m->mutable_oprf_private_key());
      WipeString(m->mutable_encryption_key_scalar_share());
      RETURN_IF_ERROR(status);
      return SecretsRequest(std::move(out));
    }
    case pb::SecretsRequest::kRecover2: {
      protocol::Recover2Request out;
      RETURN_IF_ERROR(r.Fixed(in.recover2().version(), "recover2.version", out.version));
      RETURN_IF_ERROR(r.Fixed(in.recover2().oprf_blinded_input(), "recover2.oprf_blinded_input",
                              out.oprf_blinded_input));
      return SecretsRequest(out);
    }
    case pb::SecretsRequest::kRecover3: {
      protocol::Recover3Request out;
      RETURN_IF_ERROR(r.Fixed(in.recover3().version(), "recover3.version", out.version));
      RETURN_IF_ERROR(
          r.Fixed(in.recover3().unlock_key_tag(), "recover3.unlock_key_tag", out.unlock_key_tag));
      return SecretsRequest(out);
    }
    case pb::SecretsRequest::REQUEST_NOT_SET:
      break;
  }
  return Invalid("request", "",
                 "no request is set (expected one of register1, register2, "
                 "recover1, recover2, recover3, delete)");
}

void SetSignedPublicKey(const protocol::OprfSignedPublicKey& in, pb::OprfSignedPublicKey* out) {
  out->set_public_key(ToString(in.public_key));
  out->set_verifying_key(ToString(in.verifying_key));
  out->set_signature(ToString(in.signature));
}

Status CheckSecretSize(const SecretBytes& secret, std::string_view what) {
  if (secret.size() != protocol::kScalarSize) {
    return InvalidArgumentError(std::string(what) + " must be 32 bytes, has " +
                                std::to_string(secret.size()));
  }
  return OkStatus();
}

struct RequestToProto {
  pb::SecretsRequest& out;

  Status operator()(const protocol::Register1Request&) {
    out.mutable_register1();
    return OkStatus();
  }
  Status operator()(const protocol::Recover1Request&) {
    out.mutable_recover1();
    return OkStatus();
  }
  Status operator()(const protocol::DeleteRequest&) {
    out.mutable_delete_();
    return OkStatus();
  }
  Status operator()(const protocol::Register2Request& r) {
    RETURN_IF_ERROR(CheckSecretSize(r.oprf_private_key, "Register2 oprf_private_key"));
    RETURN_IF_ERROR(
        CheckSecretSize(r.encryption_key_scalar_share, "Register2 encryption_key_scalar_share"));
    pb::Register2Request* m = out.mutable_register2();
    m->set_version(ToString(r.version));
    m->set_oprf_private_key(ToString(r.oprf_private_key.Reveal()));
    SetSignedPublicKey(r.oprf_signed_public_key, m->mutable_oprf_signed_public_key());
    m->set_unlock_key_commitment(ToString(r.unlock_key_commitment));
    m->set_unlock_key_tag(ToString(r.unlock_key_tag));
    m->set_encryption_key_scalar_share(ToString(r.encryption_key_scalar_share.Reveal()));
    m->set_encrypted_secret(ToString(r.encrypted_secret));
    m->set_encrypted_secret_commitment(ToString(r.encrypted_secret_commitment));
    m->mutable_policy()->set_num_guesses(r.policy.num_guesses);
    return OkStatus();
  }
  Status operator()(const protocol::Recover2Request& r) {
    out.mutable_recover2()->set_version(ToString(r.version));
    out.mutable_recover2()->set_oprf_blinded_input(ToString(r.oprf_blinded_input));
    return OkStatus();
  }
  Status operator()(const protocol::Recover3Request& r) {
    out.mutable_recover3()->set_version(ToString(r.version));
    out.mutable_recover3()->set_unlock_key_tag(ToString(r.unlock_key_tag));
    return OkStatus();
  }
};

// ---- responses ----

struct ResponseToProto {
  pb::SecretsResponse& out;

  Status operator()(const protocol::Register1Response&) {
    out.mutable_register1();
    return OkStatus();
  }
  Status operator()(const protocol::Register2Response&) {
    out.mutable_register2();
    return OkStatus();
  }
  Status operator()(const protocol::DeleteResponse&) {
    out.mutable_delete_();
    return OkStatus();
  }
  Status operator()(const protocol::Recover1Response& r) {
    using S = protocol::Recover1Response::Status;
    pb::Recover1Response* m = out.mutable_recover1();
    switch (r.status) {
      case S::kOk:
        m->set_status(pb::Recover1Response::STATUS_OK);
        m->set_version(ToString(r.version));
        return OkStatus();
      case S::kNotRegistered:
        m->set_status(pb::Recover1Response::STATUS_NOT_REGISTERED);
        return OkStatus();
      case S::kNoGuesses:
        m->set_status(pb::Recover1Response::STATUS_NO_GUESSES);
        return OkStatus();
    }
    return InvalidArgumentError("Recover1 response has an invalid status");
  }
  Status operator()(const protocol::Recover2Response& r) {
    using S = protocol::Recover2Response::Status;
    pb::Recover2Response* m = out.mutable_recover2();
    switch (r.status) {
      case S::kOk:
        m->set_status(pb::Recover2Response::STATUS_OK);
        SetSignedPublicKey(r.oprf_signed_public_key, m->mutable_oprf_signed_public_key());
        m->set_oprf_blinded_result(ToString(r.oprf_blinded_result));
        m->mutable_oprf_proof()->set_c(ToString(r.oprf_proof.c));
        m->mutable_oprf_proof()->set_beta_z(ToString(r.oprf_proof.beta_z));
        m->set_unlock_key_commitment(ToString(r.unlock_key_commitment));
        m->set_num_guesses(r.num_guesses);
        m->set_guess_count(r.guess_count);
        return OkStatus();
      case S::kVersionMismatch:
        m->set_status(pb::Recover2Response::STATUS_VERSION_MISMATCH);
        return OkStatus();
      case S::kNotRegistered:
        m->set_status(pb::Recover2Response::STATUS_NOT_REGISTERED);
        return OkStatus();
      case S::kNoGuesses:
        m->set_status(pb::Recover2Response::STATUS_NO_GUESSES);
        return OkStatus();
    }
    return InvalidArgumentError("Recover2 response has an invalid status");
  }
  Status operator()(const protocol::Recover3Response& r) {
    using S = protocol::Recover3Response::Status;
    pb::Recover3Response* m = out.mutable_recover3();
    switch (r.status) {
      case S::kOk:
        RETURN_IF_ERROR(
            CheckSecretSize(r.encryption_key_scalar_share, "Recover3 encryption_key_scalar_share"));
        m->set_status(pb::Recover3Response::STATUS_OK);
        m->set_encryption_key_scalar_share(ToString(r.encryption_key_scalar_share.Reveal()));
        m->set_encrypted_secret(ToString(r.encrypted_secret));
        m->set_encrypted_secret_commitment(ToString(r.encrypted_secret_commitment));
        return OkStatus();
      case S::kBadUnlockKeyTag:
        m->set_status(pb::Recover3Response::STATUS_BAD_UNLOCK_KEY_TAG);
        m->set_guesses_remaining(r.guesses_remaining);
        return OkStatus();
      case S::kVersionMismatch:
        m->set_status(pb::Recover3Response::STATUS_VERSION_MISMATCH);
        return OkStatus();
      case S::kNotRegistered:
        m->set_status(pb::Recover3Response::STATUS_NOT_REGISTERED);
        return OkStatus();
      case S::kNoGuesses:
        m->set_status(pb::Recover3Response::STATUS_NO_GUESSES);
        return OkStatus();
    }
    return InvalidArgumentError("Recover3 response has an invalid status");
  }
};

StatusOr<SecretsResponse> FromProto(pb::SecretsResponse& in) {
  Reader r("response");
  switch (in.response_case()) {
    case pb::SecretsResponse::kRegister1:
      return SecretsResponse(protocol::Register1Response{});
    case pb::SecretsResponse::kRegister2:
      return SecretsResponse(protocol::Register2Response{});
    case pb::SecretsResponse::kDelete:
      return SecretsResponse(protocol::DeleteResponse{});
    case pb::SecretsResponse::kRecover1: {
      using S = protocol::Recover1Response::Status;
      const pb::Recover1Response& m = in.recover1();
      protocol::Recover1Response out;
      switch (m.status()) {
        case pb::Recover1Response::STATUS_OK:
          out.status = S::kOk;
          RETURN_IF_ERROR(r.Fixed(m.version(), "recover1.version", out.version));
          return SecretsResponse(out);
        case pb::Recover1Response::STATUS_NOT_REGISTERED:
          out.status = S::kNotRegistered;
          return SecretsResponse(out);
        case pb::Recover1Response::STATUS_NO_GUESSES:
          out.status = S::kNoGuesses;
          return SecretsResponse(out);
        default:
          return Invalid("response", "recover1.status", "unknown or unspecified status");
      }
    }
    case pb::SecretsResponse::kRecover2: {
      using S = protocol::Recover2Response::Status;
      const pb::Recover2Response& m = in.recover2();
      protocol::Recover2Response out;
      switch (m.status()) {
        case pb::Recover2Response::STATUS_OK:
          out.status = S::kOk;
          RETURN_IF_ERROR(
              r.Present(m.has_oprf_signed_public_key(), "recover2.oprf_signed_public_key"));
          RETURN_IF_ERROR(r.SignedPublicKey(m.oprf_signed_public_key(),
                                            "recover2.oprf_signed_public_key",
                                            out.oprf_signed_public_key));
          RETURN_IF_ERROR(r.Fixed(m.oprf_blinded_result(), "recover2.oprf_blinded_result",
                                  out.oprf_blinded_result));
          RETURN_IF_ERROR(r.Present(m.has_oprf_proof(), "recover2.oprf_proof"));
          RETURN_IF_ERROR(r.Fixed(m.oprf_proof().c(), "recover2.oprf_proof.c", out.oprf_proof.c));
          RETURN_IF_ERROR(r.Fixed(m.oprf_proof().beta_z(), "recover2.oprf_proof.beta_z",
                                  out.oprf_proof.beta_z));
          RETURN_IF_ERROR(r.Fixed(m.unlock_key_commitment(), "recover2.unlock_key_commitment",
                                  out.unlock_key_commitment));
          RETURN_IF_ERROR(r.Uint16(m.num_guesses(), "recover2.num_guesses", out.num_guesses));
          RETURN_IF_ERROR(r.Uint16(m.guess_count(), "recover2.guess_count", out.guess_count));
          return SecretsResponse(std::move(out));
        case pb::Recover2Response::STATUS_VERSION_MISMATCH:
          out.status = S::kVersionMismatch;
          return SecretsResponse(std::move(out));
        case pb::Recover2Response::STATUS_NOT_REGISTERED:
          out.status = S::kNotRegistered;
          return SecretsResponse(std::move(out));
        case pb::Recover2Response::STATUS_NO_GUESSES:
          out.status = S::kNoGuesses;
          return SecretsResponse(std::move(out));
        default:
          return Invalid("response", "recover2.status", "unknown or unspecified status");
      }
    }
    case pb::SecretsResponse::kRecover3: {
      using S = protocol::Recover3Response::Status;
      pb::Recover3Response* m = in.mutable_recover3();
      protocol::Recover3Response out;
      switch (m->status()) {
        case pb::Recover3Response::STATUS_OK:
          out.status = S::kOk;
          RETURN_IF_ERROR(r.Secret(m->mutable_encryption_key_scalar_share(),
                                   "recover3.encryption_key_scalar_share", protocol::kScalarSize,
                                   out.encryption_key_scalar_share));
          RETURN_IF_ERROR(
              r.Fixed(m->encrypted_secret(), "recover3.encrypted_secret", out.encrypted_secret));
          RETURN_IF_ERROR(r.Fixed(m->encrypted_secret_commitment(),
                                  "recover3.encrypted_secret_commitment",
                                  out.encrypted_secret_commitment));
          return SecretsResponse(std::move(out));
        case pb::Recover3Response::STATUS_BAD_UNLOCK_KEY_TAG:
          out.status = S::kBadUnlockKeyTag;
          RETURN_IF_ERROR(r.Uint16(m->guesses_remaining(), "recover3.guesses_remaining",
                                   out.guesses_remaining));
          return SecretsResponse(std::move(out));
        case pb::Recover3Response::STATUS_VERSION_MISMATCH:
          out.status = S::kVersionMismatch;
          return SecretsResponse(std::move(out));
        case pb::Recover3Response::STATUS_NOT_REGISTERED:
          out.status = S::kNotRegistered;
          return SecretsResponse(std::move(out));
        case pb::Recover3Response::STATUS_NO_GUESSES:
          out.status = S::kNoGuesses;
          return SecretsResponse(std::move(out));
        default:
          return Invalid("response", "recover3.status", "unknown or unspecified status");
      }
    }
    case pb::SecretsResponse::RESPONSE_NOT_SET:
      break;
  }
  return Invalid("response", "", "no response is set");
}

std::string Lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

}  // namespace

std::optional<ProtoFormat> ProtoFormatForContentType(std::string_view content_type) {
  std::string_view media = content_type.substr(0, content_type.find(';'));
  while (!media.empty() && (media.back() == ' ' || media.back() == '\t')) media.remove_suffix(1);
  while (!media.empty() && (media.front() == ' ' || media.front() == '\t')) media.remove_prefix(1);
  std::string lower = Lower(media);
  if (lower == "application/x-protobuf" || lower == "application/protobuf" ||
      lower == "application/vnd.google.protobuf") {
    return ProtoFormat::kBinary;
  }
  if (lower == "application/json") return ProtoFormat::kJson;
  return std::nullopt;
}

std::string_view ProtoContentType(ProtoFormat format) {
  return format == ProtoFormat::kBinary ? "application/x-protobuf" : "application/json";
}

StatusOr<protocol::SecretsRequest> DecodeRequestProto(ByteView body, ProtoFormat format,
                                                      std::string* log_reason) {
  pb::SecretsRequest message;
  bool quotes_body = false;
  Status parsed = Parse(body, format, "request", &quotes_body, message);
  if (!parsed.ok()) {
    if (log_reason != nullptr) {
      *log_reason = quotes_body ? "request JSON does not match SecretsRequest" : parsed.message();
    }
    if (message.has_register2()) {
      WipeString(message.mutable_register2()->mutable_oprf_private_key());
      WipeString(message.mutable_register2()->mutable_encryption_key_scalar_share());
    }
    return parsed;
  }
  StatusOr<protocol::SecretsRequest> request = FromProto(message);
  if (!request.ok() && log_reason != nullptr) *log_reason = request.status().message();
  return request;
}

StatusOr<Bytes> EncodeResponseProto(const protocol::SecretsResponse& response, ProtoFormat format) {
  pb::SecretsResponse message;
  RETURN_IF_ERROR(std::visit(ResponseToProto{message}, response));
  auto out = Serialize(message, format);
  if (message.has_recover3())
    WipeString(message.mutable_recover3()->mutable_encryption_key_scalar_share());
  return out;
}

StatusOr<Bytes> EncodeRequestProto(const protocol::SecretsRequest& request, ProtoFormat format) {
  pb::SecretsRequest message;
  RETURN_IF_ERROR(std::visit(RequestToProto{message}, request));
  auto out = Serialize(message, format);
  if (message.has_register2()) {
    WipeString(message.mutable_register2()->mutable_oprf_private_key());
    WipeString(message.mutable_register2()->mutable_encryption_key_scalar_share());
  }
  return out;
}

StatusOr<protocol::SecretsResponse> DecodeResponseProto(ByteView body, ProtoFormat format) {
  pb::SecretsResponse message;
  Status parsed = Parse(body, format, "response", nullptr, message);
  if (!parsed.ok()) {
    if (message.has_recover3()) {
      WipeString(message.mutable_recover3()->mutable_encryption_key_scalar_share());
    }
    return parsed;
  }
  auto out = FromProto(message);
  if (message.has_recover3()) {
    WipeString(message.mutable_recover3()->mutable_encryption_key_scalar_share());
  }
  return out;
}

}  // namespace pinvault::api
