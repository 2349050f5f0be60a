#include "tests/testing/software_hsm.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <sodium.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string_view>
#include <utility>
#include <vector>

namespace pinvault::testing {
namespace {

using vault::MacKeyRole;
using vault::MacTag;
using vault::SealedBlob;

constexpr size_t kTagSize = 16;

struct CipherCtxDeleter {
  void operator()(EVP_CIPHER_CTX* ctx) const { EVP_CIPHER_CTX_free(ctx); }
};
using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, CipherCtxDeleter>;

// DeriveKey returns BLAKE2b-256(key = seed, label ‖ be4(index)).
std::array<uint8_t, 32> DeriveKey(const SoftwareHsm::Seed& seed, std::string_view label,
                                  uint32_t index) {
  std::vector<uint8_t> input(label.begin(), label.end());
  for (int i = 3; i >= 0; --i) input.push_back(static_cast<uint8_t>(index >> (8 * i)));
  std::array<uint8_t, 32> key;
  crypto_generichash(key.data(), key.size(), input.data(), input.size(), seed.data(), seed.size());
  return key;
}

SoftwareHsm::Seed RandomSeed() {
  if (sodium_init() < 0) std::abort();
  SoftwareHsm::Seed seed;
  randombytes_buf(seed.data(), seed.size());
  return seed;
}

Status ErrnoError(std::string_view what) {
  return UnavailableError(std::string(what) + ": " + std::strerror(errno));
}

// WriteFileAtomically replaces `path` with `data`: temp file, fsync, rename, fsync dir.
Status WriteFileAtomically(const std::string& path, ByteView data) {
  std::string temp = path + ".tmp";
  int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return ErrnoError("open anchor temp file");
  size_t written = 0;
  while (written < data.size()) {
    ssize_t n = ::write(fd, data.data() + written, data.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ::close(fd);
      return ErrnoError("write anchor");
    }
    written += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) {
    ::close(fd);
    return ErrnoError("fsync anchor");
  }
  ::close(fd);
  if (::rename(temp.c_str(), path.c_str()) != 0) return ErrnoError("rename anchor");
  std::filesystem::path dir = std::filesystem::path(path).parent_path();
  if (dir.empty()) dir = std::filesystem::path(".");
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return OkStatus();
}

StatusOr<std::optional<Bytes>> ReadFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return std::optional<Bytes>();
    return ErrnoError("open anchor");
  }
  Bytes out;
  uint8_t buf[4096];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      ::close(fd);
      return ErrnoError("read anchor");
    }
    if (n == 0) break;
    out.insert(out.end(), buf, buf + n);
  }
  ::close(fd);
  return std::optional<Bytes>(std::move(out));
}

}  // namespace

SoftwareHsm::SoftwareHsm(std::optional<Seed> seed, std::string anchor_path)
    : seed_(seed ? *seed : RandomSeed()), anchor_path_(std::move(anchor_path)) {
  if (sodium_init() < 0) std::abort();
  record_id_key_ = DeriveKey(seed_, "record-id", 0);
  anchor_key_ = DeriveKey(seed_, "anchor", 0);
  std::array<uint8_t, 32> signing_seed = DeriveKey(seed_, "audit-signing", 0);
  crypto_sign_seed_keypair(signing_public_key_.data(), signing_secret_key_.data(),
                           signing_seed.data());
  sealing_keys_[1] = DeriveKey(seed_, "sealing", 1);
}

Status SoftwareHsm::CheckAvailable(Operation op) {
  calls_[static_cast<size_t>(op)].fetch_add(1);
  std::lock_guard lock(mu_);
  if (calls_before_failure_ == 0) unavailable_ = true;
  if (calls_before_failure_ > 0) --calls_before_failure_;
  if (unavailable_ || op_unavailable_[static_cast<size_t>(op)]) {
    return UnavailableError("software HSM switched off");
  }
  return OkStatus();
}

uint32_t SoftwareHsm::CurrentSealingKeyId() const {
  std::lock_guard lock(mu_);
  return current_key_id_;
}

