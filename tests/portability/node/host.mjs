// A JavaScript host for the plugin component, transpiled by jco: in-memory
// imports that do what `host-harness replay` does, and the portable form of
// values (host-harness/tools/src/portable/canonical.rs). Used by run.mjs (the
// portability check) and tests/bench/jco.mjs (the per-event time).
//
// The imports never throw a JS Error: a result-typed import answers `err` by
// throwing a plain { payload } object, which jco turns into the `err` case
// inside the call (an Error would unwind the guest).

import { readFileSync } from 'node:fs';
import { createHmac, timingSafeEqual } from 'node:crypto';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

// Node.js 20 has no JSPI. jco's output wraps each export with
// WebAssembly.promising inside a try block; without it every instantiation
// throws and catches one TypeError per export (~20 ms per instance). Our
// exports are synchronous, so the identity is a faithful stand-in.
if (typeof WebAssembly.promising !== 'function') WebAssembly.promising = (f) => f;

export const FORMAT = 'billing-stripe-plugin-scenario/1';

/** jco's output in `jcoDir`: `instantiate(imports)` gives a new instance. */
export async function load(jcoDir) {
  const { instantiate } = await import(pathToFileURL(join(jcoDir, 'plugin.js')));
  const modules = new Map();
  const getCoreModule = (name) => {
    if (!modules.has(name)) modules.set(name, new WebAssembly.Module(readFileSync(join(jcoDir, name))));
    return modules.get(name);
  };
  return (imports) => instantiate(getCoreModule, imports);
}

// ---- the portable form (see host-harness/tools/src/portable/canonical.rs)
export const kebab = (s) => s.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase());
export const camel = (s) => s.replace(/-([a-z0-9])/g, (_, c) => c.toUpperCase());

/** jco's value -> the portable form. */
export function portable(v) {
  if (v === undefined || v === null) return null;
  if (typeof v === 'bigint') return Number(v);
  if (v instanceof Uint8Array) return Array.from(v);
  if (Array.isArray(v)) return v.map(portable);
  if (typeof v === 'object') {
    if (Object.hasOwn(v, 'tag')) {
      return v.val === undefined ? { tag: v.tag } : { tag: v.tag, val: portable(v.val) };
    }
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [kebab(k), portable(x)]));
  }
  return v;
}

/** Fields whose lists of numbers are not bytes: the contract's only
 *  list<u32>, the merchant's dunning schedule (wit/platform.wit). */
const NUMBER_LISTS = new Set(['retry-days']);

/** The portable form -> what jco takes (lists of numbers are list<u8>,
 *  but for the fields of NUMBER_LISTS). */
export function native(v) {
  if (v === null) return undefined;
  if (Array.isArray(v)) {
    return v.length > 0 && v.every((x) => typeof x === 'number') ? Uint8Array.from(v) : v.map(native);
  }
  if (typeof v === 'object') {
    if (Object.hasOwn(v, 'tag')) return v.val === undefined ? { tag: v.tag } : { tag: v.tag, val: native(v.val) };
    return Object.fromEntries(
      Object.entries(v).map(([k, x]) => [camel(k), NUMBER_LISTS.has(k) ? x : native(x)]),
    );
  }
  return v;
}

/** Sorted keys, no whitespace: the same bytes as canonical::print. */
export function print(v) {
  if (Array.isArray(v)) return '[' + v.map(print).join(',') + ']';
  if (v !== null && typeof v === 'object') {
    return '{' + Object.keys(v).sort().map((k) => JSON.stringify(k) + ':' + print(v[k])).join(',') + '}';
  }
  return JSON.stringify(v);
}

const decoder = new TextDecoder('utf-8', { fatal: true });
/** Stored bytes: their text when UTF-8, otherwise { hex }. */
function bytes(b) {
  try {
    return decoder.decode(b);
  } catch {
    return { hex: Buffer.from(b).toString('hex') };
  }
}
const parseBytes = (v) => (typeof v === 'string' ? new TextEncoder().encode(v) : Uint8Array.from(Buffer.from(v.hex, 'hex')));
const sameBytes = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);

function answerKeys(method, url) {
  const i = url.indexOf('://');
  let path = url;
  if (i >= 0) {
    const j = url.indexOf('/', i + 3);
    path = j >= 0 ? url.slice(j) : '/';
  }
  return [`${method} ${path}`, `${method} ${path.split('?')[0]}`];
}

