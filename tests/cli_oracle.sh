#!/usr/bin/env bash
# cli_oracle.sh: tests/oracle_runs.sh with the binary run directly (no mpirun): dense, members,
# ensemble, curve, KL, agreement, minus_dense and per-example values of `pathens eval` against
# tests/oracle.py (PyTorch forward, its own tokenizer and sampler), llama2.c's reference NLL,
# ratio 1 = dense, identical members mix to themselves. Runs in the MPI-less (ASan) build too.
exec bash "${PATHENS_SRC:?}/tests/oracle_runs.sh" serial
