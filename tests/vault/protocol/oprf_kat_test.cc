// The Juicebox SDK's own OPRF + DLEQ test vectors (rust/oprf/src/test_vectors.json):
// every *_seed is the 64 bytes Scalar::random consumed, reduced mod l.
#include <gtest/gtest.h>

#include <string>

#include "tests/testing/status_matchers.h"
#include "tests/vault/protocol/test_util.h"
#include "vault/protocol/oprf.h"
#include "vault/protocol/ristretto.h"

namespace pinvault::protocol {
namespace {

using testing::Hex;
using testing::HexArray;
using testing::HexOf;
using testing::LoadJson;

TEST(OprfKatTest, ReproducesAllSdkVectors) {
  const nlohmann::json vectors = LoadJson("juicebox/kat/juicebox_oprf_test_vectors.json");
  ASSERT_TRUE(vectors.is_array());
  ASSERT_EQ(vectors.size(), 10u);
  for (const auto& v : vectors) {
    const std::string name = v.at("name");
    SCOPED_TRACE(name);
    const auto& in = v.at("inputs");
    const auto& out = v.at("outputs");
    const Bytes input = Hex(in.at("input").get<std::string>());

    auto k = ScalarFromWideBytes(Hex(in.at("private_key_seed").get<std::string>()));
    auto r = ScalarFromWideBytes(Hex(in.at("blinding_factor_seed").get<std::string>()));
    auto beta_t = ScalarFromWideBytes(Hex(in.at("beta_t_seed").get<std::string>()));
    ASSERT_OK(k);
    ASSERT_OK(r);
    ASSERT_OK(beta_t);
    EXPECT_EQ(HexOf(*k), out.at("private_key"));
    EXPECT_EQ(HexOf(*r), out.at("blinding_factor"));

    auto public_key = BasePointMult(*k);
    ASSERT_OK(public_key);
    EXPECT_EQ(HexEncode(*public_key), out.at("public_key"));

    auto blinded = BlindWithFactor(input, *r);
    ASSERT_OK(blinded);
    EXPECT_EQ(HexEncode(blinded->blinded_input), out.at("blinded_input"));
    EXPECT_TRUE(blinded->blinding_factor.Equals(*r));

    auto eval = EvaluateWithProofAndNonce(*k, *public_key, blinded->blinded_input, *beta_t);
    ASSERT_OK(eval);
    EXPECT_EQ(HexEncode(eval->blinded_result), out.at("blinded_output"));
    EXPECT_EQ(HexEncode(eval->proof.c), out.at("proof_c"));
    EXPECT_EQ(HexEncode(eval->proof.beta_z), out.at("proof_beta_z"));

    // The recorded proof verifies, as recorded (not just as we produced it).
    DleqProof recorded;
    recorded.c = HexArray<32>(out.at("proof_c").get<std::string>());
    recorded.beta_z = HexArray<32>(out.at("proof_beta_z").get<std::string>());
    const PointBytes recorded_w = HexArray<32>(out.at("blinded_output").get<std::string>());
    EXPECT_OK(VerifyProof(*public_key, blinded->blinded_input, recorded_w, recorded));

    auto output = Finalize(input, *r, recorded_w);
    ASSERT_OK(output);
    EXPECT_EQ(HexOf(*output), out.at("output"));

    auto direct = EvaluateUnoblivious(*k, input);
    ASSERT_OK(direct);
    EXPECT_EQ(HexOf(*direct), out.at("output"));
  }
}

}  // namespace
}  // namespace pinvault::protocol
