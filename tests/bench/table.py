"""The benchmark table: reads what tests/bench/run measured in target/bench,
prints a Markdown table with each figure against its budget, and writes
results.json. Usage: table.py OUT_DIR"""
import datetime
import json
import os
import pathlib
import platform
import sys

out = pathlib.Path(sys.argv[1])
load = lambda name: json.loads((out / name).read_text())
w, node, native, jco, fin, serve = (load(f) for f in
    ["wasmtime.json", "stripe-node.json", "native.json", "jco.json", "finalize.json", "serve.json"])
sdk = node["us_per_event"]
rows = []


def row(what, figure, ratio, budget, ok):
    rows.append({"what": what, "figure": figure, "ratio": ratio, "budget": budget,
                 "met": None if ok is None else bool(ok)})


fresh, reused = w["fresh_instance"], w["reused_instance"]
row("stripe-node constructEvent (verify + parse), 3.9 KB event", f"{sdk:.1f} µs", "1.00×", "the reference", None)
for name, f in [("reused instance", reused), ("fresh instance", fresh)]:
    r = f["us_per_event"] / sdk
    row(f"on-webhook via wasmtime, {name}: verify, parse, dedupe, transition, SQLite kv in memory",
        f"{f['us_per_event']:.1f} µs", f"{r:.2f}× stripe-node", "≤ 1.0× (goal 0.5×)", r <= 1.0)
r = native["us_per_event"]
row("on-webhook compiled natively, in-memory host", f"{r:.1f} µs", f"wasm (reused) = {reused['us_per_event'] / r:.2f}× native",
    "wasm ≤ 1.5× native", reused["us_per_event"] / r <= 1.5)
row("jco (Node.js), reused instance", f"{jco['reused_us_per_event']:.1f} µs", f"{jco['reused_us_per_event'] / sdk:.2f}× stripe-node", "(reported)", None)
row("jco (Node.js), fresh instance", f"{jco['fresh_us_per_event']:.1f} µs", f"{jco['fresh_us_per_event'] / sdk:.2f}× stripe-node", "(reported)", None)
for name, f in [("fresh", fresh), ("reused", reused)]:
    row(f"instantiation + an empty call, {name} instance", f"{f['us_empty_call']:.1f} µs", "", "≤ 5 µs", f["us_empty_call"] <= 5)
    row(f"floor: body in, HMAC, refused ({name} instance)", f"{f['us_floor']:.1f} µs", f"{f['us_floor'] / sdk:.2f}× stripe-node", "(reported)", None)
s, n = serve["serve"], serve["node"]
row(f"serve, durable (WAL, synchronous=FULL), {serve['connections']} connections, {serve['seconds']} s",
    f"{s['events_per_sec']:.0f} events/s, p99 {s['p99_ms']:.1f} ms, {s['lost']} lost", "",
    "≥ 5,000/s, p99 ≤ 10 ms", s["events_per_sec"] >= 5000 and s["p99_ms"] <= 10 and s["lost"] == 0)
row("Node.js: stripe-node + better-sqlite3, same durability",
    f"{n['events_per_sec']:.0f} events/s, p99 {n['p99_ms']:.1f} ms, {n['lost']} lost",
    f"serve = {s['events_per_sec'] / n['events_per_sec']:.2f}× Node", "serve ≥ 2× Node", s["events_per_sec"] >= 2 * n["events_per_sec"])
for p in serve.get("postgres", []):
    row(f"serve, durable, {p['workers']} worker(s) on one PostgreSQL (synchronous_commit on), connections spread over them",
        f"{p['events_per_sec']:.0f} events/s, p99 {p['p99_ms']:.1f} ms, {p['lost']} lost",
        f"{p['events_per_sec'] / s['events_per_sec']:.2f}× serve on SQLite", "(reported)", None)
row("finalize against the emulator over loopback", f"{fin['invoices_per_sec']:.0f} invoices/s",
    f"{fin['share_in_http'] * 100:.0f}% waiting on HTTP, {fin['share_in_plugin_and_host'] * 100:.0f}% plugin + host", "(reported)", None)
for kb in ["1k", "16k", "64k"]:
    p = w["by_body_size"][kb]["us_per_event"]
    ns = load(f"stripe-node-{kb}.json")
    row(f"on-webhook, reused, {ns['event_bytes']:,} B body", f"{p:.1f} µs", f"{p / ns['us_per_event']:.2f}× stripe-node ({ns['us_per_event']:.1f} µs)", "flat ratio", None)
for count in ["1000", "1000000"]:
    p = w["by_invoices_stored"][count]["us_per_event"]
    row(f"on-webhook, reused, {int(count):,} invoices stored", f"{p:.1f} µs", f"{p / reused['us_per_event']:.2f}× with 1 stored", "flat", None)
kib = w["component_bytes"] / 1024
row("component size", f"{w['component_bytes']:,} B ({kib:.1f} KiB)", "", "≤ 256 KiB", kib <= 256)

machine = f"{platform.machine()}, {os.cpu_count()} cores"
when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
print(f"Measured {when} on {machine}, one run (tests/bench/run).\n")
print("| what | figure | ratio | budget | met |")
print("| --- | --- | --- | --- | --- |")
for r in rows:
    met = {True: "yes", False: "**no**", None: ""}[r["met"]]
    print(f"| {r['what']} | {r['figure']} | {r['ratio']} | {r['budget']} | {met} |")
(out / "results.json").write_text(json.dumps({"measured": when, "machine": machine, "rows": rows,
    "raw": {"wasmtime": w, "stripe_node": node, "native": native, "jco": jco, "finalize": fin, "serve": serve}}, indent=1))
