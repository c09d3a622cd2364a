#!/usr/bin/env bash
# cli_fuzz_regress.sh: every bad input that fuzzing found (tests/fuzz/regress/*.tsv) replayed through
# the real binary: each must end with the exit code its row names (2 for bad input: never 0, never 3,
# never a sanitizer report) and a message matching its row's regex.
# Row format (tab-separated; '#' lines are comments):
#   name  want_exit  stderr_regex  needs  command
# needs: '-' or comma-separated files under data/ (skipped without them, like need_data); the word
# 'mpi' skips the row in a build without MPI (the journal exists only in MPI builds);
# command: pathens arguments as shell words; $R = a copy of tests/fuzz/regress/files, $T = a scratch folder,
# $D = the data folder, $SRC = the source tree.
set -u
: "${PATHENS:?}" "${PATHENS_SRC:?}" "${PATHENS_TEST_TMP:?}" "${PATHENS_DATA_DIR:?}"
source "$PATHENS_SRC/tests/lib.sh"
T="$PATHENS_TEST_TMP/cli_fuzz_regress"; rm -rf "$T"; mkdir -p "$T"
# the files are copied: a row may name one of them as run.out, and pathens writes there (its
# .pathens.lock), which must not touch the source tree
cp -a "$PATHENS_SRC/tests/fuzz/regress/files" "$T/files"
R="$T/files"; D="$PATHENS_DATA_DIR"; SRC="$PATHENS_SRC"
fails=0 rows=0 skipped=0
shopt -s nullglob
for tsv in "$PATHENS_SRC"/tests/fuzz/regress/*.tsv; do
    while IFS=$'\t' read -r name want regex needs cmd; do
        case "$name" in ''|'#'*) continue;; esac
        rows=$((rows + 1))
        if [ "$needs" != - ]; then
            miss=""
            for f in ${needs//,/ }; do [ "$f" = mpi ] || [ -r "$D/$f" ] || miss="$f"; done
            if [[ ",$needs," = *,mpi,* ]] && ! ldd "$PATHENS" | grep -q libmpi; then
                echo "skip $name (needs an MPI build)"; skipped=$((skipped + 1)); continue
            fi
            if [ -n "$miss" ]; then
                [ "${CI:-}" = true ] && { echo "FAIL $name: data/$miss missing under CI"; fails=$((fails + 1)); continue; }
                echo "skip $name (data/$miss missing: tools/fetch-data.sh)"; skipped=$((skipped + 1)); continue
            fi
        fi
        S="$T/$name"; rm -rf "$S"; mkdir -p "$S"
        args=()
        Tall="$T"; T="$S"; eval "args=($cmd)"; T="$Tall" # $T in a row is that row's own scratch folder
        (cd "$S" && "$PATHENS" "${args[@]}") >"$S/stdout" 2>"$S/stderr"; rc=$?
        if [ "$rc" != "$want" ]; then
            echo "FAIL $name ($(basename "$tsv")): exit $rc, wanted $want"; sed 's/^/    /' "$S/stderr" | head -8
            fails=$((fails + 1))
        elif grep -q -E "runtime error|AddressSanitizer|LeakSanitizer" "$S/stderr"; then
            echo "FAIL $name: sanitizer report"; head -8 "$S/stderr"; fails=$((fails + 1))
        elif ! grep -q -E -- "$regex" "$S/stderr"; then
            echo "FAIL $name: exit $rc but stderr does not match /$regex/:"; sed 's/^/    /' "$S/stderr" | head -8
            fails=$((fails + 1))
        else
            echo "ok   $name: exit $rc, $(grep -m1 -E -- "$regex" "$S/stderr" | cut -c1-150)"
        fi
    done < "$tsv"
done
echo "$rows reproducers, $skipped skipped, $fails failure(s)"
[ "$rows" -gt 0 ] || { echo "FAIL: no reproducer rows found"; exit 1; }
[ "$fails" = 0 ]