StatusOr<SealedBlob> SoftwareHsm::Seal(uint32_t key_id, std::span<const uint8_t> plaintext,
                                       ByteView associated_data) {
  RETURN_IF_ERROR(CheckAvailable(Operation::kSeal));
  std::array<uint8_t, 32> key;
  {
    std::lock_guard lock(mu_);
    auto it = sealing_keys_.find(key_id);
    if (it == sealing_keys_.end()) return NotFoundError("no sealing key " + std::to_string(key_id));
    key = it->second;
  }
  SealedBlob blob;
  blob.key_id = key_id;
  if (RAND_bytes(blob.iv.data(), static_cast<int>(blob.iv.size())) != 1) {
    return InternalError("RAND_bytes failed");
  }
  blob.ciphertext.resize(plaintext.size() + kTagSize);
  CipherCtx ctx(EVP_CIPHER_CTX_new());
  int len = 0;
  int total = 0;
  bool ok = ctx && EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key.data(),
                                      blob.iv.data()) == 1;
  ok = ok && EVP_EncryptUpdate(ctx.get(), nullptr, &len, associated_data.data(),
                               static_cast<int>(associated_data.size())) == 1;
  ok = ok && EVP_EncryptUpdate(ctx.get(), blob.ciphertext.data(), &len, plaintext.data(),
                               static_cast<int>(plaintext.size())) == 1;
  total = len;
  ok = ok && EVP_EncryptFinal_ex(ctx.get(), blob.ciphertext.data() + total, &len) == 1;
  total += len;
  ok = ok && static_cast<size_t>(total) == plaintext.size() &&
       EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kTagSize,
                           blob.ciphertext.data() + plaintext.size()) == 1;
  OPENSSL_cleanse(key.data(), key.size());
  if (!ok) return InternalError("AES-GCM encryption failed");
  return blob;
}

StatusOr<SecretBytes> SoftwareHsm::Unseal(const SealedBlob& blob, ByteView associated_data) {
  RETURN_IF_ERROR(CheckAvailable(Operation::kUnseal));
  if (blob.ciphertext.size() < kTagSize) return DataLossError("sealed blob too short");
  std::array<uint8_t, 32> key;
  {
    std::lock_guard lock(mu_);
    auto it = sealing_keys_.find(blob.key_id);
    if (it == sealing_keys_.end()) {
      return NotFoundError("no sealing key " + std::to_string(blob.key_id));
    }
    key = it->second;
  }
  size_t size = blob.ciphertext.size() - kTagSize;
  SecretBytes out(size);
  std::array<uint8_t, kTagSize> tag;
  std::memcpy(tag.data(), blob.ciphertext.data() + size, kTagSize);
  CipherCtx ctx(EVP_CIPHER_CTX_new());
  int len = 0;
  bool ok = ctx && EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key.data(),
                                      blob.iv.data()) == 1;
  ok = ok && EVP_DecryptUpdate(ctx.get(), nullptr, &len, associated_data.data(),
                               static_cast<int>(associated_data.size())) == 1;
  ok = ok && EVP_DecryptUpdate(ctx.get(), out.RevealMutable().data(), &len, blob.ciphertext.data(),
                               static_cast<int>(size)) == 1;
  ok = ok && EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kTagSize, tag.data()) == 1;
  int final_len = 0;
  bool authentic =
      ok && EVP_DecryptFinal_ex(ctx.get(), out.RevealMutable().data() + len, &final_len) == 1;
  OPENSSL_cleanse(key.data(), key.size());
  if (!ok) return InternalError("AES-GCM decryption failed");
  if (!authentic) return DataLossError("sealed blob failed authentication");
  return out;
}

MacTag SoftwareHsm::HmacSha256(const std::array<uint8_t, 32>& key, ByteView data) const {
  MacTag tag{};
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), data.data(), data.size(), tag.data(),
       &len);
  return tag;
}

StatusOr<MacTag> SoftwareHsm::Mac(MacKeyRole role, ByteView data) {
  RETURN_IF_ERROR(CheckAvailable(Operation::kMac));
  return HmacSha256(role == MacKeyRole::kRecordId ? record_id_key_ : anchor_key_, data);
}

Status SoftwareHsm::VerifyMac(MacKeyRole role, ByteView data, ByteView tag) {
  RETURN_IF_ERROR(CheckAvailable(Operation::kVerifyMac));
  MacTag expected = HmacSha256(role == MacKeyRole::kRecordId ? record_id_key_ : anchor_key_, data);
  if (tag.size() != expected.size() ||
      CRYPTO_memcmp(tag.data(), expected.data(), expected.size()) != 0) {
    return DataLossError("MAC verification failed");
  }
  return OkStatus();
}

StatusOr<Bytes> SoftwareHsm::Sign(ByteView message) {
  RETURN_IF_ERROR(CheckAvailable(Operation::kSign));
  Bytes signature(crypto_sign_BYTES);
  crypto_sign_detached(signature.data(), nullptr, message.data(), message.size(),
                       signing_secret_key_.data());
  return signature;
}

StatusOr<vault::SigningPublicKey> SoftwareHsm::AuditPublicKey() {
  RETURN_IF_ERROR(CheckAvailable(Operation::kAuditPublicKey));
  vault::SigningPublicKey key;
  key.algorithm = vault::SignatureAlgorithm::kEd25519;
  key.key.assign(signing_public_key_.begin(), signing_public_key_.end());
  return key;
}

Status SoftwareHsm::GenerateRandom(std::span<uint8_t> out) {
  RETURN_IF_ERROR(CheckAvailable(Operation::kGenerateRandom));
  randombytes_buf(out.data(), out.size());
  return OkStatus();
}

