# lib.sh: sourced by every tests/*.sh (source "$PATHENS_SRC/tests/lib.sh" after setting T).
# need_data FILE...   each FILE must be readable under $PATHENS_DATA_DIR (the repo's data/ folder,
#                     filled by tools/fetch-data.sh); if one is absent the test is SKIPPED (exit 77,
#                     CTest SKIP_RETURN_CODE) with one line naming tools/fetch-data.sh, except under
#                     CI (CI=true), where a missing data file is a failure (exit 1).
# need_fashion [FILE...]  the same for Debian's Fashion-MNIST ($PATHENS_FASHION_DIR, dataset-fashion-mnist;
#                     FILE defaults to t10k-images-idx3-ubyte.gz).
# For a test whose parts need different data, so that what can run does:
# have_data FILE...   0 when every FILE is readable under $PATHENS_DATA_DIR; else 1, remembering the
#                     missing names (the caller skips that part);
# finish FAILS        the test's end: exit 1 when FAILS > 0; else, when have_data found something
#                     missing, skipped (exit 77, one line naming tools/fetch-data.sh; exit 1 under
#                     CI=true); else exit 0.
PATHENS_SKIP_RC=77
pe_missing_data() { # pe_missing_data WHAT HOWTO
    if [ "${CI:-}" = true ]; then
        echo "FAIL: $1 is missing and CI=true: data tests must run in CI ($2)"
        exit 1
    fi
    echo "SKIP: $1 is missing; $2"
    exit "$PATHENS_SKIP_RC"
}
need_data() {
    local f
    for f in "$@"; do
        [ -r "${PATHENS_DATA_DIR:?}/$f" ] || pe_missing_data "$PATHENS_DATA_DIR/$f" "run tools/fetch-data.sh to fill data/"
    done
}
PATHENS_MISSING=()
have_data() {
    local f r=0
    for f in "$@"; do
        [ -r "${PATHENS_DATA_DIR:?}/$f" ] || { PATHENS_MISSING+=("$PATHENS_DATA_DIR/$f"); r=1; }
    done
    return $r
}
finish() {
    [ "$1" = 0 ] || exit 1
    [ ${#PATHENS_MISSING[@]} = 0 ] && exit 0
    local what
    what=$(printf '%s, ' "${PATHENS_MISSING[@]}")
    pe_missing_data "${what%, }" "run tools/fetch-data.sh to fill data/; the parts that need it were skipped, the rest passed"
}
need_fashion() { # need_fashion [FILE...]: default t10k-images-idx3-ubyte.gz
    local f
    for f in "${@:-t10k-images-idx3-ubyte.gz}"; do
        [ -r "${PATHENS_FASHION_DIR:?}/$f" ] ||
            pe_missing_data "$PATHENS_FASHION_DIR/$f" "install Debian's dataset-fashion-mnist (tools/deps.sh)"
    done
}

# journal_records [RUN_DIR | JOURNAL_FILE]: the task records in an eval journal, counted from its
# framing (PJR1 records; the first is the header); default: the run folder "$out"
journal_records() {
    local j=${1:-$out}
    [ -d "$j" ] && j="$j/journal.msgpack"
    /usr/bin/python3 - "$j" <<'PY'
import struct, sys
try: b = open(sys.argv[1], 'rb').read()
except OSError: print(0); sys.exit()
n, p = 0, 0
while p + 12 <= len(b) and b[p:p+4] == b'PJR1':
    l = struct.unpack('<I', b[p+4:p+8])[0]
    if p + 12 + l > len(b): break
    n += 1; p += 12 + l
print(max(n - 1, 0))
PY
}
