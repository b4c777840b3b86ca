"""The replays are faithful: where a scenario was recorded from a real run
(its calls carry `expect`), each replayed outcome is the one that run saw.
Usage: faithful.py REPLAY.jsonl SCENARIO.json..."""
import json
import sys

replayed = {}
name = None
for line in open(sys.argv[1]):
    x = json.loads(line)
    if "scenario" in x:
        name = x["scenario"]
    else:
        replayed[(name, x["call"])] = x["outcome"]
checked = differ = 0
for path in sys.argv[2:]:
    s = json.load(open(path))
    for i, call in enumerate(s["calls"]):
        if "expect" not in call:
            continue
        checked += 1
        if replayed.get((s["name"], i)) != call["expect"]:
            differ += 1
            print(f"replay differs from the recorded run: {s['name']} call {i} ({call['handler']})")
print(f"{checked} recorded outcomes checked against their replay, {differ} differ")
# Nothing recorded to check would make this pass whatever the replays said.
sys.exit(1 if differ or checked == 0 else 0)
