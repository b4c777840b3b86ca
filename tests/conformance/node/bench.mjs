// stripe-node's per-event time to verify and parse a webhook
// (stripe.webhooks.constructEvent), the figure the plugin is held to,
// measured at steady state: a warm-up, then two equal halves timed, doubled
// until they agree within 5% (V8 is still optimising after a few thousand
// calls; timing those would flatter the plugin). At least MIN_ITERATIONS
// are timed.
// Usage: node bench.mjs EVENT.json [MIN_ITERATIONS]
import Stripe from "stripe";
import { readFileSync } from "node:fs";

const [path, n = "50000"] = process.argv.slice(2);
const minimum = Number(n);
const stripe = new Stripe("sk_test_bench");
const payload = readFileSync(path, "utf8");
const secret = "whsec_bench_secret";
const created = JSON.parse(payload).created;
const header = stripe.webhooks.generateTestHeaderString({ payload, secret, timestamp: created });
const run = () => stripe.webhooks.constructEvent(payload, header, secret, 300, undefined, created * 1000);
const usPer = (iterations) => {
  const start = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) run();
  return Number(process.hrtime.bigint() - start) / 1000 / iterations;
};
const warmUp = 20000;
usPer(warmUp);
let half = Math.ceil(minimum / 2);
let halves;
for (;;) {
  halves = [usPer(half), usPer(half)];
  const spread = Math.abs(halves[0] - halves[1]) / Math.min(...halves);
  if (spread <= 0.05 || half >= 16 * minimum) break;
  half *= 2;
}
const us = (halves[0] + halves[1]) / 2;
console.log(JSON.stringify({
  subject: "stripe-node constructEvent",
  event_bytes: Buffer.byteLength(payload),
  warm_up: warmUp,
  iterations: 2 * half,
  halves_us: halves.map((h) => Number(h.toFixed(2))),
  steady: Math.abs(halves[0] - halves[1]) / Math.min(...halves) <= 0.05,
  us_per_event: Number(us.toFixed(2)),
}));
