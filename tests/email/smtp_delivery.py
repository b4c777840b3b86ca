"""Emails actually delivered (issue 19, section 5), end to end through
`host-harness serve`, to a real SMTP server on loopback (aiosmtpd):

    python smtp_delivery.py HOST_HARNESS_BINARY

Starts the Stripe emulator, an SMTP server and `serve` (relay on loopback,
plain SMTP, which serve allows only there), and checks that:
- a declined charge's two emails arrive, to the merchant and to the
  customer, with their subjects and the pay link;
- a relay that answers 451, drops the connection in the middle, or is
  down, has the email tried again until it takes it;
- `serve` SIGKILLed while an email waits for a relay that is down sends it
  after its restart, and every copy of one email that arrives carries the
  same Message-ID (one per email), so a receiving system drops repeats.
"""

import email
import email.policy
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from pathlib import Path

from aiosmtpd.controller import Controller

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "pylib"))
from loopback import call, free_port, wait_until  # noqa: E402

HERE = Path(__file__).resolve().parent
FIXTURES = HERE.parent.parent / "host-harness" / "fixtures"
BINARY = sys.argv.pop(1) if len(sys.argv) > 1 else str(HERE.parent.parent / "target" / "debug" / "host-harness")
ACCOUNT = "acct_MailMerchant"
API_KEY = "sk_test_mail_delivery"
SECRET = f"whsec_mail_{os.getpid()}"


class Inbox:
    """The SMTP server's handler: keeps what arrives; answers 451 to the
    next `refuse` messages, and drops the connection in the middle of the
    next `drop` ones."""

    def __init__(self):
        self.lock = threading.Lock()
        self.messages = []
        self.refuse = 0
        self.drop = 0

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            if self.drop > 0:
                self.drop -= 1
                server.transport.close()
                return "421 4.4.2 Connection dropped"
            if self.refuse > 0:
                self.refuse -= 1
                return "451 4.3.0 Try again later"
            msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
            body = msg.get_body(preferencelist=("plain",))
            self.messages.append({
                "message_id": msg["Message-ID"],
                "to": msg["To"],
                "subject": msg["Subject"],
                "rcpt": list(envelope.rcpt_tos),
                "text": body.get_content() if body else "",
            })
        return "250 OK"

    def received(self):
        with self.lock:
            return list(self.messages)


