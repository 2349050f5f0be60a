#!/usr/bin/env bash
# run.sh — the "run" entry point until the realm server exists: installs dependencies, builds
# pinvault-admin, creates a local SoftHSM2 token under ./var/softhsm (once), creates the realm's
# key set on it and audits it.
#
# Usage: bash deploy/run.sh        (from anywhere; works on a fresh Debian 12 machine as root)
# Environment: PINVAULT_BUILD_DIR (default ./build), PINVAULT_VAR_DIR (default ./var).
# Exits non-zero if any step fails, including an audit with violations.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

bash deploy/install-deps.sh
build=${PINVAULT_BUILD_DIR:-build}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" --target pinvault-admin -j"$(nproc)"

var=${PINVAULT_VAR_DIR:-$root/var}
token_dir=$var/softhsm
label=pinvault-realm
bash deploy/softhsm-token.sh "$token_dir" "$label" >/dev/null
token_dir=$(cd "$token_dir" && pwd)
export SOFTHSM2_CONF=$token_dir/softhsm2.conf
uri="pkcs11:token=$label?pin-source=file:$token_dir/user-pin"
admin=$build/api/pinvault-admin

echo "== pinvault-admin hsm init"
"$admin" hsm init --token "$uri"
echo
echo "== pinvault-admin hsm audit"
"$admin" hsm audit --token "$uri"
echo
echo "Token ready. To use it:"
echo "  export SOFTHSM2_CONF=$SOFTHSM2_CONF"
echo "  $admin hsm status --token '$uri'"
