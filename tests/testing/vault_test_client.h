// VaultTestClient: the client half of one-realm Juicebox flows, with the real protocol math
// (OPRF blinding, DLEQ verification, unlock-key tag, commitments) from vault/protocol, so
// realm tests exercise genuine Register2 / Recover2 / Recover3 messages. The PIN bytes are
// used directly as the OPRF input (no Argon2) to keep tests fast.
//
// Not thread-safe; use one per thread.
#ifndef PINVAULT_TESTS_TESTING_VAULT_TEST_CLIENT_H_
#define PINVAULT_TESTS_TESTING_VAULT_TEST_CLIENT_H_

#include <optional>
#include <string>
#include <string_view>

#include "vault/protocol/messages.h"
#include "vault/secret_bytes.h"
#include "vault/status.h"

namespace pinvault::testing {

class VaultTestClient {
 public:
  explicit VaultTestClient(const protocol::RealmId& realm_id);

  // Register2 builds a registration of `pin` allowing `num_guesses`, with a fresh version,
  // OPRF key share and encrypted secret; it remembers them for later recoveries.
  protocol::Register2Request Register2(std::string_view pin, uint16_t num_guesses);

  // Recover2 blinds `pin` for the remembered registration's version.
  protocol::Recover2Request Recover2(std::string_view pin);

  // FinishRecover2 checks an Ok Recover2 response (the signature-independent parts: DLEQ
  // proof against the returned public key) and unblinds it. It returns the unlock-key tag to
  // send in Recover3 if the PIN was right, nullopt if the commitment shows a wrong PIN, and
  // DATA_LOSS if the proof does not verify.
  StatusOr<std::optional<protocol::UnlockKeyTag>> FinishRecover2(
      const protocol::Recover2Response& response);

  // Recover3 builds the Recover3 request for `tag`.
  protocol::Recover3Request Recover3(const protocol::UnlockKeyTag& tag) const;

  // WrongTag returns a tag that is not the registered one.
  protocol::UnlockKeyTag WrongTag() const;

  // CorrectTag returns the registered tag (what a right PIN yields).
  const protocol::UnlockKeyTag& CorrectTag() const { return tag_; }

  const protocol::RegistrationVersion& version() const { return version_; }
  const protocol::EncryptedSecret& encrypted_secret() const { return encrypted_secret_; }
  const SecretBytes& encryption_key_scalar_share() const { return scalar_share_; }
  const protocol::PointBytes& oprf_public_key() const { return public_key_; }

 private:
  protocol::RealmId realm_id_;
  protocol::RegistrationVersion version_{};
  protocol::PointBytes public_key_{};
  protocol::UnlockKeyCommitment commitment_{};
  protocol::UnlockKeyTag tag_{};
  protocol::EncryptedSecret encrypted_secret_{};
  SecretBytes scalar_share_;
  std::string pending_pin_;
  protocol::PointBytes pending_blinded_input_{};
  SecretBytes pending_blinding_factor_;
};

}  // namespace pinvault::testing

#endif  // PINVAULT_TESTS_TESTING_VAULT_TEST_CLIENT_H_