class SmtpDelivery(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.dir = Path(cls.tmp.name)
        cls.inbox = Inbox()
        cls.smtp_port = free_port()
        cls.smtp = None
        cls.start_smtp()
        stripe_port, public_port, admin_port = free_port(), free_port(), free_port()
        cls.stripe = f"http://127.0.0.1:{stripe_port}"
        cls.public = f"http://127.0.0.1:{public_port}"
        cls.admin = f"http://127.0.0.1:{admin_port}"
        cls.logs = open(cls.dir / "processes.log", "w+")
        cls.emulator = subprocess.Popen(
            [BINARY, "stripe-emulator", "--listen", f"127.0.0.1:{stripe_port}", "--account", ACCOUNT,
             "--webhook-url", f"{cls.public}/webhooks/stripe"],
            env={**os.environ, "STRIPE_PLUGIN_WEBHOOK_SECRETS": SECRET},
            stdout=cls.logs, stderr=subprocess.STDOUT)
        db = str(cls.dir / "host.db")
        token = subprocess.run([BINARY, "token", "create", "--label", "mail", "--db", db],
                               check=True, capture_output=True, text=True).stdout.strip()
        cls.auth = {"Authorization": f"Bearer {token}"}
        cls.serve_args = [
            BINARY, "serve", "--listen", f"127.0.0.1:{public_port}", "--admin-listen", f"127.0.0.1:{admin_port}",
            "--db", db, "--stripe-api-base", cls.stripe, "--account", ACCOUNT,
            "--notification-email", "finance@merchant.example", "--sync-every-secs", "0",
            "--smtp-host", "127.0.0.1", "--smtp-port", str(cls.smtp_port), "--smtp-security", "none",
            "--email-from", "Billing <billing@platform.example>"]
        cls.serve = None
        cls.start_serve()
        wait_until("the emulator", lambda: call("GET", f"{cls.stripe}/v1/customers",
                                                 headers=cls.stripe_headers())[0] == 200)

    @classmethod
    def tearDownClass(cls):
        for p in (cls.serve, cls.emulator):
            if p and p.poll() is None:
                p.terminate()
                p.wait(10)
        if cls.smtp:
            cls.smtp.stop()
        cls.tmp.cleanup()

    @classmethod
    def start_smtp(cls):
        cls.smtp = Controller(cls.inbox, hostname="127.0.0.1", port=cls.smtp_port)
        cls.smtp.start()

    @classmethod
    def stop_smtp(cls):
        cls.smtp.stop()
        cls.smtp = None

    @classmethod
    def start_serve(cls):
        env = {**os.environ, "STRIPE_API_KEY": API_KEY, "STRIPE_PLUGIN_WEBHOOK_SECRETS": SECRET}
        cls.serve = subprocess.Popen(cls.serve_args, env=env, stdout=cls.logs, stderr=subprocess.STDOUT)
        wait_until("serve", lambda: call("GET", f"{cls.public}/healthz")[0] == 200)

    @classmethod
    def stripe_headers(cls):
        return {"Authorization": f"Bearer {API_KEY}", "Stripe-Account": ACCOUNT}

    def stripe_post(self, path, form):
        status, body = call("POST", f"{self.stripe}{path}", form, headers=self.stripe_headers(), form=True)
        self.assertEqual(status, 200, body)
        return body

    def declined_invoice(self, n):
        """Invoice `inv_n` of customer `c_n`, whose card on file is declined."""
        cus = self.stripe_post("/v1/customers", f"name=Customer+{n}")["id"]
        pm = self.stripe_post("/v1/payment_methods", "type=card&card[number]=4000000000000341")["id"]
        self.stripe_post(f"/v1/payment_methods/{pm}/attach", f"customer={cus}")
        self.stripe_post(f"/v1/customers/{cus}", f"invoice_settings[default_payment_method]={pm}")
        customer = json.loads((FIXTURES / "customer.json").read_text())
        customer["externalIds"] = [{"key": "Stripe", "value": cus}]
        customer["billingEmails"] = [f"ap{n}@customer.example"]
        status, body = call("PUT", f"{self.admin}/customers/c_{n}", customer, headers=self.auth)
        self.assertEqual(status, 200, body)
        invoice = json.loads((FIXTURES / "invoice.json").read_text())
        invoice.update({"id": f"inv_{n}", "invoiceNumber": f"INV-{n:04}", "customerId": f"c_{n}"})
        self.assertEqual(call("POST", f"{self.admin}/invoices", invoice, headers=self.auth)[0], 201)
        status, inv = call("POST", f"{self.admin}/invoices/inv_{n}/finalize", headers=self.auth)
        self.assertEqual(status, 200, inv)
        self.assertEqual(inv["status"], "PAYMENT_FAILED", inv)
        return inv

    def arrived(self, number, count=2):
        return wait_until(f"the emails of {number}", seconds=30, check=lambda: (
            lambda got: got if len(got) >= count else None)(
                [m for m in self.inbox.received() if number in m["subject"] or number in m["text"]]))

    def test_1_a_declined_charge_emails_the_merchant_and_the_customer(self):
        inv = self.declined_invoice(1)
        got = self.arrived("INV-0001")
        by_to = {m["to"]: m for m in got}
        self.assertEqual(set(by_to), {"finance@merchant.example", "ap1@customer.example"}, got)
        merchant, customer = by_to["finance@merchant.example"], by_to["ap1@customer.example"]
        self.assertEqual(merchant["subject"], "Payment failed: invoice INV-0001 (GBP 1200.00)")
        self.assertEqual(customer["subject"], "Your payment for invoice INV-0001 did not go through")
        for m in (merchant, customer):
            self.assertIn(inv["paymentLink"], m["text"])
        status, outbox = call("GET", f"{self.admin}/outbox", headers=self.auth)
        sent = [e for e in outbox["data"] if "INV-0001" in e["subject"]]
        wait_until("the outbox to say so", lambda: all(
            e["sentMs"] for e in call("GET", f"{self.admin}/outbox", headers=self.auth)[1]["data"]
            if "INV-0001" in e["subject"]))
        self.assertEqual(len(sent), 2)

    def test_2_a_relay_that_refuses_drops_or_is_down_gets_the_email_again(self):
        self.inbox.refuse = 2
        self.inbox.drop = 2
        self.declined_invoice(2)
        got = self.arrived("INV-0002")
        self.assertEqual(len({m["message_id"] for m in got}), 2, got)
        self.assertEqual((self.inbox.refuse, self.inbox.drop), (0, 0), "the refusals and drops were used")
        self.stop_smtp()
        self.declined_invoice(3)
        time.sleep(2)
        self.start_smtp()
        self.arrived("INV-0003")

    def test_3_after_a_sigkill_the_email_is_sent_once_per_message_id(self):
        self.stop_smtp()
        self.declined_invoice(4)
        time.sleep(1.5)
        self.serve.send_signal(signal.SIGKILL)
        self.serve.wait(10)
        self.start_smtp()
        self.start_serve()
        got = self.arrived("INV-0004")
        ids = {}
        for m in self.inbox.received():
            ids.setdefault((m["to"], m["subject"]), set()).add(m["message_id"])
        for key, seen in ids.items():
            self.assertEqual(len(seen), 1, f"{key} arrived under {seen}")
        self.assertEqual(len({m["message_id"] for m in got}), 2, got)


if __name__ == "__main__":
    unittest.main(verbosity=2)
