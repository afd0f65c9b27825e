#!/usr/bin/env bash
# Stop what deploy/local/start.sh started: the workers, then the scheduler, by their pid files.
#
#   deploy/local/stop.sh [RUN_DIR]          (default RUN_DIR: ./daskfarm-local)
set -uo pipefail

RUN_DIR=${1:-./daskfarm-local}
alive() { case "$(ps -o stat= -p "$1" 2>/dev/null)" in ""|Z*) return 1;; esac; }

stop() {                        # SIGTERM, up to 20 s to exit, then SIGKILL
    local file=$1 pid
    [ -f "$file" ] || return 0
    pid=$(cat "$file")
    if alive "$pid"; then
        kill -TERM "$pid" 2>/dev/null
        for _ in $(seq 200); do alive "$pid" || break; sleep 0.1; done
        alive "$pid" && kill -KILL "$pid" 2>/dev/null
    fi
    rm -f "$file"
}

for file in "$RUN_DIR"/worker-*.pid; do [ -e "$file" ] && stop "$file"; done
stop "$RUN_DIR/scheduler.pid"
rm -f "$RUN_DIR/scheduler.json"
echo "stopped the cluster of $RUN_DIR"
