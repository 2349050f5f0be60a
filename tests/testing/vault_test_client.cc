#include "tests/testing/vault_test_client.h"

#include <sodium.h>

#include <cstdlib>
#include <utility>

#include "vault/bytes.h"
#include "vault/protocol/oprf.h"
#include "vault/protocol/ristretto.h"
#include "vault/protocol/signing.h"
#include "vault/protocol/tags.h"

namespace pinvault::testing {
namespace {

// Must is for test setup steps that cannot fail with valid inputs.
template <typename T>
T Must(StatusOr<T> value) {
  if (!value.ok()) std::abort();
  return std::move(value).value();
}

}  // namespace

VaultTestClient::VaultTestClient(const protocol::RealmId& realm_id) : realm_id_(realm_id) {}

protocol::Register2Request VaultTestClient::Register2(std::string_view pin, uint16_t num_guesses) {
  protocol::Register2Request request;
  randombytes_buf(version_.data(), version_.size());
  request.version = version_;

  SecretBytes oprf_key = protocol::RandomScalar();
  public_key_ = Must(protocol::BasePointMult(oprf_key));
  protocol::OprfSigningKey signer = protocol::OprfSigningKey::Generate();
  request.oprf_signed_public_key = signer.SignOprfPublicKey(realm_id_, public_key_);

  SecretBytes output = Must(protocol::EvaluateUnoblivious(oprf_key, AsBytes(pin)));
  protocol::UnlockKey unlock = Must(protocol::DeriveUnlockKey(output));
  commitment_ = unlock.commitment;
  tag_ = Must(protocol::ComputeUnlockKeyTag(unlock.unlock_key, realm_id_));

  scalar_share_ = protocol::RandomScalar();
  randombytes_buf(encrypted_secret_.data(), encrypted_secret_.size());
  request.oprf_private_key = std::move(oprf_key);
  request.unlock_key_commitment = commitment_;
  request.unlock_key_tag = tag_;
  request.encryption_key_scalar_share = scalar_share_.Clone();
  request.encrypted_secret = encrypted_secret_;
  request.encrypted_secret_commitment = Must(protocol::ComputeEncryptedSecretCommitment(
      unlock.unlock_key, realm_id_, scalar_share_, encrypted_secret_));
  request.policy.num_guesses = num_guesses;
  return request;
}

protocol::Recover2Request VaultTestClient::Recover2(std::string_view pin) {
  protocol::BlindedInput blinded = Must(protocol::Blind(AsBytes(pin)));
  pending_pin_ = std::string(pin);
  pending_blinded_input_ = blinded.blinded_input;
  pending_blinding_factor_ = std::move(blinded.blinding_factor);
  protocol::Recover2Request request;
  request.version = version_;
  request.oprf_blinded_input = blinded.blinded_input;
  return request;
}

StatusOr<std::optional<protocol::UnlockKeyTag>> VaultTestClient::FinishRecover2(
    const protocol::Recover2Response& response) {
  if (response.status != protocol::Recover2Response::Status::kOk) {
    return InvalidArgumentError("Recover2 response is not Ok");
  }
  RETURN_IF_ERROR(protocol::VerifyProof(response.oprf_signed_public_key.public_key,
                                        pending_blinded_input_, response.oprf_blinded_result,
                                        response.oprf_proof));
  RETURN_IF_ERROR(protocol::VerifyOprfSignedPublicKey(realm_id_, response.oprf_signed_public_key));
  ASSIGN_OR_RETURN(SecretBytes output,
                   protocol::Finalize(AsBytes(pending_pin_), pending_blinding_factor_,
                                      response.oprf_blinded_result));
  ASSIGN_OR_RETURN(protocol::UnlockKey unlock, protocol::DeriveUnlockKey(output));
  if (!protocol::UnlockKeyCommitmentEquals(unlock.commitment, response.unlock_key_commitment)) {
    return std::optional<protocol::UnlockKeyTag>();
  }
  ASSIGN_OR_RETURN(protocol::UnlockKeyTag tag,
                   protocol::ComputeUnlockKeyTag(unlock.unlock_key, realm_id_));
  return std::optional<protocol::UnlockKeyTag>(tag);
}

protocol::Recover3Request VaultTestClient::Recover3(const protocol::UnlockKeyTag& tag) const {
  protocol::Recover3Request request;
  request.version = version_;
  request.unlock_key_tag = tag;
  return request;
}

protocol::UnlockKeyTag VaultTestClient::WrongTag() const {
  protocol::UnlockKeyTag wrong = tag_;
  wrong[0] ^= 0x01;
  return wrong;
}

}  // namespace pinvault::testing
