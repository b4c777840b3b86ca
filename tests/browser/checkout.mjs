// The customer's journey from the merchants' guide, in headless Chromium:
// open the invoice's pay link, see the Checkout page, pay with 4242 4242 4242
// 4242, see "Payment successful" (and the invoice PAID), open the link again
// and see "Payment successful" with no new session and no second charge.
// Then every state of the pay-link page the customer can meet (redirecting,
// paid, processing, nothing to pay, refunded, disputed, not found,
// unavailable), the customer's card page (its invoices, "Replace your card"
// through a setup-mode Checkout, nothing owed, a forged link), and the two
// pages Stripe sends a merchant back to from onboarding, each on a phone-sized
// screen, screenshotted and checked by axe-core: 0 serious or critical
// findings. Screenshots of each step go to tests/artifacts/browser/.
//
// Usage: node checkout.mjs HOST_BASE STRIPE_BASE ACCOUNT API_KEY

import { chromium } from "playwright-core";
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { createRequire } from "node:module";

const axePath = createRequire(import.meta.url).resolve("axe-core/axe.min.js");

// host: serve's public listener (pay pages); admin: its platform listener,
// called with the token in PLATFORM_TOKEN (an environment variable, not argv).
const [host, admin, stripe, account, apiKey, businessName] = process.argv.slice(2);
const platformToken = process.env.PLATFORM_TOKEN;
const shots = join(import.meta.dirname, "..", "artifacts", "browser");
mkdirSync(shots, { recursive: true });
const fixtures = join(import.meta.dirname, "..", "..", "host-harness", "fixtures");

function check(ok, what) {
  if (!ok) throw new Error(`FAILED: ${what}`);
  console.log(`ok: ${what}`);
}

async function api(method, url, body, headers = {}) {
  const auth = url.startsWith(`${admin}/`) ? { Authorization: `Bearer ${platformToken}` } : {};
  const r = await fetch(url, { method, body, headers: { "Content-Type": "application/json", ...auth, ...headers } });
  const text = await r.text();
  try { return { status: r.status, json: JSON.parse(text) }; } catch { return { status: r.status, json: text }; }
}

const stripeApi = (path) => api("GET", `${stripe}${path}`, undefined, { Authorization: `Bearer ${apiKey}`, "Stripe-Account": account });
const stripePost = (path, form) => fetch(`${stripe}${path}`, {
  method: "POST", body: form,
  headers: { Authorization: `Bearer ${apiKey}`, "Stripe-Account": account, "Content-Type": "application/x-www-form-urlencoded" },
}).then((r) => r.json());

/// Sends invoice `id` (a copy of the fixture) to a new customer with no card
/// on file, and returns it.
async function sendInvoice(id, number) {
  const buyer = { ...customer, name: `Buyer of ${number}` };
  check((await api("PUT", `${admin}/customers/c_${id}`, JSON.stringify(buyer))).status === 200, `the platform saves c_${id}`);
  const invoice = JSON.parse(readFileSync(join(fixtures, "invoice.json"), "utf8"));
  Object.assign(invoice, { id, invoiceNumber: number, customerId: `c_${id}` });
  check((await api("POST", `${admin}/invoices`, JSON.stringify(invoice))).status === 201, `the platform creates ${id}`);
  const sent = await api("POST", `${admin}/invoices/${id}/finalize`);
  check(sent.status === 200, `${id} is sent with a link`);
  return sent.json;
}

async function waitForStatus(id, wanted) {
  let status;
  for (let i = 0; i < 100 && status !== wanted; i++) {
    status = (await api("GET", `${admin}/invoices/${id}`)).json.status;
    if (status !== wanted) await new Promise((r) => setTimeout(r, 100));
  }
  check(status === wanted, `${id} is ${wanted}`);
}

/// The page now open: a screenshot on a phone-sized screen, its heading,
/// its language, the merchant's name, and axe-core's findings.
async function checkPage(page, name, heading, mustShow) {
  await page.setViewportSize({ width: 390, height: 844 });
  await page.screenshot({ path: join(shots, `page-${name}.png`), fullPage: true });
  check((await page.textContent("h1")) === heading, `the ${name} page says "${heading}"`);
  check((await page.getAttribute("html", "lang")) === "en", `the ${name} page sets its language`);
  const text = await page.textContent("body");
  for (const s of mustShow) check(text.includes(s), `the ${name} page shows ${s}`);
  await page.addScriptTag({ path: axePath });
  const results = await page.evaluate(async () => await globalThis.axe.run());
  const serious = results.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  for (const v of serious) console.log(`  axe: ${v.impact} ${v.id}: ${v.help}`);
  check(serious.length === 0, `axe-core finds nothing serious on the ${name} page (${results.violations.length} findings in all)`);
}

