# Shared by scripts/test-div2k.sh, scripts/test-benchmark.sh and scripts/test-real.sh (sourced, not run).
#
# eval_main KIND TITLE ARGS...  parses ARGS (options, then models), runs the script's run_sets for
#                               each model, writes each model's table and, for several models,
#                               one table comparing them
# eval_one ROW SCALE CONFIG     runs test.py on one config; stops the script at the first error
# eval_set_missing ROW DIR      true (and reported once) when a whole dataset folder is absent
#
# Arguments: [--gpu G] [--cell-scale-max S] [--set KEY=VALUE]... MODEL... where a MODEL is a
# checkpoint, 'bicubic', or NAME=CHECKPOINT (NAME labels its row). The old form MODEL GPU still works.
# Results go to $RESULTS_ROOT/<run>/<checkpoint stem>/<KIND>-<data root>/ (RESULTS_ROOT defaults to
# save/test; a checkpoint in the current folder: <stem>/...; bicubic: bicubic/...), one folder per
# model, script and data root, so two models or two scripts never share a file. <data root> is the
# folder's name for load/ and its direct subfolders (load/sample -> sample), else the name plus 8
# hex digits of its absolute path, so two data roots never share a folder; other test options
# (--cell-scale-max, --set) are appended (benchmark-load+--cell-scale-max_4). A folder that already
# holds results is moved aside to <folder>.old-<time> first; nothing is deleted; one script at a time
# writes a folder (a lock; a second one stops, exit 2). With several
# models the comparison goes to $RESULTS_ROOT/compare/<KIND>-<data root>-<time>/ (TABLE_DIR
# overrides) as table.md, table.csv and table.json (scripts/results_table.py).
#
# Environment: DATA_ROOT (folder replacing ./load in the configs, default load), OUT_DIR (one model's
# results folder, overriding the rule above), RESULTS_ROOT, TABLE_DIR, PRECISION (fp32 | bf16 | fp16,
# default fp32), PYTHON (default: the active virtualenv's python, else .venv/bin/python, else python3).
# A script may set MISSING_HINT: what to do when none of its test sets is found.

pick_python() {
    if [ -n "${PYTHON:-}" ]; then PY=$PYTHON
    elif [ -n "${VIRTUAL_ENV:-}" ] && [ -x "$VIRTUAL_ENV/bin/python" ]; then PY=$VIRTUAL_ENV/bin/python
    elif [ -x .venv/bin/python ]; then PY=.venv/bin/python
    else PY=python3
    fi
}

eval_usage() {
    echo "usage: bash $0 [--gpu G] [--cell-scale-max S] [--set KEY=VALUE]... MODEL|bicubic|NAME=MODEL... " \
         "(env: DATA_ROOT=load/sample, OUT_DIR, RESULTS_ROOT, TABLE_DIR, PRECISION, PYTHON)" >&2
    exit 2
}

