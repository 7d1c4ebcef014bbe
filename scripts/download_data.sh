#!/usr/bin/env bash
# Fetch the paper's data into load/ (needs internet; about 4 GB; never run by the tests):
#   load/div2k/DIV2K_train_HR/0001.png ... 0800.png
#   load/div2k/DIV2K_valid_HR/0801.png ... 0900.png
#   load/div2k/DIV2K_valid_LR_bicubic/X{2,3,4}/0801x2.png ...
#   load/benchmark/{Set5,Set14,B100,Urban100}/HR/*.png and LR_bicubic/X{2,3,4}/*x{2,3,4}.png
# Sources: DIV2K (Agustsson & Timofte, NTIRE 2017) from ETH Zurich; the benchmark pack from
# the EDSR authors (SNU), as the LIIF README links them.
# Usage: scripts/download_data.sh [div2k|benchmark|all]   (default all; skips complete parts)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=python3
[ -x .venv/bin/python ] && PY=.venv/bin/python
WHAT=${1:-all}
case "$WHAT" in
  div2k|benchmark|all) ;;
  *) echo "error: unknown data set '$WHAT'; expected div2k, benchmark or all" >&2; exit 2 ;;
esac
DIV2K_URL=http://data.vision.ee.ethz.ch/cvl/DIV2K
BENCHMARK_URL=https://cv.snu.ac.kr/research/EDSR/benchmark.tar

fetch() {  # fetch URL FILE: download to FILE unless it is already there
  [ -s "$2" ] || { echo "downloading $1"; curl -fL --retry 3 -o "$2.part" "$1" && mv "$2.part" "$2"; }
}
complete() {  # complete ROOT KIND: true if the layout check passes
  "$PY" -m datasets.layout "$1" "$2" > /dev/null 2>&1
}

mkdir -p load/downloads
if [ "$WHAT" = div2k ] || [ "$WHAT" = all ]; then
  if complete load/div2k div2k; then echo "load/div2k: complete"; else
    mkdir -p load/div2k
    for f in DIV2K_train_HR DIV2K_valid_HR DIV2K_valid_LR_bicubic_X2 DIV2K_valid_LR_bicubic_X3 DIV2K_valid_LR_bicubic_X4; do
      fetch "$DIV2K_URL/$f.zip" "load/downloads/$f.zip"
      unzip -q -n "load/downloads/$f.zip" -d load/div2k
    done
  fi
fi
if [ "$WHAT" = benchmark ] || [ "$WHAT" = all ]; then
  if complete load/benchmark benchmark; then echo "load/benchmark: complete"; else
    fetch "$BENCHMARK_URL" load/downloads/benchmark.tar
    tar -xf load/downloads/benchmark.tar -C load   # unpacks to load/benchmark/<Set>/...
  fi
fi
# Say exactly what is still missing (exit 2 if anything is).
status=0
if [ "$WHAT" = div2k ] || [ "$WHAT" = all ]; then "$PY" -m datasets.layout load/div2k div2k || status=$?; fi
if [ "$WHAT" = benchmark ] || [ "$WHAT" = all ]; then "$PY" -m datasets.layout load/benchmark benchmark || status=$?; fi
[ "$status" -eq 0 ] && echo "done; the archives in load/downloads can be deleted"
exit "$status"
