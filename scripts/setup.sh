#!/usr/bin/env bash
# Installs every Debian 12 package spikeline needs (now and for the Verilator, XRT and streaming work), then
# configures and builds into build/. Idempotent: installed packages are skipped, the build is incremental.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
    build-essential cmake ninja-build pkg-config clang-format clang libclang-rt-14-dev
    libgtest-dev libgmock-dev libbenchmark-dev
    libeigen3-dev libboost-program-options-dev nlohmann-json3-dev
    libzmq3-dev cppzmq-dev libsodium-dev libssl-dev
    verilator yosys zlib1g-dev libexpat1-dev
    libxrt-dev libxrt1 libxrt-utils uuid-dev
    libboost-dev chromium fonts-liberation python3   # report + live view, their browser tests
    opencl-clhpp-headers ocl-icd-opencl-dev pocl-opencl-icd   # opencl backend on pocl
    libhdf5-dev python3-numpy python3-h5py
)

missing=()
for package in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]} > 0)); then
    echo "setup: installing ${missing[*]}"
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ "${1:-}" = "--packages-only" ]; then exit 0; fi

BUILD_DIR="${SPIKELINE_BUILD_DIR:-build}"
if [ ! -f "$BUILD_DIR/build.ninja" ]; then
    cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
cmake --build "$BUILD_DIR" -j "$(nproc)"
