"""The benchmark table: reads what tests/bench/run measured in target/bench,
prints a Markdown table with each figure against its budget (issue 21's
budgets), and writes results.json.

Each budgeted pair was measured in ROUNDS rounds, ours and the peer's
interleaved; a figure is shown as "min / median" over the rounds, and a ratio
is taken with the same statistic on both sides (min over min, median over
median). A budget is met only when both ratios meet it.

Usage: table.py OUT_DIR ROUNDS"""
import datetime
import json
import os
import pathlib
import platform
import statistics
import subprocess
import sys

out = pathlib.Path(sys.argv[1])
rounds = int(sys.argv[2])
load = lambda name: json.loads((out / name).read_text())
per_round = lambda suffix: [load(f"round-{r}-{suffix}.json") for r in range(1, rounds + 1)]
ours_rounds, sdk_rounds, serve_rounds = per_round("wasmtime"), per_round("stripe-node"), per_round("serve")
w, native, jco, fin = (load(f) for f in ["wasmtime.json", "native.json", "jco.json", "finalize.json"])
rows = []


class Stat:
    """One figure over the rounds: its minimum and median, and whether every
    round's figure was steady (its two halves within 5%)."""

    def __init__(self, values, steady=True):
        self.values = values
        self.min = min(values)
        self.max = max(values)
        self.median = statistics.median(values)
        self.steady = steady

    def show(self, unit, digits=1):
        text = f"{self.min:,.{digits}f} / {self.median:,.{digits}f} {unit}"
        return text if self.steady else text + " (a round not steady)"


def stat(items, get, steady=lambda _: True):
    return Stat([get(i) for i in items], all(steady(i) for i in items))


def row(what, figure, ratio, budget, ok):
    rows.append({"what": what, "figure": figure, "ratio": ratio, "budget": budget,
                 "met": None if ok is None else bool(ok)})


# on-webhook against stripe-node, at steady state, interleaved.
sdk = stat(sdk_rounds, lambda r: r["us_per_event"], lambda r: r["steady"])
reused = stat(ours_rounds, lambda r: r["reused_instance"]["us_per_event"], lambda r: r["reused_instance"]["timed"]["steady"])
fresh = stat(ours_rounds, lambda r: r["fresh_instance"]["us_per_event"], lambda r: r["fresh_instance"]["timed"]["steady"])
empty_fresh = stat(ours_rounds, lambda r: r["fresh_instance"]["us_empty_call"])
row("stripe-node constructEvent (verify + parse), 3,989 B event", sdk.show("µs"), "(the peer)", "", None)
r_min, r_med = reused.min / sdk.min, reused.median / sdk.median
row("on-webhook via wasmtime, reused instance: verify, parse, dedupe, transition, SQLite kv in memory",
    reused.show("µs"), f"{r_min:.2f}× / {r_med:.2f}× stripe-node", "≤ 1.0× (moonshot 0.5×)", r_min <= 1.0 and r_med <= 1.0)
f_min, f_med = fresh.min / sdk.min, fresh.median / sdk.median
row("on-webhook via wasmtime, fresh instance", fresh.show("µs"), f"{f_min:.2f}× / {f_med:.2f}× stripe-node", "(reported)", None)
row("fresh instance + an empty call", empty_fresh.show("µs"), "", "≤ 5 µs", empty_fresh.max <= 5)

# serve against the Node.js handler, durable, interleaved.
serve = stat(serve_rounds, lambda r: r["serve"]["events_per_sec"], lambda r: r["serve"]["steady"])
serve_p99 = stat(serve_rounds, lambda r: r["serve"]["p99_ms"])
node = stat(serve_rounds, lambda r: r["node"]["events_per_sec"], lambda r: r["node"]["steady"])
node_p99 = stat(serve_rounds, lambda r: r["node"]["p99_ms"])
lost = sum(r["serve"]["lost"] + r["node"]["lost"] for r in serve_rounds)
conns, secs = serve_rounds[0]["connections"], serve_rounds[0]["seconds"]
row("Node.js: stripe-node + better-sqlite3 (WAL, synchronous=FULL), one commit per event",
    f"{node.show('events/s', 0)}, p99 {node_p99.show('ms')}", "(the peer)", "", None)
s_min, s_med = serve.min / node.min, serve.median / node.median
row(f"serve, durable on SQLite (WAL, group commit), {conns} connections, {secs} s per round",
    f"{serve.show('events/s', 0)}, p99 {serve_p99.show('ms')}, {lost} lost",
    f"{s_min:.2f}× / {s_med:.2f}× Node.js", "≥ 2× Node.js, p99 ≤ 10 ms, 0 lost",
    s_min >= 2 and s_med >= 2 and serve_p99.median <= 10 and lost == 0)

