#include "vault/merkle.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <vector>

#include "tests/testing/status_matchers.h"

namespace pinvault::vault {
namespace {

using ::pinvault::testing::IsOkAndHolds;
using ::pinvault::testing::StatusIs;
using ::testing::Ne;

RecordId RandomId(std::mt19937_64& rng) {
  RecordId id;
  for (auto& b : id) b = static_cast<uint8_t>(rng());
  return id;
}

Digest RandomDigest(std::mt19937_64& rng) {
  Digest d;
  for (auto& b : d) b = static_cast<uint8_t>(rng());
  return d;
}

// Model: the reference set of leaves, and a helper to push changes into a MerkleTree the
// way the realm does (rebuild each touched bucket from the model, Prepare, Apply).
struct Model {
  std::map<RecordId, Digest> leaves;

  std::vector<BucketEntry> BucketEntries(const MerkleTree& tree, uint32_t bucket) const {
    RecordId lo, hi;
    tree.BucketRange(bucket, lo, hi);
    std::vector<BucketEntry> out;
    for (auto it = leaves.lower_bound(lo); it != leaves.end() && it->first <= hi; ++it) {
      out.push_back(BucketEntry{it->first, it->second});
    }
    return out;
  }

  NodeValue Root() const {
    std::vector<BucketEntry> all;
    for (const auto& [id, h] : leaves) all.push_back(BucketEntry{id, h});
    StatusOr<NodeValue> root = RootOf(all);
    EXPECT_OK(root);
    if (!root.ok()) return NodeValue{};
    return *root;
  }
};

StatusOr<MerkleTree::Update> PrepareTouched(const MerkleTree& tree, const Model& model,
                                            const std::vector<RecordId>& touched) {
  std::map<uint32_t, NodeValue> buckets;
  for (const RecordId& id : touched) {
    uint32_t b = tree.BucketOf(id);
    auto entries = model.BucketEntries(tree, b);
    ASSIGN_OR_RETURN(buckets[b], tree.ComputeBucket(b, entries));
  }
  return tree.Prepare(buckets);
}

TEST(MerkleTest, EmptyAndSingleLeafRoots) {
  ASSERT_OK_AND_ASSIGN(NodeValue empty_root, RootOf({}));
  EXPECT_EQ(empty_root.kind, NodeKind::kEmpty);
  EXPECT_EQ(empty_root.hash, Digest{});
  MerkleTree tree(8);
  EXPECT_EQ(tree.root(), NodeValue{});
  std::mt19937_64 rng(1);
  RecordId id = RandomId(rng);
  Digest h = RandomDigest(rng);
  // One leaf floats up to the root, whatever the depth.
  EXPECT_THAT(RootOf({BucketEntry{id, h}}), IsOkAndHolds(LeafValue(id, h)));
  EXPECT_NE(LeafValue(id, h), LeafValue(id, RandomDigest(rng)));
}

TEST(MerkleTest, CombineFollowsTheCompactRules) {
  std::mt19937_64 rng(2);
  NodeValue empty;
  NodeValue leaf = LeafValue(RandomId(rng), RandomDigest(rng));
  NodeValue other = LeafValue(RandomId(rng), RandomDigest(rng));
  NodeValue interior = Combine(leaf, other);
  EXPECT_EQ(interior.kind, NodeKind::kInterior);
  EXPECT_EQ(Combine(empty, empty), empty);
  EXPECT_EQ(Combine(empty, leaf), leaf);
  EXPECT_EQ(Combine(leaf, empty), leaf);
  EXPECT_EQ(Combine(interior, empty).kind, NodeKind::kInterior);
  EXPECT_NE(Combine(interior, empty), Combine(empty, interior));
  EXPECT_NE(Combine(leaf, other), Combine(other, leaf));
}

TEST(MerkleTest, RootIsCanonicalAndIndependentOfOrder) {
  std::mt19937_64 rng(3);
  std::vector<BucketEntry> entries;
  for (int i = 0; i < 200; ++i) entries.push_back(BucketEntry{RandomId(rng), RandomDigest(rng)});
  ASSERT_OK_AND_ASSIGN(NodeValue root, RootOf(entries));
  std::shuffle(entries.begin(), entries.end(), rng);
  EXPECT_THAT(RootOf(entries), IsOkAndHolds(root));
  entries.push_back(entries[5]);
  EXPECT_THAT(RootOf(entries), StatusIs(StatusCode::kDataLoss));  // duplicate id
  entries.pop_back();
  entries[7].record_hash[0] ^= 1;
  EXPECT_THAT(RootOf(entries), IsOkAndHolds(Ne(root)));
}

TEST(MerkleTest, IdsSharingLongPrefixes) {
  RecordId a{}, b{};
  a.fill(0xab);
  b = a;
  b[31] ^= 0x01;  // differ only in the very last bit
  Digest h{};
  ASSERT_OK_AND_ASSIGN(NodeValue root, RootOf({BucketEntry{a, h}, BucketEntry{b, h}}));
  EXPECT_EQ(root.kind, NodeKind::kInterior);
  MerkleTree tree(16);
  Model model;
  model.leaves[a] = h;
  model.leaves[b] = h;
  ASSERT_OK_AND_ASSIGN(MerkleTree::Update update, PrepareTouched(tree, model, {a, b}));
  tree.Apply(update);
  EXPECT_EQ(tree.root(), root);
}

TEST(MerkleTest, BucketRangesPartitionTheIdSpace) {
  std::mt19937_64 rng(4);
  for (int bits : {0, 1, 5, 8, 13, 16}) {
    MerkleTree tree(bits);
    EXPECT_EQ(tree.bucket_count(), 1u << bits);
    for (int i = 0; i < 200; ++i) {
      RecordId id = RandomId(rng);
      uint32_t b = tree.BucketOf(id);
      ASSERT_LT(b, tree.bucket_count());
      RecordId lo, hi;
      tree.BucketRange(b, lo, hi);
      EXPECT_LE(lo, id);
      EXPECT_LE(id, hi);
      EXPECT_EQ(tree.BucketOf(lo), b);
      EXPECT_EQ(tree.BucketOf(hi), b);
      if (b + 1 < tree.bucket_count()) {
        RecordId next_lo, next_hi;
        tree.BucketRange(b + 1, next_lo, next_hi);
        EXPECT_LT(hi, next_lo);
      }
    }
  }
}

// The incremental tree always agrees with the reference root, for every frontier depth,
// through inserts, updates and removals; and reloading its persisted frontier reproduces it.
TEST(MerkleTest, IncrementalUpdatesMatchReferenceAtEveryDepth) {
  for (int bits : {0, 1, 3, 8, 12}) {
    std::mt19937_64 rng(100 + bits);
    MerkleTree tree(bits);
    Model model;
    std::map<uint32_t, TreeNode> persisted;
    std::vector<RecordId> ids;
    for (int round = 0; round < 30; ++round) {
      std::vector<RecordId> touched;
      int changes = 1 + static_cast<int>(rng() % 20);
      for (int c = 0; c < changes; ++c) {
        int action = static_cast<int>(rng() % 3);
        if (action == 0 || ids.empty()) {
          RecordId id = RandomId(rng);
          ids.push_back(id);
          model.leaves[id] = RandomDigest(rng);
          touched.push_back(id);
        } else if (action == 1) {
          const RecordId& id = ids[rng() % ids.size()];
          model.leaves[id] = RandomDigest(rng);
          touched.push_back(id);
        } else {
          size_t i = rng() % ids.size();
          model.leaves.erase(ids[i]);
          touched.push_back(ids[i]);
          ids.erase(ids.begin() + static_cast<ptrdiff_t>(i));
        }
      }
      ASSERT_OK_AND_ASSIGN(MerkleTree::Update update, PrepareTouched(tree, model, touched));
      NodeValue before = tree.root();
      EXPECT_EQ(update.root(), model.Root()) << "bits " << bits << " round " << round;
      EXPECT_EQ(tree.root(), before);  // Prepare changes nothing
      tree.Apply(update);
      EXPECT_EQ(tree.root(), model.Root());
      std::vector<TreeNode> upserts;
      std::vector<uint32_t> erases;
      update.ToNodeWrites(upserts, erases);
      for (const TreeNode& n : upserts) persisted[n.index] = n;
      for (uint32_t e : erases) persisted.erase(e);
    }
    MerkleTree reloaded(bits);
    std::vector<TreeNode> nodes;
    for (const auto& [i, n] : persisted) nodes.push_back(n);
    ASSERT_OK(reloaded.Load(nodes));
    EXPECT_EQ(reloaded.root(), tree.root());
    EXPECT_EQ(reloaded.NonEmptyBuckets(), tree.NonEmptyBuckets());
  }
}

// A bucket rebuilt from storage proves inclusion and absence: any change to its rows is
// visible in the rebuilt value.
TEST(MerkleTest, ComputeBucketDetectsEveryKindOfTampering) {
  std::mt19937_64 rng(5);
  MerkleTree tree(4);
  Model model;
  std::vector<RecordId> ids;
  // Many rows in bucket 3.
  for (int i = 0; i < 12; ++i) {
    RecordId id = RandomId(rng);
    id[0] = static_cast<uint8_t>(0x30 | (id[0] & 0x0f));
    model.leaves[id] = RandomDigest(rng);
    ids.push_back(id);
  }
  ASSERT_OK_AND_ASSIGN(MerkleTree::Update update, PrepareTouched(tree, model, ids));
  tree.Apply(update);
  ASSERT_EQ(tree.BucketOf(ids[0]), 3u);
  auto good = model.BucketEntries(tree, 3);
  ASSERT_EQ(good.size(), 12u);
  EXPECT_THAT(tree.ComputeBucket(3, good), IsOkAndHolds(tree.Bucket(3)));

  auto differs = [&](std::vector<BucketEntry> entries) {
    auto v = tree.ComputeBucket(3, entries);
    return !v.ok() || !(*v == tree.Bucket(3));
  };
  {  // changed hash (bit flip / replayed row)
    auto e = good;
    e[4].record_hash[9] ^= 0x40;
    EXPECT_TRUE(differs(e));
  }
  {  // dropped row
    auto e = good;
    e.erase(e.begin() + 6);
    EXPECT_TRUE(differs(e));
  }
  {  // swapped contents of two rows
    auto e = good;
    std::swap(e[2].record_hash, e[8].record_hash);
    EXPECT_TRUE(differs(e));
  }
  {  // injected row
    auto e = good;
    RecordId extra = RandomId(rng);
    extra[0] = 0x3f;
    e.push_back(BucketEntry{extra, RandomDigest(rng)});
    std::sort(e.begin(), e.end(),
              [](const BucketEntry& a, const BucketEntry& b) { return a.id < b.id; });
    EXPECT_TRUE(differs(e));
  }
  {  // out of order or duplicated
    auto e = good;
    std::swap(e[0], e[1]);
    EXPECT_THAT(tree.ComputeBucket(3, e), StatusIs(StatusCode::kDataLoss));
    auto d = good;
    d.insert(d.begin() + 3, d[3]);
    EXPECT_THAT(tree.ComputeBucket(3, d), StatusIs(StatusCode::kDataLoss));
  }
  {  // a row from another bucket
    auto e = good;
    e.back().id[0] = 0x40;
    EXPECT_THAT(tree.ComputeBucket(3, e), StatusIs(StatusCode::kDataLoss));
  }
  // An empty bucket proves absence; a row appearing in it is caught.
  EXPECT_EQ(tree.Bucket(5), NodeValue{});
  RecordId stray = RandomId(rng);
  stray[0] = 0x50;
  EXPECT_THAT(tree.ComputeBucket(5, {}), IsOkAndHolds(NodeValue{}));
  std::vector<BucketEntry> injected = {BucketEntry{stray, RandomDigest(rng)}};
  EXPECT_THAT(tree.ComputeBucket(5, injected), IsOkAndHolds(Ne(tree.Bucket(5))));
}

TEST(MerkleTest, LoadRejectsMalformedNodes) {
  MerkleTree tree(4);
  Digest h{};
  h[0] = 1;
  EXPECT_THAT(tree.Load({TreeNode{16, 1, h}}), StatusIs(StatusCode::kDataLoss));
  EXPECT_THAT(tree.Load({TreeNode{1, 1, h}, TreeNode{1, 2, h}}), StatusIs(StatusCode::kDataLoss));
  EXPECT_THAT(tree.Load({TreeNode{1, 0, h}}), StatusIs(StatusCode::kDataLoss));
  EXPECT_THAT(tree.Load({TreeNode{1, 3, h}}), StatusIs(StatusCode::kDataLoss));
  ASSERT_OK(tree.Load({TreeNode{1, 1, h}}));
  EXPECT_EQ(tree.root(), (NodeValue{NodeKind::kLeaf, h}));
}

}  // namespace
// A partition's tree is the subtree of the whole id space under its prefix: its root is the
// value the whole tree has there, and its buckets cover exactly the partition's ids.
TEST(MerkleTest, PartitionTreesAreSubtreesOfTheWholeTree) {
  std::mt19937_64 rng(20261208);
  constexpr uint32_t kCount = 4;
  constexpr int kBits = 3;
  std::vector<BucketEntry> all;
  for (int i = 0; i < 300; ++i) all.push_back(BucketEntry{RandomId(rng), RandomDigest(rng)});
  std::sort(all.begin(), all.end(),
            [](const BucketEntry& a, const BucketEntry& b) { return a.id < b.id; });
  std::vector<NodeValue> roots;
  for (uint32_t p = 0; p < kCount; ++p) {
    MerkleTree tree(kBits, PartitionId{p, kCount});
    std::map<uint32_t, std::vector<BucketEntry>> buckets;
    std::vector<BucketEntry> mine;
    for (const BucketEntry& e : all) {
      EXPECT_EQ(tree.Contains(e.id), PartitionOf(e.id, kCount) == p);
      if (!tree.Contains(e.id)) continue;
      mine.push_back(e);
      uint32_t bucket = tree.BucketOf(e.id);
      RecordId lo, hi;
      tree.BucketRange(bucket, lo, hi);
      EXPECT_LE(lo, e.id);
      EXPECT_LE(e.id, hi);
      buckets[bucket].push_back(e);
    }
    std::map<uint32_t, NodeValue> values;
    for (const auto& [bucket, entries] : buckets) {
      ASSERT_OK_AND_ASSIGN(values[bucket], tree.ComputeBucket(bucket, entries));
    }
    tree.Apply(tree.Prepare(values));
    EXPECT_THAT(SubtreeValue(mine, 2), IsOkAndHolds(tree.root()));
    roots.push_back(tree.root());
    // A row of another partition in a bucket scan is a foreign row.
    for (const BucketEntry& e : all) {
      if (tree.Contains(e.id)) continue;
      std::vector<BucketEntry> foreign = {e};
      EXPECT_THAT(tree.ComputeBucket(0, foreign), StatusIs(StatusCode::kDataLoss));
      break;
    }
  }
  // The four partition roots combine into the root of the whole tree.
  ASSERT_OK_AND_ASSIGN(NodeValue whole, RootOf(all));
  EXPECT_EQ(Combine(Combine(roots[0], roots[1]), Combine(roots[2], roots[3])), whole);
}

}  // namespace pinvault::vault
