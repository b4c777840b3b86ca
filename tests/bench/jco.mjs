// on-webhook through jco under Node.js: the same component, the same event,
// the same work as `host-harness bench-webhook` (kv in memory), in one run.
// The setup (the invoice sent, its first payment event) is replayed from the
// portable scenario that bench-webhook wrote; then distinct deliveries of the
// event (new ids, each signed) are timed on one reused instance and on a
// fresh instance per call.
//
//   node jco.mjs JCO_DIR SETUP_SCENARIO EVENT.json ITERATIONS
import { readFileSync } from 'node:fs';
import { createHmac } from 'node:crypto';
import { camel, load, native, replayState } from '../portability/node/host.mjs';

const [jcoDir, setupPath, eventPath, n = '2000'] = process.argv.slice(2);
const iterations = Number(n);
const scenario = JSON.parse(readFileSync(setupPath, 'utf8'));
const instantiate = await load(jcoDir);
const { s, imports } = replayState(scenario);
for (const call of scenario.calls) {
  s.now = call['now-ms'];
  s.ns = call.namespace; // the merchant's, whatever its account
  instantiate(imports).handlers[camel(call.handler)](...call.args.map(native));
}
const merchant = native(scenario.calls[0].args[0]);
const secret = scenario.keys[s.ns]['webhook-signing'][0];
const text = readFileSync(eventPath, 'utf8');
const event = JSON.parse(text);
const deliveries = (tag) =>
  Array.from({ length: iterations }, (_, i) => {
    const body = text.replace(event.id, `evt_jco_${tag}_${String(i).padStart(8, '0')}`);
    const v1 = createHmac('sha256', secret).update(`${event.created}.${body}`).digest('hex');
    return { headers: [['Stripe-Signature', `t=${event.created},v1=${v1}`]], body: new TextEncoder().encode(body) };
  });
function time(call, list) {
  const start = process.hrtime.bigint();
  for (const d of list) {
    const outcome = call(d);
    if (outcome.status !== 200) throw new Error(`answered ${outcome.status}: ${outcome.reason}`);
  }
  return Number(process.hrtime.bigint() - start) / 1000 / list.length;
}
const reused = instantiate(imports);
time((d) => reused.handlers.onWebhook(merchant, d), deliveries('warm'));
const reusedUs = time((d) => reused.handlers.onWebhook(merchant, d), deliveries('reused'));
const freshUs = time((d) => instantiate(imports).handlers.onWebhook(merchant, d), deliveries('fresh'));
console.log(JSON.stringify({ subject: 'plugin on-webhook via jco (Node.js)', iterations, reused_us_per_event: reusedUs, fresh_us_per_event: freshUs }));
