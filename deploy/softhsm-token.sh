#!/usr/bin/env bash
# softhsm-token.sh — creates a SoftHSM2 token for pinvault under a directory, once.
#
# Usage: bash deploy/softhsm-token.sh DIR [LABEL]        (LABEL defaults to pinvault-realm)
#
# Writes DIR/softhsm2.conf (token files in DIR/tokens), and DIR/so-pin and DIR/user-pin with
# random PINs (mode 600) unless they already exist, then initialises a token labelled LABEL
# unless one with that label is already there. Running it again changes nothing.
# Prints the PKCS#11 URI of the token (PIN by file, never on the command line of pinvault) and
# the SOFTHSM2_CONF value to export.
#
# softhsm2-util takes PINs only as arguments or from a terminal, so during `--init-token` the
# PINs are briefly visible in the process list of this machine; run it where that is acceptable
# (a fresh host, as root), or initialise the token by other means.
set -euo pipefail

if [[ $# -lt 1 || $# -gt 2 ]]; then
  echo "usage: $0 DIR [LABEL]" >&2
  exit 2
fi
label=${2:-pinvault-realm}
if [[ ! $label =~ ^[A-Za-z0-9._-]{1,32}$ ]]; then
  echo "softhsm-token: label must be 1-32 characters of A-Z a-z 0-9 . _ -" >&2
  exit 2
fi
command -v softhsm2-util >/dev/null || { echo "softhsm-token: softhsm2-util not found (apt-get install softhsm2)" >&2; exit 1; }

umask 077
mkdir -p "$1/tokens"
dir=$(cd "$1" && pwd)
chmod 700 "$dir" "$dir/tokens"

conf=$dir/softhsm2.conf
if [[ ! -f $conf ]]; then
  cat >"$conf.tmp" <<CONF
# SoftHSM2 configuration for pinvault (written by deploy/softhsm-token.sh)
directories.tokendir = $dir/tokens
objectstore.backend = file
log.level = ERROR
slots.removable = false
slots.mechanisms = ALL
CONF
  mv "$conf.tmp" "$conf"
fi

# new_pin FILE: 32 random hex digits, written atomically, unless FILE already holds a PIN.
new_pin() {
  local file=$1
  if [[ ! -s $file ]]; then
    od -An -tx1 -N16 /dev/urandom | tr -d ' \n' >"$file.tmp"
    mv "$file.tmp" "$file"
  fi
  chmod 600 "$file"
}
new_pin "$dir/so-pin"
new_pin "$dir/user-pin"

export SOFTHSM2_CONF=$conf
if softhsm2-util --show-slots 2>/dev/null |
    awk -v want="$label" '/^[[:space:]]*Label:/ { sub(/^[[:space:]]*Label:[[:space:]]*/, ""); sub(/[[:space:]]+$/, ""); if ($0 == want) found = 1 } END { exit !found }'; then
  echo "softhsm-token: token '$label' already exists in $dir/tokens" >&2
else
  softhsm2-util --init-token --free --label "$label" \
    --so-pin "$(cat "$dir/so-pin")" --pin "$(cat "$dir/user-pin")" >/dev/null
  echo "softhsm-token: initialised token '$label' in $dir/tokens" >&2
fi

echo "SOFTHSM2_CONF=$conf"
echo "PKCS11_URI=pkcs11:token=$label?pin-source=file:$dir/user-pin"
