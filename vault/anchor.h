// Rollback protection: commit certificates, the HSM anchor, and the start-up check.
//
// A commit certificate is (bucket_bits, epoch, root, prev_root) MAC'd with the HSM's
// anchor key. Every commit writes the certificate of its new state twice:
//   1. into storage, in the same transaction as the records and tree nodes (the head);
//   2. then into the HSM anchor (Hsm::StoreAnchor).
// Responses are released only after both writes are durable.
//
// Crash between 1 and 2: storage is exactly one epoch ahead of the anchor, and its
// certificate chains from the anchored root (prev_root == anchor root) under the HSM's MAC,
// so only the core can have written it, from the anchored state. Start-up accepts such a
// storage state and finishes the commit by storing its certificate in the anchor ("roll
// forward"). That loses nothing acknowledged (no response of that batch was released) and
// never lowers a guess count (the batch only adds to the anchored state). Any other
// relation is refused: storage behind the anchor (a restored snapshot), storage at the same
// epoch with another root, storage more than one epoch ahead, a certificate that fails the
// MAC, or an anchor without storage or storage without an anchor. The realm then stays
// down (FAILED_PRECONDITION naming both epochs) until an operator acts; it never "repairs"
// by trusting storage.
//
// Writing the anchor first would be unsound: a crash after the anchor write would leave
// storage one epoch behind, indistinguishable from an attacker restoring the previous
// snapshot, which is exactly the rollback to prevent.
//
// The anchor object itself is the HSM layer's business (Hsm::LoadAnchor/StoreAnchor): the
// core needs only a blob the HSM stores durably; the MAC makes its content authentic even
// if the blob lives where an attacker could write it, and monotonic epochs make replaying
// an old anchor blob pointless unless the attacker can also replace the HSM's copy.
//
// Thread-safety: the functions are thread-safe if the Hsm and RecordStore are.
#ifndef PINVAULT_VAULT_ANCHOR_H_
#define PINVAULT_VAULT_ANCHOR_H_

#include <cstdint>
#include <optional>

#include "vault/bytes.h"
#include "vault/hsm.h"
#include "vault/merkle.h"
#include "vault/partition.h"
#include "vault/record_store.h"
#include "vault/status.h"

namespace pinvault::vault {

// Certificate encodings: "PVC2" (written) carries the partition and the term; "PVC1" (the
// single-tree layout, read only) is partition 0 of 1, term 0.
inline constexpr size_t kCertificateSize = 4 + 2 + 2 + 8 + 1 + 8 + 32 + 32 + 32;
inline constexpr size_t kCertificateSizeV1 = 4 + 1 + 8 + 32 + 32 + 32;

// Certificate is the authenticated state of one partition of the record store at one epoch.
// The partition is part of what the HSM MACs, so one partition's certificate cannot stand in
// for another's; `term` is the lease term of the node that committed it (0 on one node).
struct Certificate {
  uint8_t bucket_bits = 0;
  uint64_t epoch = 0;
  Digest root{};       // Merkle root hash at `epoch`
  Digest prev_root{};  // root hash at epoch - 1 (zeros at epoch 0)
  PartitionId partition;
  uint64_t term = 0;
  friend bool operator==(const Certificate&, const Certificate&) = default;
};

// IssueCertificate encodes `cert` and MACs it with the HSM anchor key. Errors are the Hsm's.
StatusOr<Bytes> IssueCertificate(Hsm& hsm, const Certificate& cert);

// VerifyCertificate checks the encoding and MAC of `bytes` and decodes it. DATA_LOSS if
// malformed or the MAC fails; UNAVAILABLE if the HSM is gone.
StatusOr<Certificate> VerifyCertificate(Hsm& hsm, ByteView bytes);

// ServingState is what the core serves from after a successful check.
struct ServingState {
  Certificate certificate;
  Bytes certificate_bytes;
  MerkleTree tree;
  bool rolled_forward = false;  // an interrupted commit was finished at start-up
  bool created = false;         // a fresh realm was initialised
};

// LoadAndCheck runs the start-up check: it loads the HSM anchor and the store's head and
// frontier nodes, verifies both certificates and that the nodes hash to the anchored root,
// initialises a fresh realm (empty storage and no anchor; frontier depth
// `genesis_bucket_bits`), and rolls an interrupted commit forward as described above.
// Errors: FAILED_PRECONDITION with both epochs named when storage does not match the anchor
// (permanent until an operator acts), UNAVAILABLE when the HSM or storage cannot be reached
// (retry later), others as reported by the Hsm or store.
// Each partition (vault/partition.h) is checked on its own, against its own anchor
// (Hsm::LoadAnchor(index)) and head (RecordStore::ReadTree(index)); a certificate of another
// partition or partition count is refused (FAILED_PRECONDITION naming the count the realm was
// created with), and a fresh partition is not created beside an anchored partition 0 of
// another count. Anchors it writes (genesis, roll-forward) are stored under lease `term`.
StatusOr<ServingState> LoadAndCheck(Hsm& hsm, RecordStore& store, PartitionId partition,
                                    int genesis_bucket_bits, uint64_t term = 0);

// AnchoredPartitionCount returns the partition count that partition 0's anchor records (1
// for an anchor of the single-tree layout), or nullopt if the HSM holds no anchor for it
// (a new realm). DATA_LOSS if the anchor fails authentication; the Hsm's errors otherwise.
StatusOr<std::optional<uint32_t>> AnchoredPartitionCount(Hsm& hsm);

}  // namespace pinvault::vault

#endif  // PINVAULT_VAULT_ANCHOR_H_
