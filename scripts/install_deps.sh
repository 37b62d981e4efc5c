#!/usr/bin/env bash
# Installs the Debian 12 packages payless builds and tests with, if any is missing.
# Idempotent and silent when everything is there already; needs root (or sudo) otherwise.
set -euo pipefail

packages=(
  g++ cmake make          # compiler and build
  libopenblas-dev         # BLAS (sgemm) and its cblas.h
  catch2                  # test framework (v2)
  nlohmann-json3-dev      # JSON configs and checkpoint headers
  python3-numpy           # scripts/read_checkpoint.py, checked by the test suite
  clang libclang-rt-14-dev  # libFuzzer targets (scripts/fuzz.sh)
  libopenmpi-dev openmpi-bin  # data-parallel training over MPI (mpirun), tested by [mpi]
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "installing: ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
