#include "api/bench/bench_material.h"

#include <sodium.h>

#include <algorithm>
#include <array>
#include <utility>

#include "api/codec/cbor_codec.h"
#include "vault/protocol/oprf.h"
#include "vault/protocol/ristretto.h"
#include "vault/protocol/secret_box.h"
#include "vault/protocol/signing.h"
#include "vault/protocol/tags.h"

namespace pinvault::api::bench {
namespace {

using protocol::RealmId;

// Deriver produces the registration's randomness: SHA-512(seed ‖ 0 ‖ label ‖ be8(index) ‖
// be4(part)). Deterministic on purpose (see the header); never used outside benchmarks.
class Deriver {
 public:
  Deriver(std::string_view seed, uint64_t index) : seed_(seed), index_(index) {}

  // Wide returns 64 derived bytes for `label` and `part` in secure memory.
  SecretBytes Wide(std::string_view label, uint32_t part = 0) const {
    crypto_hash_sha512_state state;
    crypto_hash_sha512_init(&state);
    crypto_hash_sha512_update(&state, reinterpret_cast<const uint8_t*>(seed_.data()), seed_.size());
    const uint8_t zero = 0;
    crypto_hash_sha512_update(&state, &zero, 1);
    crypto_hash_sha512_update(&state, reinterpret_cast<const uint8_t*>(label.data()), label.size());
    std::array<uint8_t, 12> suffix{};
    for (int i = 0; i < 8; ++i) suffix[i] = static_cast<uint8_t>(index_ >> (56 - 8 * i));
    for (int i = 0; i < 4; ++i) suffix[8 + i] = static_cast<uint8_t>(part >> (24 - 8 * i));
    crypto_hash_sha512_update(&state, suffix.data(), suffix.size());
    SecretBytes out(crypto_hash_sha512_BYTES);
    crypto_hash_sha512_final(&state, out.RevealMutable().data());
    sodium_memzero(&state, sizeof(state));
    return out;
  }

  // Bytes returns the first `size` (<= 64) derived bytes.
  SecretBytes Prefix(std::string_view label, size_t size) const {
    SecretBytes wide = Wide(label);
    return SecretBytes::CopyFrom(wide.Reveal().first(size));
  }

  // Scalar returns a derived scalar (64 bytes reduced mod l).
  StatusOr<SecretBytes> Scalar(std::string_view label, uint32_t part = 0) const {
    SecretBytes wide = Wide(label, part);
    return protocol::ScalarFromWideBytes(wide.Reveal());
  }

  // Shares splits a derived scalar `secret` into `count` shares, threshold `threshold`,
  // with derived coefficients.
  StatusOr<std::vector<SecretBytes>> Shares(std::string_view label, const SecretBytes& secret,
                                            size_t threshold, size_t count) const {
    std::vector<SecretBytes> coefficients;
    for (size_t j = 1; j < threshold; ++j) {
      ASSIGN_OR_RETURN(SecretBytes c, Scalar(label, static_cast<uint32_t>(j)));
      coefficients.push_back(std::move(c));
    }
    return protocol::ShareSecretWithCoefficients(secret, coefficients, count);
  }

