"""Every flow localstripe supports, end to end through `host-harness serve`,
against Stripe software that no one here wrote (localstripe, PyPI).

    python localstripe_flows.py HOST_HARNESS_BINARY

Starts localstripe (tests/conformance/localstripe_server.py) and `serve` on
free loopback ports, and stops both at the end. localstripe has no Checkout
Sessions, no Idempotency-Key and no Connect, so the host runs on the platform
account with payment links hidden, except where a test shows how the plugin
copes with what localstripe lacks. Differences found: tests/CONFORMANCE.md."""

import hashlib
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path

import stripe

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "pylib"))
import loopback  # noqa: E402
from loopback import free_port, wait_until  # noqa: E402

HERE = Path(__file__).resolve().parent
FIXTURES = HERE.parent.parent / "host-harness" / "fixtures"
API_KEY = "sk_test_localstripe_conformance"
SECRET = f"whsec_localstripe_{os.getpid()}"
# The platform's token: made here, given to serve as its SHA-256 only.
PLATFORM_TOKEN = f"spt_{secrets.token_hex(32)}"
PLATFORM_FLAGS = ["--platform-token-sha256", hashlib.sha256(PLATFORM_TOKEN.encode()).hexdigest()]
# The platform listeners started here: calls to them carry the token.
PLATFORM_BASES = []
BINARY = sys.argv.pop(1) if len(sys.argv) > 1 else str(HERE.parent.parent / "target" / "debug" / "host-harness")


def call(method, url, body=None, headers=None, form=False):
    """A call as `loopback.call`; to a platform listener, with the token."""
    headers = dict(headers or {})
    if any(url.startswith(base + "/") for base in PLATFORM_BASES):
        headers.setdefault("Authorization", f"Bearer {PLATFORM_TOKEN}")
    return loopback.call(method, url, body, headers, form)


