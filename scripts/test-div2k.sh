#!/usr/bin/env bash
# DIV2K validation at every scale of the paper (x2 x3 x4 from the shipped LR, x6 .. x30 from HR),
# RGB PSNR with a border of scale + 6; ends with a markdown table (PSNR / SSIM).
#
#   bash scripts/test-div2k.sh MODEL|bicubic [GPU]
#   DATA_ROOT=load/sample bash scripts/test-div2k.sh bicubic    # the sample photos instead
#
# DATA_ROOT replaces ./load in the configs (default load). A dataset that is not there is
# reported and skipped; when none is there the script says where it looked, exit 2. When
# DATA_ROOT holds valid_HR/ (the sample layout), it is evaluated the same way
# (configs/test/sample). The first failing evaluation stops the script (exit 1). Results:
# save/test/<run>/<checkpoint stem>/div2k-<data root name>/ (scripts/eval_common.sh).
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/eval_common.sh
eval_setup div2k "$@"

SCALES=(2 3 4 6 12 18 24 30)
if ! eval_set_missing DIV2K "$DATA_ROOT/div2k/DIV2K_valid_HR"; then
    for s in "${SCALES[@]}"; do eval_one DIV2K "$s" "configs/test/test-div2k-$s.yaml"; done
fi
LOOKED+=("$DATA_ROOT/valid_HR")
if [ -d "$DATA_ROOT/valid_HR" ]; then
    for s in "${SCALES[@]}"; do eval_one sample-valid "$s" "configs/test/sample/test-sample-valid-$s.yaml"; done
fi
eval_table "$MODEL: PSNR (dB) / SSIM, RGB, border scale+6"
