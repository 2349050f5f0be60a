// The real Juicebox SDK (npm 0.3.7) transcripts: our code reproduces every value the SDK
// derived, verifies every proof and signature it received, recombines every threshold
// subset of the registered shares and decrypts the recorded secret.
//
// Inputs: tests/data/juicebox/<case>.json (the transcript: PIN, info, the Register2 fields
// each realm received, HTTP logs with decoded requests and responses) and
// derived/<case>.derived.json (every intermediate value, re-derived independently).
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "tests/testing/status_matchers.h"
#include "tests/vault/protocol/test_util.h"
#include "vault/protocol/oprf.h"
#include "vault/protocol/pin_hash.h"
#include "vault/protocol/ristretto.h"
#include "vault/protocol/secret_box.h"
#include "vault/protocol/shamir.h"
#include "vault/protocol/signing.h"
#include "vault/protocol/tags.h"

namespace pinvault::protocol {
namespace {

using nlohmann::json;
using ::pinvault::testing::IsOkAndHolds;
using ::pinvault::testing::StatusIs;
using testing::Hex;
using testing::HexArray;
using testing::HexOf;
using testing::HexSecret;
using testing::LoadJson;

template <size_t N>
std::array<uint8_t, N> Bstr(const json& j) {
  return HexArray<N>(j.at("bstr").get<std::string>());
}

template <size_t N>
std::array<uint8_t, N> HexField(const json& j, const char* key) {
  return HexArray<N>(j.at(key).get<std::string>());
}

// One realm's Register2 fields as the SDK sent them.
struct RegisteredRealm {
  RealmId id{};
  ShareIndex expected_index = 0;
  SecretBytes oprf_private_key;
  OprfSignedPublicKey signed_public_key;
  UnlockKeyCommitment unlock_key_commitment{};
  UnlockKeyTag unlock_key_tag{};
  SecretBytes encryption_key_scalar_share;
  EncryptedSecret encrypted_secret{};
  EncryptedSecretCommitment encrypted_secret_commitment{};
  json derived;  // this realm's entry in the derived file
};

struct Case {
  std::string name;
  json transcript;
  json derived;
  PinHashingMode mode = PinHashingMode::kFastInsecure;
  SecretBytes pin;
  Bytes info;
  SecretBytes secret;
  RegistrationVersion version{};
  size_t recover_threshold = 0;
  std::vector<RealmId> configured;      // configuration order
  std::vector<RegisteredRealm> realms;  // configuration order
};

// LoadCase reads case `name` into `c`; fails the test fatally if the case is unusable.
void LoadCase(const std::string& name, Case& c) {
  c.name = name;
  c.transcript = LoadJson("juicebox/" + name + ".json");
  c.derived = LoadJson("juicebox/derived/" + name + ".derived.json");
  const json& t = c.transcript;
  ASSERT_OK_AND_ASSIGN(
      c.mode, ParsePinHashingMode(t.at("configuration").at("pin_hashing_mode").get<std::string>()));
  c.pin = HexSecret(t.at("pin_hex").get<std::string>());
  c.info = Hex(t.at("info_hex").get<std::string>());
  c.secret = HexSecret(t.at("secret_hex").get<std::string>());
  c.recover_threshold = t.at("configuration").at("recover_threshold").get<size_t>();
  for (const json& r : t.at("configuration").at("realms")) {
    c.configured.push_back(HexField<16>(r, "id"));
  }
  for (const RealmId& id : c.configured) {
    RegisteredRealm realm;
    realm.id = id;
    for (const json& r : t.at("realms")) {
      if (r.at("id").get<std::string>() != HexEncode(id)) continue;
      const json& reg = r.at("register2");
      realm.expected_index = r.at("share_index").get<ShareIndex>();
      c.version = HexField<16>(reg, "version");
      realm.oprf_private_key = HexSecret(reg.at("oprf_private_key").get<std::string>());
      const json& spk = reg.at("oprf_signed_public_key");
      realm.signed_public_key.public_key = HexField<32>(spk, "public_key");
      realm.signed_public_key.verifying_key = HexField<32>(spk, "verifying_key");
      realm.signed_public_key.signature = HexField<64>(spk, "signature");
      realm.unlock_key_commitment = HexField<32>(reg, "unlock_key_commitment");
      realm.unlock_key_tag = HexField<16>(reg, "unlock_key_tag");
      realm.encryption_key_scalar_share =
          HexSecret(reg.at("encryption_key_scalar_share").get<std::string>());
      realm.encrypted_secret = HexField<145>(reg, "encrypted_secret");
      realm.encrypted_secret_commitment = HexField<16>(reg, "encrypted_secret_commitment");
    }
    for (const json& r : c.derived.at("realms")) {
      if (r.at("id").get<std::string>() == HexEncode(id)) realm.derived = r;
    }
    EXPECT_FALSE(realm.derived.is_null()) << "no derived entry for " << HexEncode(id);
    c.realms.push_back(std::move(realm));
  }
}

// Every subset of positions 0..n-1, as position lists.
std::vector<std::vector<size_t>> Subsets(size_t n) {
  std::vector<std::vector<size_t>> out;
  for (uint32_t mask = 1; mask < (1u << n); ++mask) {
    std::vector<size_t> s;
    for (size_t i = 0; i < n; ++i) {
      if (mask & (1u << i)) s.push_back(i);
    }
    out.push_back(s);
  }
  return out;
}

class SdkVectorsTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { LoadCase(GetParam(), case_); }

