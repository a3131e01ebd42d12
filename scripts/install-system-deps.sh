#!/usr/bin/env bash
# Install the Debian packages that the GUI tests need: a virtual X server (Xvfb), Mesa's
# software OpenGL for napari's canvas and the xcb libraries of Qt 6 (docs: shared headless.md).
# Installs only what is missing, and only as root on a Debian/Ubuntu machine; anywhere else
# it prints what to install and exits 0 (the GUI tests then skip).
set -euo pipefail

PACKAGES=(
  xvfb xauth libgl1 libgl1-mesa-dri libegl1 libglib2.0-0 libdbus-1-3 libfontconfig1
  libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-shape0
  libxcb-xinerama0 libxcb-randr0 libxcb-render-util0 libxcb-image0
)

if ! command -v dpkg-query >/dev/null 2>&1; then
  echo "install-system-deps: not a Debian system; install Xvfb, Mesa GL and the Qt xcb" \
       "libraries with your package manager for the GUI tests"
  exit 0
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-system-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install-system-deps: missing ${missing[*]}"
  echo "  run: sudo apt-get update && sudo apt-get install -y ${missing[*]}"
  exit 0
fi

echo "install-system-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
