#include "vault/record_cache.h"

#include <gtest/gtest.h>

#include <string>

namespace pinvault::vault {
namespace {

Record Registered(uint8_t id_byte, uint16_t guess_count) {
  Record r;
  r.id.fill(id_byte);
  r.version = 3;
  r.state = RecordState::kRegistered;
  r.guess_count = guess_count;
  Registration reg;
  reg.oprf_private_key = SecretBytes::Random(32);
  reg.encryption_key_scalar_share = SecretBytes::Random(32);
  reg.num_guesses = 10;
  r.registration = std::move(reg);
  return r;
}

Digest Hash(uint8_t v) {
  Digest d;
  d.fill(v);
  return d;
}

TEST(RecordCacheTest, HitsOnlyForTheSameRowHash) {
  RecordCache cache(8);
  Record r = Registered(1, 4);
  uint32_t key_id = 0;
  EXPECT_FALSE(cache.Lookup(r.id, Hash(1), key_id).has_value());
  cache.Put(r.id, Hash(1), 7, r);
  auto hit = cache.Lookup(r.id, Hash(1), key_id);
  ASSERT_TRUE(hit.has_value());
  EXPECT_EQ(key_id, 7u);
  EXPECT_EQ(hit->guess_count, 4);
  EXPECT_TRUE(hit->registration->oprf_private_key.Equals(r.registration->oprf_private_key));
  // Another row (replayed, tampered or simply newer) never matches.
  EXPECT_FALSE(cache.Lookup(r.id, Hash(2), key_id).has_value());
  Record other_id = Registered(2, 0);
  EXPECT_FALSE(cache.Lookup(other_id.id, Hash(1), key_id).has_value());
  // A newer row replaces the entry.
  Record newer = Registered(1, 5);
  cache.Put(r.id, Hash(3), 7, newer);
  EXPECT_FALSE(cache.Lookup(r.id, Hash(1), key_id).has_value());
  EXPECT_EQ(cache.Lookup(r.id, Hash(3), key_id)->guess_count, 5);
  EXPECT_EQ(cache.size(), 1u);
}

TEST(RecordCacheTest, CopiesAreIndependent) {
  RecordCache cache(8);
  Record r = Registered(1, 0);
  cache.Put(r.id, Hash(1), 1, r);
  uint32_t key_id = 0;
  auto a = cache.Lookup(r.id, Hash(1), key_id);
  a->registration->oprf_private_key.RevealMutable()[0] ^= 0xff;
  a->guess_count = 9;
  auto b = cache.Lookup(r.id, Hash(1), key_id);
  EXPECT_EQ(b->guess_count, 0);
  EXPECT_TRUE(b->registration->oprf_private_key.Equals(r.registration->oprf_private_key));
}

TEST(RecordCacheTest, CapacityBoundsAndZeroDisables) {
  RecordCache cache(3);
  for (uint8_t i = 1; i <= 5; ++i) cache.Put(Registered(i, 0).id, Hash(i), 1, Registered(i, 0));
  EXPECT_EQ(cache.size(), 3u);
  uint32_t key_id = 0;
  EXPECT_FALSE(cache.Lookup(Registered(1, 0).id, Hash(1), key_id).has_value());  // oldest out
  EXPECT_TRUE(cache.Lookup(Registered(5, 0).id, Hash(5), key_id).has_value());
  cache.Clear();
  EXPECT_EQ(cache.size(), 0u);
  RecordCache off(0);
  off.Put(Registered(1, 0).id, Hash(1), 1, Registered(1, 0));
  EXPECT_EQ(off.size(), 0u);
}

RecordId IdOf(uint8_t n) {
  RecordId id{};
  id.fill(n);
  return id;
}

TEST(RecordIdCacheTest, ReturnsWhatWasPutForExactlyThatTenantAndUser) {
  RecordIdCache cache(8);
  EXPECT_FALSE(cache.Lookup("acme", "alice").has_value());
  cache.Put("acme", "alice", IdOf(1));
  cache.Put("ab", "c", IdOf(2));
  EXPECT_EQ(cache.Lookup("acme", "alice"), IdOf(1));
  EXPECT_EQ(cache.Lookup("ab", "c"), IdOf(2));
  // The boundary between tenant and user is part of the key.
  EXPECT_FALSE(cache.Lookup("a", "bc").has_value());
  EXPECT_FALSE(cache.Lookup("acmealice", "").has_value());
  EXPECT_FALSE(cache.Lookup("acme", "Alice").has_value());
  EXPECT_FALSE(cache.Lookup("other", "alice").has_value());
  // A repeated put keeps one entry.
  cache.Put("acme", "alice", IdOf(1));
  EXPECT_EQ(cache.size(), 2u);
}

TEST(RecordIdCacheTest, CapacityBoundsAndZeroDisables) {
  RecordIdCache cache(3);
  for (uint8_t i = 1; i <= 5; ++i) cache.Put("t", "user" + std::to_string(i), IdOf(i));
  EXPECT_EQ(cache.size(), 3u);
  EXPECT_FALSE(cache.Lookup("t", "user1").has_value());  // oldest out
  EXPECT_FALSE(cache.Lookup("t", "user2").has_value());
  EXPECT_EQ(cache.Lookup("t", "user5"), IdOf(5));
  RecordIdCache off(0);
  off.Put("t", "u", IdOf(1));
  EXPECT_EQ(off.size(), 0u);
  EXPECT_FALSE(off.Lookup("t", "u").has_value());
}

}  // namespace
}  // namespace pinvault::vault
