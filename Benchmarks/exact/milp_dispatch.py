#!/usr/bin/env python3
"""Exact dispatch of a Broker benchmark instance as a MILP (scipy.optimize.milp / HiGHS).

Usage: milp_dispatch.py INSTANCE.json [--time-limit SECONDS]

The instance is written by Benchmarks/Sources/SwitchyardBench/BrokerBench.swift. The rules are
those of docs/dispatch.md, restricted to what the benchmark instance uses (every device available
and fresh, no strike, no auxiliary fraction, no paid reduction):

  allowed range   on device:  x <= min(max, setpoint + ramp * tick); off device: x <= min(max, max(min_stable, ramp * tick))
  dwell           on and on-time < min_on  -> min_stable <= x (forced on)
                  off and off-time < min_off -> x = 0
  min-stable      x = 0 or min_stable <= x (binary z)
  caps            per node: uncontrolled load in the subtree + sum of device kW below <= cap
  restore         sum over devices of max(0, x - setpoint) <= restore (per tick)
  value           mining: hashprice / (0.024 * J/TH); inference: $/GPU-h / kW per GPU * 1000
  contract        first committed kW at rate + penalty (penalty avoided), the rest at spot;
                  when spot >= rate + penalty the device sells spot and pays the full penalty

Prints one JSON object: objective_usd_per_h (same accounting as the Broker's total),
solve_seconds (HiGHS only), status, and the setpoints.
"""
import json
import math
import sys
import time

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import coo_matrix


def main() -> int:
    args = sys.argv[1:]
    if not args:
        print(__doc__, file=sys.stderr)
        return 2
    path = args[0]
    time_limit = 600.0
    if "--time-limit" in args:
        time_limit = float(args[args.index("--time-limit") + 1])
    with open(path) as f:
        inst = json.load(f)

    tick = inst["tick_s"]
    price = inst["price_usd_per_mwh"]
    hashprice = inst["hashprice_usd_per_ph_day"]
    gpu_hour = inst["inference_usd_per_gpu_hour"]
    restore = inst.get("restore_kw_per_tick")
    nodes = inst["nodes"]
    devs = inst["devices"]
    nN, nD = len(nodes), len(devs)

    commit = [0.0] * nD
    rate = [0.0] * nD
    pen = [0.0] * nD
    for c in inst["commitments"]:
        d = c["device"]
        commit[d] += c["committed_kw"]
        rate[d] = c["rate_usd_per_mwh"]
        pen[d] = c["penalty_usd_per_mwh"]

    # Fixed (uncontrolled) load per subtree.
    fixed = [n["uncontrolled_kw"] for n in nodes]
    for i in range(nN - 1, 0, -1):  # parents come before children
        p = nodes[i]["parent"]
        if p >= 0:
            fixed[p] += fixed[i]

    # Ancestors of each device's node.
    def path(n):
        out = []
        while n >= 0:
            out.append(n)
            n = nodes[n]["parent"]
        return out

    # Variables: for each device p1 (committed piece), p2 (rest), z (on), u (restore use).
    # Index layout: 4 per device.
    nv = 4 * nD
    c_obj = np.zeros(nv)
    lb = np.zeros(nv)
    ub = np.zeros(nv)
    integrality = np.zeros(nv)
    rows, cols, vals, lo_b, hi_b = [], [], [], [], []
    r = 0
    const = 0.0  # $/h terms independent of the decision
    spot_penalty = 0.0

    def add(row_entries, lo, hi):
        nonlocal r
        for col, v in row_entries:
            rows.append(r)
            cols.append(col)
            vals.append(v)
        lo_b.append(lo)
        hi_b.append(hi)
        r += 1

    for d, dv in enumerate(devs):
        p1, p2, z, u = 4 * d, 4 * d + 1, 4 * d + 2, 4 * d + 3
        mx, ms = dv["max_kw"], dv["min_stable_kw"]
        on = dv["on"] and dv["setpoint_kw"] > 0
        s = min(dv["setpoint_kw"], mx) if on else 0.0
        up = dv["ramp_kw_per_s"] * tick if dv["ramp_kw_per_s"] > 0 else math.inf
        hi = min(mx, s + up) if on else min(mx, max(ms, up))
        forced_on = on and ms > 0 and dv["state_for_s"] < dv["min_on_s"]
        forced_off = (not on) and ms > 0 and dv["state_for_s"] < dv["min_off_s"]
        if forced_on:
            hi = max(hi, ms)
        elif forced_off or hi < ms - 1e-7 or hi <= 1e-7:
            hi = 0.0
        value = hashprice / (0.024 * dv["efficiency_j_per_th"]) if dv["class"] == "mining" else gpu_hour / dv["kw_per_gpu"] * 1000
        c = commit[d]
        if c > 0 and value >= rate[d] + pen[d]:
            spot_penalty += pen[d] * c / 1000
            c = 0.0
        # p1: committed kW, worth rate + penalty avoided; p2 the rest at spot value.
        ub[p1] = min(c, hi)
        ub[p2] = max(0.0, hi - min(c, hi))
        c_obj[p1] = -((rate[d] + pen[d]) - price) / 1000
        c_obj[p2] = -(value - price) / 1000
        if c > 0:
            const -= pen[d] * c / 1000
        # on/off
        ub[z] = 1
        if forced_on:
            lb[z] = 1
        if hi <= 0:
            ub[z] = 0
        integrality[z] = 1 if ms > 0 else 0
        # hi*z >= p1 + p2 ; ms*z <= p1 + p2
        add([(p1, 1), (p2, 1), (z, -hi)], -np.inf, 0)
        if ms > 0:
            add([(p1, 1), (p2, 1), (z, -ms)], 0, np.inf)
        # restore use u >= x - s
        ub[u] = np.inf if restore is not None else 0
        if restore is not None:
            add([(p1, 1), (p2, 1), (u, -1)], -np.inf, s)
    # node caps
    node_rows = [[] for _ in range(nN)]
    for d, dv in enumerate(devs):
        for n in path(dv["node"]):
            node_rows[n].append(d)
    for n in range(nN):
        entries = []
        for d in node_rows[n]:
            entries += [(4 * d, 1.0), (4 * d + 1, 1.0)]
        add(entries, -np.inf, nodes[n]["cap_kw"] - fixed[n])
    if restore is not None:
        add([(4 * d + 3, 1.0) for d in range(nD)], -np.inf, restore)

    A = coo_matrix((vals, (rows, cols)), shape=(r, nv)).tocsr()
    t0 = time.perf_counter()
    res = milp(
        c=c_obj,
        constraints=LinearConstraint(A, np.array(lo_b), np.array(hi_b)),
        integrality=integrality,
        bounds=Bounds(lb, ub),
        options={"time_limit": time_limit, "mip_rel_gap": 1e-6},
    )
    solve = time.perf_counter() - t0
    if res.x is None:
        print(json.dumps({"status": res.message, "solve_seconds": solve}))
        return 1
    x = [res.x[4 * d] + res.x[4 * d + 1] for d in range(nD)]
    objective = -res.fun + const - spot_penalty - price * fixed[0] / 1000
    print(json.dumps({
        "status": "optimal" if res.status == 0 else res.message,
        "objective_usd_per_h": objective,
        "mip_gap": getattr(res, "mip_gap", None),
        "solve_seconds": solve,
        "setpoints_kw": {devs[d]["id"]: x[d] for d in range(nD)},
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
