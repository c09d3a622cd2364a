#!/usr/bin/env bash
# mpi_oracle.sh: tests/oracle_runs.sh under a real mpirun with 1 and 3 ranks, and the MPI-less
# build (PATHENS_NOMPI, built by the nompi_build fixture of tests/CMakeLists.txt) : every number
# of `pathens eval` against tests/oracle.py (see oracle_runs.sh for the list).
l=(mpi1 mpi3)
if [ -n "${PATHENS_NOMPI:-}" ]; then
    [ -x "$PATHENS_NOMPI" ] || { echo "FAIL: PATHENS_NOMPI=$PATHENS_NOMPI is not an executable (the nompi_build fixture)"; exit 1; }
    l+=(nompi)
fi
exec bash "${PATHENS_SRC:?}/tests/oracle_runs.sh" "${l[@]}"