class LocalstripeFlows(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.ls_port, cls.public_port, cls.host_port = free_port(), free_port(), free_port()
        cls.ls = f"http://127.0.0.1:{cls.ls_port}"
        # The platform's routes on the platform listener; Stripe's webhooks on the public one.
        cls.host = f"http://127.0.0.1:{cls.host_port}"
        cls.public = f"http://127.0.0.1:{cls.public_port}"
        PLATFORM_BASES.append(cls.host)
        cls.ls_log = open(Path(cls.tmp.name) / "localstripe.log", "w+")
        cls.ls_proc = subprocess.Popen([sys.executable, str(HERE / "localstripe_server.py"), str(cls.ls_port)],
                                       stdout=cls.ls_log, stderr=subprocess.STDOUT)
        record = os.environ.get("STRIPE_PLUGIN_RECORD_DIR")
        args = [BINARY, "serve", "--listen", f"127.0.0.1:{cls.public_port}",
                "--admin-listen", f"127.0.0.1:{cls.host_port}", *PLATFORM_FLAGS, "--stripe-api-base", cls.ls,
                "--account", "", "--webhook-secret", SECRET, "--show-payment-link", "off",
                "--db", str(Path(cls.tmp.name) / "host.db"), "--cache-dir", str(Path(cls.tmp.name) / "cache"),
                "--notification-email", "finance@merchant.example"]
        if record:
            args += ["--record-http", str(Path(record) / "localstripe.jsonl")]
        cls.host_log = open(Path(cls.tmp.name) / "host.log", "w+")
        cls.host_proc = subprocess.Popen(args, env={**os.environ, "STRIPE_API_KEY": API_KEY},
                                         stdout=cls.host_log, stderr=subprocess.STDOUT)
        wait_until("localstripe", lambda: cls.stripe("GET", "/v1/customers")[0] == 200)
        wait_until("serve", lambda: call("GET", f"{cls.host}/healthz")[0] == 200)
        status, _ = call("POST", f"{cls.ls}/_config/webhooks/plugin",
                         f"url={cls.public}/webhooks/stripe&secret={SECRET}", form=True)
        assert status == 200, status

    @classmethod
    def tearDownClass(cls):
        for p in (cls.host_proc, cls.ls_proc):
            p.terminate()
            p.wait(10)
        cls.tmp.cleanup()

    @classmethod
    def stripe(cls, method, path, form=None):
        auth = {"Authorization": f"Bearer {API_KEY}"}
        if method == "GET":
            return call("GET", f"{cls.ls}{path}", headers=auth)
        return call(method, f"{cls.ls}{path}", form or "", headers=auth, form=True)

    def customer_json(self, stripe_id=None, **changes):
        c = json.loads((FIXTURES / "customer.json").read_text())
        c["externalIds"] = [e for e in c["externalIds"] if e["key"] != "Stripe"]
        if stripe_id:
            c["externalIds"].append({"key": "Stripe", "value": stripe_id})
        c.update(changes)
        return c

    def send_invoice(self, invoice_id, customer_id, **changes):
        inv = json.loads((FIXTURES / "invoice.json").read_text())
        inv.update({"id": invoice_id, "invoiceNumber": invoice_id.upper(), "customerId": customer_id}, **changes)
        self.assertEqual(call("POST", f"{self.host}/invoices", inv)[0], 201)
        return call("POST", f"{self.host}/invoices/{invoice_id}/finalize")

    def stripe_customer_with_card(self, number):
        _, cus = self.stripe("POST", "/v1/customers", "name=Self+Serve+Ltd&email=owner@example.com")
        _, pm = self.stripe("POST", "/v1/payment_methods",
                            f"type=card&card[number]={number}&card[exp_month]=12&card[exp_year]=2034&card[cvc]=123")
        self.stripe("POST", f"/v1/payment_methods/{pm['id']}/attach", f"customer={cus['id']}")
        _, updated = self.stripe("POST", f"/v1/customers/{cus['id']}",
                                 f"invoice_settings[default_payment_method]={pm['id']}")
        self.assertEqual(updated["invoice_settings"]["default_payment_method"], pm["id"])
        return cus["id"]

    def delivered(self, event_type):
        self.ls_log.flush()
        return f'webhook "{event_type}" successfully delivered' in Path(self.ls_log.name).read_text()

    def test_customers_are_created_then_updated_in_stripe(self):
        self.assertEqual(call("PUT", f"{self.host}/customers/c_create", self.customer_json())[0], 200)
        status, inv = self.send_invoice("inv_create", "c_create", autoCharge=False)
        self.assertEqual(status, 200, inv)
        _, c = call("GET", f"{self.host}/customers/c_create")
        cus = c["stripeCustomerId"]
        self.assertTrue(cus and cus.startswith("cus_"), c)
        _, s = self.stripe("GET", f"/v1/customers/{cus}")
        self.assertEqual((s["name"], s["email"], s["address"]["city"], s["address"]["postal_code"]),
                         ("John Doe", "john@example.com", "London", "AB1 2EF"))
        status, _ = call("PUT", f"{self.host}/customers/c_create", self.customer_json(legalName="John Doe Ltd"))
        self.assertEqual(status, 200)
        _, s = self.stripe("GET", f"/v1/customers/{cus}")
        self.assertEqual(s["name"], "John Doe Ltd")

    def test_a_card_on_file_is_charged_when_the_invoice_is_sent(self):
        cus = self.stripe_customer_with_card("4242424242424242")
        self.assertEqual(call("PUT", f"{self.host}/customers/c_card", self.customer_json(cus))[0], 200)
        status, inv = self.send_invoice("inv_card", "c_card")
        self.assertEqual((status, inv["status"], inv["amountPaid"]), (200, "PAID", "1200.00"), inv)
        wait_until("localstripe's signed payment_intent.succeeded accepted", lambda: self.delivered("payment_intent.succeeded"))
        pi = inv["payments"][0]["stripeRef"]
        _, intent = self.stripe("GET", f"/v1/payment_intents/{pi}")
        self.assertEqual((intent["status"], intent["amount"], intent["currency"]), ("succeeded", 120000, "gbp"))

    def test_localstripes_signed_webhook_marks_an_invoice_paid(self):
        cus = self.stripe_customer_with_card("4242424242424242")
        self.assertEqual(call("PUT", f"{self.host}/customers/c_hook", self.customer_json(cus))[0], 200)
        status, inv = self.send_invoice("inv_hook", "c_hook", autoCharge=False)
        self.assertEqual(inv["status"], "FINAL", inv)
        _, c = self.stripe("GET", f"/v1/customers/{cus}")
        pm = c["invoice_settings"]["default_payment_method"]
        # The customer pays some other way Stripe knows of; only the webhook tells
        # the host. The amount is changed by an update first: localstripe then
        # keeps (and sends) it as a string, "120000".
        _, pi = self.stripe("POST", "/v1/payment_intents",
                            f"amount=100&currency=gbp&customer={cus}&payment_method={pm}&metadata[billing_stripe_plugin_invoice]=inv_hook")
        self.stripe("POST", f"/v1/payment_intents/{pi['id']}", "amount=120000")
        status, confirmed = self.stripe("POST", f"/v1/payment_intents/{pi['id']}/confirm")
        self.assertEqual((status, confirmed["amount"]), (200, "120000"), "localstripe's string amount")
        wait_until("the invoice to be PAID by webhook",
                   lambda: call("GET", f"{self.host}/invoices/inv_hook")[1]["status"] == "PAID")
        _, inv = call("GET", f"{self.host}/invoices/inv_hook")
        self.assertEqual(inv["amountPaid"], "1200.00")

    def test_a_declined_card_fails_the_payment_and_emails_both_once(self):
        cus = self.stripe_customer_with_card("4000000000000341")
        self.assertEqual(call("PUT", f"{self.host}/customers/c_decline", self.customer_json(cus))[0], 200)
        status, inv = self.send_invoice("inv_decline", "c_decline")
        self.assertEqual((status, inv["status"]), (200, "PAYMENT_FAILED"), inv)
        self.assertEqual(inv["lastFailure"]["code"], "card_declined")
        wait_until("localstripe's payment_intent.payment_failed", lambda: self.delivered("payment_intent.payment_failed"))
        time.sleep(0.3)
        _, outbox = call("GET", f"{self.host}/outbox")
        mails = [m for m in outbox["data"] if "inv_decline" in m["dedupeKey"]]
        self.assertEqual(sorted(m["to"] for m in mails), ["exampleCorpInvoices@example.com", "finance@merchant.example"],
                         "one email each, even though the webhook reported the same attempt again")

    def test_refunds_are_reconciled_from_localstripes_charge(self):
        cus = self.stripe_customer_with_card("4242424242424242")
        self.assertEqual(call("PUT", f"{self.host}/customers/c_refund", self.customer_json(cus))[0], 200)
        _, inv = self.send_invoice("inv_refund", "c_refund")
        self.assertEqual(inv["status"], "PAID", inv)
        pi = inv["payments"][0]["stripeRef"]
        for amount, expected in (("20000", "PARTIALLY_REFUNDED"), ("100000", "REFUNDED")):
            status, refund = self.stripe("POST", "/v1/refunds", f"payment_intent={pi}&amount={amount}")
            self.assertEqual(status, 200, refund)
            # localstripe emits no charge.refunded: deliver one built from its own
            # charge object, signed with stripe-python, as Stripe would send it.
            _, charge = self.stripe("GET", f"/v1/charges/{refund['charge']}")
            body = json.dumps({"id": f"evt_refund_{amount}", "object": "event", "type": "charge.refunded",
                               "livemode": False, "created": int(time.time()), "data": {"object": charge}})
            header = stripe.WebhookSignature.generate_signature_header(body, SECRET)
            status, answer = call("POST", f"{self.public}/webhooks/stripe", body,
                                  headers={"Stripe-Signature": header, "Content-Type": "application/json"})
            self.assertEqual(status, 200, answer)
            _, inv = call("GET", f"{self.host}/invoices/inv_refund")
            self.assertEqual(inv["status"], expected, inv)

    def test_what_localstripe_lacks_is_a_clear_error_not_a_crash(self):
        # An unknown Stripe customer: refused, nothing linked.
        status, body = call("PUT", f"{self.host}/customers/c_unknown", self.customer_json("cus_DoesNotExist"))
        self.assertEqual(status, 422, body)
        self.assertIn("cus_DoesNotExist does not exist", body["error"]["message"])
        # No Checkout Sessions: localstripe answers a plain-text 404. A host
        # that shows payment links gets a clear error for that invoice.
        port = free_port()
        with_links = subprocess.Popen(
            [BINARY, "serve", "--listen", f"127.0.0.1:{free_port()}", "--admin-listen", f"127.0.0.1:{port}",
             *PLATFORM_FLAGS, "--stripe-api-base", self.ls, "--account", "",
             "--webhook-secret", SECRET, "--db", str(Path(self.tmp.name) / "links.db"),
             "--cache-dir", str(Path(self.tmp.name) / "cache")],
            env={**os.environ, "STRIPE_API_KEY": API_KEY}, stdout=self.host_log, stderr=subprocess.STDOUT)
        try:
            links = f"http://127.0.0.1:{port}"
            PLATFORM_BASES.append(links)
            wait_until("the second serve", lambda: call("GET", f"{links}/healthz")[0] == 200)
            self.assertEqual(call("PUT", f"{links}/customers/c_nolink", self.customer_json())[0], 200)
            inv = json.loads((FIXTURES / "invoice.json").read_text())
            inv.update({"id": "inv_nolink", "customerId": "c_nolink"})
            self.assertEqual(call("POST", f"{links}/invoices", inv)[0], 201)
            status, body = call("POST", f"{links}/invoices/inv_nolink/finalize")
            self.assertEqual(status, 422, body)
            self.assertIn("404: Not Found", body["error"]["message"])
            self.assertFalse(body["error"]["retryable"])
            # The host keeps serving after it.
            self.assertEqual(call("GET", f"{links}/healthz")[0], 200)
        finally:
            with_links.terminate()
            with_links.wait(10)

if __name__ == "__main__":
    unittest.main(verbosity=2)
