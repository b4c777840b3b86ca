// stripe-node's per-event time to verify and parse a webhook
// (stripe.webhooks.constructEvent), the figure the plugin is held to.
// Usage: node bench.mjs EVENT.json ITERATIONS
import Stripe from "stripe";
import { readFileSync } from "node:fs";

const [path, n = "5000"] = process.argv.slice(2);
const iterations = Number(n);
const stripe = new Stripe("sk_test_bench");
const payload = readFileSync(path, "utf8");
const secret = "whsec_bench_secret";
const created = JSON.parse(payload).created;
const header = stripe.webhooks.generateTestHeaderString({ payload, secret, timestamp: created });
const run = () => stripe.webhooks.constructEvent(payload, header, secret, 300, undefined, created * 1000);
for (let i = 0; i < Math.min(iterations, 2000); i++) run();
const start = process.hrtime.bigint();
for (let i = 0; i < iterations; i++) run();
const us = Number(process.hrtime.bigint() - start) / 1000 / iterations;
console.log(JSON.stringify({ subject: "stripe-node constructEvent", event_bytes: Buffer.byteLength(payload), iterations, us_per_event: Number(us.toFixed(2)) }));
