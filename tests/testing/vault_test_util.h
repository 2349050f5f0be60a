// Small helpers shared by the vault core and record-store tests.
#ifndef PINVAULT_TESTS_TESTING_VAULT_TEST_UTIL_H_
#define PINVAULT_TESTS_TESTING_VAULT_TEST_UTIL_H_

#include <string>

#include "vault/record_store.h"

namespace pinvault::testing {

// ScopedTempDir creates a fresh directory under $TMPDIR (or /tmp) and removes it, with
// everything inside, on destruction. Aborts the test binary if it cannot create one.
class ScopedTempDir {
 public:
  ScopedTempDir();
  ~ScopedTempDir();
  ScopedTempDir(const ScopedTempDir&) = delete;
  ScopedTempDir& operator=(const ScopedTempDir&) = delete;

  const std::string& path() const { return path_; }

  // File returns path()/name.
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// CopyFile copies `from` to `to` (replacing it); if `from` does not exist, removes `to`, so
// that copying a database's -wal file mirrors its absence too. False on I/O errors.
bool CopyFileOrAbsence(const std::string& from, const std::string& to);

// IdWithPrefix returns a record id whose first byte is `first`, second `second`, rest `fill`.
vault::RecordId IdWithPrefix(uint8_t first, uint8_t second, uint8_t fill);

}  // namespace pinvault::testing

#endif  // PINVAULT_TESTS_TESTING_VAULT_TEST_UTIL_H_
