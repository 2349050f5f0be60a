#include "backup/client/client.h"

#include <algorithm>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>

#include "vault/protocol/oprf.h"
#include "vault/protocol/pin_hash.h"
#include "vault/protocol/ristretto.h"
#include "vault/protocol/secret_box.h"
#include "vault/protocol/shamir.h"
#include "vault/protocol/signing.h"
#include "vault/protocol/tags.h"

namespace pinvault::backup {

std::string_view ErrorKindName(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kInvalidPin:
      return "InvalidPin";
    case ErrorKind::kNotRegistered:
      return "NotRegistered";
    case ErrorKind::kInvalidAuth:
      return "InvalidAuth";
    case ErrorKind::kUpgradeRequired:
      return "UpgradeRequired";
    case ErrorKind::kRateLimited:
      return "RateLimitExceeded";
    case ErrorKind::kAssertion:
      return "Assertion";
    case ErrorKind::kTransient:
      return "Transient";
    case ErrorKind::kInvalidArgument:
      return "InvalidArgument";
  }
  return "Unknown";
}

std::string ClientError::ToString() const {
  std::string out(ErrorKindName(kind));
  if (kind == ErrorKind::kInvalidPin) {
    out += " (guesses remaining: " + std::to_string(guesses_remaining) + ")";
  }
  if (!message.empty()) out += ": " + message;
  return out;
}

bool ErrorPrecedes(const ClientError& a, const ClientError& b) {
  if (a.kind != b.kind) return a.kind < b.kind;
  return a.kind == ErrorKind::kInvalidPin && a.guesses_remaining < b.guesses_remaining;
}

namespace {

using protocol::SecretsResponse;

constexpr std::string_view kResponseNames[] = {"Register1", "Register2", "Recover1",
                                               "Recover2",  "Recover3",  "Delete"};

// RealmFailure builds a per-realm error whose message names the realm and the step.
ClientError RealmFailure(ErrorKind kind, const Realm& realm, std::string_view step,
                         std::string_view what, uint16_t guesses_remaining = 0) {
  ClientError error;
  error.kind = kind;
  error.guesses_remaining = guesses_remaining;
  error.message = "realm " + RealmIdHex(realm.id) + " " + std::string(step) + ": " +
                  std::string(what);
  return error;
}

ClientError FromTransportError(const TransportError& error, const Realm& realm,
                               std::string_view step, int attempts) {
  std::string detail = error.detail.empty() ? "" : " (" + error.detail + ")";
  switch (error.kind) {
    case TransportErrorKind::kInvalidAuth:
      return RealmFailure(ErrorKind::kInvalidAuth, realm, step, "auth token rejected" + detail);
    case TransportErrorKind::kUpgradeRequired:
      return RealmFailure(ErrorKind::kUpgradeRequired, realm, step,
                          "realm requires a newer client" + detail);
    case TransportErrorKind::kRateLimited:
      return RealmFailure(ErrorKind::kRateLimited, realm, step, "rate limited" + detail);
    case TransportErrorKind::kTransient:
      return RealmFailure(ErrorKind::kTransient, realm, step,
                          "unavailable after " + std::to_string(attempts) +
                              (attempts == 1 ? " attempt" : " attempts") + detail);
    case TransportErrorKind::kMalformedResponse:
      return RealmFailure(ErrorKind::kAssertion, realm, step,
                          "answer could not be decoded" + detail);
  }
  return RealmFailure(ErrorKind::kAssertion, realm, step, "unknown transport error");
}

ClientError UnexpectedResponse(const SecretsResponse& response, const Realm& realm,
                               std::string_view step) {
  return RealmFailure(ErrorKind::kAssertion, realm, step,
                      "unexpected " + std::string(kResponseNames[response.index()]) +
                          " response");
}

// LocalFailure reports a failure of the client's own computation (not a realm's fault).
ClientError LocalFailure(std::string_view step, const Status& status) {
  ClientError error;
  error.kind = ErrorKind::kAssertion;
  error.message = "client failure during " + std::string(step) + ": " + status.ToString();
  return error;
}

ClientError InvalidArgument(std::string message) {
  ClientError error;
  error.kind = ErrorKind::kInvalidArgument;
  error.message = std::move(message);
  return error;
}

// Errors keeps the realms' errors of one step and the one to report.
class Errors {
 public:
  void Add(ClientError error) {
    ++count_;
    if (!best_ || ErrorPrecedes(error, *best_)) best_ = std::move(error);
  }
  size_t count() const { return count_; }
  // Report returns the error to report, with a note on how many realms failed.
  ClientError Report(size_t realms) const {
    ClientError error = *best_;
    if (count_ > 1) {
      error.message += " (" + std::to_string(count_) + " of " + std::to_string(realms) +
                       " realms failed)";
    }
    return error;
  }

