#!/usr/bin/env bash
# Run one timing command on a quiet machine: every other running python / affseg process
# is paused (SIGSTOP) while it runs and resumed (SIGCONT) afterwards, even on Ctrl-C.
# One quiet run at a time (flock). Keep the command short: everything else waits for it.
#
#   benchmarks/quiet.sh python benchmarks/bench_segment_speed.py --threads 2
set -u
exec 9>"${TMPDIR:-/tmp}/affseg-quiet.lock"
flock 9
pids=$(pgrep -f '^[^ ]*(python[0-9.]*|affseg)( |$)' | grep -vx "$$" | tr '\n' ' ')
resume() { [ -n "$pids" ] && kill -CONT $pids 2>/dev/null; }
trap resume EXIT INT TERM
[ -n "$pids" ] && kill -STOP $pids 2>/dev/null
sleep 1
"$@"
