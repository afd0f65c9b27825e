#!/usr/bin/env bash
# Start a TLS-secured Dask scheduler with the daskfarm panel, and N workers, on this host.
#
#   deploy/local/start.sh [RUN_DIR]          (default RUN_DIR: ./daskfarm-local)
#
# Settings (environment): WORKERS=2 THREADS=1 HOST=127.0.0.1 PORT=8786 DASHBOARD_PORT=8787
# PYTHON=python3; PORT=0 / DASHBOARD_PORT=0 pick free ports. RUN_DIR receives the certificates
# (made once by make_certs.py), the panel token, scheduler.json, logs and pid files.
# Stop everything with deploy/local/stop.sh RUN_DIR.
set -euo pipefail

RUN_DIR=${1:-./daskfarm-local}
WORKERS=${WORKERS:-2}
THREADS=${THREADS:-1}
HOST=${HOST:-127.0.0.1}
PORT=${PORT:-8786}
DASHBOARD_PORT=${DASHBOARD_PORT:-8787}
PYTHON=${PYTHON:-python3}
HERE=$(cd "$(dirname "$0")" && pwd)

running() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

mkdir -p "$RUN_DIR"
RUN_DIR=$(cd "$RUN_DIR" && pwd)
if running "$RUN_DIR/scheduler.pid"; then
    echo "a scheduler from $RUN_DIR runs already (pid $(cat "$RUN_DIR/scheduler.pid")):" \
         "stop it with $HERE/stop.sh $RUN_DIR" >&2
    exit 1
fi
[ -f "$RUN_DIR/key.pem" ] || "$PYTHON" "$HERE/make_certs.py" "$RUN_DIR" >/dev/null
TLS=(--tls-ca-file "$RUN_DIR/ca.pem" --tls-cert "$RUN_DIR/cert.pem" --tls-key "$RUN_DIR/key.pem")
if [ ! -s "$RUN_DIR/token" ]; then
    (umask 077; "$PYTHON" -c 'import secrets; print(secrets.token_urlsafe(24))' > "$RUN_DIR/token")
fi
DASKFARM_TOKEN=$(cat "$RUN_DIR/token")
export DASKFARM_TOKEN

rm -f "$RUN_DIR/scheduler.json"
nohup "$PYTHON" -m dask scheduler --protocol tls --host "$HOST" --port "$PORT" \
    --dashboard-address "$HOST:$DASHBOARD_PORT" --preload daskfarm.dashboard "${TLS[@]}" \
    --scheduler-file "$RUN_DIR/scheduler.json" \
    </dev/null >"$RUN_DIR/scheduler.log" 2>&1 &
echo $! > "$RUN_DIR/scheduler.pid"

for _ in $(seq 600); do            # up to 60 s for the scheduler to write its address
    [ -s "$RUN_DIR/scheduler.json" ] && break
    if ! running "$RUN_DIR/scheduler.pid"; then
        echo "the scheduler did not start; its log:" >&2; cat "$RUN_DIR/scheduler.log" >&2; exit 1
    fi
    sleep 0.1
done
[ -s "$RUN_DIR/scheduler.json" ] || { echo "the scheduler took over 60 s to start" >&2; exit 1; }

for i in $(seq "$WORKERS"); do
    nohup "$PYTHON" -m dask worker --scheduler-file "$RUN_DIR/scheduler.json" "${TLS[@]}" \
        --host "$HOST" --nthreads "$THREADS" --name "worker-$i" --no-dashboard \
        </dev/null >"$RUN_DIR/worker-$i.log" 2>&1 &
    echo $! > "$RUN_DIR/worker-$i.pid"
done

"$PYTHON" - "$RUN_DIR" "$HOST" <<'PY'
import json, pathlib, sys
run_dir, host = pathlib.Path(sys.argv[1]), sys.argv[2]
info = json.loads((run_dir / "scheduler.json").read_text())
token = (run_dir / "token").read_text().strip()
port = info["services"]["dashboard"]
print(f"scheduler:  {info['address']}")
print(f"panel:      http://{host}:{port}/farm?token={token}")
print(f"TLS files:  --tls-ca-file {run_dir}/ca.pem --tls-cert {run_dir}/cert.pem "
      f"--tls-key {run_dir}/key.pem")
PY