 private:
  size_t count_ = 0;
  std::optional<ClientError> best_;
};

// RandomVersion returns a fresh random 16-byte registration version.
protocol::RegistrationVersion RandomVersion() {
  SecretBytes random = SecretBytes::Random(protocol::kVersionSize);
  protocol::RegistrationVersion version{};
  std::copy(random.Reveal().begin(), random.Reveal().end(), version.begin());
  return version;
}

// Registration: everything Register2 sends, for all realms (parallel to the sorted
// realms of the configuration).
StatusOr<std::vector<protocol::Register2Request>> BuildRegistration(
    const Configuration& configuration, const SecretBytes& pin, const SecretBytes& secret,
    ByteView info, uint16_t num_guesses) {
  const size_t n = configuration.size();
  const size_t t = configuration.recover_threshold();
  const protocol::RegistrationVersion version = RandomVersion();
  ASSIGN_OR_RETURN(protocol::HashedPin hashed,
                   protocol::HashPin(configuration.pin_hashing_mode(), pin, version, info));

  SecretBytes oprf_key = protocol::RandomScalar();
  ASSIGN_OR_RETURN(std::vector<SecretBytes> oprf_shares, protocol::ShareSecret(oprf_key, t, n));
  const protocol::OprfSigningKey signing_key = protocol::OprfSigningKey::Generate();
  ASSIGN_OR_RETURN(SecretBytes oprf_output,
                   protocol::EvaluateUnoblivious(oprf_key, hashed.access_key.Reveal()));
  ASSIGN_OR_RETURN(protocol::UnlockKey unlock, protocol::DeriveUnlockKey(oprf_output));

  SecretBytes encryption_scalar = protocol::RandomScalar();
  ASSIGN_OR_RETURN(std::vector<SecretBytes> encryption_shares,
                   protocol::ShareSecret(encryption_scalar, t, n));
  ASSIGN_OR_RETURN(SecretBytes encryption_key,
                   protocol::DeriveEncryptionKey(hashed.encryption_key_seed, encryption_scalar));
  ASSIGN_OR_RETURN(protocol::EncryptedSecret encrypted_secret,
                   protocol::SealSecret(encryption_key, secret));

  std::vector<protocol::Register2Request> requests;
  requests.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    const RealmId& id = configuration.realms()[i].id;
    protocol::Register2Request request;
    request.version = version;
    ASSIGN_OR_RETURN(protocol::PointBytes public_key, protocol::BasePointMult(oprf_shares[i]));
    request.oprf_signed_public_key = signing_key.SignOprfPublicKey(id, public_key);
    request.oprf_private_key = std::move(oprf_shares[i]);
    request.unlock_key_commitment = unlock.commitment;
    ASSIGN_OR_RETURN(request.unlock_key_tag,
                     protocol::ComputeUnlockKeyTag(unlock.unlock_key, id));
    ASSIGN_OR_RETURN(request.encrypted_secret_commitment,
                     protocol::ComputeEncryptedSecretCommitment(
                         unlock.unlock_key, id, encryption_shares[i], encrypted_secret));
    request.encryption_key_scalar_share = std::move(encryption_shares[i]);
    request.encrypted_secret = encrypted_secret;
    request.policy.num_guesses = num_guesses;
    requests.push_back(std::move(request));
  }
  return requests;
}