# PostgreSQL: 1, 2 and 4 workers, in the same rounds.
by_workers = {}
for r in serve_rounds:
    for p in r.get("postgres", []):
        by_workers.setdefault(p["workers"], []).append(p)
if by_workers:
    one = stat(by_workers[1], lambda p: p["events_per_sec"])
    for workers, runs in sorted(by_workers.items()):
        pg = stat(runs, lambda p: p["events_per_sec"], lambda p: p.get("steady", True))
        p99 = stat(runs, lambda p: p["p99_ms"])
        figure = f"{pg.show('events/s', 0)}, p99 {p99.show('ms')}, {sum(p['lost'] for p in runs)} lost"
        if workers == 1:
            a, b = pg.min / serve.min, pg.median / serve.median
            row("serve on PostgreSQL (synchronous_commit on), 1 worker", figure,
                f"{a:.2f}× / {b:.2f}× serve on SQLite", "≥ 0.8× SQLite", a >= 0.8 and b >= 0.8)
        else:
            a, b = pg.min / one.min, pg.median / one.median
            row(f"serve on PostgreSQL, {workers} workers, connections spread over them", figure,
                f"{a:.2f}× / {b:.2f}× 1 worker", "≥ 1.0× 1 worker", a >= 1.0 and b >= 1.0)

size = ours_rounds[0]["component_bytes"]
row("component size", f"{size:,} B", "", "≤ 250,000 B", size <= 250_000)

# Reported, not budgeted: measured once, in the same run.
n_us = native["us_per_event"]
full_reused = w["reused_instance"]["us_per_event"]
row("on-webhook compiled natively, in-memory host", f"{n_us:.1f} µs",
    f"wasm (reused, this pass) = {full_reused / n_us:.2f}× native", "(reported)", None)
row("jco (Node.js), reused instance", f"{jco['reused_us_per_event']:.1f} µs",
    f"{jco['reused_us_per_event'] / sdk.median:.2f}× stripe-node (median)", "(reported)", None)
row("jco (Node.js), fresh instance", f"{jco['fresh_us_per_event']:.1f} µs",
    f"{jco['fresh_us_per_event'] / sdk.median:.2f}× stripe-node (median)", "(reported)", None)
row("floor: body in, HMAC, refused (reused instance)", f"{w['reused_instance']['us_floor']:.1f} µs", "", "(reported)", None)
row("finalize against the emulator over loopback", f"{fin['invoices_per_sec']:.0f} invoices/s",
    f"{fin['share_in_http'] * 100:.0f}% waiting on HTTP, {fin['share_in_plugin_and_host'] * 100:.0f}% plugin + host", "(reported)", None)
for kb in ["1k", "16k", "64k"]:
    p = w["by_body_size"][kb]["us_per_event"]
    ns = load(f"stripe-node-{kb}.json")
    row(f"on-webhook, reused, {ns['event_bytes']:,} B body", f"{p:.1f} µs",
        f"{p / ns['us_per_event']:.2f}× stripe-node ({ns['us_per_event']:.1f} µs)", "(reported)", None)
for count in ["1000", "1000000"]:
    p = w["by_invoices_stored"][count]["us_per_event"]
    row(f"on-webhook, reused, {int(count):,} invoices stored", f"{p:.1f} µs",
        f"{p / full_reused:.2f}× with 1 stored", "(reported)", None)

machine = f"{platform.machine()}, {os.cpu_count()} cores"
when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
try:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
except OSError:
    commit = "unknown"
print(f"Measured {when} on {machine}, commit {commit}, one run of tests/bench/run ({rounds} rounds; min / median).\n")
print("| what | figure | ratio | budget | met |")
print("| --- | --- | --- | --- | --- |")
for r in rows:
    met = {True: "yes", False: "**no**", None: ""}[r["met"]]
    print(f"| {r['what']} | {r['figure']} | {r['ratio']} | {r['budget']} | {met} |")
(out / "results.json").write_text(json.dumps({
    "measured": when, "machine": machine, "commit": commit, "rounds": rounds, "rows": rows,
    "raw": {"rounds": {"wasmtime": ours_rounds, "stripe_node": sdk_rounds, "serve": serve_rounds},
            "wasmtime": w, "native": native, "jco": jco, "finalize": fin}}, indent=1))
