#!/usr/bin/env bash
# cli_fetch_data.sh: tools/fetch-data.sh in throw-away checkouts (a copy of the script in
# T/<case>/repo/tools/, so that the sibling data folder the script links from is a fake one,
# T/<case>/$SIB (the script's own SHARED setting), never the real one):
#   link mode from that fake folder (links, idempotent re-run, --check against the pins);
#   download mode from a file:// mirror (PATHENS_DATA_MIRROR; fake files with PATHENS_DATA_PINS);
#   a sha256 mismatch and a failed download are refused (exit != 0, file and URL named, no file
#   left behind) while the other files still arrive; --check finds a corrupted file;
#   and, when the real data is here, a mirror of it passes the real pins shipped in the script.
# Needs curl (tools/deps.sh): FAILS without it.
set -u
: "${PATHENS_SRC:?}" "${PATHENS_TEST_TMP:?}" "${PATHENS_DATA_DIR:?}"
source "$PATHENS_SRC/tests/lib.sh"
command -v curl >/dev/null || { echo "FAIL: curl is missing (tools/deps.sh installs it)"; exit 1; }
T="$PATHENS_TEST_TMP/cli_fetch_data"; rm -rf "$T"; mkdir -p "$T"; T=$(cd "$T" && pwd)
fails=0
ok()  { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }
FILES="stories260K.bin stories260K_v1.bin tok512.bin tinystories_val.txt tinyshakespeare.txt"
GOLDEN=golden/stories260K_lily.txt
# the folder beside the checkout that the script links from, as the script itself names it
SIB=$(sed -n 's|^SHARED="\$ROOT/\.\./\(.*\)"$|\1|p' "$PATHENS_SRC/tools/fetch-data.sh")
[ -n "$SIB" ] || { echo "FAIL: tools/fetch-data.sh has no SHARED=\"\$ROOT/../DIR\" line to read"; exit 1; }

checkout() { # checkout DIR: DIR/repo/tools/fetch-data.sh
    mkdir -p "$1/repo/tools"
    cp "$PATHENS_SRC/tools/fetch-data.sh" "$1/repo/tools/"
}
fake_files() { # fake_files DIR: small distinct files under the real names, and DIR.pins for them
    mkdir -p "$1/golden"
    local f
    for f in $FILES $GOLDEN; do printf 'fake %s\n%s\n' "$f" "$RANDOM$RANDOM" >"$1/$f"; done
    (cd "$1" && sha256sum $FILES) >"$1.pins"
}
fetch() { # fetch NAME DIR [VAR=value...] [--check]
    local name=$1 dir=$2; shift 2
    local envs=() args=()
    for a in "$@"; do case "$a" in *=*) envs+=("$a");; *) args+=("$a");; esac; done
    env "${envs[@]}" "$dir/repo/tools/fetch-data.sh" "${args[@]}" >"$T/$name.out" 2>"$T/$name.err"
    rc=$?
}

# ---- link mode: a fake sibling data folder beside the checkout ---------------------------------
L="$T/link"; checkout "$L"; fake_files "$L/$SIB"
fetch link1 "$L" PATHENS_DATA_PINS="$L/$SIB.pins"
[ $rc = 0 ] && ok "link mode: exit 0" || bad "link mode: exit $rc: $(cat "$T/link1.err")"
n=0
for f in $FILES $GOLDEN; do
    [ -L "$L/repo/data/$f" ] && [ "$(readlink "$L/repo/data/$f")" = "$L/$SIB/$f" ] && n=$((n + 1))
