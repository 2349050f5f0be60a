#!/usr/bin/env bash
# run.sh — brings up a pinvault realm on the embedded default: a SoftHSM2 token and an SQLite
# store under ./var, no other services.
#
# Installs what is missing, builds, and — only where absent — creates the SoftHSM2 token, the
# realm's keys on it (then audits them), a test tenant "demo" with an Ed25519 key, the realm id
# and the client configuration. Prints copy-paste `pinvault` commands, then runs pinvaultd in
# the foreground on 127.0.0.1:8080 (Ctrl-C or SIGTERM drains and stops it).
#
# Usage: bash deploy/run.sh        (from anywhere; works on a fresh Debian 12 machine as root)
# Environment: PINVAULT_BUILD_DIR (default ./build), PINVAULT_VAR_DIR (default ./var),
#              PINVAULT_LISTEN (default 127.0.0.1:8080).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

bash deploy/install-deps.sh
build=${PINVAULT_BUILD_DIR:-build}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" --target pinvaultd pinvault pinvault-admin -j"$(nproc)"
build=$(cd "$build" && pwd)
admin=$build/api/pinvault-admin

var=${PINVAULT_VAR_DIR:-$root/var}
mkdir -p "$var"
chmod 700 "$var"
var=$(cd "$var" && pwd)
listen=${PINVAULT_LISTEN:-127.0.0.1:8080}

# The token and the realm keys (hsm init never overwrites or duplicates a key).
label=pinvault-realm
bash deploy/softhsm-token.sh "$var/softhsm" "$label" >/dev/null
export SOFTHSM2_CONF=$var/softhsm/softhsm2.conf
uri="pkcs11:token=$label?pin-source=file:$var/softhsm/user-pin"
echo "== pinvault-admin hsm init"
"$admin" hsm init --token "$uri"
echo "== pinvault-admin hsm audit"
"$admin" hsm audit --token "$uri"

# A tenant for tests and demos; its key signs and checks the users' tokens.
keys=$var/tenant-keys.json
if [[ ! -f $keys ]] || ! grep -q '"demo"' "$keys"; then
  "$admin" tenant add demo --algorithm EdDSA --keys-file "$keys" >/dev/null
  echo "== created tenant 'demo' in $keys"
fi

# The realm id, chosen once.
if [[ ! -s $var/realm-id ]]; then
  od -An -tx1 -N16 /dev/urandom | tr -d ' \n' >"$var/realm-id.tmp"
  mv "$var/realm-id.tmp" "$var/realm-id"
fi
realm_id=$(cat "$var/realm-id")
cat >"$var/realms.json" <<JSON
{"realms": [{"id": "$realm_id", "address": "http://$listen/"}],
 "register_threshold": 1, "recover_threshold": 1, "pin_hashing_mode": "Standard2019"}
JSON

pv="$build/api/pinvault"
auth="--mint-tenant demo --mint-user alice --keys-file $keys"
cat <<EOF

pinvault realm $realm_id starting on http://$listen/ (data in $var/data).
In another terminal, register a secret under a PIN (you are asked for the PIN), then recover it:

  echo -n 'my secret key' | $pv register --config $var/realms.json $auth --guesses 5
  $pv recover --config $var/realms.json $auth
  $pv delete --config $var/realms.json $auth

Or walk through the whole story on a throw-away realm: $pv demo

EOF

export PINVAULT_REALM_ID=$realm_id PINVAULT_LISTEN=$listen PINVAULT_DATA_DIR=$var/data
export PINVAULT_TOKEN_URI=$uri PINVAULT_TENANT_KEYS_FILE=$keys
exec "$build/api/pinvaultd"
