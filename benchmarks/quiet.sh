#!/usr/bin/env bash
# Run one timing command on a quiet machine: every other running python / affseg process
# is paused (SIGSTOP) while it runs and resumed (SIGCONT) afterwards, even on Ctrl-C.
# Processes started while the command runs are paused too (re-scanned every 0.2 s); the
# command's own processes (same process group) are left alone. One quiet run at a time
# (flock). Keep the command short: everything else waits for it.
#
#   benchmarks/quiet.sh python benchmarks/bench_segment_speed.py --threads 2
set -u
exec 9>"${TMPDIR:-/tmp}/affseg-quiet.lock"
flock 9
mypg=$(ps -o pgid= -p $$ | tr -d ' ')
stopped=""
others() {
  for p in $(pgrep -f '^[^ ]*(python[0-9.]*|affseg|pytest)( |$)'); do
    [ "$(ps -o pgid= -p "$p" 2>/dev/null | tr -d ' ')" = "$mypg" ] || echo "$p"
  done
}
pause_new() {
  local p
  for p in $(others); do
    case " $stopped " in *" $p "*) ;; *) kill -STOP "$p" 2>/dev/null && stopped="$stopped $p" ;; esac
  done
}
resume() {
  [ -n "${watcher:-}" ] && { kill "$watcher" 2>/dev/null; wait "$watcher" 2>/dev/null; }
  # pids the watcher stopped are not in this shell's list: resume everything it could have
  for p in $stopped $(others); do kill -CONT "$p" 2>/dev/null; done
}
trap resume EXIT INT TERM
pause_new
( while true; do sleep 0.2; for p in $(others); do kill -STOP "$p" 2>/dev/null; done; done ) &
watcher=$!
sleep 1
"$@"
