#!/usr/bin/env bash
# Install what the build and the test tiers need on Debian 12, as root, non-interactively.
# Idempotent: prints one line per install action and nothing when everything is present.
# It never stops, disables or reconfigures system services (apt may start redis/nginx/janus on
# install; the tests and benchmarks run private instances on their own ports: bench/media runs its
# own janus in a private network namespace, so a janus.service on 8088/8188 changes nothing).
set -euo pipefail

cd "$(dirname "$0")/.."

APT_PKGS=(
    build-essential pkg-config
    clang libclang-rt-14-dev clang-format
    libuv1-dev libsqlite3-dev libssl-dev libjansson-dev libhiredis-dev libmariadb-dev libosip2-dev
    liburing-dev
    libglib2.0-dev libsoup-3.0-dev libxml2-dev libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev
    libgstreamer-plugins-bad1.0-dev gstreamer1.0-plugins-base gstreamer1.0-plugins-good
    gstreamer1.0-plugins-bad gstreamer1.0-nice gstreamer1.0-tools gstreamer1.0-plugins-base-apps
    openssl curl ca-certificates
    mariadb-client php-cli php-mysql python3 python3-pymysql
    redis-server nginx-light libnginx-mod-nchan
    janus
    chromium
)

installed() {
    local st
    st=$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) || return 1
    [[ $st == "install ok installed" ]]
}

missing=()
for p in "${APT_PKGS[@]}"; do
    installed "$p" || missing+=("$p")
done
# node may come from another distribution channel (e.g. a nodejs build that bundles npm), so
# decide on the commands, not on Debian's package names.
if ! command -v node >/dev/null 2>&1; then
    installed nodejs || missing+=(nodejs)
    installed npm || missing+=(npm)
elif ! command -v npm >/dev/null 2>&1; then
    missing+=(npm)
fi

if ((${#missing[@]})); then
    if [[ $(id -u) -ne 0 ]]; then
        echo "deps: missing packages: ${missing[*]} (run as root to install them)" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    echo "deps: apt-get update"
    apt-get update -qq >/dev/null
    echo "deps: apt-get install ${missing[*]}"
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# npm: install node_modules from the committed lock file when it is missing or stale.
if [[ -f package-lock.json ]]; then
    marker=node_modules/.package-lock.json
    if [[ ! -f $marker || $marker -ot package-lock.json ]]; then
        echo "deps: npm ci"
        npm ci --no-audit --no-fund --loglevel=error >/dev/null
    fi
fi
