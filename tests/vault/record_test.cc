#include "vault/record.h"

#include <gtest/gtest.h>

#include <utility>

#include "tests/testing/software_hsm.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/vault_test_client.h"

namespace pinvault::vault {
namespace {

using ::pinvault::testing::IsOk;
using ::pinvault::testing::IsOkAndHolds;
using ::pinvault::testing::SoftwareHsm;
using ::pinvault::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Ne;
using ::testing::Not;

constexpr protocol::RealmId kRealm = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};

RecordId Id(uint8_t v) {
  RecordId id;
  id.fill(v);
  return id;
}

Record RegisteredRecord(uint64_t version, uint16_t guess_count, uint16_t num_guesses) {
  testing::VaultTestClient client(kRealm);
  protocol::Register2Request req = client.Register2("1234", num_guesses);
  Record record;
  record.id = Id(0x42);
  record.version = version;
  record.state = RecordState::kRegistered;
  record.guess_count = guess_count;
  Registration reg;
  reg.version = req.version;
  reg.oprf_private_key = std::move(req.oprf_private_key);
  reg.oprf_signed_public_key = req.oprf_signed_public_key;
  reg.unlock_key_commitment = req.unlock_key_commitment;
  reg.unlock_key_tag = req.unlock_key_tag;
  reg.encryption_key_scalar_share = std::move(req.encryption_key_scalar_share);
  reg.encrypted_secret = req.encrypted_secret;
  reg.encrypted_secret_commitment = req.encrypted_secret_commitment;
  reg.num_guesses = num_guesses;
  record.registration = std::move(reg);
  return record;
}

void ExpectSameRecord(const Record& a, const Record& b) {
  EXPECT_EQ(a.id, b.id);
  EXPECT_EQ(a.version, b.version);
  EXPECT_EQ(a.state, b.state);
  EXPECT_EQ(a.guess_count, b.guess_count);
  ASSERT_EQ(a.registration.has_value(), b.registration.has_value());
  if (!a.registration) return;
  const Registration& x = *a.registration;
  const Registration& y = *b.registration;
  EXPECT_EQ(x.version, y.version);
  EXPECT_TRUE(x.oprf_private_key.Equals(y.oprf_private_key));
  EXPECT_EQ(x.oprf_signed_public_key, y.oprf_signed_public_key);
  EXPECT_EQ(x.unlock_key_commitment, y.unlock_key_commitment);
  EXPECT_EQ(x.unlock_key_tag, y.unlock_key_tag);
  EXPECT_TRUE(x.encryption_key_scalar_share.Equals(y.encryption_key_scalar_share));
  EXPECT_EQ(x.encrypted_secret, y.encrypted_secret);
  EXPECT_EQ(x.encrypted_secret_commitment, y.encrypted_secret_commitment);
  EXPECT_EQ(x.num_guesses, y.num_guesses);
}

TEST(RecordTest, SerializeParseRoundTripsEveryState) {
  Record registered = RegisteredRecord(7, 3, 10);
  auto plain = SerializeRecord(registered);
  ASSERT_OK(plain);
  EXPECT_EQ(plain->size(), kRecordPlaintextSize);
  auto parsed = ParseRecord(*plain, registered.id, 7);
  ASSERT_OK(parsed);
  ExpectSameRecord(*parsed, registered);

  for (RecordState state : {RecordState::kNoGuesses, RecordState::kAbsent}) {
    Record r;
    r.id = Id(9);
    r.version = 12;
    r.state = state;
    auto p = SerializeRecord(r);
    ASSERT_OK(p);
    EXPECT_EQ(p->size(), kRecordPlaintextSize);
    auto back = ParseRecord(*p, r.id, 12);
    ASSERT_OK(back);
    ExpectSameRecord(*back, r);
  }
}

TEST(RecordTest, SerializeRejectsInconsistentRecords) {
  Record r = RegisteredRecord(1, 0, 5);
  r.state = RecordState::kNoGuesses;  // registration present but state says otherwise
  EXPECT_THAT(SerializeRecord(r), StatusIs(StatusCode::kInvalidArgument));
  Record missing;
  missing.state = RecordState::kRegistered;
  EXPECT_THAT(SerializeRecord(missing), StatusIs(StatusCode::kInvalidArgument));
  Record short_key = RegisteredRecord(1, 0, 5);
  short_key.registration->oprf_private_key = SecretBytes(31);
  EXPECT_THAT(SerializeRecord(short_key), StatusIs(StatusCode::kInvalidArgument));
}

TEST(RecordTest, ParseRejectsMalformedPlaintext) {
  Record r = RegisteredRecord(5, 0, 5);
  ASSERT_OK_AND_ASSIGN(SecretBytes good, SerializeRecord(r));
  auto expect_loss = [&](SecretBytes bad, uint64_t version = 5) {
    auto parsed = ParseRecord(bad, r.id, version);
    ASSERT_THAT(parsed, Not(IsOk()));
    EXPECT_THAT(parsed, StatusIs(StatusCode::kDataLoss));
  };
  expect_loss(SecretBytes(kRecordPlaintextSize - 1));
  expect_loss(good.Clone(), 6);  // version differs from the row's
  {
    SecretBytes b = good.Clone();
    b.RevealMutable()[0] = 2;  // unknown format
    expect_loss(std::move(b));
  }
  {
    SecretBytes b = good.Clone();
    b.RevealMutable()[1] = 7;  // unknown state
    expect_loss(std::move(b));
  }
  {
    SecretBytes b = good.Clone();
    b.RevealMutable()[kRecordPlaintextSize - 1] = 1;  // padding must be zero
    expect_loss(std::move(b));
  }
  {
    SecretBytes b = good.Clone();
    b.RevealMutable()[10] = 0;  // guess_count = 6 > num_guesses = 5
    b.RevealMutable()[11] = 6;
    expect_loss(std::move(b));
  }
  {
    Record absent;
    absent.id = r.id;
    absent.version = 5;
    ASSERT_OK_AND_ASSIGN(SecretBytes b, SerializeRecord(absent));
    b.RevealMutable()[20] = 1;  // an Absent record carries no fields
    expect_loss(std::move(b));
  }
}

TEST(RecordTest, SealedSizeDoesNotDependOnState) {
  SoftwareHsm hsm;
  Record registered = RegisteredRecord(1, 0, 10);
  Record no_guesses;
  no_guesses.id = registered.id;
  no_guesses.version = 2;
  no_guesses.state = RecordState::kNoGuesses;
  auto a = SealRecord(hsm, registered);
  auto b = SealRecord(hsm, no_guesses);
  ASSERT_OK(a);
  ASSERT_OK(b);
  EXPECT_EQ(a->sealed.size(), kSealedRecordSize);
  EXPECT_EQ(b->sealed.size(), kSealedRecordSize);
}

TEST(RecordTest, SealUnsealRoundTripAndHash) {
  SoftwareHsm hsm;
  Record r = RegisteredRecord(3, 2, 10);
  auto stored = SealRecord(hsm, r);
  ASSERT_OK(stored);
  EXPECT_EQ(stored->id, r.id);
  EXPECT_EQ(stored->version, 3u);
  EXPECT_EQ(stored->record_hash, RecordHash(3, stored->sealed));
  EXPECT_NE(stored->record_hash, RecordHash(4, stored->sealed));
  auto back = UnsealRecord(hsm, *stored);
  ASSERT_OK(back);
  ExpectSameRecord(*back, r);
  // The same record sealed twice gives different ciphertexts (fresh IVs).
  auto again = SealRecord(hsm, r);
  ASSERT_OK(again);
  EXPECT_NE(again->sealed, stored->sealed);
  EXPECT_THAT(SealRecord(hsm, RegisteredRecord(0, 0, 1)), StatusIs(StatusCode::kInvalidArgument));
}

TEST(RecordTest, EveryBitFlipAndTruncationIsDetected) {
  SoftwareHsm hsm;
  ASSERT_OK_AND_ASSIGN(StoredRecord stored, SealRecord(hsm, RegisteredRecord(3, 0, 10)));
  for (size_t bit = 0; bit < stored.sealed.size() * 8; ++bit) {
    StoredRecord bad = stored;
    bad.sealed[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
    auto r = UnsealRecord(hsm, bad);
    ASSERT_THAT(r, Not(IsOk())) << "bit " << bit;
    EXPECT_THAT(r, StatusIs(StatusCode::kDataLoss)) << "bit " << bit;
  }
  for (size_t len = 0; len < stored.sealed.size(); ++len) {
    StoredRecord bad = stored;
    bad.sealed.resize(len);
    EXPECT_THAT(UnsealRecord(hsm, bad), StatusIs(StatusCode::kDataLoss)) << len;
  }
}

TEST(RecordTest, AssociatedDataBindsIdVersionAndKey) {
  SoftwareHsm hsm;
  ASSERT_OK_AND_ASSIGN(StoredRecord stored, SealRecord(hsm, RegisteredRecord(3, 0, 10)));
  StoredRecord moved = stored;
  moved.id = Id(0x43);
  EXPECT_THAT(UnsealRecord(hsm, moved), StatusIs(StatusCode::kDataLoss));
  StoredRecord replayed = stored;
  replayed.version = 4;
  EXPECT_THAT(UnsealRecord(hsm, replayed), StatusIs(StatusCode::kDataLoss));
  // Relabelling the key id to another existing key fails authentication.
  hsm.AddSealingKey(2);
  StoredRecord relabelled = stored;
  relabelled.sealed[3] = 2;
  EXPECT_THAT(UnsealRecord(hsm, relabelled), StatusIs(StatusCode::kDataLoss));
  EXPECT_NE(RecordAssociatedData(Id(1), 1, 1), RecordAssociatedData(Id(1), 1, 2));
  EXPECT_NE(RecordAssociatedData(Id(1), 1, 1), RecordAssociatedData(Id(1), 2, 1));
  EXPECT_NE(RecordAssociatedData(Id(1), 1, 1), RecordAssociatedData(Id(2), 1, 1));
}

TEST(RecordTest, KeyRotationUnsealsWithTheRecordsKey) {
  SoftwareHsm hsm;
  ASSERT_OK_AND_ASSIGN(StoredRecord old_row, SealRecord(hsm, RegisteredRecord(1, 0, 10)));
  EXPECT_THAT(SealedKeyId(old_row), IsOkAndHolds(1u));
  hsm.RotateTo(2);
  ASSERT_OK_AND_ASSIGN(StoredRecord new_row, SealRecord(hsm, RegisteredRecord(2, 0, 10)));
  EXPECT_THAT(SealedKeyId(new_row), IsOkAndHolds(2u));
  EXPECT_OK(UnsealRecord(hsm, old_row));
  EXPECT_OK(UnsealRecord(hsm, new_row));
  hsm.RemoveSealingKey(1);
  auto gone = UnsealRecord(hsm, old_row);
  ASSERT_THAT(gone, Not(IsOk()));
  EXPECT_THAT(gone, StatusIs(StatusCode::kDataLoss, HasSubstr("sealing key 1")));
}

TEST(RecordTest, RecordIdIsAKeyedInjectiveEncoding) {
  SoftwareHsm hsm;
  SoftwareHsm other_hsm;
  auto a = ComputeRecordId(hsm, "acme", "alice");
  ASSERT_OK(a);
  EXPECT_THAT(ComputeRecordId(hsm, "acme", "alice"), IsOkAndHolds(*a));
  EXPECT_THAT(ComputeRecordId(hsm, "acme", "bob"), IsOkAndHolds(Ne(*a)));
  EXPECT_THAT(ComputeRecordId(hsm, "acmf", "alice"), IsOkAndHolds(Ne(*a)));
  EXPECT_THAT(ComputeRecordId(other_hsm, "acme", "alice"), IsOkAndHolds(Ne(*a)));
  // Length prefixes keep (ab, c) and (a, bc) apart.
  ASSERT_OK_AND_ASSIGN(RecordId ab_c, ComputeRecordId(hsm, "ab", "c"));
  EXPECT_THAT(ComputeRecordId(hsm, "a", "bc"), IsOkAndHolds(Ne(ab_c)));
}

TEST(RecordTest, HsmGoneIsUnavailable) {
  SoftwareHsm hsm;
  ASSERT_OK_AND_ASSIGN(StoredRecord stored, SealRecord(hsm, RegisteredRecord(1, 0, 10)));
  hsm.SetUnavailable(true);
  EXPECT_THAT(SealRecord(hsm, RegisteredRecord(2, 0, 10)), StatusIs(StatusCode::kUnavailable));
  EXPECT_THAT(UnsealRecord(hsm, stored), StatusIs(StatusCode::kUnavailable));
  EXPECT_THAT(ComputeRecordId(hsm, "t", "u"), StatusIs(StatusCode::kUnavailable));
  hsm.SetUnavailable(false);
  EXPECT_OK(UnsealRecord(hsm, stored));
}

}  // namespace
}  // namespace pinvault::vault
