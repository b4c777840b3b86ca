// The Node.js runner of portable scenarios: the plugin component, transpiled
// by jco, with the in-memory imports of host.mjs. Prints one canonical JSON
// line per call; tests/portability/run diffs it with `host-harness replay`.
//
//   node run.mjs <jco output dir> <scenario.json>...

import { readFileSync } from 'node:fs';
import { FORMAT, camel, load, native, portable, print, replayState } from './host.mjs';

function run(instantiate, scenario) {
  if (scenario.format !== FORMAT) throw new Error(`${scenario.name}: format ${scenario.format} is not ${FORMAT}`);
  const { s, imports, kvDump } = replayState(scenario);
  const lines = [print({ scenario: scenario.name })];
  scenario.calls.forEach((call, i) => {
    s.now = call['now-ms'];
    s.ns = call.namespace ?? call.args[0]?.['account-id'] ?? '';
    const plugin = instantiate(imports);
    let outcome;
    try {
      outcome = { ok: portable(plugin.handlers[camel(call.handler)](...call.args.map(native))) };
    } catch (e) {
      outcome = e && Object.hasOwn(e, 'payload') ? { err: portable(e.payload) } : { trap: true };
    }
    const line = { call: i, handler: call.handler, outcome, kv: kvDump(), emails: s.emails, http: portable(s.requests) };
    s.emails = [];
    s.requests = [];
    lines.push(print(line));
  });
  return lines;
}

const [jcoDir, ...files] = process.argv.slice(2);
const instantiate = await load(jcoDir);
for (const file of files) {
  for (const line of run(instantiate, JSON.parse(readFileSync(file, 'utf8')))) process.stdout.write(line + '\n');
}
