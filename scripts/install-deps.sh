#!/usr/bin/env bash
# Installs the Debian packages frugal builds and tests with, when missing.
set -euo pipefail
pkgs=(cmake ninja-build g++ pkg-config libpcre2-dev nlohmann-json3-dev libcli11-dev
      libgtest-dev libgmock-dev clang-14 libclang-rt-14-dev libcpp-httplib-dev prometheus python3)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# The server tests run the official openai npm client under Node.js. A Node.js
# from another source (e.g. NodeSource, which bundles npm) is fine too.
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}" >&2
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
