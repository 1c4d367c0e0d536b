#!/usr/bin/env python3
"""Regenerates the example outputs in docs/dispatch.md from the `switchyard` binary.

Usage: python3 docs/gen-dispatch-examples.py [--check] [--bin .build/debug/switchyard]

Each block between `<!-- generated: NAME -->` and `<!-- end generated -->` is replaced by what
`switchyard dispatch --json` prints for the example snapshots (a subset of the devices, so the doc
stays short). With --check nothing is written: the exit status is 1 if the doc is stale.
Tests/BrokerTests/DocExampleTests.swift checks the same blocks against the Broker on every test run.
"""
import json
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = os.path.join(ROOT, "docs", "dispatch.md")
SITE = "examples/demo-site.yaml"

# The cheap-hour example: these devices, and every other field.
CHEAP_DEVICES = ["asic-01", "asic-18", "asic-24", "gpu-01"]
# One reason line per situation the other snapshots show.
REASONS = [
    ("price-spike", "asic-07"),
    ("price-spike", "asic-05"),
    ("price-spike", "gpu-01"),
    ("dr-event", "asic-06"),
    ("dr-event", "asic-07"),
    ("contract-window", "gpu-01"),
]


def dispatch(binary, snapshot):
    out = subprocess.run(
        [binary, "dispatch", "--site", SITE, "--snapshot", "examples/snapshots/%s.json" % snapshot, "--json"],
        cwd=ROOT, capture_output=True, text=True)
    if out.returncode not in (0, 2):
        sys.exit("switchyard dispatch failed on %s: %s" % (snapshot, out.stderr))
    return json.loads(out.stdout)


def blocks(binary):
    plan = dispatch(binary, "cheap-hour")
    sub = {
        "setpoints_kw": {d: plan["setpoints_kw"][d] for d in CHEAP_DEVICES},
        "reasons": {d: plan["reasons"][d] for d in CHEAP_DEVICES},
        "objective_usd_per_h": plan["objective_usd_per_h"],
        "binding": plan["binding"],
        "feasible": plan["feasible"],
        "mining_curtailed": plan["mining_curtailed"],
        "optimality": plan["optimality"],
    }
    cheap = "```json\n" + json.dumps(sub, indent=2, ensure_ascii=False, sort_keys=True) + "\n```"
    lines = []
    cache = {}
    for snap, dev in REASONS:
        if snap not in cache:
            cache[snap] = dispatch(binary, snap)
        lines.append("| %s | %s | %s |" % (snap, dev, cache[snap]["reasons"][dev]))
    reasons = "| snapshot | device | reason |\n|---|---|---|\n" + "\n".join(lines)
    return {"cheap-hour": cheap, "reasons": reasons}


def main():
    args = sys.argv[1:]
    binary = os.path.join(ROOT, ".build", "debug", "switchyard")
    if "--bin" in args:
        binary = args[args.index("--bin") + 1]
    text = open(DOC).read()
    new = text
    for name, body in blocks(binary).items():
        pattern = re.compile(r"(<!-- generated: %s -->\n)(?:.*?\n)??(<!-- end generated -->)" % re.escape(name), re.S)
        if not pattern.search(new):
            sys.exit("docs/dispatch.md has no block '%s'" % name)
        new = pattern.sub(lambda m: m.group(1) + body + "\n" + m.group(2), new)
    if "--check" in args:
        if new != text:
            print("docs/dispatch.md is stale: run python3 docs/gen-dispatch-examples.py")
            return 1
        return 0
    if new != text:
        open(DOC, "w").write(new)
        print("docs/dispatch.md updated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
