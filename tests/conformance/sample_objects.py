"""Sample objects from localstripe for every resource the plugin reads, raw
as localstripe sends them. Prints JSON {name: raw body}; the plugin's unit
tests parse each (plugin/src/stripe/objects.rs). The committed copy is
tests/vectors/localstripe-objects.json; tests/run also makes a fresh set and
points the tests at it (STRIPE_PLUGIN_SAMPLES)."""

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
AUTH = {"Authorization": "Bearer sk_test_samples"}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def raw(base, method, path, form=""):
    req = urllib.request.Request(f"{base}{path}", data=form.encode() if method == "POST" else None, method=method,
                                 headers={**AUTH, "Content-Type": "application/x-www-form-urlencoded"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.read().decode()
    except urllib.error.HTTPError as e:
        return e.read().decode()


def main():
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, str(HERE / "localstripe_server.py"), str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                raw(base, "GET", "/v1/customers")
                break
            except OSError:
                time.sleep(0.1)
        s = {}
        get = lambda name, method, path, form="": s.setdefault(name, raw(base, method, path, form))
        cus = json.loads(get("customer_created", "POST", "/v1/customers",
                             "name=John&email=j@example.com&metadata[platform_customer_id]=c1"))["id"]
        card = lambda n: json.loads(raw(base, "POST", "/v1/payment_methods",
                                        f"type=card&card[number]={n}&card[exp_month]=12&card[exp_year]=2034&card[cvc]=123"))["id"]
        pm = card("4242424242424242")
        raw(base, "POST", f"/v1/payment_methods/{pm}/attach", f"customer={cus}")
        get("customer_with_default_card", "POST", f"/v1/customers/{cus}", f"invoice_settings[default_payment_method]={pm}")
        get("payment_method_list", "GET", f"/v1/payment_methods?customer={cus}&type=card&limit=2")
        pi = json.loads(get("payment_intent_succeeded", "POST", "/v1/payment_intents",
                            f"amount=120000&currency=gbp&customer={cus}&payment_method={pm}&off_session=true&confirm=true"
                            "&metadata[billing_stripe_plugin_invoice]=inv_1"))
        draft = json.loads(raw(base, "POST", "/v1/payment_intents", f"amount=100&currency=gbp&customer={cus}&payment_method={pm}"))
        get("payment_intent_updated_amount", "POST", f"/v1/payment_intents/{draft['id']}", "amount=120000")
        refund = json.loads(get("refund", "POST", "/v1/refunds", f"payment_intent={pi['id']}&amount=20000"))
        get("charge_partly_refunded", "GET", f"/v1/charges/{refund['charge']}")
        bad = card("4000000000000341")
        raw(base, "POST", f"/v1/payment_methods/{bad}/attach", f"customer={cus}")
        get("error_card_declined", "POST", "/v1/payment_intents",
            f"amount=120000&currency=gbp&customer={cus}&payment_method={bad}&off_session=true&confirm=true&metadata[billing_stripe_plugin_invoice]=inv_2")
        get("error_customer_missing", "GET", "/v1/customers/cus_missing")
        get("error_plain_text", "GET", "/v1/checkout/sessions/cs_missing")
        time.sleep(1.5)  # localstripe emits events a second later
        events = json.loads(raw(base, "GET", "/v1/events?limit=100"))["data"]
        for kind in ("payment_intent.succeeded", "payment_intent.payment_failed"):
            event = next(e for e in events if e["type"] == kind)
            s["event_" + kind.replace(".", "_")] = json.dumps(event, indent=2, sort_keys=True)
        print(json.dumps({"generator": "localstripe 1.15.10", "samples": s}, indent=1))
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    main()