 private:
  std::string_view seed_;
  uint64_t index_;
};

StatusOr<PreparedRegistration> Derive(std::string_view seed, uint64_t index,
                                      const std::vector<RealmId>& realm_ids, uint32_t threshold,
                                      uint16_t num_guesses) {
  const size_t n = realm_ids.size();
  Deriver d(seed, index);
  PreparedRegistration r;
  r.num_guesses = num_guesses;
  {
    SecretBytes version = d.Prefix("version", protocol::kVersionSize);
    std::copy(version.Reveal().begin(), version.Reveal().end(), r.version.begin());
  }
  // A 6-digit PIN and a per-registration info string.
  {
    SecretBytes wide = d.Wide("pin");
    SecretBytes pin(6);
    for (size_t i = 0; i < 6; ++i) pin.RevealMutable()[i] = '0' + wide.Reveal()[i] % 10;
    r.pin = std::move(pin);
  }
  r.info = ToBytes("pinvault-bench-" + std::to_string(index));
  r.secret = d.Prefix("secret", 32);
  ASSIGN_OR_RETURN(r.hashed, protocol::HashPin(protocol::PinHashingMode::kFastInsecure, r.pin,
                                               r.version, r.info));

  ASSIGN_OR_RETURN(SecretBytes oprf_key, d.Scalar("oprf-key"));
  ASSIGN_OR_RETURN(std::vector<SecretBytes> oprf_shares,
                   d.Shares("oprf-coefficient", oprf_key, threshold, n));
  ASSIGN_OR_RETURN(protocol::OprfSigningKey signing_key,
                   protocol::OprfSigningKey::FromSeed(d.Prefix("signing-key", 32)));
  ASSIGN_OR_RETURN(SecretBytes oprf_output,
                   protocol::EvaluateUnoblivious(oprf_key, r.hashed.access_key.Reveal()));
  ASSIGN_OR_RETURN(protocol::UnlockKey unlock, protocol::DeriveUnlockKey(oprf_output));
  r.unlock_key_commitment = unlock.commitment;

  ASSIGN_OR_RETURN(SecretBytes encryption_scalar, d.Scalar("encryption-scalar"));
  ASSIGN_OR_RETURN(std::vector<SecretBytes> encryption_shares,
                   d.Shares("encryption-coefficient", encryption_scalar, threshold, n));
  ASSIGN_OR_RETURN(SecretBytes encryption_key,
                   protocol::DeriveEncryptionKey(r.hashed.encryption_key_seed, encryption_scalar));
  ASSIGN_OR_RETURN(r.encrypted_secret, protocol::SealSecret(encryption_key, r.secret));

  ASSIGN_OR_RETURN(SecretBytes blinding_factor, d.Scalar("blinding-factor"));
  ASSIGN_OR_RETURN(protocol::BlindedInput blinded,
                   protocol::BlindWithFactor(r.hashed.access_key.Reveal(), blinding_factor));
  ASSIGN_OR_RETURN(r.recover2_body,
                   EncodeRequestCbor(protocol::Recover2Request{r.version, blinded.blinded_input}));

  for (size_t i = 0; i < n; ++i) {
    RealmPart part;
    ASSIGN_OR_RETURN(protocol::PointBytes public_key, protocol::BasePointMult(oprf_shares[i]));
    part.signed_public_key = signing_key.SignOprfPublicKey(realm_ids[i], public_key);
    ASSIGN_OR_RETURN(part.tag, protocol::ComputeUnlockKeyTag(unlock.unlock_key, realm_ids[i]));
    ASSIGN_OR_RETURN(
        part.encrypted_secret_commitment,
        protocol::ComputeEncryptedSecretCommitment(unlock.unlock_key, realm_ids[i],
                                                   encryption_shares[i], r.encrypted_secret));
    ASSIGN_OR_RETURN(part.expected_blinded_result,
                     protocol::PointMult(oprf_shares[i], blinded.blinded_input));
    part.encryption_key_scalar_share = encryption_shares[i].Clone();

    protocol::Register2Request request;
    request.version = r.version;
    request.oprf_private_key = std::move(oprf_shares[i]);
    request.oprf_signed_public_key = part.signed_public_key;
    request.unlock_key_commitment = unlock.commitment;
    request.unlock_key_tag = part.tag;
    request.encryption_key_scalar_share = std::move(encryption_shares[i]);
    request.encrypted_secret = r.encrypted_secret;
    request.encrypted_secret_commitment = part.encrypted_secret_commitment;
    request.policy.num_guesses = num_guesses;
    ASSIGN_OR_RETURN(part.register2_body, EncodeRequestCbor(std::move(request)));
    ASSIGN_OR_RETURN(part.recover3_body,
                     EncodeRequestCbor(protocol::Recover3Request{r.version, part.tag}));
    r.realms.push_back(std::move(part));
  }
  return r;
}

// Status names of the answers, for error messages.
const char* Recover2StatusName(protocol::Recover2Response::Status s) {
  switch (s) {
    case protocol::Recover2Response::Status::kOk:
      return "Ok";
    case protocol::Recover2Response::Status::kVersionMismatch:
      return "VersionMismatch";
    case protocol::Recover2Response::Status::kNotRegistered:
      return "NotRegistered";
    case protocol::Recover2Response::Status::kNoGuesses:
      return "NoGuesses";
  }
  return "?";
}

const char* Recover3StatusName(protocol::Recover3Response::Status s) {
  switch (s) {
    case protocol::Recover3Response::Status::kOk:
      return "Ok";
    case protocol::Recover3Response::Status::kVersionMismatch:
      return "VersionMismatch";
    case protocol::Recover3Response::Status::kNotRegistered:
      return "NotRegistered";
    case protocol::Recover3Response::Status::kNoGuesses:
      return "NoGuesses";
    case protocol::Recover3Response::Status::kBadUnlockKeyTag:
      return "BadUnlockKeyTag";
  }
  return "?";
}

std::vector<protocol::ShareIndex> FirstIndices(uint32_t threshold) {
  std::vector<protocol::ShareIndex> indices;
  for (uint32_t i = 1; i <= threshold; ++i) indices.push_back(i);
  return indices;
}

}  // namespace

PreparedRegistration::~PreparedRegistration() {
  // The Register2 bodies carry key shares (synthetic ones, but shares all the same).
  for (RealmPart& part : realms) SecureWipe(part.register2_body);
}

StatusOr<std::unique_ptr<RegistrationPool>> RegistrationPool::Create(std::string_view seed,
                                                                     size_t count,
                                                                     std::vector<RealmId> realm_ids,
                                                                     uint32_t recover_threshold,
                                                                     uint16_t num_guesses) {
  if (realm_ids.empty()) return InvalidArgumentError("no realms");
  if (count == 0) return InvalidArgumentError("registration pool size must be at least 1");
  if (recover_threshold < 1 || recover_threshold > realm_ids.size()) {
    return InvalidArgumentError("recover threshold must be between 1 and the number of realms");
  }
  if (num_guesses == 0) return InvalidArgumentError("num_guesses must be at least 1");
  std::sort(realm_ids.begin(), realm_ids.end());
  auto pool = std::unique_ptr<RegistrationPool>(new RegistrationPool());
  pool->realm_ids_ = std::move(realm_ids);
  pool->threshold_ = recover_threshold;
  pool->registrations_.reserve(count);
  for (size_t i = 0; i < count; ++i) {
    ASSIGN_OR_RETURN(PreparedRegistration r,
                     Derive(seed, i, pool->realm_ids_, recover_threshold, num_guesses));
    pool->registrations_.push_back(std::move(r));
  }
  ASSIGN_OR_RETURN(pool->register1_body_, EncodeRequestCbor(protocol::Register1Request{}));
  ASSIGN_OR_RETURN(pool->recover1_body_, EncodeRequestCbor(protocol::Recover1Request{}));
  return pool;
}

Status RegistrationPool::CheckRecover1(const PreparedRegistration& registration,
                                       const protocol::SecretsResponse& response) {
  const auto* r1 = std::get_if<protocol::Recover1Response>(&response);
  if (r1 == nullptr) return DataLossError("Recover1 answered with another response type");
  if (r1->status != protocol::Recover1Response::Status::kOk) {
    return DataLossError(r1->status == protocol::Recover1Response::Status::kNoGuesses
                             ? "Recover1 NoGuesses"
                             : "Recover1 NotRegistered");
  }
  if (r1->version != registration.version) return DataLossError("Recover1 version differs");
  return OkStatus();
}

Status RegistrationPool::CheckRecover2(const PreparedRegistration& registration, size_t position,
                                       const protocol::SecretsResponse& response) {
  const auto* r2 = std::get_if<protocol::Recover2Response>(&response);
  if (r2 == nullptr) return DataLossError("Recover2 answered with another response type");
  if (r2->status != protocol::Recover2Response::Status::kOk) {
    return DataLossError(std::string("Recover2 ") + Recover2StatusName(r2->status));
  }
  const RealmPart& part = registration.realms[position];
  if (r2->oprf_blinded_result != part.expected_blinded_result) {
    return DataLossError("Recover2 blinded result differs from k_i*U");
  }
  if (!(r2->oprf_signed_public_key == part.signed_public_key)) {
    return DataLossError("Recover2 signed public key differs");
  }
  if (!protocol::UnlockKeyCommitmentEquals(r2->unlock_key_commitment,
                                           registration.unlock_key_commitment)) {
    return DataLossError("Recover2 unlock-key commitment differs");
  }
  if (r2->num_guesses != registration.num_guesses || r2->guess_count == 0 ||
      r2->guess_count > r2->num_guesses) {
    return DataLossError("Recover2 guess count or policy out of range");
  }
  return OkStatus();
}

Status RegistrationPool::CheckRecover3(const PreparedRegistration& registration, size_t position,
                                       const protocol::SecretsResponse& response) {
  const auto* r3 = std::get_if<protocol::Recover3Response>(&response);
  if (r3 == nullptr) return DataLossError("Recover3 answered with another response type");
  if (r3->status != protocol::Recover3Response::Status::kOk) {
    return DataLossError(std::string("Recover3 ") + Recover3StatusName(r3->status));
  }
  const RealmPart& part = registration.realms[position];
  if (!r3->encryption_key_scalar_share.Equals(part.encryption_key_scalar_share)) {
    return DataLossError("Recover3 scalar share differs");
  }
  if (r3->encrypted_secret != registration.encrypted_secret) {
    return DataLossError("Recover3 encrypted secret differs");
  }
  if (!protocol::EncryptedSecretCommitmentEquals(r3->encrypted_secret_commitment,
                                                 part.encrypted_secret_commitment)) {
    return DataLossError("Recover3 encrypted-secret commitment differs");
  }
  return OkStatus();
}

StatusOr<std::unique_ptr<FullRecovery>> FullRecovery::Start(
    const PreparedRegistration& registration, std::vector<protocol::RealmId> realm_ids) {
  auto full = std::unique_ptr<FullRecovery>(new FullRecovery(registration, std::move(realm_ids)));
  ASSIGN_OR_RETURN(protocol::BlindedInput blinded,
                   protocol::Blind(registration.hashed.access_key.Reveal()));
  full->blinding_factor_ = std::move(blinded.blinding_factor);
  full->blinded_input_ = blinded.blinded_input;
  ASSIGN_OR_RETURN(full->recover2_body_, EncodeRequestCbor(protocol::Recover2Request{
                                             registration.version, full->blinded_input_}));
  return full;
}

Status FullRecovery::CheckRecover2(const std::vector<const protocol::Recover2Response*>& answers,
                                   uint32_t threshold) {
  if (answers.size() != realm_ids_.size() || threshold < 1 || threshold > answers.size()) {
    return DataLossError("full check: wrong number of Recover2 answers");
  }
  std::vector<protocol::PointBytes> points;
  for (size_t i = 0; i < answers.size(); ++i) {
    const protocol::Recover2Response& a = *answers[i];
    if (a.status != protocol::Recover2Response::Status::kOk) {
      return DataLossError("full check: Recover2 not Ok");
    }
    RETURN_IF_ERROR(protocol::VerifyOprfSignedPublicKey(realm_ids_[i], a.oprf_signed_public_key)
                        .WithContext("full check: signed public key"));
    RETURN_IF_ERROR(protocol::VerifyProof(a.oprf_signed_public_key.public_key, blinded_input_,
                                          a.oprf_blinded_result, a.oprf_proof)
                        .WithContext("full check: DLEQ proof"));
    if (i < threshold) points.push_back(a.oprf_blinded_result);
  }
  std::vector<protocol::ShareIndex> indices = FirstIndices(threshold);
  ASSIGN_OR_RETURN(protocol::PointBytes combined, protocol::RecombinePoints(indices, points));
  ASSIGN_OR_RETURN(SecretBytes output, protocol::Finalize(registration_.hashed.access_key.Reveal(),
                                                          blinding_factor_, combined));
  ASSIGN_OR_RETURN(protocol::UnlockKey unlock, protocol::DeriveUnlockKey(output));
  if (!protocol::UnlockKeyCommitmentEquals(unlock.commitment,
                                           registration_.unlock_key_commitment)) {
    return DataLossError("full check: OPRF output does not give the registered commitment");
  }
  for (size_t i = 0; i < realm_ids_.size(); ++i) {
    ASSIGN_OR_RETURN(protocol::UnlockKeyTag tag,
                     protocol::ComputeUnlockKeyTag(unlock.unlock_key, realm_ids_[i]));
    if (!protocol::UnlockKeyTagEquals(tag, registration_.realms[i].tag)) {
      return DataLossError("full check: derived unlock-key tag differs");
    }
  }
  unlock_key_ = std::move(unlock.unlock_key);
  return OkStatus();
}

Status FullRecovery::CheckRecover3(const std::vector<const protocol::Recover3Response*>& answers,
                                   uint32_t threshold) {
  if (answers.size() != realm_ids_.size() || threshold < 1 || threshold > answers.size() ||
      unlock_key_.empty()) {
    return DataLossError("full check: Recover3 checked out of order");
  }
  std::vector<SecretBytes> shares;
  for (size_t i = 0; i < answers.size(); ++i) {
    const protocol::Recover3Response& a = *answers[i];
    if (a.status != protocol::Recover3Response::Status::kOk) {
      return DataLossError("full check: Recover3 not Ok");
    }
    ASSIGN_OR_RETURN(
        protocol::EncryptedSecretCommitment expected,
        protocol::ComputeEncryptedSecretCommitment(
            unlock_key_, realm_ids_[i], a.encryption_key_scalar_share, a.encrypted_secret));
    if (!protocol::EncryptedSecretCommitmentEquals(expected, a.encrypted_secret_commitment)) {
      return DataLossError("full check: encrypted-secret commitment does not verify");
    }
    if (i < threshold) shares.push_back(a.encryption_key_scalar_share.Clone());
  }
  std::vector<protocol::ShareIndex> indices = FirstIndices(threshold);
  ASSIGN_OR_RETURN(SecretBytes scalar, protocol::RecombineScalars(indices, shares));
  ASSIGN_OR_RETURN(SecretBytes key,
                   protocol::DeriveEncryptionKey(registration_.hashed.encryption_key_seed, scalar));
  ASSIGN_OR_RETURN(SecretBytes secret, protocol::OpenSecret(key, answers[0]->encrypted_secret));
  if (!secret.Equals(registration_.secret)) {
    return DataLossError("full check: decrypted secret differs from the registered one");
  }
  return OkStatus();
}

}  // namespace pinvault::api::bench
