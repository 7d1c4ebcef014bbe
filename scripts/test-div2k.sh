#!/usr/bin/env bash
# DIV2K validation at every scale of the paper (x2 x3 x4 from the shipped LR, x6 .. x30 from HR),
# RGB PSNR with a border of scale + 6; ends with a markdown table (PSNR / SSIM).
#
#   bash scripts/test-div2k.sh MODEL|bicubic [GPU]
#   DATA_ROOT=load/sample bash scripts/test-div2k.sh bicubic    # the sample photos instead
#
# DATA_ROOT replaces ./load in the configs (default load). A dataset that is not there is
# reported and skipped. When DATA_ROOT holds valid_HR/ (the sample layout), it is evaluated
# the same way (configs/test/sample). OUT_DIR (default save/test/<model>), PRECISION.
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/eval_common.sh
eval_setup "$@"

SCALES=(2 3 4 6 12 18 24 30)
if ! eval_set_missing DIV2K "$DATA_ROOT/div2k/DIV2K_valid_HR"; then
    for s in "${SCALES[@]}"; do eval_one DIV2K "$s" "configs/test/test-div2k-$s.yaml"; done
fi
if [ -d "$DATA_ROOT/valid_HR" ]; then
    for s in "${SCALES[@]}"; do eval_one sample-valid "$s" "configs/test/sample/test-sample-valid-$s.yaml"; done
fi
eval_table "$(basename "$MODEL"): PSNR (dB) / SSIM, RGB, border scale+6"
