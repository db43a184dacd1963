#!/usr/bin/env bash
# Install everything the project and its test suite need: the Debian tools the tests drive (bubblewrap for
# the code sandbox, Chromium and ChromeDriver for the site's browser tests), then the package with its dev
# extra. Safe to rerun: what is already present is not installed again.
set -euo pipefail
cd "$(dirname "$0")"

system_packages=(bubblewrap chromium chromium-driver)
need=()
command -v bwrap >/dev/null 2>&1 || need+=(bubblewrap)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)

if ((${#need[@]})); then
  if [ "$(id -u)" -eq 0 ]; then
    apt_get=(apt-get)
  elif command -v sudo >/dev/null 2>&1; then
    apt_get=(sudo apt-get)
  else
    echo "install.sh: missing ${need[*]}; install them as root (apt-get install ${system_packages[*]})" >&2
    exit 1
  fi
  echo "install.sh: installing ${need[*]} with apt-get"
  "${apt_get[@]}" update -qq
  DEBIAN_FRONTEND=noninteractive "${apt_get[@]}" install -y -qq --no-install-recommends "${need[@]}"
fi

python -m pip install -e ".[dev]"