# eval_parse ARGS...: MODELS (paths or bicubic), LABELS (row names, '' for the default), GPU, TEST_ARGS.
eval_parse() {
    MODELS=()
    LABELS=()
    GPU=
    TEST_ARGS=()
    local positional=()
    while [ $# -gt 0 ]; do
        case $1 in
            --gpu) [ $# -ge 2 ] || eval_usage; GPU=$2; shift 2 ;;
            --cell-scale-max|--set) [ $# -ge 2 ] || eval_usage; TEST_ARGS+=("$1" "$2"); shift 2 ;;
            --) shift; positional+=("$@"); break ;;
            -h|--help) eval_usage ;;
            *) positional+=("$1"); shift ;;
        esac
    done
    local n=${#positional[@]}
    [ "$n" -gt 0 ] || eval_usage
    # The old form MODEL GPU: a last argument like 0, 0,1 or cpu that is not a file.
    if [ "$n" -eq 2 ] && [ -z "$GPU" ] && [[ ${positional[1]} =~ ^([0-9]+(,[0-9]+)*|cpu)$ ]] \
            && [ ! -e "${positional[1]}" ]; then
        GPU=${positional[1]}
        positional=("${positional[0]}")
    fi
    local item label path
    for item in "${positional[@]}"; do
        label=; path=$item
        if [ "$item" != bicubic ] && [ ! -e "$item" ] && [[ $item == *=* ]] && [[ ${item%%=*} != */* ]]; then
            label=${item%%=*}; path=${item#*=}
        fi
        if [ "$path" != bicubic ] && [ ! -f "$path" ]; then
            echo "error: checkpoint not found: $path (or use 'bicubic')" >&2
            exit 2
        fi
        MODELS+=("$path")
        LABELS+=("$label")
    done
    if [ ${#MODELS[@]} -gt 1 ] && [ -n "${OUT_DIR:-}" ]; then
        echo "error: OUT_DIR names one model's results folder; with ${#MODELS[@]} models set RESULTS_ROOT instead" >&2
        exit 2
    fi
}

# data_root_tag: DATA_ROOT's name in results folders, unique per absolute path (existing or not).
data_root_tag() {
    "$PY" - "$DATA_ROOT" <<'PYEOF'
import hashlib, os, sys
real, load = os.path.realpath(sys.argv[1]), os.path.realpath('load')
name = os.path.basename(real)
print(name if real == load or os.path.dirname(real) == load
      else f'{name}-{hashlib.sha256(real.encode()).hexdigest()[:8]}')
PYEOF
}

# claim_folder DIR FD NAME: DIR made empty for new results: refused (exit 2) when it is a file or
# cannot be made, or when another evaluation script holds it (a lock on file descriptor FD, 8 or 9,
# released when this script ends, however it ends); a folder holding results is renamed
# DIR.old-<time> first (never deleted). NAME says where DIR came from in messages (OUT_DIR, ...).
claim_folder() {
    local dir=$1 fd=$2 name=$3
    if [ -e "$dir" ] && [ ! -d "$dir" ]; then
        echo "error: $name $dir exists and is not a folder; give a folder for the results" >&2
        exit 2
    fi
    if ! mkdir -p -- "$(dirname -- "$dir")" 2>/dev/null; then
        echo "error: cannot create the folder of $name $dir (a file in its path, or no permission)" >&2
        exit 2
    fi
    if command -v flock >/dev/null; then
        local lock
        lock="$(dirname -- "$dir")/.$(basename -- "$dir").lock"
        case $fd in 8) exec 8>"$lock" ;; 9) exec 9>"$lock" ;; esac
        if ! flock -n "$fd"; then
            echo "error: $dir is in use by another evaluation script; wait for it or set OUT_DIR/RESULTS_ROOT" >&2
            exit 2
        fi
    fi
    if [ -d "$dir" ] && [ -n "$(ls -A -- "$dir")" ]; then
        local aside
        aside="$dir.old-$(date +%Y%m%d-%H%M%S)"
        while [ -e "$aside" ]; do aside="$aside-1"; done
        mv -- "$dir" "$aside"
        echo "moved the previous results to $aside"
    fi
    if ! mkdir -p -- "$dir" 2>/dev/null; then
        echo "error: cannot create $name $dir" >&2
        exit 2
    fi
}

# eval_model MODEL LABEL: OUT_DIR for this model (claimed: made, locked, earlier results moved aside).
eval_model() {
    MODEL=$1
    LABEL=$2
    if [ -z "${FIXED_OUT_DIR:-}" ]; then
        local stem parent
        stem=$(basename -- "$MODEL"); stem=${stem%.*}
        parent=$(basename -- "$(dirname -- "$MODEL")")
        if [ "$MODEL" = bicubic ]; then OUT_DIR=$RESULTS_ROOT/bicubic/$KIND-$WHERE
        elif [ "$(dirname -- "$MODEL")" = . ]; then OUT_DIR=$RESULTS_ROOT/$stem/$KIND-$WHERE
        else OUT_DIR=$RESULTS_ROOT/$parent/$stem/$KIND-$WHERE
        fi
    else
        OUT_DIR=$FIXED_OUT_DIR
    fi
    if [ -n "${FIXED_OUT_DIR:-}" ]; then claim_folder "$OUT_DIR" 9 OUT_DIR; else claim_folder "$OUT_DIR" 9 'results folder'; fi
    FOUND=0
    echo "model $MODEL${LABEL:+ ($LABEL)}, data root $DATA_ROOT, results in $OUT_DIR"
}

# eval_one ROW SCALE CONFIG: result in $OUT_DIR/<config name>.json, one line of progress; the
# first failure stops the script with test.py's one-line error.
eval_one() {
    local row=$1 scale=$2 config=$3
    local name
    name=$(basename "${config%.yaml}")
    local out="$OUT_DIR/$name.json" log="$OUT_DIR/$name.log"
    local extra=()
    [ -n "$GPU" ] && extra+=(--gpu "$GPU")
    [ -n "$LABEL" ] && extra+=("--label=$LABEL")  # one word: a label may start with -
    if "$PY" test.py --config="$config" --model="$MODEL" --data-root="$DATA_ROOT" --out="$out" \
            --precision "$PRECISION" --quiet "${extra[@]}" "${TEST_ARGS[@]}" >"$log" 2>&1; then
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
        [ "$FIRST_MODEL" = 1 ] && printf '%-12s x%-3s skipped: %s\n' "$row" "$scale" "${err#error: }"
        [ "$FIRST_MODEL" = 1 ] && SKIPPED+=("$row x$scale")
        rm -f "$log"
        return 0
    fi
    [ -z "$err" ] && err="error: test.py failed: $(tail -n 1 "$log") (full log: $log)"
    echo "$err ($row x$scale, $config)" >&2
    exit 1
}

# eval_set_missing ROW DIR: true (and reported once) when a whole dataset folder is absent.
eval_set_missing() {
    [ "$FIRST_MODEL" = 1 ] && LOOKED+=("$2")
    if [ ! -d "$2" ]; then
        if [ "$FIRST_MODEL" = 1 ]; then
            printf '%-12s skipped: no folder %s\n' "$1" "$2"
            SKIPPED+=("$1")
        fi
        return 0
    fi
    return 1
}

# eval_main KIND TITLE ARGS...: the whole script; run_sets (defined by the script) evaluates one model.
eval_main() {
    KIND=$1
    local title=$2
    shift 2
    eval_parse "$@"
    pick_python
    DATA_ROOT=${DATA_ROOT:-load}
    PRECISION=${PRECISION:-fp32}
    case "$PRECISION" in  # checked before anything is moved or made
        fp32|bf16|fp16) ;;
        *) echo "error: PRECISION must be fp32, bf16 or fp16, got '$PRECISION'" >&2; exit 2 ;;
    esac
    RESULTS_ROOT=${RESULTS_ROOT:-save/test}
    FIXED_OUT_DIR=${OUT_DIR:-}
    WHERE=$(data_root_tag)
    # Evaluations with other test options (a cell clip, --set) get their own folders.
    if [ ${#TEST_ARGS[@]} -gt 0 ]; then
        WHERE="$WHERE+$(printf '%s' "${TEST_ARGS[*]}" | tr -c 'A-Za-z0-9._=+-' '_' | sed 's/^_*//')"
    fi
    SKIPPED=()
    LOOKED=()
    RESULT_DIRS=()
    FIRST_MODEL=1
    local i
    for i in "${!MODELS[@]}"; do
        eval_model "${MODELS[$i]}" "${LABELS[$i]}"
        run_sets
        if [ "$FOUND" -eq 0 ]; then
            if [ -n "${MISSING_HINT:-}" ]; then
                echo "error: no test set found under data root $DATA_ROOT (looked for ${LOOKED[*]}); $MISSING_HINT" >&2
            else
                echo "error: no test set found under data root $DATA_ROOT (looked for ${LOOKED[*]}); get them with" \
                     "\`bash scripts/download_data.sh $KIND\` (it writes to load/), check them with" \
                     "\`python -m datasets.layout $DATA_ROOT/$KIND $KIND\`; or set DATA_ROOT, e.g. DATA_ROOT=load/sample" \
                     "for the sample sets (\`python scripts/prepare_sample_data.py\`)" >&2
            fi
            exit 2
        fi
        "$PY" scripts/results_table.py --title="${LABEL:-$MODEL}: $title" --out="$OUT_DIR/table.md" -- "$OUT_DIR" >/dev/null || exit 1
        RESULT_DIRS+=("${LABEL:+$LABEL=}$OUT_DIR")
        FIRST_MODEL=0
        echo
    done
    local table_dir=${TABLE_DIR:-}
    if [ ${#MODELS[@]} -gt 1 ]; then
        [ -n "$table_dir" ] || table_dir=$RESULTS_ROOT/compare/$KIND-$WHERE-$(date +%Y%m%d-%H%M%S)
        if [ -n "${TABLE_DIR:-}" ]; then claim_folder "$table_dir" 8 TABLE_DIR; else claim_folder "$table_dir" 8 'comparison folder'; fi
        "$PY" scripts/results_table.py --title="$title" --out="$table_dir/table.md" --out="$table_dir/table.csv" \
            --out="$table_dir/table.json" -- "${RESULT_DIRS[@]}" >/dev/null || exit 1
    else
        table_dir=$OUT_DIR
    fi
    cat "$table_dir/table.md"
    echo
    [ ${#SKIPPED[@]} -gt 0 ] && echo "skipped (no data): ${SKIPPED[*]}"
    echo "table: $table_dir/table.md"
    return 0
}