// ---- Recover steps ----

struct VersionGroup {
  protocol::RegistrationVersion version{};
  std::vector<size_t> positions;  // into configuration.realms()
};

// OprfShare is one realm's accepted Recover2 answer.
struct OprfShare {
  protocol::ShareIndex index = 0;
  protocol::PointBytes blinded_result{};
  uint16_t guesses_remaining = 0;
};

struct OprfGroup {
  protocol::UnlockKeyCommitment commitment{};
  std::vector<OprfShare> shares;
};

struct SecretGroup {
  protocol::EncryptedSecret encrypted_secret{};
  std::vector<protocol::ShareIndex> indices;
  std::vector<SecretBytes> shares;
};

}  // namespace

StatusOr<std::unique_ptr<Client>> Client::Create(
    Configuration configuration, std::vector<Configuration> previous_configurations,
    std::shared_ptr<Transport> transport, std::shared_ptr<AuthTokenProvider> tokens,
    ClientOptions options) {
  if (transport == nullptr) return InvalidArgumentError("Client: transport is null");
  if (tokens == nullptr) return InvalidArgumentError("Client: auth token provider is null");
  auto reject_hardware = [](const Configuration& c, std::string_view which) -> Status {
    for (const Realm& realm : c.realms()) {
      if (realm.is_hardware()) {
        return UnimplementedError(
            std::string(which) + ": realm " + RealmIdHex(realm.id) +
            " has a public_key (a hardware realm, reached over Noise); only software realms "
            "are supported");
      }
    }
    return OkStatus();
  };
  RETURN_IF_ERROR(reject_hardware(configuration, "configuration"));
  for (size_t i = 0; i < previous_configurations.size(); ++i) {
    RETURN_IF_ERROR(reject_hardware(previous_configurations[i],
                                    "previous configuration " + std::to_string(i)));
  }
  if (options.retry.max_attempts < 1) options.retry.max_attempts = 1;
  return std::unique_ptr<Client>(new Client(std::move(configuration),
                                            std::move(previous_configurations),
                                            std::move(transport), std::move(tokens), options));
}

RegisterResult Client::Register(const SecretBytes& pin, const SecretBytes& secret, ByteView info,
                                uint16_t num_guesses) const {
  if (secret.size() > protocol::kMaxSecretSize) {
    return InvalidArgument("secret is " + std::to_string(secret.size()) +
                           " bytes; at most " + std::to_string(protocol::kMaxSecretSize) +
                           " are allowed");
  }
  if (num_guesses == 0) return InvalidArgument("num_guesses must be at least 1");

  const Configuration& c = configuration_;
  const size_t n = c.size();
  const size_t threshold = c.register_threshold();

  // Register1: a liveness check; proceed once register_threshold realms answered Ok.
  {
    FanOut fan(transport_, *tokens_, options_.retry);
    for (const Realm& realm : c.realms()) fan.Start(realm, protocol::Register1Request{});
    Errors errors;
    size_t oks = 0;
    while (oks < threshold) {
      std::optional<FanOut::Arrival> arrival = fan.Next();
      if (!arrival) break;  // unreachable: errors would have exceeded n - threshold
      const Realm& realm = c.realms()[arrival->slot];
      if (const auto* error = std::get_if<TransportError>(&arrival->result)) {
        errors.Add(FromTransportError(*error, realm, "Register1", arrival->attempts));
      } else if (std::holds_alternative<protocol::Register1Response>(
                     std::get<SecretsResponse>(arrival->result))) {
        ++oks;
        continue;
      } else {
        errors.Add(UnexpectedResponse(std::get<SecretsResponse>(arrival->result), realm,
                                      "Register1"));
      }
      if (errors.count() > n - threshold) return errors.Report(n);
    }
  }

  StatusOr<std::vector<protocol::Register2Request>> requests =
      BuildRegistration(c, pin, secret, info, num_guesses);
  if (!requests.ok()) return LocalFailure("registration", requests.status());

  // Register2 to every realm; registered once register_threshold realms accepted.
  FanOut fan(transport_, *tokens_, options_.retry);
  for (size_t i = 0; i < n; ++i) fan.Start(c.realms()[i], std::move((*requests)[i]));
  Errors errors;
  size_t oks = 0;
  while (std::optional<FanOut::Arrival> arrival = fan.Next()) {
    const Realm& realm = c.realms()[arrival->slot];
    if (const auto* error = std::get_if<TransportError>(&arrival->result)) {
      errors.Add(FromTransportError(*error, realm, "Register2", arrival->attempts));
    } else if (std::holds_alternative<protocol::Register2Response>(
                   std::get<SecretsResponse>(arrival->result))) {
      if (++oks >= threshold) return Success{};
      continue;
    } else {
      errors.Add(
          UnexpectedResponse(std::get<SecretsResponse>(arrival->result), realm, "Register2"));
    }
    if (errors.count() > n - threshold) return errors.Report(n);
  }
  return LocalFailure("Register2", InternalError("fewer answers than realms"));
}