std::string SoftwareHsm::AnchorPath(uint32_t partition, uint64_t term) const {
  std::string path = partition == 0 ? anchor_path_ : anchor_path_ + ".p" + std::to_string(partition);
  return term == 0 ? path : path + ".t" + std::to_string(term);
}

StatusOr<uint64_t> SoftwareHsm::HighestFileTerm(uint32_t partition) const {
  // Terms above 0 live in files "<partition path>.t<term>".
  const std::filesystem::path base(AnchorPath(partition, 0));
  const std::string prefix = base.filename().string() + ".t";
  uint64_t highest = 0;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(base.parent_path(), ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind(prefix, 0) != 0) continue;
    const std::string digits = name.substr(prefix.size());
    if (digits.empty() || digits.find_first_not_of("0123456789") != std::string::npos) continue;
    highest = std::max<uint64_t>(highest, std::stoull(digits));
  }
  if (ec) return UnavailableError("cannot list the anchor folder: " + ec.message());
  return highest;
}

StatusOr<std::optional<Bytes>> SoftwareHsm::LoadAnchor(uint32_t partition) {
  RETURN_IF_ERROR(CheckAvailable(Operation::kLoadAnchor));
  if (anchor_path_.empty()) {
    std::lock_guard lock(mu_);
    auto it = anchors_.find(partition);
    if (it == anchors_.end() || it->second.empty()) return std::optional<Bytes>();
    return std::optional<Bytes>(it->second.rbegin()->second);  // the highest term
  }
  ASSIGN_OR_RETURN(uint64_t term, HighestFileTerm(partition));
  return ReadFile(AnchorPath(partition, term));
}

Status SoftwareHsm::StoreAnchor(uint32_t partition, uint64_t term, ByteView anchor) {
  RETURN_IF_ERROR(CheckAvailable(Operation::kStoreAnchor));
  auto newer = [&](uint64_t highest) {
    return FailedPreconditionError("the anchor of partition " + std::to_string(partition) +
                                   " is held under term " + std::to_string(highest) +
                                   ", newer than this writer's term " + std::to_string(term));
  };
  if (anchor_path_.empty()) {
    std::lock_guard lock(mu_);
    std::map<uint64_t, Bytes>& terms = anchors_[partition];
    if (!terms.empty() && terms.rbegin()->first > term) return newer(terms.rbegin()->first);
    terms[term] = Bytes(anchor.begin(), anchor.end());
    terms.erase(terms.begin(), terms.find(term));  // older terms are pruned
    return OkStatus();
  }
  ASSIGN_OR_RETURN(uint64_t highest, HighestFileTerm(partition));
  if (highest > term) return newer(highest);
  RETURN_IF_ERROR(WriteFileAtomically(AnchorPath(partition, term), anchor));
  if (highest < term && highest > 0) ::unlink(AnchorPath(partition, highest).c_str());
  return OkStatus();
}

void SoftwareHsm::AddSealingKey(uint32_t key_id) {
  std::lock_guard lock(mu_);
  sealing_keys_[key_id] = DeriveKey(seed_, "sealing", key_id);
}

void SoftwareHsm::RotateTo(uint32_t key_id) {
  std::lock_guard lock(mu_);
  sealing_keys_[key_id] = DeriveKey(seed_, "sealing", key_id);
  current_key_id_ = key_id;
}

void SoftwareHsm::RemoveSealingKey(uint32_t key_id) {
  std::lock_guard lock(mu_);
  sealing_keys_.erase(key_id);
}

void SoftwareHsm::SetUnavailable(bool unavailable) {
  std::lock_guard lock(mu_);
  unavailable_ = unavailable;
  if (!unavailable) calls_before_failure_ = -1;
}

void SoftwareHsm::SetOperationUnavailable(Operation op, bool unavailable) {
  std::lock_guard lock(mu_);
  op_unavailable_[static_cast<size_t>(op)] = unavailable;
}

void SoftwareHsm::FailAfterCalls(int64_t calls) {
  std::lock_guard lock(mu_);
  calls_before_failure_ = calls;
}

uint64_t SoftwareHsm::CallCount(Operation op) const {
  return calls_[static_cast<size_t>(op)].load();
}

void SoftwareHsm::WipeAnchor() {
  std::lock_guard lock(mu_);
  anchors_.clear();
  if (anchor_path_.empty()) return;
  // Every partition's file, also those another process (a crash-test child) wrote.
  const std::filesystem::path path(anchor_path_);
  const std::string name = path.filename().string();
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(path.parent_path(), ec)) {
    const std::string other = entry.path().filename().string();
    if (other == name || other.rfind(name + ".p", 0) == 0 || other.rfind(name + ".t", 0) == 0) {
      ::unlink(entry.path().c_str());
    }
  }
}

}  // namespace pinvault::testing
