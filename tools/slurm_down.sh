#!/usr/bin/env bash
# slurm_down.sh DIR: stop the SLURM started by tools/slurm_up.sh DIR. Cancels every job first
# (a running job's slurmstepd would outlive slurmd), then stops slurmd and slurmctld by the pids in
# DIR's pid files only (TERM, then KILL after 5 s), and only if that pid is still that daemon.
# Safe to call twice, after a failed start, or when nothing runs: it then does nothing. Exit 0.
set -u
D=${1:?usage: slurm_down.sh DIR}
[ -d "$D" ] || exit 0
export SLURM_CONF="$D/slurm.conf"

alive() { # alive NAME: the pid in DIR/NAME.pid is a running NAME process
    local f="$D/$1.pid" pid
    [ -s "$f" ] || return 1
    pid=$(cat "$f" 2>/dev/null) && [ -n "$pid" ] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$1" ]
}

if alive slurmctld && [ -r "$SLURM_CONF" ]; then
    if squeue -h -o %i 2>/dev/null | grep -q .; then
        scancel --partition=debug 2>/dev/null || true
        for _ in $(seq 1 60); do   # up to 15 s for the steps to end (KillWait is 10 s)
            squeue -h -t all -o '%T' 2>/dev/null | grep -qvE '^(COMPLETED|CANCELLED|FAILED|TIMEOUT|PREEMPTED|NODE_FAIL|BOOT_FAIL|DEADLINE|OUT_OF_MEMORY)$' || break
            sleep 0.25
        done
        left=$(squeue -h -t running,completing -o %i 2>/dev/null | tr '\n' ' ')
        [ -z "$left" ] || echo "slurm_down: jobs still ending after scancel: $left" >&2
    fi
fi
for p in slurmd slurmctld; do
    f="$D/$p.pid"
    if alive "$p"; then
        pid=$(cat "$f")
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
        if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
        echo "stopped $p ($pid)"
    fi
    rm -f "$f"
done
exit 0
