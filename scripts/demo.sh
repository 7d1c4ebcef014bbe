#!/usr/bin/env bash
# Fresh machine -> demo: create .venv, install, build the sample data from scikit-image's photos,
# then upscale the bundled example photo x4 and x30 with the bundled default model.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
PY=.venv/bin/python
"$PY" scripts/prepare_sample_data.py
OUT=${OUT:-save/demo}
mkdir -p "$OUT"
# --overwrite: these are this script's own outputs, remade each time it runs.
"$PY" demo.py --input examples/coffee_lr.png --scale 4 --output "$OUT/coffee_x4.png" --overwrite
"$PY" demo.py --input examples/coffee_lr.png --scale 30 --output "$OUT/coffee_x30.png" --overwrite
echo
echo "input:   examples/coffee_lr.png (64x96, HxW)"
echo "results: $OUT/coffee_x4.png (256x384, HxW), $OUT/coffee_x30.png (1920x2880, HxW)"
