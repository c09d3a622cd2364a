#!/usr/bin/env bash
# journal_setup.sh NAME RUN_OUT: the setup of a journal.tsv row, run through $(...) in its command
# (it prints nothing). Copies files/NAME.msgpack, a journal from fuzzing, to RUN_OUT/journal.msgpack
# and gives its header the fingerprint that this checkout's pathens computes for the row's config
# (the one below; the fingerprint covers the canonical model and data paths and the version, so a
# stored header matches only where it was made). The records after the header keep their bytes and
# checksums: what the row tests is how pathens treats them.
set -u
name=$1 run=$2
R=$(cd "$(dirname "$0")" && pwd)
D=${PATHENS_DATA_DIR:?}
mkdir -p "$run" && cp "$R/$name.msgpack" "$run/journal.msgpack" && chmod u+w "$run/journal.msgpack" || exit 0
# a header of another config is refused with both fingerprints named: take this config's
fp=$("${PATHENS:?}" eval "${PATHENS_SRC:?}/configs/stories260k.ini" --set model.path="$D/stories260K.bin" \
     --set model.tokenizer="$D/tok512.bin" --set data.path="$D/tinystories_val.txt" --set data.limit=4 \
     --set pathways.members=2 --set run.shard=2 --set importance.statistics=0 --set run.out="$run" --quiet 2>&1 |
     grep -o -E 'this config:? [0-9a-f]{16}' | grep -o -E '[0-9a-f]{16}$')
[ -n "$fp" ] || { echo "journal_setup.sh: no fingerprint in pathens' refusal" >&2; exit 0; }
/usr/bin/python3 - "$run/journal.msgpack" "$fp" <<'PY'
import struct, sys, zlib
p, fp = sys.argv[1], int(sys.argv[2], 16)
b = open(p, 'rb').read()
n = struct.unpack('<I', b[4:8])[0]
pay = bytearray(b[12:12 + n])
i = pay.index(b'\xabfingerprint') + 12
assert pay[i] == 0xcf, 'fingerprint is not a uint64'
pay[i + 1:i + 9] = struct.pack('>Q', fp)
open(p, 'wb').write(b'PJR1' + struct.pack('<II', n, zlib.crc32(bytes(pay))) + bytes(pay) + b[12 + n:])
PY
