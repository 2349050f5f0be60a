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
ClientError RealmFailure(ErrorKind kind, const RealmEndpoint& realm, std::string_view step,
                         std::string_view what, uint16_t guesses_remaining = 0) {
  ClientError error;
  error.kind = kind;
  error.guesses_remaining = guesses_remaining;
  error.message =
      "realm " + RealmIdHex(realm.id) + " " + std::string(step) + ": " + std::string(what);
  return error;
}

ClientError FromTransportError(const TransportError& error, const RealmEndpoint& realm,
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

ClientError UnexpectedResponse(const SecretsResponse& response, const RealmEndpoint& realm,
                               std::string_view step) {
  return RealmFailure(ErrorKind::kAssertion, realm, step,
                      "unexpected " + std::string(kResponseNames[response.index()]) + " response");
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
      error.message +=
          " (" + std::to_string(count_) + " of " + std::to_string(realms) + " realms failed)";
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
    ASSIGN_OR_RETURN(request.unlock_key_tag, protocol::ComputeUnlockKeyTag(unlock.unlock_key, id));
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

// OprfShare is one realm's accepted Recover2 answer.
struct OprfShare {
  protocol::ShareIndex index = 0;
  protocol::PointBytes blinded_result{};
  uint16_t guesses_remaining = 0;
  protocol::UnlockKeyCommitment commitment{};
  protocol::Ed25519PublicKey verifying_key{};
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

StatusOr<std::unique_ptr<Client>> Client::Create(Configuration configuration,
                                                 std::vector<Configuration> previous_configurations,
                                                 std::shared_ptr<Transport> transport,
                                                 std::shared_ptr<AuthTokenProvider> tokens,
                                                 ClientOptions options) {
  if (transport == nullptr) return InvalidArgumentError("Client: transport is null");
  if (tokens == nullptr) return InvalidArgumentError("Client: auth token provider is null");
  auto reject_hardware = [](const Configuration& c, std::string_view which) -> Status {
    for (const RealmEndpoint& realm : c.realms()) {
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
    RETURN_IF_ERROR(
        reject_hardware(previous_configurations[i], "previous configuration " + std::to_string(i)));
  }
  if (options.retry.max_attempts < 1) options.retry.max_attempts = 1;
  return std::unique_ptr<Client>(new Client(std::move(configuration),
                                            std::move(previous_configurations),
                                            std::move(transport), std::move(tokens), options));
}

RegisterResult Client::Register(const SecretBytes& pin, const SecretBytes& secret, ByteView info,
                                uint16_t num_guesses) const {
  if (secret.size() > protocol::kMaxSecretSize) {
    return InvalidArgument("secret is " + std::to_string(secret.size()) + " bytes; at most " +
                           std::to_string(protocol::kMaxSecretSize) + " are allowed");
  }
  if (num_guesses == 0) return InvalidArgument("num_guesses must be at least 1");

  const Configuration& c = configuration_;
  const size_t n = c.size();
  const size_t threshold = c.register_threshold();

  // Register1: a liveness check; proceed once register_threshold realms answered Ok.
  {
    FanOut fan(transport_, *tokens_, options_.retry);
    for (const RealmEndpoint& realm : c.realms()) fan.Start(realm, protocol::Register1Request{});
    Errors errors;
    size_t oks = 0;
    while (oks < threshold) {
      std::optional<FanOut::Arrival> arrival = fan.Next();
      if (!arrival) {
        // Cannot happen: with every realm answered, either oks or errors crossed the line.
        return LocalFailure("Register1", InternalError("fewer answers than realms"));
      }
      const RealmEndpoint& realm = c.realms()[arrival->slot];
      if (const auto* error = std::get_if<TransportError>(&arrival->result)) {
        errors.Add(FromTransportError(*error, realm, "Register1", arrival->attempts));
      } else if (std::holds_alternative<protocol::Register1Response>(
                     std::get<SecretsResponse>(arrival->result))) {
        ++oks;
        continue;
      } else {
        errors.Add(
            UnexpectedResponse(std::get<SecretsResponse>(arrival->result), realm, "Register1"));
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
    const RealmEndpoint& realm = c.realms()[arrival->slot];
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

namespace {

// Recovery runs one recover against one configuration. All three steps share one FanOut,
// so that answers arriving after their step was decided can still be used:
//  - a late Recover1 with the agreed version adds its realm to the group (and gets a
//    Recover2) while the Recover2 step is open;
//  - a realm gets its Recover3 only after its own Recover2 has been answered, so the
//    realm sees them in order and a correct tag resets the guess it counted.
class Recovery {
 public:
  Recovery(const Configuration& c, std::shared_ptr<Transport> transport, AuthTokenProvider& tokens,
           const RetryPolicy& retry)
      : c_(c),
        t_(c.recover_threshold()),
        fan_(std::move(transport), tokens, retry),
        realms_(c.size()) {}

  RecoverResult Run(const SecretBytes& pin, ByteView info) {
    if (std::optional<ClientError> error = FindVersion()) return std::move(*error);

    StatusOr<protocol::HashedPin> hashed =
        protocol::HashPin(c_.pin_hashing_mode(), pin, version_, info);
    if (!hashed.ok()) return LocalFailure("PIN hashing", hashed.status());
    StatusOr<protocol::BlindedInput> blinded = protocol::Blind(hashed->access_key.Reveal());
    if (!blinded.ok()) return LocalFailure("OPRF blinding", blinded.status());
    blinded_input_ = blinded->blinded_input;

    if (std::optional<ClientError> error = EvaluateOprf()) return std::move(*error);

    // Combine the agreeing realms' OPRF results and check the PIN against the commitment.
    std::vector<protocol::ShareIndex> indices;
    std::vector<protocol::PointBytes> points;
    uint16_t guesses_remaining = UINT16_MAX;
    for (const OprfShare& share : oprf_.shares) {
      indices.push_back(share.index);
      points.push_back(share.blinded_result);
      guesses_remaining = std::min(guesses_remaining, share.guesses_remaining);
    }
    StatusOr<protocol::PointBytes> combined = protocol::RecombinePoints(indices, points);
    if (!combined.ok()) {
      return Failure(ErrorKind::kAssertion, "Recover2: the realms' OPRF results do not combine: " +
                                                combined.status().message());
    }
    StatusOr<SecretBytes> oprf_output =
        protocol::Finalize(hashed->access_key.Reveal(), blinded->blinding_factor, *combined);
    if (!oprf_output.ok()) {
      return Failure(ErrorKind::kAssertion, "Recover2: the combined OPRF result is invalid: " +
                                                oprf_output.status().message());
    }
    StatusOr<protocol::UnlockKey> unlock = protocol::DeriveUnlockKey(*oprf_output);
    if (!unlock.ok()) return LocalFailure("unlock key derivation", unlock.status());
    if (!protocol::UnlockKeyCommitmentEquals(unlock->commitment, oprf_.commitment)) {
      ClientError error =
          Failure(ErrorKind::kInvalidPin,
                  guesses_remaining == 0
                      ? "wrong PIN; no guesses remain, the secret is now locked"
                      : "wrong PIN; " + std::to_string(guesses_remaining) +
                            (guesses_remaining == 1 ? " guess remains" : " guesses remain"));
      error.guesses_remaining = guesses_remaining;
      return error;
    }
    unlock_key_ = std::move(unlock->unlock_key);

    if (std::optional<ClientError> error = CollectSecret()) return std::move(*error);

    StatusOr<SecretBytes> scalar = protocol::RecombineScalars(secret_.indices, secret_.shares);
    if (!scalar.ok()) {
      return Failure(ErrorKind::kAssertion, "Recover3: the encryption key shares do not combine: " +
                                                scalar.status().message());
    }
    StatusOr<SecretBytes> key = protocol::DeriveEncryptionKey(hashed->encryption_key_seed, *scalar);
    if (!key.ok()) return LocalFailure("encryption key derivation", key.status());
    StatusOr<SecretBytes> secret = protocol::OpenSecret(*key, secret_.encrypted_secret);
    if (!secret.ok()) {
      return Failure(ErrorKind::kAssertion,
                     "Recover3: the encrypted secret does not decrypt (" +
                         std::string(StatusCodeName(secret.status().code())) + ")");
    }
    return std::move(secret).value();
  }

 private:
  enum class Step { kRecover1, kRecover2, kRecover3 };
  struct Slot {
    Step step = Step::kRecover1;
    size_t position = 0;  // into c_.realms()
  };
  struct RealmProgress {
    bool recover1_done = false;
    bool in_group = false;  // answered Recover1 with the agreed version
    bool recover2_sent = false;
    bool recover2_done = false;
    bool recover3_sent = false;
  };

  static ClientError Failure(ErrorKind kind, std::string message) {
    ClientError error;
    error.kind = kind;
    error.message = std::move(message);
    return error;
  }

  void Start(Step step, size_t position, protocol::SecretsRequest request) {
    const size_t slot = fan_.Start(c_.realms()[position], std::move(request));
    if (slots_.size() <= slot) slots_.resize(slot + 1);
    slots_[slot] = Slot{step, position};
  }

  size_t PendingRecover1() const {
    size_t pending = 0;
    for (const RealmProgress& realm : realms_) pending += realm.recover1_done ? 0 : 1;
    return pending;
  }

  // ---- Recover1: find the version t realms agree on. ----

  std::optional<ClientError> FindVersion() {
    const size_t n = c_.size();
    for (size_t i = 0; i < n; ++i) Start(Step::kRecover1, i, protocol::Recover1Request{});
    Errors errors;
    std::map<protocol::RegistrationVersion, std::vector<size_t>> by_version;
    while (std::optional<FanOut::Arrival> arrival = fan_.Next()) {
      const size_t position = slots_[arrival->slot].position;
      realms_[position].recover1_done = true;
      std::optional<protocol::RegistrationVersion> version =
          Recover1Version(*arrival, position, errors);
      if (version) {
        std::vector<size_t>& members = by_version[*version];
        members.push_back(position);
        if (members.size() >= t_) {
          version_ = *version;
          for (size_t member : members) realms_[member].in_group = true;
          return std::nullopt;
        }
      } else if (errors.count() > n - t_) {
        return errors.Report(n);
      }
    }
    return Failure(ErrorKind::kNotRegistered,
                   "no " + std::to_string(t_) + " of the " + std::to_string(n) +
                       " realms agree on a registration (" + std::to_string(by_version.size()) +
                       " distinct versions seen, " + std::to_string(errors.count()) +
                       " realms failed)");
  }

  // Recover1Version returns the version a Recover1 answer reports, or records its error.
  std::optional<protocol::RegistrationVersion> Recover1Version(const FanOut::Arrival& arrival,
                                                               size_t position, Errors& errors) {
    const RealmEndpoint& realm = c_.realms()[position];
    if (const auto* error = std::get_if<TransportError>(&arrival.result)) {
      errors.Add(FromTransportError(*error, realm, "Recover1", arrival.attempts));
      return std::nullopt;
    }
    const SecretsResponse& response = std::get<SecretsResponse>(arrival.result);
    const auto* r1 = std::get_if<protocol::Recover1Response>(&response);
    using S1 = protocol::Recover1Response::Status;
    if (r1 == nullptr) {
      errors.Add(UnexpectedResponse(response, realm, "Recover1"));
    } else if (r1->status == S1::kNotRegistered) {
      errors.Add(
          RealmFailure(ErrorKind::kNotRegistered, realm, "Recover1", "no secret registered"));
    } else if (r1->status == S1::kNoGuesses) {
      errors.Add(RealmFailure(ErrorKind::kInvalidPin, realm, "Recover1",
                              "no guesses remain; the secret is locked", 0));
    } else {
      return r1->version;
    }
    return std::nullopt;
  }

  // ---- Recover2: one guess at each realm of the group. ----

  void SendRecover2(size_t position) {
    protocol::Recover2Request request;
    request.version = version_;
    request.oprf_blinded_input = blinded_input_;
    realms_[position].recover2_sent = true;
    Start(Step::kRecover2, position, request);
  }

  std::optional<ClientError> EvaluateOprf() {
    size_t group_size = 0;
    for (size_t i = 0; i < realms_.size(); ++i) {
      if (realms_[i].in_group) {
        SendRecover2(i);
        ++group_size;
      }
    }
    Errors errors;
    std::map<std::pair<protocol::UnlockKeyCommitment, protocol::Ed25519PublicKey>, OprfGroup>
        by_key;
    while (std::optional<FanOut::Arrival> arrival = fan_.Next()) {
      const Slot slot = slots_[arrival->slot];
      if (slot.step == Step::kRecover1) {
        // A late Recover1: a realm with the agreed version joins the group.
        realms_[slot.position].recover1_done = true;
        Errors ignored;
        std::optional<protocol::RegistrationVersion> version =
            Recover1Version(*arrival, slot.position, ignored);
        if (version && *version == version_) {
          realms_[slot.position].in_group = true;
          ++group_size;
          SendRecover2(slot.position);
        }
      } else {
        realms_[slot.position].recover2_done = true;
        if (std::optional<OprfShare> share = CheckRecover2(*arrival, slot.position, errors)) {
          OprfGroup& members = by_key[{share->commitment, share->verifying_key}];
          members.commitment = share->commitment;
          members.shares.push_back(*share);
          if (members.shares.size() >= t_) {
            oprf_ = std::move(members);
            return std::nullopt;
          }
          continue;
        }
      }
      // Realms that may still answer Recover2 Ok: the group plus realms yet to answer
      // Recover1.
      const size_t possible = group_size + PendingRecover1();
      if (errors.count() > 0 && errors.count() + t_ > possible) return errors.Report(group_size);
    }
    return Failure(ErrorKind::kAssertion,
                   "Recover2: no " + std::to_string(t_) +
                       " realms agree on the unlock-key commitment and signing key (" +
                       std::to_string(by_key.size()) + " distinct answers, " +
                       std::to_string(errors.count()) + " realms failed)");
  }

  // CheckRecover2 verifies one realm's Recover2 answer; nullopt after recording an error.
  std::optional<OprfShare> CheckRecover2(const FanOut::Arrival& arrival, size_t position,
                                         Errors& errors) {
    const RealmEndpoint& realm = c_.realms()[position];
    if (const auto* error = std::get_if<TransportError>(&arrival.result)) {
      errors.Add(FromTransportError(*error, realm, "Recover2", arrival.attempts));
      return std::nullopt;
    }
    const SecretsResponse& response = std::get<SecretsResponse>(arrival.result);
    const auto* r2 = std::get_if<protocol::Recover2Response>(&response);
    using S2 = protocol::Recover2Response::Status;
    if (r2 == nullptr) {
      errors.Add(UnexpectedResponse(response, realm, "Recover2"));
    } else if (r2->status == S2::kVersionMismatch) {
      errors.Add(RealmFailure(ErrorKind::kAssertion, realm, "Recover2",
                              "answered VersionMismatch for the version it reported in "
                              "Recover1"));
    } else if (r2->status == S2::kNotRegistered) {
      errors.Add(
          RealmFailure(ErrorKind::kNotRegistered, realm, "Recover2", "no secret registered"));
    } else if (r2->status == S2::kNoGuesses) {
      errors.Add(RealmFailure(ErrorKind::kInvalidPin, realm, "Recover2",
                              "no guesses remain; the secret is locked", 0));
    } else if (r2->guess_count > r2->num_guesses) {
      errors.Add(RealmFailure(ErrorKind::kAssertion, realm, "Recover2",
                              "reported guess_count " + std::to_string(r2->guess_count) +
                                  " above num_guesses " + std::to_string(r2->num_guesses)));
    } else if (!protocol::VerifyOprfSignedPublicKey(realm.id, r2->oprf_signed_public_key).ok()) {
      errors.Add(RealmFailure(ErrorKind::kAssertion, realm, "Recover2",
                              "signature on the OPRF public key does not verify"));
    } else if (!protocol::VerifyProof(r2->oprf_signed_public_key.public_key, blinded_input_,
                                      r2->oprf_blinded_result, r2->oprf_proof)
                    .ok()) {
      errors.Add(RealmFailure(ErrorKind::kAssertion, realm, "Recover2",
                              "DLEQ proof of the OPRF evaluation does not verify"));
    } else {
      OprfShare share;
      share.index = c_.share_index(position);
      share.blinded_result = r2->oprf_blinded_result;
      share.guesses_remaining = static_cast<uint16_t>(r2->num_guesses - r2->guess_count);
      share.commitment = r2->unlock_key_commitment;
      share.verifying_key = r2->oprf_signed_public_key.verifying_key;
      return share;
    }
    return std::nullopt;
  }

  // ---- Recover3: per-realm tags for the scalar shares and the encrypted secret. ----

  std::optional<ClientError> SendRecover3(size_t position) {
    StatusOr<protocol::UnlockKeyTag> tag =
        protocol::ComputeUnlockKeyTag(unlock_key_, c_.realms()[position].id);
    if (!tag.ok()) return LocalFailure("unlock key tag", tag.status());
    protocol::Recover3Request request;
    request.version = version_;
    request.unlock_key_tag = *tag;
    realms_[position].recover3_sent = true;
    Start(Step::kRecover3, position, request);
    return std::nullopt;
  }

  std::optional<ClientError> CollectSecret() {
    // Every realm that was asked for a guess gets a Recover3 once its Recover2 is answered
    // (whatever the answer, as the SDK does).
    size_t eligible = 0;
    for (size_t i = 0; i < realms_.size(); ++i) {
      if (!realms_[i].recover2_sent) continue;
      ++eligible;
      if (realms_[i].recover2_done) {
        if (std::optional<ClientError> error = SendRecover3(i)) return error;
      }
    }
    Errors errors;
    std::map<protocol::EncryptedSecret, SecretGroup> by_secret;
    size_t dropped = 0;
    while (std::optional<FanOut::Arrival> arrival = fan_.Next()) {
      const Slot slot = slots_[arrival->slot];
      if (slot.step == Step::kRecover1) continue;  // too late to join
      if (slot.step == Step::kRecover2) {
        realms_[slot.position].recover2_done = true;
        if (std::optional<ClientError> error = SendRecover3(slot.position)) return error;
        continue;
      }
      const RealmEndpoint& realm = c_.realms()[slot.position];
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
          errors.Add(
              RealmFailure(ErrorKind::kNotRegistered, realm, "Recover3", "no secret registered"));
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
              protocol::ComputeEncryptedSecretCommitment(
                  unlock_key_, realm.id, r3->encryption_key_scalar_share, r3->encrypted_secret);
          if (!expected.ok()) return LocalFailure("commitment check", expected.status());
          if (!protocol::EncryptedSecretCommitmentEquals(*expected,
                                                         r3->encrypted_secret_commitment)) {
            // Not usable, but the others may still be enough (as the SDK does).
            ++dropped;
            continue;
          }
          SecretGroup& members = by_secret[r3->encrypted_secret];
          members.encrypted_secret = r3->encrypted_secret;
          members.indices.push_back(c_.share_index(slot.position));
          members.shares.push_back(std::move(r3->encryption_key_scalar_share));
          if (members.indices.size() >= t_) {
            secret_ = std::move(members);
            return std::nullopt;
          }
          continue;
        }
      }
      if (errors.count() + t_ > eligible) return errors.Report(eligible);
    }
    return Failure(ErrorKind::kAssertion,
                   "Recover3: no " + std::to_string(t_) +
                       " realms returned a consistent encrypted secret (" +
                       std::to_string(dropped) + " answers failed the commitment check, " +
                       std::to_string(by_secret.size()) + " distinct secrets, " +
                       std::to_string(errors.count()) + " realms failed)");
  }

  const Configuration& c_;
  const size_t t_;
  FanOut fan_;
  std::vector<Slot> slots_;            // by FanOut slot
  std::vector<RealmProgress> realms_;  // by position in c_.realms()
  protocol::RegistrationVersion version_{};
  protocol::PointBytes blinded_input_{};
  OprfGroup oprf_;
  SecretBytes unlock_key_;
  SecretGroup secret_;
};

}  // namespace

RecoverResult Client::RecoverWith(const Configuration& c, const SecretBytes& pin,
                                  ByteView info) const {
  Recovery recovery(c, transport_, *tokens_, options_.retry);
  return recovery.Run(pin, info);
}

DeleteResult Client::Delete() const {
  const Configuration& c = configuration_;
  FanOut fan(transport_, *tokens_, options_.retry);
  for (const RealmEndpoint& realm : c.realms()) fan.Start(realm, protocol::DeleteRequest{});
  std::vector<std::optional<ClientError>> failures(c.size());
  while (std::optional<FanOut::Arrival> arrival = fan.Next()) {
    const RealmEndpoint& realm = c.realms()[arrival->slot];
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
