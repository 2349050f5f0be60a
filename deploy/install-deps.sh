#!/usr/bin/env bash
# install-deps.sh — installs every Debian 12 package pinvault needs to build, test and run.
# Idempotent: when everything is present it only runs dpkg-query and exits.
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config git ca-certificates
  libsodium-dev libargon2-dev libssl-dev
  libcbor-dev nlohmann-json3-dev
  libsqlite3-dev sqlite3
  # The PostgreSQL store (libpqxx 6.4 over libpq) and the throwaway clusters its tests start
  # (initdb and pg_ctl from postgresql-15, psql; the postgres user from postgresql-common).
  libpqxx-dev libpq-dev postgresql-15 postgresql-client-15 postgresql-common
  libboost1.81-dev
  protobuf-compiler libprotobuf-dev
  googletest libgtest-dev libgmock-dev
  softhsm2 opensc libnss3 libnss3-dev libnss3-tools libp11-kit-dev
  nodejs npm
  # Tools the scripts call: curl (bench-realms.sh polls /readyz). od, awk and sed come with
  # Debian's essential set; perf (bench-realms.sh --profile only) is checked where it is used.
  curl
)

missing=()
for p in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
  case "$status" in
    ii*) ;;
    *) missing+=("$p") ;;
  esac
done

# Node.js may come from outside Debian's archive (a newer build); accept a working node/npm.
if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
  filtered=()
  for p in "${missing[@]}"; do
    [[ "$p" == nodejs || "$p" == npm ]] || filtered+=("$p")
  done
  missing=("${filtered[@]}")
fi

if ((${#missing[@]} == 0)); then
  echo "install-deps: all packages present"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
if [[ $(id -u) -ne 0 ]]; then SUDO=sudo; else SUDO=; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
