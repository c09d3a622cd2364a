#!/usr/bin/python3
"""write_tokens.py: a token file ([data] format = tokens) of the first documents of a text file,
tokenized by the llama2.c tokenizer of tests/oracle.py (written from the format spec, not pathens'
code): every document as BOS + encode(text), concatenated, little-endian uint16 or uint32, no header
(nanoGPT's val.bin layout).

    /usr/bin/python3 write_tokens.py TOKENIZER.bin VOCAB TEXT.txt LIMIT OUT.bin [uint16|uint32]

Prints the documents and token ids written.
"""
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oracle  # noqa: E402  (read_tokenizer, encode, documents)


def main(argv):
    if len(argv) not in (6, 7):
        print(__doc__)
        return 2
    tok, vocab, text, limit, out = argv[1], int(argv[2]), argv[3], int(argv[4]), argv[5]
    dtype = argv[6] if len(argv) == 7 else "uint16"
    pieces, scores = oracle.read_tokenizer(tok, vocab)
    index = {p: i for i, p in enumerate(pieces)}
    ids = []
    docs = oracle.documents(text, limit)
    for _, d in docs:
        ids.extend(oracle.encode(d, pieces, scores, index))
    fmt = "<%d%s" % (len(ids), "H" if dtype == "uint16" else "I")
    with open(out, "wb") as f:
        f.write(struct.pack(fmt, *ids))
    print(f"{len(docs)} documents, {len(ids)} token ids ({dtype}) -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
