#!/usr/bin/env bash
# Drive a running Tapestry with real third-party clients (not our own code): node-oscquery reads the
# OSCQuery tree, osc.js sends 20 faders at 60 Hz over UDP, ws LISTENs for the changes.
# Needs node + npm (Debian: apt-get install nodejs npm) and the npm registry.  Binds only ports the OS
# chooses and runs with --no-leds, so it can run beside a live show.
# Usage: bash scripts/check_real_clients.sh [PYTHON]   (default .venv/bin/python)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${1:-.venv/bin/python}
work=$(mktemp -d); trap 'kill "${pid:-0}" 2>/dev/null || true; rm -rf "$work"' EXIT
read -r OSC_PORT WEB_PORT < <("$PY" -c 'import socket
a=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); a.bind(("127.0.0.1",0))
b=socket.socket(); b.bind(("127.0.0.1",0)); print(a.getsockname()[1], b.getsockname()[1])')
cp hardware/demo-venue.toml hardware/strip-wall.toml hardware/hanging-net.toml hardware/net-points.csv "$work/"
cat >> "$work/demo-venue.toml" <<TOML

[osc]
port = $OSC_PORT
[web]
host = "127.0.0.1"
port = $WEB_PORT
token = "check"
TOML
"$PY" run.py params | sed -n 's/^| `\(\/tapestry\/[^`]*\)`.*/\1/p' > "$work/declared.txt"
# aliases and query commands of the OSC server are not OSCQuery nodes; every parameter is
grep -v -x -e /tapestry/blackout -e /tapestry/master -e /tapestry/get -e /tapestry/list -e /tapestry/status \
  -e /tapestry/subscribe -e /tapestry/unsubscribe -e /tapestry/verify -e /tapestry/preset/list \
  -e /tapestry/preset/save/force -e /tapestry/venue/save "$work/declared.txt" > "$work/params.txt" || true
cp scripts/real-clients/package.json scripts/real-clients/client.js "$work/"
(cd "$work" && npm install --silent --no-audit --no-fund >/dev/null)
"$PY" run.py --venue "$work/demo-venue.toml" --no-leds --health-port 0 > "$work/run.log" 2>&1 &
pid=$!
for _ in $(seq 60); do
  "$PY" -c "import socket,sys; s=socket.socket(); sys.exit(s.connect_ex(('127.0.0.1',$WEB_PORT)))" && break
  kill -0 "$pid" 2>/dev/null || { echo "the piece did not start:"; cat "$work/run.log"; exit 1; }
  sleep 0.5
done
(cd "$work" && WEB_PORT=$WEB_PORT OSC_PORT=$OSC_PORT PARAMS_FILE="$work/params.txt" node client.js) || { echo "client check failed; the piece's log:"; tail -20 "$work/run.log"; exit 1; }
