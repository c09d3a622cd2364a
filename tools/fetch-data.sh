#!/usr/bin/env bash
# fetch-data.sh: fill the checkout's data/ folder (ignored by git) with the real data the LM configs,
# tests and benchmarks read: stories260K.bin, stories260K_v1.bin, tok512.bin, tinystories_val.txt,
# tinyshakespeare.txt and golden/stories260K_lily.txt.
#
#   tools/fetch-data.sh           link or download every file that data/ lacks (re-running is a no-op)
#   tools/fetch-data.sh --check   verify what data/ holds against the sha256 pins; change nothing
#
# Where the files come from:
#   - a folder ../shared/data beside the checkout (resolved from the repository root): each file is
#     linked (data/FILE -> that folder's FILE), after checking its sha256 pin;
#   - otherwise each file is downloaded from its canonical URL (curl, else wget) to a temporary
#     name, checked against its pin, and only then renamed into place: a failed or mismatching
#     download is an error that names the file and the URL, and leaves no file behind.
#   golden/stories260K_lily.txt has no public URL (made from llama2.c's run.c); without the shared
#   folder it is skipped with a note, and the tests that need it skip.
# Environment:
#   PATHENS_DATA_MIRROR=BASE   download FILE from BASE/FILE instead of its canonical URL (any URL curl
#                              takes, e.g. file:///srv/mirror or https://host/pathens-data); pins apply
#   PATHENS_DATA_PINS=FILE     for tests: `sha256sum`-style lines "HEX  NAME" that replace those pins
# Exit: 0 done (or --check: every present file matches), 1 usage, 2 a file failed (named on stderr).
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DATA="$ROOT/data"
SHARED="$ROOT/../shared/data"

# name | sha256 | canonical URL (empty: none)
FILES=(
"stories260K.bin|b0a507e7ad0f626624f17112325e66691f9076d622e1d3274d103d00299f2696|https://huggingface.co/karpathy/tinyllamas/resolve/main/stories260K/stories260K.bin"
"stories260K_v1.bin|9ab1bf3d0c9900ce357fb38b0f42c3252e0ad478400bf7093efa133c8fa60723|https://raw.githubusercontent.com/clebert/llama2.zig/46af05d7ed3e37b41b9049a4cc5c092c8a683a29/models/tinystories_260k/checkpoint_v1.bin"
"tok512.bin|037cb335abb25d1fa9e8ecae30ed2a3a8ace9302862ebcdc05d51a6bbb10c312|https://huggingface.co/karpathy/tinyllamas/resolve/main/stories260K/tok512.bin"
"tinystories_val.txt|5fc1fb0113df62b567fb271806cd645ce8d75f59c58ca0b764c03d3b6ff34ca6|https://raw.githubusercontent.com/yuninxia/moe-routing-bench/HEAD/data/tinystories_val.txt"
"tinyshakespeare.txt|86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed|https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
"golden/stories260K_lily.txt||"
)

usage() {
    sed -n '2,/^set -uo/{/^set -uo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
}
check_only=0
case "${1:-}" in
    "") ;;
    --check) check_only=1 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "fetch-data.sh: unknown argument '$1' (usage: tools/fetch-data.sh [--check])" >&2; exit 1 ;;
esac
[ $# -le 1 ] || { echo "fetch-data.sh: too many arguments (usage: tools/fetch-data.sh [--check])" >&2; exit 1; }

command -v sha256sum >/dev/null || { echo "fetch-data.sh: sha256sum is missing (Debian: coreutils)" >&2; exit 2; }

declare -A PIN_OVERRIDE=()
if [ -n "${PATHENS_DATA_PINS:-}" ]; then
    [ -r "$PATHENS_DATA_PINS" ] || { echo "fetch-data.sh: PATHENS_DATA_PINS=$PATHENS_DATA_PINS is not readable" >&2; exit 1; }
    while read -r hex name; do
        case "$hex" in ''|'#'*) continue;; esac
        PIN_OVERRIDE[$name]=$hex
    done <"$PATHENS_DATA_PINS"
fi

errors=0
err()  { echo "fetch-data.sh: ERROR: $*" >&2; errors=$((errors + 1)); }
note() { echo "$*"; }
sha_of() { sha256sum <"$1" | cut -d' ' -f1; }
pin_of() { # pin_of NAME DEFAULT
    if [ -n "${PIN_OVERRIDE[$1]+x}" ]; then echo "${PIN_OVERRIDE[$1]}"; else echo "$2"; fi
}
# matches FILE PIN: 0 when FILE's sha256 is PIN (or PIN is empty and FILE is readable)
matches() { [ -r "$1" ] && { [ -z "$2" ] || [ "$(sha_of "$1")" = "$2" ]; }; }

