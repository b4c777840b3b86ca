// The customer's journey from the merchants' guide, in headless Chromium:
// open the invoice's pay link, see the Checkout page, pay with 4242 4242 4242
// 4242, see "Payment successful" (and the invoice PAID), open the link again
// and see "Payment successful" with no new session and no second charge.
// Screenshots of each step go to tests/artifacts/browser/.
//
// Usage: node checkout.mjs HOST_BASE STRIPE_BASE ACCOUNT API_KEY

import { chromium } from "playwright-core";
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

const [host, stripe, account, apiKey, businessName] = process.argv.slice(2);
const shots = join(import.meta.dirname, "..", "artifacts", "browser");
mkdirSync(shots, { recursive: true });
const fixtures = join(import.meta.dirname, "..", "..", "host-harness", "fixtures");

function check(ok, what) {
  if (!ok) throw new Error(`FAILED: ${what}`);
  console.log(`ok: ${what}`);
}

async function api(method, url, body, headers = {}) {
  const r = await fetch(url, { method, body, headers: { "Content-Type": "application/json", ...headers } });
  const text = await r.text();
  try { return { status: r.status, json: JSON.parse(text) }; } catch { return { status: r.status, json: text }; }
}

const stripeApi = (path) => api("GET", `${stripe}${path}`, undefined, { Authorization: `Bearer ${apiKey}`, "Stripe-Account": account });

// The billing platform: a customer, an invoice with Stripe enabled, sent.
const customer = JSON.parse(readFileSync(join(fixtures, "customer.json"), "utf8"));
customer.externalIds = customer.externalIds.filter((e) => e.key !== "Stripe");
check((await api("PUT", `${host}/customers/c1`, JSON.stringify(customer))).status === 200, "the platform saves the customer");
check((await api("POST", `${host}/invoices`, readFileSync(join(fixtures, "invoice.json"), "utf8"))).status === 201, "the platform creates the invoice");
const finalized = await api("POST", `${host}/invoices/inv_01/finalize`);
const link = finalized.json.paymentLink;
check(finalized.status === 200 && link.startsWith(`${host}/pay/`), `the invoice carries the stable pay link ${link}`);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"],
});
try {
  const page = await browser.newPage();
  // 1. open the invoice's pay link
  await page.goto(link);
  await page.screenshot({ path: join(shots, "1-pay-link-opened.png") });
  check(page.url().startsWith(`${stripe}/checkout/`), `the pay link redirects to Checkout (${page.url()})`);
  // 2. the checkout page appears: the merchant, the amount, a card field, a Pay button
  await page.waitForSelector("#card");
  const text = await page.textContent("body");
  check(text.includes(businessName) && !text.includes(account) && text.includes("GBP 1200.00"),
    "the checkout page shows the merchant's business name (not its account id) and GBP 1200.00");
  await page.screenshot({ path: join(shots, "2-checkout-page.png") });
  // 3. pay with 4242 4242 4242 4242
  await page.fill("#card", "4242 4242 4242 4242");
  await page.screenshot({ path: join(shots, "3-card-entered.png") });
  await Promise.all([page.waitForNavigation(), page.click("#pay")]);
  // 4. the success page appears, and the invoice shows PAID
  await page.waitForSelector("h1");
  check((await page.textContent("h1")) === "Payment successful", `the success page appears (${page.url()})`);
  await page.screenshot({ path: join(shots, "4-payment-successful.png") });
  let status;
  for (let i = 0; i < 100 && status !== "PAID"; i++) {
    status = (await api("GET", `${host}/invoices/inv_01`)).json.status;
    if (status !== "PAID") await new Promise((r) => setTimeout(r, 100));
  }
  check(status === "PAID", "GET /invoices/inv_01 shows PAID");
  // 5. the same link again: "Payment successful", no new session, no second charge
  await page.goto(link);
  check((await page.textContent("h1")) === "Payment successful", "the same link again shows Payment successful");
  await page.screenshot({ path: join(shots, "5-link-opened-again.png") });
  const sessions = (await stripeApi("/v1/checkout/sessions?limit=100")).json.data;
  check(sessions.length === 1, "no new Checkout Session was opened");
  const intents = (await stripeApi("/v1/events?limit=100")).json.data.filter((e) => e.type === "payment_intent.succeeded");
  check(intents.length === 1, "the customer was charged once");
} finally {
  await browser.close();
}
console.log(`browser journey: 5 steps, screenshots in ${shots}`);
