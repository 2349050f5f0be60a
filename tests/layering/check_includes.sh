#!/usr/bin/env bash
# check_includes.sh — fails when a source file includes across the layering of DESIGN.md
# section 6. Usage: check_includes.sh ROOT   (ROOT: a tree with vault/, pkcs11/, backup/, api/)
#
# Rules, per folder (quoted includes are project headers, named from the root; angle includes
# are system and library headers):
#   vault/           "vault/…" only; <standard headers>, <sodium.h>
#   vault/protocol/  as vault/, plus <argon2.h> and <openssl/…>
#   pkcs11/          "pkcs11/…", "vault/…"; standard and POSIX headers; the PKCS#11 header
#                    (<p11-kit/pkcs11.h>) in pkcs11/cryptoki.h only
#   backup/client/   "backup/client/…", "vault/…"; standard headers, <nlohmann/…>
#   backup/store/    "backup/store/…", "vault/…"; standard and POSIX headers, <sqlite3.h>,
#                    <pqxx/…>, <libpq-fe.h>
#   api/             anything above and api/; no Boost or protobuf header in an api/ header
#                    (build times: they stay in .cc files)
#   no source file   includes "tests/…"
# Exit status: 0 when every include follows the rules, 1 with one line per violation.
set -euo pipefail
root=$(cd "${1:?usage: check_includes.sh ROOT}" && pwd)
cd "$root"
violations=0

# report FILE LINE RULE
report() {
  echo "layering: $1: $2  ($3)"
  violations=$((violations + 1))
}

# is_standard NAME: a C++ standard header (<vector>) or a C/POSIX one (<unistd.h>, <sys/stat.h>).
is_standard() { [[ $1 =~ ^[a-z_0-9]+$ ]]; }
is_posix() { [[ $1 =~ ^(sys/)?[a-z_0-9]+\.h$ ]]; }

# check DIR DEPTH QUOTED_RE ANGLE_FN: every file directly in DIR (or below it, DEPTH "all").
check() {
  local dir=$1 depth=$2 quoted=$3 angle=$4 file line name
  [[ -d $dir ]] || return 0
  local find_args=("$dir" -type f \( -name '*.h' -o -name '*.cc' \))
  [[ $depth == top ]] && find_args=("$dir" -maxdepth 1 -type f \( -name '*.h' -o -name '*.cc' \))
  while IFS= read -r file; do
    while IFS= read -r line; do
      if [[ $line =~ ^[[:space:]]*#[[:space:]]*include[[:space:]]*\"([^\"]+)\" ]]; then
        name=${BASH_REMATCH[1]}
        [[ $name =~ $quoted ]] || report "$file" "$line" "$dir/ may include only ${quoted}"
      elif [[ $line =~ ^[[:space:]]*#[[:space:]]*include[[:space:]]*\<([^\>]+)\> ]]; then
        name=${BASH_REMATCH[1]}
        "$angle" "$file" "$name" || report "$file" "$line" "library header not allowed in $dir/"
      fi
    done <"$file"
  done < <(find "${find_args[@]}" | sort)
}

angle_vault() { is_standard "$2" || [[ $2 == sodium.h ]]; }
angle_protocol() { angle_vault "$@" || [[ $2 == argon2.h || $2 == openssl/* ]]; }
angle_pkcs11() {
  is_standard "$2" || is_posix "$2" && [[ $2 != *pkcs11* ]] && return 0
  [[ $2 == p11-kit/pkcs11.h && $1 == pkcs11/cryptoki.h ]]
}
angle_client() { is_standard "$2" || [[ $2 == nlohmann/* ]]; }
angle_store() {
  is_standard "$2" || is_posix "$2" || [[ $2 == sqlite3.h || $2 == pqxx/* || $2 == libpq-fe.h ]]
}
angle_api() {
  [[ $1 == *.h && ($2 == boost/* || $2 == google/protobuf/*) ]] && return 1
  return 0
}

check vault top '^vault/' angle_vault
check vault/protocol all '^vault/' angle_protocol
check pkcs11 all '^(pkcs11|vault)/' angle_pkcs11
check backup/client all '^(backup/client|vault)/' angle_client
check backup/store all '^(backup/store|vault)/' angle_store
check api all '^(api|backup|pkcs11|vault)/' angle_api

if ((violations > 0)); then
  echo "layering: $violations include(s) cross the layers of DESIGN.md section 6"
  exit 1
fi
echo "layering: every include follows DESIGN.md section 6"
