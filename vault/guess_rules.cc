#include "vault/guess_rules.h"

#include <utility>
#include <variant>

#include "vault/protocol/oprf.h"
#include "vault/protocol/ristretto.h"
#include "vault/protocol/tags.h"

namespace pinvault::vault {

using protocol::DeleteRequest;
using protocol::DeleteResponse;
using protocol::Recover1Request;
using protocol::Recover1Response;
using protocol::Recover2Request;
using protocol::Recover2Response;
using protocol::Recover3Request;
using protocol::Recover3Response;
using protocol::Register1Request;
using protocol::Register1Response;
using protocol::Register2Request;
using protocol::Register2Response;
using protocol::SecretsRequest;
using protocol::SecretsResponse;

namespace {

Record StateOnly(RecordState state) {
  Record r;
  r.state = state;
  return r;
}

}  // namespace

Status ValidateRequest(const SecretsRequest& request) {
  if (const auto* r2 = std::get_if<Register2Request>(&request)) {
    RETURN_IF_ERROR(protocol::ValidateScalar(r2->oprf_private_key.Reveal(), "oprf_private_key"));
    RETURN_IF_ERROR(protocol::ValidateScalar(r2->encryption_key_scalar_share.Reveal(),
                                             "encryption_key_scalar_share"));
  } else if (const auto* r2 = std::get_if<Recover2Request>(&request)) {
    Status point = protocol::ValidatePoint(r2->oprf_blinded_input);
    if (!point.ok()) return InvalidArgumentError("oprf_blinded_input: " + point.message());
  }
  return OkStatus();
}

bool NeedsRecord(const SecretsRequest& request) {
  return !std::holds_alternative<Register1Request>(request);
}

StatusOr<GuessStep> ApplyGuessRules(Record current, SecretsRequest& request) {
  if (std::holds_alternative<Register1Request>(request)) {
    return GuessStep{Register1Response{}, std::nullopt};
  }
  const bool registered = current.state == RecordState::kRegistered;
  const RecordState other_state = current.state;  // meaningful when !registered

  if (auto* req = std::get_if<Register2Request>(&request)) {
    Record next;
    next.state = RecordState::kRegistered;
    next.guess_count = 0;
    Registration reg;
    reg.version = req->version;
    reg.oprf_private_key = std::move(req->oprf_private_key);
    reg.oprf_signed_public_key = req->oprf_signed_public_key;
    reg.unlock_key_commitment = req->unlock_key_commitment;
    reg.unlock_key_tag = req->unlock_key_tag;
    reg.encryption_key_scalar_share = std::move(req->encryption_key_scalar_share);
    reg.encrypted_secret = req->encrypted_secret;
    reg.encrypted_secret_commitment = req->encrypted_secret_commitment;
    reg.num_guesses = req->policy.num_guesses;
    next.registration = std::move(reg);
    return GuessStep{Register2Response{}, std::move(next)};
  }

  if (std::holds_alternative<DeleteRequest>(request)) {
    if (current.state == RecordState::kAbsent) return GuessStep{DeleteResponse{}, std::nullopt};
    return GuessStep{DeleteResponse{}, StateOnly(RecordState::kAbsent)};
  }

  if (std::holds_alternative<Recover1Request>(request)) {
    Recover1Response resp;
    if (!registered) {
      resp.status = other_state == RecordState::kNoGuesses
                        ? Recover1Response::Status::kNoGuesses
                        : Recover1Response::Status::kNotRegistered;
      return GuessStep{resp, std::nullopt};
    }
    const Registration& reg = *current.registration;
    if (current.guess_count >= reg.num_guesses) {
      resp.status = Recover1Response::Status::kNoGuesses;
      return GuessStep{resp, StateOnly(RecordState::kNoGuesses)};
    }
    resp.status = Recover1Response::Status::kOk;
    resp.version = reg.version;
    return GuessStep{resp, std::nullopt};
  }

  if (auto* req = std::get_if<Recover2Request>(&request)) {
    Recover2Response resp;
    if (!registered) {
      resp.status = other_state == RecordState::kNoGuesses
                        ? Recover2Response::Status::kNoGuesses
                        : Recover2Response::Status::kNotRegistered;
      return GuessStep{resp, std::nullopt};
    }
    const Registration& reg = *current.registration;
    if (req->version != reg.version) {
      resp.status = Recover2Response::Status::kVersionMismatch;
      return GuessStep{resp, std::nullopt};
    }
    if (current.guess_count >= reg.num_guesses) {
      resp.status = Recover2Response::Status::kNoGuesses;
      return GuessStep{resp, StateOnly(RecordState::kNoGuesses)};
    }
    ASSIGN_OR_RETURN(
        protocol::OprfEvaluation eval,
        protocol::EvaluateWithProof(reg.oprf_private_key, reg.oprf_signed_public_key.public_key,
                                    req->oprf_blinded_input));
    current.guess_count = static_cast<uint16_t>(current.guess_count + 1);
    resp.status = Recover2Response::Status::kOk;
    resp.oprf_signed_public_key = reg.oprf_signed_public_key;
    resp.oprf_blinded_result = eval.blinded_result;
    resp.oprf_proof = eval.proof;
    resp.unlock_key_commitment = reg.unlock_key_commitment;
    resp.num_guesses = reg.num_guesses;
    resp.guess_count = current.guess_count;
    return GuessStep{resp, std::move(current)};
  }

  auto& req = std::get<Recover3Request>(request);
  Recover3Response resp;
  if (!registered) {
    resp.status = other_state == RecordState::kNoGuesses ? Recover3Response::Status::kNoGuesses
                                                         : Recover3Response::Status::kNotRegistered;
    return GuessStep{std::move(resp), std::nullopt};
  }
  const Registration& reg = *current.registration;
  if (req.version != reg.version) {
    resp.status = Recover3Response::Status::kVersionMismatch;
    return GuessStep{std::move(resp), std::nullopt};
  }
  if (protocol::UnlockKeyTagEquals(req.unlock_key_tag, reg.unlock_key_tag)) {
    resp.status = Recover3Response::Status::kOk;
    resp.encryption_key_scalar_share = reg.encryption_key_scalar_share.Clone();
    resp.encrypted_secret = reg.encrypted_secret;
    resp.encrypted_secret_commitment = reg.encrypted_secret_commitment;
    current.guess_count = 0;
    return GuessStep{std::move(resp), std::move(current)};
  }
  // guess_count <= num_guesses always holds (ParseRecord enforces it).
  uint16_t remaining = static_cast<uint16_t>(reg.num_guesses - current.guess_count);
  resp.status = Recover3Response::Status::kBadUnlockKeyTag;
  resp.guesses_remaining = remaining;
  if (remaining == 0) return GuessStep{std::move(resp), StateOnly(RecordState::kNoGuesses)};
  // Rewritten unchanged, so that storage cannot tell a bad tag from a good one.
  return GuessStep{std::move(resp), std::move(current)};
}

}  // namespace pinvault::vault