// The billing platform: a customer, an invoice with Stripe enabled, sent.
const customer = JSON.parse(readFileSync(join(fixtures, "customer.json"), "utf8"));
customer.externalIds = customer.externalIds.filter((e) => e.key !== "Stripe");
check((await api("PUT", `${admin}/customers/c1`, JSON.stringify(customer))).status === 200, "the platform saves the customer");
check((await api("POST", `${admin}/invoices`, readFileSync(join(fixtures, "invoice.json"), "utf8"))).status === 201, "the platform creates the invoice");
const finalized = await api("POST", `${admin}/invoices/inv_01/finalize`);
const link = finalized.json.paymentLink;
check(finalized.status === 200 && link.startsWith(`${host}/pay/`), `the invoice carries the stable pay link ${link}`);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"],
});
try {
  // axe-core is injected as a script: the audit bypasses the pages' own
  // Content-Security-Policy (which forbids every script), as Playwright allows.
  const page = await (await browser.newContext({ bypassCSP: true })).newPage();
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
    status = (await api("GET", `${admin}/invoices/inv_01`)).json.status;
    if (status !== "PAID") await new Promise((r) => setTimeout(r, 100));
  }
  check(status === "PAID", "GET /invoices/inv_01 shows PAID");
  // 5. the same link again: "Payment successful", no new session, no second charge
  const again = await page.goto(link);
  const csp = (await again.allHeaders())["content-security-policy"] || "";
  check(csp.includes("default-src 'none'"), `the pay page forbids scripts and framing (${csp})`);
  check((await page.textContent("h1")) === "Payment successful", "the same link again shows Payment successful");
  await page.screenshot({ path: join(shots, "5-link-opened-again.png") });
  const sessions = (await stripeApi("/v1/checkout/sessions?limit=100")).json.data;
  check(sessions.length === 1, "no new Checkout Session was opened");
  const intents = (await stripeApi("/v1/events?limit=100")).json.data.filter((e) => e.type === "payment_intent.succeeded");
  check(intents.length === 1, "the customer was charged once");
  await checkPage(page, "paid", "Payment successful", [businessName, "INV-0001", "£1,200.00"]);

  // The page a client that does not follow the 303 sees.
  const second = await sendInvoice("inv_02", "INV-0002");
  const redirect = await fetch(second.paymentLink, { redirect: "manual" });
  check(redirect.status === 303 && redirect.headers.get("location").startsWith(`${stripe}/checkout/`), "the pay link answers 303 to Checkout");
  await page.setContent(await redirect.text());
  await checkPage(page, "redirecting", "Redirecting to secure payment", [businessName, "Continue to payment"]);

  // The platform voids the second invoice: nothing to pay.
  check((await api("PATCH", `${admin}/invoices/inv_02`, JSON.stringify({ change: "VOID", amountDue: "0.00" }))).status === 200, "the platform voids inv_02");
  await page.goto(second.paymentLink);
  await checkPage(page, "nothing-to-pay", "Nothing to pay", ["INV-0002", "cancelled"]);

  // The merchant refunds part of the first payment in Stripe.
  const pi = intents[0].data.object.id;
  await stripePost("/v1/refunds", `payment_intent=${pi}&amount=20000`);
  await waitForStatus("inv_01", "PARTIALLY_REFUNDED");
  await page.goto(link);
  await checkPage(page, "refunded", "Payment refunded", ["INV-0001", "£1,200.00", "£200.00"]);

  // A third invoice is paid, then disputed by the customer's bank.
  const third = await sendInvoice("inv_03", "INV-0003");
  await fetch(`${stripe}/_test/checkout/sessions/${third.checkoutSessionId}/complete`, {
    method: "POST", body: "card=4242424242424242", headers: { "Content-Type": "application/x-www-form-urlencoded" },
  });
  await waitForStatus("inv_03", "PAID");
  const paid3 = (await stripeApi("/v1/payment_intents?limit=100")).json.data
    .find((p) => p.metadata.billing_stripe_plugin_invoice === "inv_03" && p.status === "succeeded");
  await fetch(`${stripe}/_test/disputes`, {
    method: "POST", body: `payment_intent=${paid3.id}`, headers: { "Content-Type": "application/x-www-form-urlencoded" },
  });
  await waitForStatus("inv_03", "DISPUTED");
  await page.goto(third.paymentLink);
  await checkPage(page, "disputed", "Payment disputed", ["INV-0003", businessName]);

  // A fourth is paid by bank debit: the money is on its way.
  const fourth = await sendInvoice("inv_04", "INV-0004");
  await fetch(`${stripe}/_test/checkout/sessions/${fourth.checkoutSessionId}/complete`, {
    method: "POST", body: "card=4242424242424242&async=1", headers: { "Content-Type": "application/x-www-form-urlencoded" },
  });
  await waitForStatus("inv_04", "PROCESSING");
  await page.goto(fourth.paymentLink);
  await checkPage(page, "processing", "Payment processing", ["INV-0004", businessName]);

  // Stripe is down when the customer opens a fifth invoice's link.
  const fifth = await sendInvoice("inv_05", "INV-0005");
  const fault = "path=/v1/checkout/sessions&method=GET&fault=500&times=50";
  await fetch(`${stripe}/_test/faults`, { method: "POST", body: fault, headers: { "Content-Type": "application/x-www-form-urlencoded" } });
  const down = await page.goto(fifth.paymentLink);
  check(down.status() === 503, `the link answers 503 while Stripe is down (${down.status()})`);
  await checkPage(page, "unavailable", "Payment unavailable", [businessName, "try again"]);
  await fetch(`${stripe}/_test/faults/heal`, { method: "POST", body: "", headers: { "Content-Type": "application/x-www-form-urlencoded" } });

  // A link that does not exist.
  await page.goto(`${host}/pay/${"0".repeat(32)}`);
  await checkPage(page, "not-found", "Link not found", []);

  // The customer's card page: an auto-charge is declined (a card that declines),
  // the customer's email carries the page's link, and the card saved there
  // pays the failed invoice.
  const buyer = (await stripePost("/v1/customers", "name=Card+Page+Buyer")).id;
  const expired = (await stripePost("/v1/payment_methods", "type=card&card[number]=4000000000000341")).id;
  await stripePost(`/v1/payment_methods/${expired}/attach`, `customer=${buyer}`);
  await stripePost(`/v1/customers/${buyer}`, `invoice_settings[default_payment_method]=${expired}`);
  const cardOwner = { ...customer, name: "Card Page Buyer", externalIds: [{ key: "Stripe", value: buyer }] };
  check((await api("PUT", `${admin}/customers/c_card`, JSON.stringify(cardOwner))).status === 200, "the platform saves c_card, linked to Stripe");
  const failedInvoice = JSON.parse(readFileSync(join(fixtures, "invoice.json"), "utf8"));
  Object.assign(failedInvoice, { id: "inv_06", invoiceNumber: "INV-0006", customerId: "c_card" });
  check((await api("POST", `${admin}/invoices`, JSON.stringify(failedInvoice))).status === 201, "the platform creates inv_06");
  const declined = await api("POST", `${admin}/invoices/inv_06/finalize`);
  check(declined.json.status === "PAYMENT_FAILED", `the card on file is declined (${declined.json.status})`);
  const outbox = (await api("GET", `${admin}/outbox`)).json.data;
  const failureEmail = outbox.find((e) => e.to !== undefined && String(e.dedupeKey).startsWith("payment-failed:inv_06:") && String(e.dedupeKey).endsWith(":customer"));
  const cardLink = (failureEmail?.text || "").split(/\s+/).find((w) => w.startsWith(`${host}/billing/`));
  check(cardLink !== undefined, `the customer's failure email carries the card page ${cardLink}`);
  await page.goto(cardLink);
  await checkPage(page, "card-page", "Your invoices and card", [businessName, "INV-0006", "£1,200.00", "payment failed", "Replace your card"]);
  await Promise.all([page.waitForNavigation(), page.click(`text="Replace your card"`)]);
  check(page.url().startsWith(`${stripe}/checkout/`), `"Replace your card" opens Checkout (${page.url()})`);
  await page.waitForSelector("#card");
  await page.screenshot({ path: join(shots, "page-card-page-checkout-setup.png"), fullPage: true });
  await page.fill("#card", "4242 4242 4242 4242");
  await Promise.all([page.waitForNavigation(), page.click("#pay")]);
  check(page.url() === cardLink, `Checkout sends the customer back to the card page (${page.url()})`);
  await waitForStatus("inv_06", "PAID");
  await page.goto(cardLink);
  await checkPage(page, "card-page-nothing-owed", "Your invoices and card", ["no invoices to pay"]);
  await page.goto(cardLink.replace(/.$/, (c) => (c === "0" ? "1" : "0")));
  await checkPage(page, "card-page-not-found", "Link not found", []);

  // The merchant's side: the two pages Stripe sends a merchant back to
  // from an onboarding Account Link (its return_url and refresh_url).
  await page.goto(`${host}/onboarding/done`);
  await checkPage(page, "onboarding-returned", "Details sent to Stripe", ["close this page"]);
  await page.goto(`${host}/onboarding/refresh`);
  await checkPage(page, "onboarding-link-expired", "Onboarding link expired", ["billing platform"]);
} finally {
  await browser.close();
}
console.log(`browser journey: 5 steps, 8 page states, 3 card-page states and 2 onboarding pages, screenshots in ${shots}`);