RecoverResult Client::Recover(const SecretBytes& pin, ByteView info) const {
  RecoverResult result = RecoverWith(configuration_, pin, info);
  for (const Configuration& previous : previous_configurations_) {
    if (result.ok() || result.kind() != ErrorKind::kNotRegistered) break;
    result = RecoverWith(previous, pin, info);
  }
  return result;
}

RecoverResult Client::RecoverWith(const Configuration& c, const SecretBytes& pin,
                                  ByteView info) const {
  const size_t n = c.size();
  const size_t t = c.recover_threshold();

  // ---- Recover1: find the version t realms agree on. ----
  VersionGroup group;
  {
    FanOut fan(transport_, *tokens_, options_.retry);
    for (const Realm& realm : c.realms()) fan.Start(realm, protocol::Recover1Request{});
    Errors errors;
    std::map<protocol::RegistrationVersion, std::vector<size_t>> by_version;
    bool decided = false;
    while (!decided) {
      std::optional<FanOut::Arrival> arrival = fan.Next();
      if (!arrival) break;
      const Realm& realm = c.realms()[arrival->slot];
      if (const auto* error = std::get_if<TransportError>(&arrival->result)) {
        errors.Add(FromTransportError(*error, realm, "Recover1", arrival->attempts));
      } else {
        const SecretsResponse& response = std::get<SecretsResponse>(arrival->result);
        const auto* r1 = std::get_if<protocol::Recover1Response>(&response);
        if (r1 == nullptr) {
          errors.Add(UnexpectedResponse(response, realm, "Recover1"));
        } else if (r1->status == protocol::Recover1Response::Status::kNotRegistered) {
          errors.Add(RealmFailure(ErrorKind::kNotRegistered, realm, "Recover1",
                                  "no secret registered"));
        } else if (r1->status == protocol::Recover1Response::Status::kNoGuesses) {
          errors.Add(RealmFailure(ErrorKind::kInvalidPin, realm, "Recover1",
                                  "no guesses remain; the secret is locked", 0));
        } else {
          std::vector<size_t>& members = by_version[r1->version];
          members.push_back(arrival->slot);
          if (members.size() >= t) {
            group.version = r1->version;
            group.positions = members;
            decided = true;
          }
          continue;
        }
      }
      if (errors.count() > n - t) return errors.Report(n);
    }
    if (!decided) {
      ClientError error;
      error.kind = ErrorKind::kNotRegistered;
      error.message = "no " + std::to_string(t) + " of the " + std::to_string(n) +
                      " realms agree on a registration (" + std::to_string(by_version.size()) +
                      " distinct versions seen, " + std::to_string(errors.count()) +
                      " realms failed)";
      return error;
    }
  }
  const size_t m = group.positions.size();

  // ---- Recover2: one guess at each realm of the group. ----
  StatusOr<protocol::HashedPin> hashed =
      protocol::HashPin(c.pin_hashing_mode(), pin, group.version, info);
  if (!hashed.ok()) return LocalFailure("PIN hashing", hashed.status());
  StatusOr<protocol::BlindedInput> blinded = protocol::Blind(hashed->access_key.Reveal());
  if (!blinded.ok()) return LocalFailure("OPRF blinding", blinded.status());

  OprfGroup oprf;
  {
    FanOut fan(transport_, *tokens_, options_.retry);
    for (size_t position : group.positions) {
      protocol::Recover2Request request;
      request.version = group.version;
      request.oprf_blinded_input = blinded->blinded_input;
      fan.Start(c.realms()[position], request);
    }
    Errors errors;
    std::map<std::pair<protocol::UnlockKeyCommitment, protocol::Ed25519PublicKey>, OprfGroup>
        by_key;
    bool decided = false;
    while (!decided) {
      std::optional<FanOut::Arrival> arrival = fan.Next();
      if (!arrival) break;
      const size_t position = group.positions[arrival->slot];
      const Realm& realm = c.realms()[position];
      if (const auto* error = std::get_if<TransportError>(&arrival->result)) {
        errors.Add(FromTransportError(*error, realm, "Recover2", arrival->attempts));
      } else {
        const SecretsResponse& response = std::get<SecretsResponse>(arrival->result);
        const auto* r2 = std::get_if<protocol::Recover2Response>(&response);
        using S2 = protocol::Recover2Response::Status;
        if (r2 == nullptr) {
          errors.Add(UnexpectedResponse(response, realm, "Recover2"));
        } else if (r2->status == S2::kVersionMismatch) {
          errors.Add(RealmFailure(ErrorKind::kAssertion, realm, "Recover2",
                                  "answered VersionMismatch for the version it reported in "
                                  "Recover1"));
        } else if (r2->status == S2::kNotRegistered) {
          errors.Add(RealmFailure(ErrorKind::kNotRegistered, realm, "Recover2",
                                  "no secret registered"));
        } else if (r2->status == S2::kNoGuesses) {
          errors.Add(RealmFailure(ErrorKind::kInvalidPin, realm, "Recover2",
                                  "no guesses remain; the secret is locked", 0));
        } else if (r2->guess_count > r2->num_guesses) {
          errors.Add(RealmFailure(ErrorKind::kAssertion, realm, "Recover2",
                                  "reported guess_count " + std::to_string(r2->guess_count) +
                                      " above num_guesses " +
                                      std::to_string(r2->num_guesses)));
        } else if (!protocol::VerifyOprfSignedPublicKey(realm.id, r2->oprf_signed_public_key)
                        .ok()) {
          errors.Add(RealmFailure(ErrorKind::kAssertion, realm, "Recover2",
                                  "signature on the OPRF public key does not verify"));
        } else if (!protocol::VerifyProof(r2->oprf_signed_public_key.public_key,
                                          blinded->blinded_input, r2->oprf_blinded_result,
                                          r2->oprf_proof)
                        .ok()) {
          errors.Add(RealmFailure(ErrorKind::kAssertion, realm, "Recover2",
                                  "DLEQ proof of the OPRF evaluation does not verify"));
        } else {
          OprfGroup& members = by_key[{r2->unlock_key_commitment,
                                       r2->oprf_signed_public_key.verifying_key}];
          members.commitment = r2->unlock_key_commitment;
          members.shares.push_back(
              OprfShare{c.share_index(position), r2->oprf_blinded_result,
                        static_cast<uint16_t>(r2->num_guesses - r2->guess_count)});
          if (members.shares.size() >= t) {
            oprf = std::move(members);
            decided = true;
          }
          continue;
        }
      }
      if (errors.count() > m - t) return errors.Report(m);
    }
    if (!decided) {
      ClientError error;
      error.kind = ErrorKind::kAssertion;
      error.message = "Recover2: no " + std::to_string(t) + " realms agree on the unlock-key "
                      "commitment and signing key (" + std::to_string(by_key.size()) +
                      " distinct answers, " + std::to_string(errors.count()) +
                      " realms failed)";
      return error;
    }
  }

  std::vector<protocol::ShareIndex> indices;
  std::vector<protocol::PointBytes> points;
  uint16_t guesses_remaining = UINT16_MAX;
  for (const OprfShare& share : oprf.shares) {
    indices.push_back(share.index);
    points.push_back(share.blinded_result);
    guesses_remaining = std::min(guesses_remaining, share.guesses_remaining);
  }
  StatusOr<protocol::PointBytes> combined = protocol::RecombinePoints(indices, points);
  if (!combined.ok()) {
    ClientError error;
    error.kind = ErrorKind::kAssertion;
    error.message = "Recover2: the realms' OPRF results do not combine: " +
                    combined.status().message();
    return error;
  }
  StatusOr<SecretBytes> oprf_output =
      protocol::Finalize(hashed->access_key.Reveal(), blinded->blinding_factor, *combined);
  if (!oprf_output.ok()) {
    ClientError error;
    error.kind = ErrorKind::kAssertion;
    error.message = "Recover2: the combined OPRF result is invalid: " +
                    oprf_output.status().message();
    return error;
  }
  StatusOr<protocol::UnlockKey> unlock = protocol::DeriveUnlockKey(*oprf_output);
  if (!unlock.ok()) return LocalFailure("unlock key derivation", unlock.status());
  if (!protocol::UnlockKeyCommitmentEquals(unlock->commitment, oprf.commitment)) {
    ClientError error;
    error.kind = ErrorKind::kInvalidPin;
    error.guesses_remaining = guesses_remaining;
    error.message = guesses_remaining == 0
                        ? "wrong PIN; no guesses remain, the secret is now locked"
                        : "wrong PIN; " + std::to_string(guesses_remaining) +
                              (guesses_remaining == 1 ? " guess remains" : " guesses remain");
    return error;
  }

  // ---- Recover3: per-realm tags for the scalar shares and the encrypted secret. ----
  SecretGroup secret_group;
  {
    FanOut fan(transport_, *tokens_, options_.retry);
    for (size_t position : group.positions) {
      protocol::Recover3Request request;
      request.version = group.version;
      StatusOr<protocol::UnlockKeyTag> tag =
          protocol::ComputeUnlockKeyTag(unlock->unlock_key, c.realms()[position].id);
      if (!tag.ok()) return LocalFailure("unlock key tag", tag.status());
      request.unlock_key_tag = *tag;
      fan.Start(c.realms()[position], request);
    }
    Errors errors;
    std::map<protocol::EncryptedSecret, SecretGroup> by_secret;
    size_t dropped = 0;
    bool decided = false;
    while (!decided) {
      std::optional<FanOut::Arrival> arrival = fan.Next();
      if (!arrival) break;
      const size_t position = group.positions[arrival->slot];
      const Realm& realm = c.realms()[position];
      if (const auto* error = std::get_if<TransportError>(&arrival->result)) {
        errors.Add(FromTransportError(*error, realm, "Recover3", arrival->attempts));
      } else {
        SecretsResponse& response = std::get<SecretsResponse>(arrival->result);
        auto* r3 = std::get_if<protocol::Recover3Response>(&response);
        using S3 = protocol::Recover3Response::Status;
        if (r3 == nullptr) {
          errors.Add(UnexpectedResponse(response, realm, "Recover3"));
        } else if (r3->status == S3::kVersionMismatch) {
          errors.Add(RealmFailure(ErrorKind::kAssertion, realm, "Recover3",
                                  "answered VersionMismatch for the version it reported in "
                                  "Recover1"));
        } else if (r3->status == S3::kNotRegistered) {
          errors.Add(RealmFailure(ErrorKind::kNotRegistered, realm, "Recover3",
                                  "no secret registered"));
        } else if (r3->status == S3::kNoGuesses) {
          errors.Add(RealmFailure(ErrorKind::kInvalidPin, realm, "Recover3",
                                  "no guesses remain; the secret is locked", 0));
        } else if (r3->status == S3::kBadUnlockKeyTag) {
          errors.Add(RealmFailure(ErrorKind::kInvalidPin, realm, "Recover3",
                                  "rejected the unlock key tag", r3->guesses_remaining));
        } else if (!protocol::IsCanonicalScalar(r3->encryption_key_scalar_share.Reveal())) {
          errors.Add(RealmFailure(ErrorKind::kAssertion, realm, "Recover3",
                                  "encryption key scalar share is not a canonical scalar"));
        } else {
          StatusOr<protocol::EncryptedSecretCommitment> expected =
              protocol::ComputeEncryptedSecretCommitment(unlock->unlock_key, realm.id,
                                                         r3->encryption_key_scalar_share,
                                                         r3->encrypted_secret);
          if (!expected.ok()) return LocalFailure("commitment check", expected.status());
          if (!protocol::EncryptedSecretCommitmentEquals(*expected,
                                                         r3->encrypted_secret_commitment)) {
            // Not usable, but others may still be enough (as the SDK does).
            ++dropped;
          } else {
            SecretGroup& members = by_secret[r3->encrypted_secret];
            members.encrypted_secret = r3->encrypted_secret;
            members.indices.push_back(c.share_index(position));
            members.shares.push_back(std::move(r3->encryption_key_scalar_share));
            if (members.indices.size() >= t) {
              secret_group = std::move(members);
              decided = true;
            }
          }
          continue;
        }
      }
      if (errors.count() > m - t) return errors.Report(m);
    }
    if (!decided) {
      ClientError error;
      error.kind = ErrorKind::kAssertion;
      error.message = "Recover3: no " + std::to_string(t) + " realms returned a consistent "
                      "encrypted secret (" + std::to_string(dropped) +
                      " answers failed the commitment check, " +
                      std::to_string(by_secret.size()) + " distinct secrets, " +
                      std::to_string(errors.count()) + " realms failed)";
      return error;
    }
  }

  StatusOr<SecretBytes> scalar =
      protocol::RecombineScalars(secret_group.indices, secret_group.shares);
  if (!scalar.ok()) {
    ClientError error;
    error.kind = ErrorKind::kAssertion;
    error.message = "Recover3: the encryption key shares do not combine: " +
                    scalar.status().message();
    return error;
  }
  StatusOr<SecretBytes> key = protocol::DeriveEncryptionKey(hashed->encryption_key_seed, *scalar);
  if (!key.ok()) return LocalFailure("encryption key derivation", key.status());
  StatusOr<SecretBytes> secret = protocol::OpenSecret(*key, secret_group.encrypted_secret);
  if (!secret.ok()) {
    ClientError error;
    error.kind = ErrorKind::kAssertion;
    error.message = "Recover3: the encrypted secret does not decrypt (" +
                    std::string(StatusCodeName(secret.status().code())) + ")";
    return error;
  }
  return std::move(secret).value();
}

DeleteResult Client::Delete() const {
  const Configuration& c = configuration_;
  FanOut fan(transport_, *tokens_, options_.retry);
  for (const Realm& realm : c.realms()) fan.Start(realm, protocol::DeleteRequest{});
  std::vector<std::optional<ClientError>> failures(c.size());
  while (std::optional<FanOut::Arrival> arrival = fan.Next()) {
    const Realm& realm = c.realms()[arrival->slot];
    if (const auto* error = std::get_if<TransportError>(&arrival->result)) {
      failures[arrival->slot] = FromTransportError(*error, realm, "Delete", arrival->attempts);
    } else if (!std::holds_alternative<protocol::DeleteResponse>(
                   std::get<SecretsResponse>(arrival->result))) {
      failures[arrival->slot] =
          UnexpectedResponse(std::get<SecretsResponse>(arrival->result), realm, "Delete");
    }
  }
  // The first failure in realm-id order, as the SDK reports it.
  for (std::optional<ClientError>& failure : failures) {
    if (failure) return std::move(*failure);
  }
  return Success{};
}

}  // namespace pinvault::backup
