#!/usr/bin/env bash
# LTE's cell clip in one table: a model evaluated as it is and with the cell clipped at x4
# (test.py --cell-scale-max 4: beyond x4 the decoder sees the cell of x4, as the LTE authors'
# tables beyond the training scales), one row each, columns the test set x scale.
#
#   bash scripts/lte-cell-clip.sh edsr-baseline-lte.pth           # DIV2K x2 ... x30
#   EVAL=benchmark bash scripts/lte-cell-clip.sh save/_train_edsr-baseline-lte/epoch-last.pth
#
# Results: $RESULTS_ROOT/cell-clip/<checkpoint name>/<EVAL>-{as-trained,clip-S}/ and the table in
# $RESULTS_ROOT/cell-clip/<checkpoint name>/table.{md,csv,json} (earlier results are moved aside).
# Environment: CLIP (default 4), EVAL (div2k | benchmark), GPU, and those of scripts/eval_common.sh
# (DATA_ROOT, RESULTS_ROOT, PRECISION, PYTHON).
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/eval_common.sh
pick_python

[ $# -eq 1 ] || { echo "usage: bash $0 CHECKPOINT   (env: CLIP=4, EVAL=div2k|benchmark, GPU, DATA_ROOT, RESULTS_ROOT)" >&2; exit 2; }
MODEL_PATH=$1
[ -f "$MODEL_PATH" ] || { echo "error: checkpoint not found: $MODEL_PATH" >&2; exit 2; }
CLIP=${CLIP:-4}
if ! [[ $CLIP =~ ^[1-9][0-9]*(\.[0-9]+)?$ ]]; then  # checked before anything is evaluated
    echo "error: CLIP must be a scale (a number >= 1, e.g. 4), got '$CLIP'" >&2
    exit 2
fi
EVAL=${EVAL:-div2k}
if [ "$EVAL" != div2k ] && [ "$EVAL" != benchmark ]; then
    echo "error: EVAL must be div2k or benchmark, got '$EVAL'" >&2
    exit 2
fi
RESULTS_ROOT=${RESULTS_ROOT:-save/test}
name=$(basename -- "$MODEL_PATH"); name=${name%.*}
case $name in epoch-*|ema-*) name="$(basename -- "$(dirname -- "$MODEL_PATH")")-$name" ;; esac
base=$RESULTS_ROOT/cell-clip/$name
gpu_args=()
[ -n "${GPU:-}" ] && gpu_args=(--gpu "$GPU")
OUT_DIR=$base/$EVAL-as-trained bash "scripts/test-$EVAL.sh" "${gpu_args[@]}" -- "$MODEL_PATH" || exit $?
OUT_DIR=$base/$EVAL-clip-$CLIP bash "scripts/test-$EVAL.sh" "${gpu_args[@]}" --cell-scale-max "$CLIP" -- "$MODEL_PATH" || exit $?
"$PY" scripts/results_table.py --title "$name: the cell as trained and clipped at x$CLIP" \
    --out "$base/table.md" --out "$base/table.csv" --out "$base/table.json" \
    -- "$base/$EVAL-as-trained" "$base/$EVAL-clip-$CLIP" >/dev/null || exit 1
echo
cat "$base/table.md"
echo "table: $base/table.md"
