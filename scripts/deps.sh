#!/usr/bin/env bash
# Installs the Debian packages knead's builds need, if any is missing. Sourced by the other scripts.
# Usage: knead_install_deps [extra packages…]
knead_install_deps() {
  local packages=(cmake g++ make pkg-config libeigen3-dev catch2 libbenchmark-dev libcli11-dev libstb-dev
                  nlohmann-json3-dev "$@")
  local missing=()
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "Installing missing Debian packages: ${missing[*]}" >&2
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
}
