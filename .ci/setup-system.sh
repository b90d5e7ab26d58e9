#!/usr/bin/env bash
# Install the Debian packages the tests (and notebooks) use, when missing:
#   python3-numpy  the export tests check that NumPy reads our .npy/.npz/safetensors files
#   python3-scipy  the analysis tests check eigenvalues and the MSE flow against scipy.linalg
#   chromium       the report tests open reports headless (playwright-core, /usr/bin/chromium)
#   jupyter-nbconvert jupyter-client python3-nbclient python3-nbformat python3-ipykernel
#                  execute the TypeScript notebooks headless (npm run notebooks)
# Needs root (or sudo) and apt-get; on other systems install the equivalents by hand.
set -euo pipefail
packages=(python3-numpy python3-scipy chromium jupyter-nbconvert jupyter-client python3-nbclient python3-nbformat python3-ipykernel)
missing=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -eq 0 ]; then
  echo "system packages present: ${packages[*]}"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "missing system packages ${missing[*]} and no apt-get to install them" >&2
  exit 1
fi
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
