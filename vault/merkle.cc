#include "vault/merkle.h"

#include <algorithm>
#include <utility>

#include "vault/hash.h"

namespace pinvault::vault {
namespace {

constexpr uint8_t kLeafDomain = 0x00;
constexpr uint8_t kInteriorDomain = 0x01;

// Bit returns bit `depth` of `id` (0 = most significant bit of id[0]).
inline bool Bit(const RecordId& id, int depth) {
  return (id[static_cast<size_t>(depth) / 8] >> (7 - depth % 8)) & 1;
}

// SharePrefix reports whether a and b agree on their first `bits` bits.
bool SharePrefix(const RecordId& a, const RecordId& b, int bits) {
  int full = bits / 8;
  if (!std::equal(a.begin(), a.begin() + full, b.begin())) return false;
  int rest = bits % 8;
  if (rest == 0) return true;
  uint8_t mask = static_cast<uint8_t>(0xff << (8 - rest));
  return (a[full] & mask) == (b[full] & mask);
}

NodeValue SubtreeValueUnchecked(std::span<const BucketEntry> entries, int depth) {
  if (entries.empty()) return NodeValue{};
  if (entries.size() == 1) return LeafValue(entries[0].id, entries[0].record_hash);
  // Entries are sorted, so those with bit `depth` clear come first.
  auto split = std::partition_point(entries.begin(), entries.end(),
                                    [depth](const BucketEntry& e) { return !Bit(e.id, depth); });
  size_t left_size = static_cast<size_t>(split - entries.begin());
  return Combine(SubtreeValueUnchecked(entries.first(left_size), depth + 1),
                 SubtreeValueUnchecked(entries.subspan(left_size), depth + 1));
}

}  // namespace

NodeValue LeafValue(const RecordId& id, const Digest& record_hash) {
  const uint8_t domain = kLeafDomain;
  return NodeValue{NodeKind::kLeaf, Blake2b256({ByteView(&domain, 1), id, record_hash})};
}

NodeValue Combine(const NodeValue& left, const NodeValue& right) {
  if (left.kind == NodeKind::kEmpty && right.kind != NodeKind::kInterior) return right;
  if (right.kind == NodeKind::kEmpty && left.kind == NodeKind::kLeaf) return left;
  const uint8_t domain = kInteriorDomain;
  return NodeValue{NodeKind::kInterior, Blake2b256({ByteView(&domain, 1), left.hash, right.hash})};
}

StatusOr<NodeValue> SubtreeValue(std::span<const BucketEntry> entries, int depth) {
  if (depth < 0 || depth > 256) return InvalidArgumentError("depth out of range");
  for (size_t i = 0; i < entries.size(); ++i) {
    if (i > 0 && !(entries[i - 1].id < entries[i].id)) {
      return DataLossError("bucket entries are not strictly ascending");
    }
    if (!SharePrefix(entries[0].id, entries[i].id, depth)) {
      return DataLossError("bucket entry outside its subtree");
    }
  }
  return SubtreeValueUnchecked(entries, depth);
}

StatusOr<NodeValue> RootOf(std::vector<BucketEntry> entries) {
  std::sort(entries.begin(), entries.end(),
            [](const BucketEntry& a, const BucketEntry& b) { return a.id < b.id; });
  return SubtreeValue(entries, 0);
}

void MerkleTree::Update::ToNodeWrites(std::vector<TreeNode>& upserts,
                                      std::vector<uint32_t>& erases) const {
  for (const auto& [index, value] : frontier()) {
    if (value.kind == NodeKind::kEmpty) {
      erases.push_back(index);
    } else {
      upserts.push_back(TreeNode{index, static_cast<uint8_t>(value.kind), value.hash});
    }
  }
}

MerkleTree::MerkleTree(int bucket_bits, PartitionId partition)
    : bucket_bits_(std::clamp(bucket_bits, 0, kMaxBucketBits)),
      partition_(partition),
      prefix_bits_(PartitionBits(partition.count)) {
  levels_.resize(static_cast<size_t>(bucket_bits_) + 1);
  for (int d = 0; d <= bucket_bits_; ++d) levels_[d].assign(size_t{1} << d, NodeValue{});
}

Status MerkleTree::Load(const std::vector<TreeNode>& nodes) {
  std::vector<NodeValue> frontier(bucket_count());
  std::vector<bool> seen(bucket_count(), false);
  for (const TreeNode& node : nodes) {
    if (node.index >= bucket_count() || seen[node.index]) {
      return DataLossError("tree node index out of range or repeated");
    }
    if (node.kind != static_cast<uint8_t>(NodeKind::kLeaf) &&
        node.kind != static_cast<uint8_t>(NodeKind::kInterior)) {
      return DataLossError("tree node has an invalid kind");
    }
    seen[node.index] = true;
    frontier[node.index] = NodeValue{static_cast<NodeKind>(node.kind), node.hash};
  }
  levels_[bucket_bits_] = std::move(frontier);
  for (int d = bucket_bits_ - 1; d >= 0; --d) {
    auto& level = levels_[d];
    const auto& below = levels_[d + 1];
    for (size_t i = 0; i < level.size(); ++i) level[i] = Combine(below[2 * i], below[2 * i + 1]);
  }
  return OkStatus();
}

bool MerkleTree::Contains(const RecordId& id) const {
  return PartitionOf(id, partition_.count) == partition_.index;
}

uint32_t MerkleTree::BucketOf(const RecordId& id) const {
  if (bucket_bits_ == 0) return 0;
  uint32_t top = uint32_t{id[0]} << 24 | uint32_t{id[1]} << 16 | uint32_t{id[2]} << 8 | id[3];
  // prefix_bits_ + bucket_bits_ <= 8 + 20, so the bucket's bits are inside the first word.
  return (top << prefix_bits_) >> (32 - bucket_bits_);
}

void MerkleTree::BucketRange(uint32_t index, RecordId& lo, RecordId& hi) const {
  lo.fill(0x00);
  hi.fill(0xff);
  const int bits = prefix_bits_ + bucket_bits_;
  if (bits == 0) return;
  uint32_t top = (prefix_bits_ == 0 ? 0 : partition_.index << (32 - prefix_bits_)) |
                 (bucket_bits_ == 0 ? 0 : index << (32 - bits));
  uint32_t mask = ~uint32_t{0} << (32 - bits);
  for (int i = 0; i < 4; ++i) {
    int shift = 24 - 8 * i;
    uint8_t bits = static_cast<uint8_t>(top >> shift);
    uint8_t m = static_cast<uint8_t>(mask >> shift);
    lo[i] = bits;
    hi[i] = static_cast<uint8_t>(bits | ~m);
  }
}

StatusOr<NodeValue> MerkleTree::ComputeBucket(uint32_t index,
                                              std::span<const BucketEntry> entries) const {
  for (const BucketEntry& e : entries) {
    if (!Contains(e.id) || BucketOf(e.id) != index) {
      return DataLossError("bucket scan returned a foreign row");
    }
  }
  return SubtreeValue(entries, prefix_bits_ + bucket_bits_);
}

MerkleTree::Update MerkleTree::Prepare(const std::map<uint32_t, NodeValue>& buckets) const {
  Update update;
  update.levels_.resize(static_cast<size_t>(bucket_bits_) + 1);
  update.levels_[bucket_bits_] = buckets;
  for (int d = bucket_bits_ - 1; d >= 0; --d) {
    const auto& below = update.levels_[d + 1];
    auto value_below = [&](uint32_t i) -> const NodeValue& {
      auto it = below.find(i);
      return it != below.end() ? it->second : levels_[d + 1][i];
    };
    auto& level = update.levels_[d];
    for (const auto& [child, unused] : below) {
      uint32_t parent = child / 2;
      if (level.count(parent)) continue;
      level[parent] = Combine(value_below(2 * parent), value_below(2 * parent + 1));
    }
  }
  auto it = update.levels_[0].find(0);
  update.root_ = it != update.levels_[0].end() ? it->second : levels_[0][0];
  return update;
}

void MerkleTree::Apply(const Update& update) {
  for (size_t d = 0; d < update.levels_.size() && d < levels_.size(); ++d) {
    for (const auto& [index, value] : update.levels_[d]) levels_[d][index] = value;
  }
}

uint32_t MerkleTree::NonEmptyBuckets() const {
  uint32_t n = 0;
  for (const NodeValue& v : levels_[bucket_bits_]) n += v.kind != NodeKind::kEmpty;
  return n;
}

}  // namespace pinvault::vault
