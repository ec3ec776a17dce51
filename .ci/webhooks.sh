#!/usr/bin/env bash
# Tessera's webhook signatures against a receiver that checks them with the Standard Webhooks
# reference library (PyPI `standardwebhooks`, in a virtual environment under target/ci-tools/):
# the right secret is verified, a wrong one refused.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

STANDARDWEBHOOKS_VERSION=1.0.0
venv=target/ci-tools/webhooks-venv
if ! "$venv/bin/pip" show standardwebhooks 2>/dev/null | grep -qx "Version: $STANDARDWEBHOOKS_VERSION"; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "standardwebhooks==$STANDARDWEBHOOKS_VERSION"
fi

cargo build --quiet --bin tessera
tessera="$root/target/debug/tessera"
work=$(mktemp -d)
receiver_pid=
cleanup() {
  if [[ -n "$receiver_pid" ]] && kill -0 "$receiver_pid" 2>/dev/null; then
    kill "$receiver_pid" 2>/dev/null || true
    wait "$receiver_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

secret() { echo "whsec_$(python3 -c 'import base64, os; print(base64.b64encode(os.urandom(32)).decode())')"; }
right=$(secret)
wrong=$(secret)
"$root/$venv/bin/python" "$root/.ci/webhook_receiver.py" "$right" "$work/port" >"$work/received" 2>&1 &
receiver_pid=$!
for _ in $(seq 1 100); do
  [[ -s "$work/port" ]] && break
  sleep 0.1
done
[[ -s "$work/port" ]] || { cat "$work/received"; echo "the receiver did not start" >&2; exit 1; }
url="http://127.0.0.1:$(cat "$work/port")/hooks/tessera"

TESSERA_WEBHOOK_SECRET=$right "$tessera" webhooks test --url "$url"
status=0
TESSERA_WEBHOOK_SECRET=$wrong "$tessera" webhooks test --url "$url" || status=$?
if [[ $status != 1 ]]; then
  echo "a delivery signed with another secret: exit $status, not 1" >&2
  exit 1
fi
sleep 0.2
cat "$work/received"
[[ $(sed -n 1p "$work/received") == "verified webhook.test msg_"* ]] || { echo "the first delivery was not verified" >&2; exit 1; }
[[ $(sed -n 2p "$work/received") == "refused"* ]] || { echo "the second delivery was not refused" >&2; exit 1; }
echo "ok: the reference library verifies Tessera's signature, and refuses another secret's"

# Real events: a server with --webhook, a token created and deleted through it; the receiver
# verifies each delivery with the reference library.
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
server_log="$work/serve.log"
(cd "$work" && TESSERA_WEBHOOK_SECRET=$right exec "$tessera" serve --listen "127.0.0.1:$port" \
  --bootstrap-token admin.token --webhook "$url") >"$server_log" 2>&1 &
server_pid=$!
stop_server() { kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; }
trap 'stop_server; cleanup' EXIT
for _ in $(seq 1 100); do
  [[ -s "$work/admin.token" ]] && python3 -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$port/healthz', timeout=1)" 2>/dev/null && break
  sleep 0.1
done
export TESSERA_SERVER="http://127.0.0.1:$port" TESSERA_TOKEN
TESSERA_TOKEN=$(cat "$work/admin.token")
"$tessera" token create --name webhooked --expires 7d --super-admin >/dev/null
"$tessera" token delete webhooked >/dev/null
for _ in $(seq 1 100); do
  grep -q "verified token.deleted" "$work/received" && break
  sleep 0.1
done
stop_server
cat "$work/received"
grep -q "^verified token.created msg_" "$work/received" || { cat "$server_log"; echo "token.created was not delivered and verified" >&2; exit 1; }
grep -q "^verified token.deleted msg_" "$work/received" || { cat "$server_log"; echo "token.deleted was not delivered and verified" >&2; exit 1; }
if grep -q "^refused" <(sed -n '3,$p' "$work/received"); then
  echo "a token event was refused by the reference library" >&2
  exit 1
fi
echo "ok: token events from tessera serve --webhook are verified by the reference library"
