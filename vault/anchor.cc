#include "vault/anchor.h"

#include <algorithm>
#include <string>
#include <string_view>
#include <utility>

#include "vault/byte_cursor.h"

namespace pinvault::vault {
namespace {

constexpr std::string_view kMagic = "PVC2";
constexpr std::string_view kMagicV1 = "PVC1";
constexpr std::string_view kMacLabel = "pinvault-anchor-v1";
constexpr size_t kMacSize = 32;

Bytes MacInput(ByteView body) {
  Bytes input;
  Append(input, AsBytes(kMacLabel));
  Append(input, body);
  return input;
}

std::string EpochText(const std::optional<uint64_t>& epoch) {
  return epoch ? std::to_string(*epoch) : std::string("none");
}

Status Mismatch(const std::optional<uint64_t>& storage_epoch,
                const std::optional<uint64_t>& anchor_epoch, std::string_view why) {
  return FailedPreconditionError(
      "refusing to serve: storage is at epoch " + EpochText(storage_epoch) +
      " but the HSM anchor is at epoch " + EpochText(anchor_epoch) + " (" + std::string(why) +
      "); storage is never trusted over the anchor, an operator must restore the matching "
      "data");
}

// VerifyOrMismatch verifies a certificate, turning an authentication failure into a
// refusal (other errors, e.g. UNAVAILABLE, pass through).
StatusOr<Certificate> VerifyOrMismatch(Hsm& hsm, ByteView bytes,
                                       const std::optional<uint64_t>& storage_epoch,
                                       const std::optional<uint64_t>& anchor_epoch,
                                       std::string_view which) {
  StatusOr<Certificate> cert = VerifyCertificate(hsm, bytes);
  if (cert.status().code() == StatusCode::kDataLoss) {
    return Mismatch(storage_epoch, anchor_epoch,
                    std::string(which) + " certificate failed authentication");
  }
  return cert;
}

}  // namespace

StatusOr<Bytes> IssueCertificate(Hsm& hsm, const Certificate& cert) {
  Bytes body;
  body.reserve(kCertificateSize);
  Append(body, AsBytes(kMagic));
  AppendU16(body, static_cast<uint16_t>(cert.partition.count));
  AppendU16(body, static_cast<uint16_t>(cert.partition.index));
  AppendU64(body, cert.term);
  body.push_back(cert.bucket_bits);
  AppendU64(body, cert.epoch);
  Append(body, cert.root);
  Append(body, cert.prev_root);
  ASSIGN_OR_RETURN(MacTag tag, hsm.Mac(MacKeyRole::kAnchor, MacInput(body)));
  Append(body, tag);
  return body;
}

StatusOr<Certificate> VerifyCertificate(Hsm& hsm, ByteView bytes) {
  if (bytes.size() != kCertificateSize && bytes.size() != kCertificateSizeV1) {
    return DataLossError("certificate has the wrong size");
  }
  ByteReader r(bytes);
  ByteView magic = r.Take(kMagic.size());
  auto is = [&](std::string_view m) {
    return std::equal(magic.begin(), magic.end(), AsBytes(m).begin());
  };
  Certificate cert;
  if (bytes.size() == kCertificateSize && is(kMagic)) {
    cert.partition.count = r.U16();
    cert.partition.index = r.U16();
    cert.term = r.U64();
  } else if (!(bytes.size() == kCertificateSizeV1 && is(kMagicV1))) {
    return DataLossError("certificate has an unknown format");
  }
  cert.bucket_bits = r.U8();
  cert.epoch = r.U64();
  r.ReadInto(cert.root);
  r.ReadInto(cert.prev_root);
  ByteView body = bytes.first(bytes.size() - kMacSize);
  ByteView tag = r.Take(kMacSize);
  if (!r.AtEnd()) return DataLossError("certificate is malformed");
  RETURN_IF_ERROR(hsm.VerifyMac(MacKeyRole::kAnchor, MacInput(body), tag));
  if (cert.bucket_bits > kMaxBucketBits) return DataLossError("certificate depth out of range");
  if (!ValidatePartitionCount(cert.partition.count).ok() ||
      cert.partition.index >= cert.partition.count) {
    return DataLossError("certificate names an impossible partition");
  }
  return cert;
}

namespace {

// PartitionMismatch explains a certificate of another partition layout than the configured one.
Status PartitionMismatch(const Certificate& found, const PartitionId& wanted) {
  if (found.partition.count != wanted.count) {
    return FailedPreconditionError(
        "refusing to serve: this realm was created with " + std::to_string(found.partition.count) +
        " partition(s) but is configured with " + std::to_string(wanted.count) +
        "; the partition count is fixed when a realm is created: set realm.partitions to " +
        std::to_string(found.partition.count));
  }
  return FailedPreconditionError("refusing to serve: the certificate of partition " +
                                 ToString(wanted) + " names partition " +
                                 ToString(found.partition) + " (storage or anchors were swapped)");
}

}  // namespace

StatusOr<ServingState> LoadAndCheck(Hsm& hsm, RecordStore& store, PartitionId partition,
                                    int genesis_bucket_bits, uint64_t term) {
  RETURN_IF_ERROR(ValidatePartitionCount(partition.count));
  if (partition.index >= partition.count) return InvalidArgumentError("no such partition");
  ASSIGN_OR_RETURN(std::optional<Bytes> anchor_bytes, hsm.LoadAnchor(partition.index));
  ASSIGN_OR_RETURN(TreeSnapshot snapshot, store.ReadTree(partition.index));
  std::optional<uint64_t> storage_epoch =
      snapshot.head ? std::optional(snapshot.head->epoch) : std::nullopt;

  // A fresh partition: no anchor and no storage.
  if (!anchor_bytes && !snapshot.head) {
    if (!snapshot.nodes.empty()) {
      return Mismatch(storage_epoch, std::nullopt, "storage holds tree nodes but no head");
    }
    // A realm of another layout (say the single-tree one) has partition 0 anchored already:
    // creating the other partitions beside it would split its records between trees.
    if (partition.index != 0) {
      ASSIGN_OR_RETURN(std::optional<Bytes> first, hsm.LoadAnchor(0));
      if (first) {
        StatusOr<Certificate> first_cert = VerifyCertificate(hsm, *first);
        if (first_cert.ok() && first_cert->partition.count != partition.count) {
          return PartitionMismatch(*first_cert, partition);
        }
      }
    }
    Certificate genesis;
    genesis.bucket_bits = static_cast<uint8_t>(std::clamp(genesis_bucket_bits, 0, kMaxBucketBits));
    genesis.partition = partition;
    genesis.term = term;
    ASSIGN_OR_RETURN(Bytes genesis_bytes, IssueCertificate(hsm, genesis));
    CommitBatch batch;
    batch.partition = partition.index;
    batch.expected_epoch = std::nullopt;
    batch.head = StoreHead{0, genesis_bytes};
    RETURN_IF_ERROR(store.Commit(batch));
    RETURN_IF_ERROR(hsm.StoreAnchor(partition.index, term, genesis_bytes));
    return ServingState{genesis, std::move(genesis_bytes),
                        MerkleTree(genesis.bucket_bits, partition),
                        /*rolled_forward=*/false, /*created=*/true};
  }

  std::optional<Certificate> anchor;
  std::optional<uint64_t> anchor_epoch;
  if (anchor_bytes) {
    StatusOr<Certificate> a = VerifyCertificate(hsm, *anchor_bytes);
    if (a.status().code() == StatusCode::kDataLoss) {
      return Mismatch(storage_epoch, std::nullopt, "the HSM anchor failed authentication");
    }
    if (!a.ok()) return a.status();
    if (a->partition != partition) return PartitionMismatch(*a, partition);
    anchor = *a;
    anchor_epoch = anchor->epoch;
  }
  if (!snapshot.head) return Mismatch(storage_epoch, anchor_epoch, "storage is empty");

  ASSIGN_OR_RETURN(Certificate stored, VerifyOrMismatch(hsm, snapshot.head->certificate,
                                                        storage_epoch, anchor_epoch, "storage"));
  if (stored.partition != partition) return PartitionMismatch(stored, partition);
  if (stored.epoch != snapshot.head->epoch) {
    return Mismatch(storage_epoch, anchor_epoch, "the storage head disagrees with its certificate");
  }

  bool roll_forward = false;
  if (!anchor) {
    // Only an interrupted initialisation may be finished without an anchor.
    if (stored.epoch != 0 || stored.root != Digest{} || stored.prev_root != Digest{}) {
      return Mismatch(storage_epoch, anchor_epoch, "the HSM holds no anchor");
    }
    roll_forward = true;
  } else if (stored.bucket_bits != anchor->bucket_bits) {
    return Mismatch(storage_epoch, anchor_epoch, "tree geometry differs");
  } else if (stored.epoch == anchor->epoch) {
    if (stored.root != anchor->root) {
      return Mismatch(storage_epoch, anchor_epoch, "same epoch, different root");
    }
  } else if (stored.epoch == anchor->epoch + 1 && stored.prev_root == anchor->root) {
    roll_forward = true;  // the last commit reached storage but not the anchor
  } else if (stored.epoch < anchor->epoch) {
    return Mismatch(storage_epoch, anchor_epoch, "storage is behind the anchor: rolled back");
  } else {
    return Mismatch(storage_epoch, anchor_epoch, "storage does not continue the anchored state");
  }

  MerkleTree tree(stored.bucket_bits, partition);
  Status loaded = tree.Load(snapshot.nodes);
  if (!loaded.ok()) {
    return Mismatch(storage_epoch, anchor_epoch, "stored tree nodes are malformed");
  }
  if (tree.root().hash != stored.root) {
    return Mismatch(storage_epoch, anchor_epoch, "stored tree nodes do not match the root");
  }
  if (roll_forward) {
    RETURN_IF_ERROR(hsm.StoreAnchor(partition.index, term, snapshot.head->certificate));
  }
  return ServingState{stored, snapshot.head->certificate, std::move(tree), roll_forward,
                      /*created=*/false};
}

StatusOr<std::optional<uint32_t>> AnchoredPartitionCount(Hsm& hsm) {
  ASSIGN_OR_RETURN(std::optional<Bytes> anchor, hsm.LoadAnchor(0));
  if (!anchor) return std::optional<uint32_t>();
  ASSIGN_OR_RETURN(Certificate cert, VerifyCertificate(hsm, *anchor));
  return std::optional<uint32_t>(cert.partition.count);
}

}  // namespace pinvault::vault