// ---- one scenario's imports
export function replayState(scenario) {
  const kv = new Map();
  for (const [ns, entries] of Object.entries(scenario.kv ?? {})) {
    kv.set(ns, new Map(Object.entries(entries).map(([k, e]) => [k, { value: parseBytes(e.value), expires: e['expires-ms'] }])));
  }
  const answers = new Map(Object.entries(scenario.http ?? {}).map(([k, list]) => [k, { list, taken: 0 }]));
  const s = { ns: '', now: 0, kv, answers, sent: new Set(), emails: [], requests: [] };
  const entry = (key) => {
    const e = s.kv.get(s.ns)?.get(key);
    return e && !(e.expires !== null && e.expires !== undefined && e.expires <= s.now) ? e.value : undefined;
  };
  const store = (key, value, ttl) => {
    if (!s.kv.has(s.ns)) s.kv.set(s.ns, new Map());
    s.kv.get(s.ns).set(key, { value: Uint8Array.from(value), expires: ttl === undefined ? null : s.now + Number(ttl) });
  };
  const keysOf = (purpose) => scenario.keys?.[s.ns]?.[purpose] ?? [];
  const fail = (payload) => {
    throw { payload };
  };
  const imports = {
    'billing:stripe-plugin/http': {
      fetch(req) {
        const method = req.method.toUpperCase();
        s.requests.push({ method: req.method, url: req.url, headers: req.headers, body: bytes(req.body) });
        const [exact, bare] = answerKeys(method, req.url);
        const slot = s.answers.get(exact) ?? s.answers.get(bare);
        if (!slot) return fail({ tag: 'connection', val: `no canned answer for ${method} ${req.url}` });
        const a = slot.list[Math.min(slot.taken, slot.list.length - 1)];
        slot.taken += 1;
        if (a.error) return fail(a.error.val === undefined ? { tag: a.error.tag } : a.error);
        return { status: a.status ?? 200, headers: a.headers ?? [], body: new TextEncoder().encode(a.body ?? '') };
      },
    },
    'billing:stripe-plugin/kv': {
      get: (key) => entry(key),
      set: (key, value, ttl) => void store(key, value, ttl),
      delete: (key) => void s.kv.get(s.ns)?.delete(key),
      compareAndSwap(key, expected, value, ttl) {
        const current = entry(key);
        const same = current === undefined || expected === undefined ? current === expected : sameBytes(current, expected);
        if (!same) return false;
        store(key, value, ttl);
        return true;
      },
    },
    'billing:stripe-plugin/email': {
      send(msg) {
        const id = s.ns + '\u0000' + msg.dedupeKey;
        const first = !s.sent.has(id);
        s.sent.add(id);
        const delivery = first ? 'sent' : 'duplicate';
        s.emails.push({ namespace: s.ns, delivery, message: portable(msg) });
        return delivery;
      },
    },
    'billing:stripe-plugin/clock': { nowMs: () => BigInt(s.now) },
    'billing:stripe-plugin/mac': {
      keyCount: (purpose) => keysOf(purpose).length,
      hmacSha256(purpose, index, message) {
        // Webhook-signing keys verify and never sign (contract 0.3).
        if (purpose === 'webhook-signing') return fail({ tag: 'verify-only' });
        const secret = keysOf(purpose)[index];
        if (secret === undefined) return fail({ tag: 'no-such-key' });
        return new Uint8Array(createHmac('sha256', secret).update(message).digest());
      },
      verifyHmacSha256(purpose, message, tags) {
        let matched = false;
        for (const secret of keysOf(purpose)) {
          const expected = createHmac('sha256', secret).update(message).digest();
          for (const tag of tags) {
            matched = (tag.length === expected.length && timingSafeEqual(expected, Buffer.from(tag))) || matched;
          }
        }
        return matched;
      },
    },
  };
  for (const key of Object.keys(imports)) imports[key + '@0.3.0'] = imports[key];
  const kvDump = () =>
    Object.fromEntries(
      [...s.kv.entries()].map(([ns, m]) => [
        ns,
        Object.fromEntries([...m.entries()].map(([k, e]) => [k, { value: bytes(e.value), 'expires-ms': e.expires ?? null }])),
      ]),
    );
  return { s, imports, kvDump };
}

