#include "vault/record.h"

#include <string>
#include <utility>

#include "vault/byte_cursor.h"
#include "vault/hash.h"

namespace pinvault::vault {
namespace {

constexpr uint8_t kRecordFormat = 1;
constexpr std::string_view kAssociatedDataLabel = "pinvault-record-v1";
constexpr std::string_view kRecordHashLabel = "pinvault-record-hash-v1";
constexpr size_t kHeaderSize = 1 + 1 + 8;  // format, state, version

bool IsZero(ByteView bytes) {
  uint8_t acc = 0;
  for (uint8_t b : bytes) acc |= b;
  return acc == 0;
}

}  // namespace

Record CloneRecord(const Record& record) {
  Record copy;
  copy.id = record.id;
  copy.version = record.version;
  copy.state = record.state;
  copy.guess_count = record.guess_count;
  if (record.registration) {
    const Registration& r = *record.registration;
    Registration c;
    c.version = r.version;
    c.oprf_private_key = r.oprf_private_key.Clone();
    c.oprf_signed_public_key = r.oprf_signed_public_key;
    c.unlock_key_commitment = r.unlock_key_commitment;
    c.unlock_key_tag = r.unlock_key_tag;
    c.encryption_key_scalar_share = r.encryption_key_scalar_share.Clone();
    c.encrypted_secret = r.encrypted_secret;
    c.encrypted_secret_commitment = r.encrypted_secret_commitment;
    c.num_guesses = r.num_guesses;
    copy.registration = std::move(c);
  }
  return copy;
}

StatusOr<RecordId> ComputeRecordId(Hsm& hsm, std::string_view tenant, std::string_view user) {
  if (tenant.size() > UINT32_MAX || user.size() > UINT32_MAX) {
    return InvalidArgumentError("tenant or user name too long");
  }
  Bytes input;
  input.reserve(8 + tenant.size() + user.size());
  AppendU32(input, static_cast<uint32_t>(tenant.size()));
  Append(input, AsBytes(tenant));
  AppendU32(input, static_cast<uint32_t>(user.size()));
  Append(input, AsBytes(user));
  ASSIGN_OR_RETURN(MacTag tag, hsm.Mac(MacKeyRole::kRecordId, input));
  RecordId id;
  static_assert(sizeof(id) == sizeof(tag));
  std::copy(tag.begin(), tag.end(), id.begin());
  return id;
}

StatusOr<SecretBytes> SerializeRecord(const Record& record) {
  bool registered = record.state == RecordState::kRegistered;
  if (registered != record.registration.has_value()) {
    return InvalidArgumentError("record registration does not match its state");
  }
  SecretBytes out(kRecordPlaintextSize);  // zero-filled: padding and unused fields stay 0
  ByteWriter w(out.RevealMutable());
  w.U8(kRecordFormat);
  w.U8(static_cast<uint8_t>(record.state));
  w.U64(record.version);
  if (registered) {
    const Registration& reg = *record.registration;
    if (reg.oprf_private_key.size() != protocol::kScalarSize ||
        reg.encryption_key_scalar_share.size() != protocol::kScalarSize) {
      return InvalidArgumentError("registration scalars must be 32 bytes");
    }
    w.U16(record.guess_count);
    w.U16(reg.num_guesses);
    w.Put(reg.version);
    w.Put(reg.oprf_private_key.Reveal());
    w.Put(reg.oprf_signed_public_key.public_key);
    w.Put(reg.oprf_signed_public_key.verifying_key);
    w.Put(reg.oprf_signed_public_key.signature);
    w.Put(reg.unlock_key_commitment);
    w.Put(reg.unlock_key_tag);
    w.Put(reg.encryption_key_scalar_share.Reveal());
    w.Put(reg.encrypted_secret);
    w.Put(reg.encrypted_secret_commitment);
  }
  if (!w.ok()) return InternalError("record layout exceeds the padded size");
  return out;
}

StatusOr<Record> ParseRecord(const SecretBytes& plaintext, const RecordId& id,
                             uint64_t expected_version) {
  if (plaintext.size() != kRecordPlaintextSize) return DataLossError("record has the wrong size");
  ByteReader r(plaintext.Reveal());
  if (r.U8() != kRecordFormat) return DataLossError("record has an unknown format");
  uint8_t state = r.U8();
  Record record;
  record.id = id;
  record.version = r.U64();
  if (record.version != expected_version) {
    return DataLossError("record version does not match its row");
  }
  switch (state) {
    case static_cast<uint8_t>(RecordState::kAbsent):
    case static_cast<uint8_t>(RecordState::kNoGuesses):
      record.state = static_cast<RecordState>(state);
      if (!IsZero(r.Rest())) return DataLossError("record has non-zero padding");
      return record;
    case static_cast<uint8_t>(RecordState::kRegistered):
      break;
    default:
      return DataLossError("record has an unknown state");
  }
  record.state = RecordState::kRegistered;
  Registration reg;
  record.guess_count = r.U16();
  reg.num_guesses = r.U16();
  r.ReadInto(reg.version);
  reg.oprf_private_key = SecretBytes::CopyFrom(r.Take(protocol::kScalarSize));
  r.ReadInto(reg.oprf_signed_public_key.public_key);
  r.ReadInto(reg.oprf_signed_public_key.verifying_key);
  r.ReadInto(reg.oprf_signed_public_key.signature);
  r.ReadInto(reg.unlock_key_commitment);
  r.ReadInto(reg.unlock_key_tag);
  reg.encryption_key_scalar_share = SecretBytes::CopyFrom(r.Take(protocol::kScalarSize));
  r.ReadInto(reg.encrypted_secret);
  r.ReadInto(reg.encrypted_secret_commitment);
  if (!r.ok() || !IsZero(r.Rest())) return DataLossError("record is malformed");
  if (record.guess_count > reg.num_guesses) {
    return DataLossError("record guess count exceeds its limit");
  }
  record.registration = std::move(reg);
  static_assert(kHeaderSize + 2 + 2 + 16 + 32 + 32 + 32 + 64 + 32 + 16 + 32 + 145 + 16 <=
                kRecordPlaintextSize);
  return record;
}

Bytes RecordAssociatedData(const RecordId& id, uint64_t version, uint32_t key_id) {
  Bytes ad;
  ad.reserve(kAssociatedDataLabel.size() + id.size() + 12);
  Append(ad, AsBytes(kAssociatedDataLabel));
  Append(ad, id);
  AppendU64(ad, version);
  AppendU32(ad, key_id);
  return ad;
}

Bytes EncodeSealedBlob(const SealedBlob& blob) {
  Bytes out;
  out.reserve(4 + blob.iv.size() + blob.ciphertext.size());
  AppendU32(out, blob.key_id);
  Append(out, blob.iv);
  Append(out, blob.ciphertext);
  return out;
}

StatusOr<SealedBlob> DecodeSealedBlob(ByteView bytes) {
  if (bytes.size() != kSealedRecordSize) return DataLossError("sealed record has the wrong size");
  ByteReader r(bytes);
  SealedBlob blob;
  blob.key_id = r.U32();
  r.ReadInto(blob.iv);
  ByteView rest = r.Rest();
  blob.ciphertext.assign(rest.begin(), rest.end());
  if (!r.AtEnd()) return DataLossError("sealed record is malformed");
  return blob;
}

Digest RecordHash(uint64_t version, ByteView sealed) {
  Bytes v;
  AppendU64(v, version);
  return Blake2b256({AsBytes(kRecordHashLabel), v, sealed});
}

StatusOr<StoredRecord> SealRecord(Hsm& hsm, const Record& record) {
  if (record.version == 0) return InvalidArgumentError("record version must be >= 1");
  ASSIGN_OR_RETURN(SecretBytes plaintext, SerializeRecord(record));
  uint32_t key_id = hsm.CurrentSealingKeyId();
  ASSIGN_OR_RETURN(SealedBlob blob,
                   hsm.Seal(key_id, plaintext.Reveal(),
                            RecordAssociatedData(record.id, record.version, key_id)));
  if (blob.key_id != key_id || blob.ciphertext.size() != kRecordPlaintextSize + 16) {
    return InternalError("HSM returned a sealed record of unexpected shape");
  }
  StoredRecord stored;
  stored.id = record.id;
  stored.version = record.version;
  stored.sealed = EncodeSealedBlob(blob);
  stored.record_hash = RecordHash(stored.version, stored.sealed);
  return stored;
}

StatusOr<Record> UnsealRecord(Hsm& hsm, const StoredRecord& stored) {
  ASSIGN_OR_RETURN(SealedBlob blob, DecodeSealedBlob(stored.sealed));
  StatusOr<SecretBytes> plaintext =
      hsm.Unseal(blob, RecordAssociatedData(stored.id, stored.version, blob.key_id));
  if (!plaintext.ok()) {
    if (plaintext.status().code() == StatusCode::kNotFound) {
      return DataLossError("record names unknown sealing key " + std::to_string(blob.key_id));
    }
    return plaintext.status();
  }
  return ParseRecord(*plaintext, stored.id, stored.version);
}

StatusOr<uint32_t> SealedKeyId(const StoredRecord& stored) {
  ASSIGN_OR_RETURN(SealedBlob blob, DecodeSealedBlob(stored.sealed));
  return blob.key_id;
}

}  // namespace pinvault::vault