downloader() { # prints "curl" or "wget", or nothing
    if command -v curl >/dev/null; then echo curl; elif command -v wget >/dev/null; then echo wget; fi
}
download() { # download URL OUT: 0 on success; the tool's message on stderr
    case "$(downloader)" in
        curl) curl -fsSL --retry 2 --connect-timeout 30 -o "$2" "$1" ;;
        wget) case "$1" in
                  file://*) echo "wget cannot read $1: install curl (tools/deps.sh)" >&2; return 1 ;;
              esac
              wget -q --tries=3 -O "$2" "$1" ;;
        *) echo "neither curl nor wget is installed (tools/deps.sh installs curl)" >&2; return 1 ;;
    esac
}

# ---- --check: verify what is present -----------------------------------------------------------
if [ $check_only = 1 ]; then
    present=0 missing=()
    for row in "${FILES[@]}"; do
        IFS='|' read -r name pin _url <<<"$row"; pin=$(pin_of "$name" "$pin")
        f="$DATA/$name"
        if [ -L "$f" ] && [ ! -e "$f" ]; then
            err "data/$name is a broken link (to $(readlink "$f")): delete it and run tools/fetch-data.sh"
        elif [ ! -e "$f" ]; then
            missing+=("$name")
        elif ! matches "$f" "$pin"; then
            err "data/$name does not match its sha256 pin (got $(sha_of "$f"), want $pin): delete it and run tools/fetch-data.sh"
        else
            present=$((present + 1))
            if [ -n "$pin" ]; then note "ok       data/$name (sha256 matches)"; else note "ok       data/$name (present; no pin)"; fi
        fi
    done
    for name in "${missing[@]}"; do note "missing  data/$name (tools/fetch-data.sh fetches it)"; done
    [ $errors = 0 ] || exit 2
    note "fetch-data.sh --check: $present present and verified, ${#missing[@]} missing"
    exit 0
fi

# ---- fill data/ --------------------------------------------------------------------------------
tmp=""
trap 'rm -f "$tmp"' EXIT # an interrupted download leaves no partial file
mkdir -p "$DATA/golden" || { echo "fetch-data.sh: cannot create $DATA" >&2; exit 2; }
shared=""
if [ -d "$SHARED" ]; then
    shared=$(cd "$SHARED" && pwd -P)
    note "linking from $shared"
fi
for row in "${FILES[@]}"; do
    IFS='|' read -r name pin url <<<"$row"; pin=$(pin_of "$name" "$pin")
    f="$DATA/$name"
    if [ -n "$shared" ] && [ -r "$shared/$name" ]; then # ---- link mode
        if [ -L "$f" ] && [ "$(readlink "$f")" = "$shared/$name" ]; then
            note "ok       data/$name (linked)"; continue
        fi
        if [ -e "$f" ] && [ ! -L "$f" ]; then
            if matches "$f" "$pin"; then note "ok       data/$name (a file, kept)"; else
                err "data/$name is a file that does not match its sha256 pin: delete it and rerun"; fi
            continue
        fi
        if ! matches "$shared/$name" "$pin"; then
            err "$shared/$name does not match its sha256 pin (got $(sha_of "$shared/$name"), want $pin): not linked"
            continue
        fi
        ln -sfn "$shared/$name" "$f" && note "linked   data/$name -> $shared/$name" || err "cannot link data/$name"
        continue
    fi
    # ---- download mode
    if [ -L "$f" ] && [ ! -e "$f" ]; then rm -f "$f"; fi # a link to a shared folder that is gone
    if [ -e "$f" ]; then
        if matches "$f" "$pin"; then note "ok       data/$name"; else
            err "data/$name does not match its sha256 pin (got $(sha_of "$f"), want $pin): delete it and rerun"; fi
        continue
    fi
    if [ -z "$url" ] || [ -z "$pin" ]; then
        note "skip     data/$name: no public URL (made from llama2.c; only in the shared folder); tests that need it skip"
        continue
    fi
    [ -n "${PATHENS_DATA_MIRROR:-}" ] && url="${PATHENS_DATA_MIRROR%/}/$name"
    tmp="$DATA/.$(basename "$name").part.$$"
    rm -f "$tmp"
    if ! msg=$(download "$url" "$tmp" 2>&1); then
        rm -f "$tmp"
        err "download of data/$name from $url failed: ${msg:-no message}"
        continue
    fi
    got=$(sha_of "$tmp")
    if [ "$got" != "$pin" ]; then
        rm -f "$tmp"
        err "data/$name from $url does not match its sha256 pin (got $got, want $pin): not kept"
        continue
    fi
    mv -f "$tmp" "$f" && note "fetched  data/$name from $url" || { rm -f "$tmp"; err "cannot write data/$name"; }
done
if [ $errors != 0 ]; then
    echo "fetch-data.sh: $errors file(s) failed; data/ holds only verified files" >&2
    exit 2
fi
note "data/ is ready ($DATA)"