done
[ $n = 6 ] && ok "link mode: 6 links to the sibling data folder" || bad "link mode: $n of 6 links: $(ls -lR "$L/repo/data")"
inodes() { stat -c '%i %Y' "$L"/repo/data/* "$L"/repo/data/golden/*; }
before=$(inodes); sleep 1
fetch link2 "$L" PATHENS_DATA_PINS="$L/$SIB.pins"
[ $rc = 0 ] && [ "$(inodes)" = "$before" ] && ! grep -q "^linked" "$T/link2.out" &&
    ok "link mode re-run: a no-op" || bad "link re-run: exit $rc, changed: $(cat "$T/link2.out")"
fetch linkcheck "$L" PATHENS_DATA_PINS="$L/$SIB.pins" --check
[ $rc = 0 ] && grep -q '6 present and verified, 0 missing' "$T/linkcheck.out" &&
    ok "link mode: --check verifies the 6 files" || bad "link --check: exit $rc: $(cat "$T/linkcheck.out" "$T/linkcheck.err")"
fetch linkreal "$L" --check # the fake files against the real pins
[ $rc = 2 ] && grep -q 'data/tok512.bin does not match its sha256 pin' "$T/linkreal.err" &&
    ok "--check with the real pins refuses the fake files (exit 2)" || bad "--check real pins: exit $rc: $(cat "$T/linkreal.err")"
L2="$T/link-bad"; checkout "$L2"; fake_files "$L2/$SIB"
fetch linkbad "$L2" # the fake shared files do not match the real pins: not linked
[ $rc = 2 ] && grep -q "$SIB/stories260K.bin does not match its sha256 pin" "$T/linkbad.err" &&
    [ ! -e "$L2/repo/data/stories260K.bin" ] && [ -L "$L2/repo/data/$GOLDEN" ] &&
    ok "link mode: a shared file that mismatches its pin is not linked (exit 2); golden (no pin) is" ||
    bad "link mismatch: exit $rc: $(cat "$T/linkbad.err")"

# ---- download mode: no ../shared beside the checkout; a file:// mirror ---------------------------
D="$T/dl"; checkout "$D"; fake_files "$T/mirror"
fetch dl1 "$D" PATHENS_DATA_MIRROR="file://$T/mirror" PATHENS_DATA_PINS="$T/mirror.pins"
n=0
for f in $FILES; do
    [ -f "$D/repo/data/$f" ] && [ ! -L "$D/repo/data/$f" ] && cmp -s "$D/repo/data/$f" "$T/mirror/$f" && n=$((n + 1))
done
[ $rc = 0 ] && [ $n = 5 ] && ok "download mode: 5 files fetched from the mirror, byte for byte" ||
    bad "download: exit $rc, $n of 5 files: $(cat "$T/dl1.err")"
[ ! -e "$D/repo/data/$GOLDEN" ] && grep -q "skip .*$GOLDEN: no public URL" "$T/dl1.out" &&
    ok "download mode: golden skipped with a note" || bad "golden: $(cat "$T/dl1.out")"
before=$(stat -c '%i %Y' "$D"/repo/data/*); sleep 1
fetch dl2 "$D" PATHENS_DATA_MIRROR="file://$T/nonexistent" PATHENS_DATA_PINS="$T/mirror.pins"
[ $rc = 0 ] && [ "$(stat -c '%i %Y' "$D"/repo/data/*)" = "$before" ] && ! grep -q "^fetched" "$T/dl2.out" &&
    ok "download re-run: a no-op (the mirror is not even read)" || bad "download re-run: exit $rc: $(cat "$T/dl2.out" "$T/dl2.err")"
fetch dlcheck "$D" PATHENS_DATA_PINS="$T/mirror.pins" --check
[ $rc = 0 ] && grep -q '5 present and verified, 1 missing' "$T/dlcheck.out" &&
    ok "download mode: --check: 5 verified, golden missing" || bad "dl --check: exit $rc: $(cat "$T/dlcheck.out")"
printf 'x' >>"$D/repo/data/tinyshakespeare.txt"
fetch dlcorrupt "$D" PATHENS_DATA_PINS="$T/mirror.pins" --check
[ $rc = 2 ] && grep -q 'data/tinyshakespeare.txt does not match its sha256 pin' "$T/dlcorrupt.err" &&
    ok "--check finds a corrupted file (exit 2)" || bad "--check corrupted: exit $rc: $(cat "$T/dlcorrupt.err")"

# ---- a mismatching and a failed download: refused, named, nothing left behind ---------------------
B="$T/bad"; checkout "$B"; mkdir -p "$T/badmirror"; cp -r "$T/mirror/." "$T/badmirror/"
printf 'tampered' >>"$T/badmirror/tok512.bin"
rm "$T/badmirror/tinystories_val.txt"
fetch bad "$B" PATHENS_DATA_MIRROR="file://$T/badmirror" PATHENS_DATA_PINS="$T/mirror.pins"
[ $rc != 0 ] && ok "a bad mirror: exit $rc" || bad "a bad mirror: exit 0"
grep -q "data/tok512.bin from file://$T/badmirror/tok512.bin does not match its sha256 pin" "$T/bad.err" &&
    ok "sha256 mismatch: names the file and the URL" || bad "mismatch message: $(cat "$T/bad.err")"
grep -q "download of data/tinystories_val.txt from file://$T/badmirror/tinystories_val.txt failed" "$T/bad.err" &&
    ok "failed download: names the file and the URL" || bad "failed download message: $(cat "$T/bad.err")"
left=$(cd "$B/repo/data" && find . -name '*tok512*' -o -name '*tinystories*' -o -name '.*part*')
[ -z "$left" ] && ok "no file left behind for the refused downloads" || bad "left behind: $left"
[ -f "$B/repo/data/stories260K.bin" ] && [ -f "$B/repo/data/tinyshakespeare.txt" ] &&
    ok "the good files of that mirror still arrived" || bad "good files missing: $(ls -a "$B/repo/data")"
fetch usage "$B" --bogus
[ $rc = 1 ] && grep -q "unknown argument" "$T/usage.err" && ok "unknown argument: exit 1" || bad "usage: exit $rc"

# ---- the real pins: a file:// mirror of the real data (when it is here) --------------------------
real=1
for f in $FILES; do [ -r "$PATHENS_DATA_DIR/$f" ] || real=0; done
if [ $real = 1 ]; then
    R="$T/real"; checkout "$R"
    fetch real "$R" PATHENS_DATA_MIRROR="file://$(cd "$PATHENS_DATA_DIR" && pwd)"
    [ $rc = 0 ] && [ "$(grep -c '^fetched' "$T/real.out")" = 5 ] &&
        ok "the real data matches the sha256 pins in tools/fetch-data.sh" || bad "real pins: exit $rc: $(cat "$T/real.err")"
elif [ "${CI:-}" = true ]; then
    bad "real data missing under CI=true ($PATHENS_DATA_DIR): run tools/fetch-data.sh"
else
    echo "skip the real-pins check: $PATHENS_DATA_DIR lacks the data (tools/fetch-data.sh)"
fi

[ $fails = 0 ] && echo "cli_fetch_data: all passed" || echo "cli_fetch_data: $fails failed"
[ $fails = 0 ]
