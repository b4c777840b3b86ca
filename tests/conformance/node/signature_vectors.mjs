// Webhook signature vectors made by stripe-node's own code
// (stripe.webhooks.generateTestHeaderString), with stripe-node's verdict
// (constructEvent) beside the plugin's expected one. The committed copy is
// tests/vectors/stripe-node-signatures.json; tests/run regenerates and diffs it.
import Stripe from "stripe";
import { readFileSync } from "node:fs";

const stripe = new Stripe("sk_test_vectors");
const version = JSON.parse(readFileSync(new URL("node_modules/stripe/package.json", import.meta.url))).version;
const NOW = 1764288000; // 2025-11-28T00:00:00Z
const TOLERANCE = 300;
const SECRET = "whsec_node_vector_secret";
const OTHER = "whsec_node_vector_rotated";
const payload = JSON.stringify({ id: "evt_node", object: "event", type: "checkout.session.completed",
  data: { object: { id: "cs_1", payment_status: "paid", amount_total: 120000, metadata: { invoice_id: "inv_1" } } } });
const header = (secret, timestamp = NOW, body = payload) =>
  stripe.webhooks.generateTestHeaderString({ payload: body, secret, timestamp });
const v1 = (secret, timestamp = NOW) => header(secret, timestamp).split(",v1=")[1];

function verdict(body, head, secrets) {
  let first;
  for (const secret of secrets) {
    try {
      stripe.webhooks.constructEvent(body, head, secret, TOLERANCE, undefined, NOW * 1000);
      return "ok";
    } catch (e) {
      first ??= e.message.split(".")[0];
    }
  }
  return first;
}

const cases = [
  ["valid", payload, header(SECRET), [SECRET], "ok"],
  ["signed with the second of two secrets", payload, header(OTHER), [SECRET, OTHER], "ok"],
  ["one v1 per secret during a roll", payload, `t=${NOW},v1=${v1(OTHER)},v1=${v1(SECRET)}`, [SECRET], "ok"],
  ["wrong secret", payload, header("whsec_node_someone_else"), [SECRET], "no_valid_signature"],
  ["body tampered", payload.replace("120000", "120001"), header(SECRET), [SECRET], "no_valid_signature"],
  ["t exactly at the tolerance", payload, header(SECRET, NOW - TOLERANCE), [SECRET], "ok"],
  ["t just past the tolerance", payload, header(SECRET, NOW - TOLERANCE - 1), [SECRET], "too_old"],
  ["t in the future (stripe-node accepts; the plugin does not)", payload, header(SECRET, NOW + 3600), [SECRET], "too_new"],
];
const vectors = cases.map(([name, body, head, secrets, expect]) => ({
  name, payload: body, header: head, secrets, now: NOW, tolerance: TOLERANCE, sdk: verdict(body, head, secrets), expect,
}));
console.log(JSON.stringify({ generator: `stripe-node ${version}`, vectors }, null, 1));