  const json& D() const { return case_.derived; }
  SecretBytes DerivedSecret(const char* key) const {
    return HexSecret(D().at(key).get<std::string>());
  }

  std::vector<ShareIndex> Indices() const {
    auto indices = ShareIndices(case_.configured);
    EXPECT_OK(indices);
    return indices.ok() ? *indices : std::vector<ShareIndex>();
  }

  Case case_;
};

TEST_P(SdkVectorsTest, PinHashReproducesArgon2Output) {
  auto salt = PinHashSalt(case_.version, case_.info);
  ASSERT_OK(salt);
  EXPECT_EQ(HexEncode(*salt), D().at("salt_hex"));
  const Argon2Params params = Argon2ParamsFor(case_.mode);
  EXPECT_EQ(params.m_cost_kib, D().at("argon2").at("m").get<uint32_t>());
  EXPECT_EQ(params.t_cost, D().at("argon2").at("t").get<uint32_t>());
  EXPECT_EQ(params.parallelism, D().at("argon2").at("p").get<uint32_t>());

  auto hashed = HashPin(case_.mode, case_.pin, case_.version, case_.info);
  ASSERT_OK(hashed);
  EXPECT_EQ(HexOf(hashed->access_key) + HexOf(hashed->encryption_key_seed),
            D().at("argon2_output_hex"));
  EXPECT_EQ(HexOf(hashed->access_key), D().at("access_key_hex"));
  EXPECT_EQ(HexOf(hashed->encryption_key_seed), D().at("encryption_key_seed_hex"));
}

TEST_P(SdkVectorsTest, OprfOutputAndUnlockKeyFromTheRecordedRootKey) {
  const SecretBytes access_key = DerivedSecret("access_key_hex");
  EXPECT_EQ(HexEncode(HashToGroup(access_key.Reveal())), D().at("oprf_input_point_hex"));

  // The root key is recombined from all registered shares (it never left the SDK).
  std::vector<SecretBytes> shares;
  for (const auto& realm : case_.realms) shares.push_back(realm.oprf_private_key.Clone());
  auto root = RecombineScalars(Indices(), shares);
  ASSERT_OK(root);
  EXPECT_EQ(HexOf(*root), D().at("oprf_root_key_hex"));
  ASSERT_OK_AND_ASSIGN(PointBytes root_public_key, BasePointMult(*root));
  EXPECT_EQ(HexEncode(root_public_key), D().at("oprf_root_public_key_hex"));

  auto output = EvaluateUnoblivious(*root, access_key.Reveal());
  ASSERT_OK(output);
  EXPECT_EQ(HexOf(*output), D().at("oprf_output_hex"));

  auto unlock = DeriveUnlockKey(*output);
  ASSERT_OK(unlock);
  EXPECT_EQ(HexEncode(unlock->commitment), D().at("unlock_key_commitment_hex"));
  EXPECT_EQ(HexOf(unlock->unlock_key), D().at("unlock_key_hex"));
  for (const auto& realm : case_.realms) {
    EXPECT_TRUE(UnlockKeyCommitmentEquals(unlock->commitment, realm.unlock_key_commitment));
  }
}

TEST_P(SdkVectorsTest, EveryRealmsRegistrationFields) {
  const std::vector<ShareIndex> indices = Indices();
  const SecretBytes unlock_key = DerivedSecret("unlock_key_hex");
  ASSERT_EQ(indices.size(), case_.realms.size());
  for (size_t i = 0; i < case_.realms.size(); ++i) {
    const RegisteredRealm& realm = case_.realms[i];
    SCOPED_TRACE(HexEncode(realm.id));
    EXPECT_EQ(indices[i], realm.expected_index);
    EXPECT_EQ(indices[i], realm.derived.at("share_index").get<ShareIndex>());

    // public_key = share·G, signed for this realm id.
    EXPECT_TRUE(IsCanonicalScalar(realm.oprf_private_key.Reveal()));
    EXPECT_TRUE(IsCanonicalScalar(realm.encryption_key_scalar_share.Reveal()));
    EXPECT_THAT(BasePointMult(realm.oprf_private_key),
                IsOkAndHolds(realm.signed_public_key.public_key));
    EXPECT_EQ(HexEncode(OprfPublicKeyMessage(realm.id, realm.signed_public_key.public_key)),
              realm.derived.at("oprf_public_key_signature_message_hex"));
    EXPECT_OK(VerifyOprfSignedPublicKey(realm.id, realm.signed_public_key));
    // One signing key per registration.
    EXPECT_EQ(realm.signed_public_key.verifying_key,
              case_.realms[0].signed_public_key.verifying_key);
    for (const RegisteredRealm& other : case_.realms) {
      if (other.id == realm.id) continue;
      EXPECT_THAT(VerifyOprfSignedPublicKey(other.id, realm.signed_public_key),
                  StatusIs(StatusCode::kDataLoss));
    }
    OprfSignedPublicKey tampered = realm.signed_public_key;
    tampered.signature[10] ^= 0x20;
    EXPECT_THAT(VerifyOprfSignedPublicKey(realm.id, tampered), StatusIs(StatusCode::kDataLoss));

    auto tag = ComputeUnlockKeyTag(unlock_key, realm.id);
    ASSERT_OK(tag);
    EXPECT_EQ(HexEncode(*tag), realm.derived.at("unlock_key_tag_hex"));
    EXPECT_TRUE(UnlockKeyTagEquals(*tag, realm.unlock_key_tag));

    auto commitment = ComputeEncryptedSecretCommitment(
        unlock_key, realm.id, realm.encryption_key_scalar_share, realm.encrypted_secret);
    ASSERT_OK(commitment);
    EXPECT_EQ(HexEncode(*commitment), realm.derived.at("encrypted_secret_commitment_hex"));
    EXPECT_TRUE(EncryptedSecretCommitmentEquals(*commitment, realm.encrypted_secret_commitment));
  }
}

TEST_P(SdkVectorsTest, EveryThresholdSubsetRecombines) {
  const std::vector<ShareIndex> indices = Indices();
  const std::string root_key = D().at("oprf_root_key_hex");
  const std::string root_public_key = D().at("oprf_root_public_key_hex");
  const std::string encryption_scalar = D().at("encryption_key_scalar_hex");
  size_t full_subsets = 0;
  for (const auto& subset : Subsets(case_.realms.size())) {
    std::vector<ShareIndex> sub_indices;
    std::vector<SecretBytes> oprf_shares;
    std::vector<SecretBytes> encryption_shares;
    std::vector<PointBytes> public_keys;
    for (size_t pos : subset) {
      sub_indices.push_back(indices[pos]);
      oprf_shares.push_back(case_.realms[pos].oprf_private_key.Clone());
      encryption_shares.push_back(case_.realms[pos].encryption_key_scalar_share.Clone());
      public_keys.push_back(case_.realms[pos].signed_public_key.public_key);
    }
    auto k = RecombineScalars(sub_indices, oprf_shares);
    auto s = RecombineScalars(sub_indices, encryption_shares);
    auto p = RecombinePoints(sub_indices, public_keys);
    ASSERT_OK(k);
    ASSERT_OK(s);
    ASSERT_OK(p);
    if (subset.size() >= case_.recover_threshold) {
      ++full_subsets;
      EXPECT_EQ(HexOf(*k), root_key) << subset.size();
      EXPECT_EQ(HexOf(*s), encryption_scalar) << subset.size();
      EXPECT_EQ(HexEncode(*p), root_public_key) << subset.size();
    } else {
      EXPECT_NE(HexOf(*k), root_key) << subset.size();
      EXPECT_NE(HexOf(*s), encryption_scalar) << subset.size();
      EXPECT_NE(HexEncode(*p), root_public_key) << subset.size();
    }
  }
  EXPECT_GE(full_subsets, 1u);
  if (case_.realms.size() > 1) {
    // Configuration-order indices (1, 2, 3 as listed) give a wrong key: the sort matters.
    std::vector<ShareIndex> naive;
    std::vector<SecretBytes> shares;
    for (size_t i = 0; i < case_.realms.size(); ++i) {
      naive.push_back(static_cast<ShareIndex>(i + 1));
      shares.push_back(case_.realms[i].oprf_private_key.Clone());
    }
    ASSERT_OK_AND_ASSIGN(SecretBytes naive_key, RecombineScalars(naive, shares));
    EXPECT_NE(HexOf(naive_key), root_key);
  }
}

TEST_P(SdkVectorsTest, EncryptionKeyAndSealedSecret) {
  const SecretBytes seed = DerivedSecret("encryption_key_seed_hex");
  const SecretBytes scalar = DerivedSecret("encryption_key_scalar_hex");
  auto key = DeriveEncryptionKey(seed, scalar);
  ASSERT_OK(key);
  EXPECT_EQ(HexOf(*key), D().at("encryption_key_hex"));
  auto padded = PadSecret(case_.secret);
  ASSERT_OK(padded);
  EXPECT_EQ(HexOf(*padded), D().at("padded_secret_hex"));
  auto sealed = SealSecret(*key, case_.secret);
  ASSERT_OK(sealed);
  for (const RegisteredRealm& realm : case_.realms) {
    EXPECT_EQ(HexEncode(*sealed), HexEncode(realm.encrypted_secret));  // byte for byte
  }
  auto opened = OpenSecret(*key, case_.realms[0].encrypted_secret);
  ASSERT_OK(opened);
  EXPECT_TRUE(opened->Equals(case_.secret));
  EncryptedSecret tampered = case_.realms[0].encrypted_secret;
  tampered[100] ^= 0x01;
  EXPECT_THAT(OpenSecret(*key, tampered), StatusIs(StatusCode::kDataLoss));
}

// Every recorded Recover2/Recover3 exchange in the transcript's HTTP logs.
TEST_P(SdkVectorsTest, RecordedRecoveries) {
  const std::vector<ShareIndex> indices = Indices();
  const SecretBytes root = DerivedSecret("oprf_root_key_hex");
  const SecretBytes seed = DerivedSecret("encryption_key_seed_hex");
  const SecretBytes unlock_key = DerivedSecret("unlock_key_hex");
  size_t proofs_checked = 0;
  size_t recoveries_decrypted = 0;
  for (const auto& [flow_name, flow] : case_.transcript.items()) {
    if (!flow.is_object() || !flow.contains("http_log")) continue;
    SCOPED_TRACE(flow_name);
    std::vector<ShareIndex> r2_indices;
    std::vector<PointBytes> r2_results;
    PointBytes blinded_input{};
    std::vector<ShareIndex> r3_indices;
    std::vector<SecretBytes> r3_shares;
    for (const json& exchange : flow.at("http_log")) {
      // A realm that was down has no decoded response.
      if (!exchange.contains("request_decoded") || !exchange.contains("response_decoded")) continue;
      const json& request = exchange.at("request_decoded");
      const json& response = exchange.at("response_decoded");
      if (!request.is_object() || !response.is_object()) continue;
      const RealmId realm_id = HexField<16>(exchange, "realm_id");
      size_t pos = 0;
      while (pos < case_.realms.size() && case_.realms[pos].id != realm_id) ++pos;
      ASSERT_LT(pos, case_.realms.size());
      const RegisteredRealm& realm = case_.realms[pos];

      if (request.contains("Recover2") && response.at("Recover2").contains("Ok")) {
        const json& ok = response.at("Recover2").at("Ok");
        const PointBytes u = Bstr<32>(request.at("Recover2").at("oprf_blinded_input"));
        blinded_input = u;
        OprfSignedPublicKey signed_key;
        signed_key.public_key = Bstr<32>(ok.at("oprf_signed_public_key").at("public_key"));
        signed_key.verifying_key = Bstr<32>(ok.at("oprf_signed_public_key").at("verifying_key"));
        signed_key.signature = Bstr<64>(ok.at("oprf_signed_public_key").at("signature"));
        const PointBytes w = Bstr<32>(ok.at("oprf_blinded_result"));
        DleqProof proof{Bstr<32>(ok.at("oprf_proof").at("c")),
                        Bstr<32>(ok.at("oprf_proof").at("beta_z"))};
        EXPECT_EQ(signed_key, realm.signed_public_key);
        EXPECT_OK(VerifyOprfSignedPublicKey(realm_id, signed_key));
        EXPECT_OK(VerifyProof(signed_key.public_key, u, w, proof));
        // The realm really evaluated its share, and a proof does not transfer.
        EXPECT_THAT(PointMult(realm.oprf_private_key, u), IsOkAndHolds(w));
        for (const RegisteredRealm& other : case_.realms) {
          if (other.id == realm_id) continue;
          EXPECT_THAT(VerifyProof(other.signed_public_key.public_key, u, w, proof),
                      StatusIs(StatusCode::kDataLoss));
        }
        DleqProof tampered = proof;
        tampered.beta_z[0] ^= 1;
        EXPECT_THAT(VerifyProof(signed_key.public_key, u, w, tampered),
                    StatusIs(StatusCode::kDataLoss));
        // The derived file recorded the same values.
        const json& d = D().at(flow_name).at("recover2_" + HexEncode(realm_id));
        EXPECT_EQ(HexEncode(u), d.at("blinded_input_hex"));
        EXPECT_EQ(HexEncode(w), d.at("blinded_result_hex"));
        EXPECT_EQ(HexEncode(proof.c), d.at("c_hex"));
        EXPECT_EQ(HexEncode(proof.beta_z), d.at("beta_z_hex"));
        EXPECT_EQ(ok.at("guess_count"), d.at("guess_count"));
        r2_indices.push_back(indices[pos]);
        r2_results.push_back(w);
        ++proofs_checked;
      }
      if (request.contains("Recover3") && response.at("Recover3").contains("Ok")) {
        const json& ok = response.at("Recover3").at("Ok");
        // The SDK sent the tag our unlock key gives for this realm.
        EXPECT_THAT(ComputeUnlockKeyTag(unlock_key, realm_id),
                    IsOkAndHolds(Bstr<16>(request.at("Recover3").at("unlock_key_tag"))));
        SecretBytes share =
            HexSecret(ok.at("encryption_key_scalar_share").at("bstr").get<std::string>());
        const EncryptedSecret box = Bstr<145>(ok.at("encrypted_secret"));
        const EncryptedSecretCommitment commitment = Bstr<16>(ok.at("encrypted_secret_commitment"));
        ASSERT_OK_AND_ASSIGN(EncryptedSecretCommitment computed,
                             ComputeEncryptedSecretCommitment(unlock_key, realm_id, share, box));
        EXPECT_TRUE(EncryptedSecretCommitmentEquals(computed, commitment));
        r3_indices.push_back(indices[pos]);
        r3_shares.push_back(std::move(share));
      }
    }
    if (r2_results.size() >= case_.recover_threshold) {
      // The combined blinded result is k·U for the root key.
      auto combined = RecombinePoints(r2_indices, r2_results);
      ASSERT_OK(combined);
      EXPECT_THAT(PointMult(root, blinded_input), IsOkAndHolds(*combined));
    }
    if (!r3_shares.empty()) {
      ASSERT_GE(r3_shares.size(), case_.recover_threshold);
      auto scalar = RecombineScalars(r3_indices, r3_shares);
      ASSERT_OK(scalar);
      EXPECT_EQ(HexOf(*scalar), D().at("encryption_key_scalar_hex"));
      auto key = DeriveEncryptionKey(seed, *scalar);
      ASSERT_OK(key);
      auto opened = OpenSecret(*key, case_.realms[0].encrypted_secret);
      ASSERT_OK(opened);
      EXPECT_TRUE(opened->Equals(case_.secret));
      if (flow.contains("sdk_result_hex")) {
        EXPECT_EQ(HexOf(*opened), flow.at("sdk_result_hex"));
      }
      ++recoveries_decrypted;
    }
  }
  // Cases 1 and 3 recorded recoveries (case 1: wrong PIN then right PIN; case 3: one realm
  // down); case 2 registered only.
  if (case_.transcript.contains("recover_correct_pin") ||
      case_.transcript.contains("recover_with_one_realm_down")) {
    EXPECT_GE(proofs_checked, 2u);
    EXPECT_EQ(recoveries_decrypted, 1u);
  }
}

TEST_P(SdkVectorsTest, WrongPinsMissTheCommitment) {
  // For each recorded wrong-PIN flow, the OPRF output of that PIN does not open the
  // commitment, which is how the SDK concluded InvalidPin without sending Recover3.
  const SecretBytes root = DerivedSecret("oprf_root_key_hex");
  const UnlockKeyCommitment registered = case_.realms[0].unlock_key_commitment;
  size_t wrong = 0;
  for (const auto& [flow_name, flow] : case_.transcript.items()) {
    if (!flow.is_object() || !flow.contains("pin_utf8")) continue;
    const std::string pin = flow.at("pin_utf8");
    if (pin == case_.transcript.at("pin_utf8").get<std::string>()) continue;
    SCOPED_TRACE(flow_name);
    auto hashed =
        HashPin(case_.mode, SecretBytes::CopyFrom(AsBytes(pin)), case_.version, case_.info);
    ASSERT_OK(hashed);
    auto output = EvaluateUnoblivious(root, hashed->access_key.Reveal());
    ASSERT_OK(output);
    ASSERT_OK_AND_ASSIGN(UnlockKey unlock, DeriveUnlockKey(*output));
    EXPECT_FALSE(UnlockKeyCommitmentEquals(unlock.commitment, registered));
    ++wrong;
  }
  if (case_.transcript.contains("recover_wrong_pin")) {
    EXPECT_GE(wrong, 2u);
  }
}

INSTANTIATE_TEST_SUITE_P(Transcripts, SdkVectorsTest,
                         ::testing::Values("case1_fastinsecure_1realm", "case2_standard2019_1realm",
                                           "case3_fastinsecure_3realms_2of3"),
                         [](const auto& info) { return info.param.substr(0, 5); });

}  // namespace
}  // namespace pinvault::protocol
