# Shared by scripts/test-div2k.sh and scripts/test-benchmark.sh (sourced, not run).
#
# eval_setup KIND MODEL [GPU]  checks the model, picks python, makes OUT_DIR (never overwriting)
# eval_one ROW SCALE CONFIG    runs test.py on one config; stops the script at the first error
# eval_set_missing ROW DIR     true (and reported) when a whole dataset folder is absent
# eval_table TITLE             prints the markdown table and writes it to $OUT_DIR/table.md
#
# Results go to save/test/<run>/<checkpoint stem>/<KIND>-<data root name>/ (a checkpoint in the
# current folder: save/test/<stem>/...; bicubic: save/test/bicubic/...), one folder per model,
# script and data root, so two models or two scripts never share a file. A folder that already
# holds results is moved aside to <folder>.old-<time> first; nothing is deleted.
#
# Environment: DATA_ROOT (folder replacing ./load in the configs, default load), OUT_DIR (overrides
# the folder above), PRECISION (fp32 | bf16 | fp16, default fp32), PYTHON (default: the active
# virtualenv's python, else .venv/bin/python, else python3).

pick_python() {
    if [ -n "${PYTHON:-}" ]; then PY=$PYTHON
    elif [ -n "${VIRTUAL_ENV:-}" ] && [ -x "$VIRTUAL_ENV/bin/python" ]; then PY=$VIRTUAL_ENV/bin/python
    elif [ -x .venv/bin/python ]; then PY=.venv/bin/python
    else PY=python3
    fi
}

eval_setup() {
    KIND=$1
    MODEL=${2:-}
    GPU=${3:-}
    if [ -z "$MODEL" ]; then
        echo "usage: bash $0 MODEL|bicubic [GPU]   (env: DATA_ROOT=load/sample, OUT_DIR, PRECISION, PYTHON)" >&2
        exit 2
    fi
    if [ "$MODEL" != bicubic ] && [ ! -f "$MODEL" ]; then
        echo "error: checkpoint not found: $MODEL (or use 'bicubic')" >&2
        exit 2
    fi
    pick_python
    DATA_ROOT=${DATA_ROOT:-load}
    PRECISION=${PRECISION:-fp32}
    case "$PRECISION" in  # checked before anything is moved or made
        fp32|bf16|fp16) ;;
        *) echo "error: PRECISION must be fp32, bf16 or fp16, got '$PRECISION'" >&2; exit 2 ;;
    esac
    if [ -z "${OUT_DIR:-}" ]; then
        local stem parent where
        stem=$(basename -- "$MODEL"); stem=${stem%.*}
        parent=$(basename -- "$(dirname -- "$MODEL")")
        where=$(basename -- "$DATA_ROOT")
        if [ "$MODEL" = bicubic ]; then OUT_DIR=save/test/bicubic/$KIND-$where
        elif [ "$(dirname -- "$MODEL")" = . ]; then OUT_DIR=save/test/$stem/$KIND-$where
        else OUT_DIR=save/test/$parent/$stem/$KIND-$where
        fi
    fi
    if [ -e "$OUT_DIR" ] && [ ! -d "$OUT_DIR" ]; then
        echo "error: OUT_DIR $OUT_DIR exists and is not a folder; give a folder for the results" >&2
        exit 2
    fi
    if ! mkdir -p -- "$(dirname -- "$OUT_DIR")" 2>/dev/null; then
        echo "error: cannot create the folder of OUT_DIR $OUT_DIR (a file in its path, or no permission)" >&2
        exit 2
    fi
    # One script per results folder: a second run into the same folder waits for nothing and
    # mixes nothing; it stops (the lock is released when the first one ends, however it ends).
    if command -v flock >/dev/null; then
        exec 9>"$(dirname -- "$OUT_DIR")/.$(basename -- "$OUT_DIR").lock"
        if ! flock -n 9; then
            echo "error: $OUT_DIR is in use by another evaluation script; wait for it or set OUT_DIR" >&2
            exit 2
        fi
    fi
    if [ -d "$OUT_DIR" ] && [ -n "$(ls -A -- "$OUT_DIR")" ]; then
        local aside
        aside="$OUT_DIR.old-$(date +%Y%m%d-%H%M%S)"
        while [ -e "$aside" ]; do aside="$aside-1"; done
        mv -- "$OUT_DIR" "$aside"
        echo "moved the previous results to $aside"
    fi
    if ! mkdir -p -- "$OUT_DIR" 2>/dev/null; then
        echo "error: cannot create OUT_DIR $OUT_DIR" >&2
        exit 2
    fi
    ENTRIES=()
    FOUND=0
    SKIPPED=()
    LOOKED=()
    echo "model $MODEL, data root $DATA_ROOT, results in $OUT_DIR"
}

# eval_one ROW SCALE CONFIG: result in $OUT_DIR/<config name>.json, one line of progress; the
# first failure stops the script with test.py's one-line error.
eval_one() {
    local row=$1 scale=$2 config=$3
    local name
    name=$(basename "${config%.yaml}")
    local out="$OUT_DIR/$name.json" log="$OUT_DIR/$name.log"
    local gpu_args=()
    [ -n "$GPU" ] && gpu_args=(--gpu "$GPU")
    ENTRIES+=("$row:$scale=$out")  # a skipped one is an empty cell
    if "$PY" test.py --config="$config" --model="$MODEL" --data-root="$DATA_ROOT" --out="$out" \
            --precision "$PRECISION" --quiet "${gpu_args[@]}" >"$log" 2>&1; then
        FOUND=$((FOUND + 1))
        local psnr ssim
        psnr=$(grep '^result: ' "$log" | tail -n 1 | cut -d' ' -f2)
        ssim=$(grep '^ssim: ' "$log" | tail -n 1 | cut -d' ' -f2)
        printf '%-12s x%-3s PSNR %s  SSIM %s\n' "$row" "$scale" "$psnr" "$ssim"
        return 0
    fi
    local err
    err=$(grep '^error: ' "$log" | tail -n 1)
    if [[ $err == *"dataset folder not found"* || $err == *"image folder not found"* ]]; then
        printf '%-12s x%-3s skipped: %s\n' "$row" "$scale" "${err#error: }"
        SKIPPED+=("$row x$scale")
        return 0
    fi
    [ -z "$err" ] && err="error: test.py failed: $(tail -n 1 "$log") (full log: $log)"
    echo "$err ($row x$scale, $config)" >&2
    exit 1
}

# eval_set_missing ROW DIR: true (and reported) when a whole dataset folder is absent.
eval_set_missing() {
    LOOKED+=("$2")
    if [ ! -d "$2" ]; then
        printf '%-12s skipped: no folder %s\n' "$1" "$2"
        SKIPPED+=("$1")
        return 0
    fi
    return 1
}

eval_table() {
    if [ "$FOUND" -eq 0 ]; then
        echo "error: no test set found under data root $DATA_ROOT (looked for ${LOOKED[*]}); download it" \
             "(scripts/download_data.sh) or set DATA_ROOT, e.g. DATA_ROOT=load/sample for the sample sets" >&2
        exit 2
    fi
    echo
    "$PY" scripts/results_table.py --title="$1" -- "${ENTRIES[@]}" > "$OUT_DIR/table.md" || exit 1
    cat "$OUT_DIR/table.md"
    echo
    [ ${#SKIPPED[@]} -gt 0 ] && echo "skipped (no data): ${SKIPPED[*]}"
    echo "table: $OUT_DIR/table.md"
    return 0
}
