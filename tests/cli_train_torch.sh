#!/usr/bin/env bash
# cli_train_torch.sh: the C training gradients (train_grad_tokens / train_grad_images) of whole tiny
# models against PyTorch autograd in float64 (Debian's python3-torch as the oracle only).
# For each of lm, lm-untied, vit, vit-mean x (dense, unbiased 2, local 2, random-k 2, window 2,
# head-drop 2: some heads output 0): pathens_gradtool writes
# the model, a batch, the C loss and gradients (and the SSA masks of the draws train.c makes);
# tests/torch_grads.py rebuilds the model and compares every parameter's gradient.
# Negative controls: a perturbed C gradient and SSA gradients checked as if dense must FAIL.
# FAILS (never skips) when /usr/bin/python3 or torch is missing.
set -u
: "${PATHENS_GRADTOOL:?}" "${PATHENS_SRC:?}" "${PATHENS_TEST_TMP:?}"
PY=/usr/bin/python3
CHECK="$PATHENS_SRC/tests/torch_grads.py"
T="$PATHENS_TEST_TMP/cli_train_torch"; rm -rf "$T"; mkdir -p "$T"
fails=0
ok()  { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }

[ -x "$PY" ] || { echo "FAIL: $PY is missing (the PyTorch oracle needs Debian's python3 with python3-torch)"; exit 1; }
if ! "$PY" -c "import torch" >"$T/torch.txt" 2>&1; then
    echo "FAIL: $PY cannot import torch (install python3-torch):"; cat "$T/torch.txt"; exit 1
fi
[ -r "$CHECK" ] || { echo "FAIL: $CHECK missing"; exit 1; }

dirs=()
for kind in lm lm-untied vit vit-mean; do
    for pw in "dense 1" "unbiased 2" "local 2" "random-k 2" "window 2" "head-drop 2"; do
        set -- $pw
        d="$T/$kind-$1"
        if "$PATHENS_GRADTOOL" "$kind" "$d" "$1" "$2" >"$T/gen.txt" 2>&1; then
            ok "gradtool $kind $1 $2: $(tr "\n" ";" <"$T/gen.txt")"
            dirs+=("$d")
        else
            bad "gradtool $kind $1 $2 (exit $?):"; cat "$T/gen.txt"
        fi
    done
done
[ -f "$T/lm-unbiased/masks.safetensors" ] && [ ! -e "$T/lm-dense/masks.safetensors" ] \
    && ok "SSA runs write masks, dense runs do not" || bad "masks.safetensors presence"

# every case in one python process (one torch import)
if [ "${#dirs[@]}" -gt 0 ]; then
    "$PY" "$CHECK" "${dirs[@]}" >"$T/check.txt" 2>&1; rc=$?
    cat "$T/check.txt"
    for d in "${dirs[@]}"; do
        grep -qx "PASS $d" "$T/check.txt" && ok "torch agrees: $(basename "$d")" || bad "torch disagrees: $(basename "$d")"
    done
    [ "$rc" = 0 ] && ok "torch_grads.py exit 0" || bad "torch_grads.py exit $rc"
fi

# negative controls: the check must be able to fail
neg() { # neg DESC ARGS...
    local desc=$1; shift
    "$PY" "$CHECK" "$@" >"$T/neg.txt" 2>&1; local rc=$?
    if [ "$rc" = 1 ] && grep -q "^FAIL " "$T/neg.txt"; then
        ok "negative control fails as it must: $desc ($(grep -m1 '^FAIL' "$T/neg.txt"))"
    else
        bad "negative control passed or errored (exit $rc): $desc"; cat "$T/neg.txt"
    fi
}
if [ -d "$T/lm-dense" ] && [ -d "$T/vit-local" ] && [ -d "$T/lm-unbiased" ]; then
    neg "lm dense, layers.0.attn.wq.weight[0] += 1e-2" --perturb layers.0.attn.wq.weight 0 1e-2 "$T/lm-dense"
    neg "vit local, cls_token[3] += 1e-2" --perturb cls_token 3 1e-2 "$T/vit-local"
    neg "lm unbiased checked as dense attention (masks ignored)" --no-masks "$T/lm-unbiased"
fi

[ "$fails" = 0 ] && echo "cli_train_torch: all passed" || echo "cli_train_torch: $fails failed"
[ "$fails" = 0 ]
