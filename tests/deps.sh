#!/usr/bin/env bash
# Install the Debian packages sluice builds and tests with, only those missing (idempotent).
set -euo pipefail
PKGS=(
  build-essential clang libclang-rt-14-dev pkg-config
  libevent-dev librdkafka-dev librabbitmq-dev libpaho-mqtt-dev libwebsockets-dev
  libcmocka-dev libssl-dev libyaml-dev libjansson-dev libsystemd-dev libisal-dev
  zlib1g-dev liblz4-dev libzstd-dev
  curl wrk python3 python3-requests python3-kafka python3-websockets chromium
  mosquitto mosquitto-clients python3-paho-mqtt
)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "deps: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO=sudo
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
