#!/usr/bin/env bash
# planted_include_test.sh — shows that check_includes.sh fails on a bad include: copies the
# source folders to a scratch tree, plants one violation of each kind in turn, and expects
# the checker to pass on the clean copy and to fail, naming the file, on every planted one.
# Usage: planted_include_test.sh ROOT
set -euo pipefail
root=$(cd "${1:?usage: planted_include_test.sh ROOT}" && pwd)
checker=$root/tests/layering/check_includes.sh
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
failures=0

fresh_copy() {
  rm -rf "$scratch/tree"
  mkdir -p "$scratch/tree"
  cp -r "$root/vault" "$root/pkcs11" "$root/backup" "$root/api" "$scratch/tree/"
}

fresh_copy
if ! out=$(bash "$checker" "$scratch/tree"); then
  echo "FAIL  the clean tree is refused:"; echo "$out"; failures=$((failures + 1))
else
  echo "PASS  the clean tree passes"
fi

# expect_refused FILE INCLUDE: plants INCLUDE at the top of FILE and expects a refusal naming FILE.
expect_refused() {
  fresh_copy
  sed -i "1i $2" "$scratch/tree/$1"
  if out=$(bash "$checker" "$scratch/tree"); then
    echo "FAIL  $2 in $1 was not refused"; failures=$((failures + 1))
  elif [[ $out != *"$1"* ]]; then
    echo "FAIL  the refusal of $2 does not name $1: $out"; failures=$((failures + 1))
  else
    echo "PASS  $2 in $1 is refused"
  fi
}

expect_refused vault/realm.cc '#include "api/server/server.h"'
expect_refused vault/realm.cc '#include "pkcs11/hsm_keys.h"'
expect_refused vault/realm.cc '#include "backup/store/sqlite_record_store.h"'
expect_refused vault/realm.cc '#include <sqlite3.h>'
expect_refused vault/merkle.cc '#include <openssl/evp.h>'
expect_refused vault/protocol/oprf.cc '#include <boost/asio.hpp>'
expect_refused pkcs11/session_pool.cc '#include "backup/store/sqlite_record_store.h"'
expect_refused pkcs11/session_pool.cc '#include <p11-kit/pkcs11.h>'
expect_refused backup/client/client.cc '#include "api/server/server.h"'
expect_refused backup/client/client.cc '#include "backup/store/sqlite_record_store.h"'
expect_refused backup/store/sqlite_record_store.cc '#include "pkcs11/module.h"'
expect_refused api/server/routes.h '#include <boost/beast/http.hpp>'
expect_refused api/server/routes.cc '#include "tests/testing/software_hsm.h"'

if ((failures > 0)); then
  echo "planted_include_test: $failures check(s) failed"
  exit 1
fi
echo "planted_include_test: the checker refuses every planted include"
