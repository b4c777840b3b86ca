#!/usr/bin/env bash
# Runs the browser journey against `serve` and `stripe-emulator`, both started
# here on free loopback ports and stopped on exit. Needs Chromium and
# playwright-core (tests/run installs both).
set -euo pipefail
cd "$(dirname "$0")"
bin=${HOST_HARNESS:-../../target/debug/host-harness}
tmp=$(mktemp -d)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
stripe_port=$(free_port)
host_port=$(free_port)
admin_port=$(free_port)
secret="whsec_browser_$(date +%s%N)"
account=acct_BrowserMerchant
export STRIPE_API_KEY="sk_test_browser_$RANDOM"

business="Browser Test Shop"
"$bin" stripe-emulator --listen "127.0.0.1:$stripe_port" --account "$account" --business-name "$business" \
    --webhook-url "http://127.0.0.1:$host_port/webhooks/stripe" --webhook-secret "$secret" 2>"$tmp/emulator.log" &
pids+=($!)
# The platform's token, made on the host's database as an operator would.
export PLATFORM_TOKEN=$("$bin" token create --label browser --db "$tmp/host.db" 2>/dev/null)
"$bin" serve --listen "127.0.0.1:$host_port" --admin-listen "127.0.0.1:$admin_port" --stripe-api-base "http://127.0.0.1:$stripe_port" \
    --db "$tmp/host.db" --account "$account" --webhook-secret "$secret" --cache-dir "$tmp/cache" \
    --display-name "$business" \
    ${STRIPE_PLUGIN_RECORD_DIR:+--record-http "$STRIPE_PLUGIN_RECORD_DIR/browser.jsonl"} 2>"$tmp/host.log" &
pids+=($!)
for _ in $(seq 100); do
    python3 -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$host_port/healthz', timeout=1)" 2>/dev/null && break
    sleep 0.1
done
node checkout.mjs "http://127.0.0.1:$host_port" "http://127.0.0.1:$admin_port" "http://127.0.0.1:$stripe_port" "$account" "$STRIPE_API_KEY" "$business" || {
    echo "--- host log"; cat "$tmp/host.log"; echo "--- emulator log"; cat "$tmp/emulator.log"; exit 1;
}
