#!/usr/bin/env bash
# cli_tok_oracle_shakespeare.sh: cli_tok_oracle.sh on the whole of data/tinyshakespeare.txt
# (documents mode, GPT-2, Llama 2, Llama 3 and Qwen 3 vocabularies), a test of its own so that each
# stays near a minute on CI's 2 cores (the JavaScript oracle is the slow part).
exec bash "${PATHENS_SRC:?}/tests/cli_tok_oracle.sh" tinyshakespeare.txt
