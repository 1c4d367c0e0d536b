#!/usr/bin/env python3
"""Exact dispatch as a MILP (scipy.optimize.milp / HiGHS), independent of the Broker.

Usage:
  milp_dispatch.py INSTANCE.json [--time-limit SECONDS]
  milp_dispatch.py --batch INSTANCES.jsonl [--time-limit SECONDS]     (one result line per instance)

An instance is a dispatch problem in plain terms (written by Benchmarks/Sources/SwitchyardBench,
`rawInstanceJSON`): the capacity tree, the devices and their state, the signals. Optionally it
carries the Broker's setpoints ("broker_setpoints_kw"); the result then also says whether that
plan keeps every rule and what it earns, by this file's own accounting.

The rules are those of docs/site-file.md and docs/dispatch.md, restated here:

  value        mining: value override, else mining value, else hashprice / (0.024 * J/TH);
               inference: value override, else $/MWh spot, else $/GPU-h / kW per GPU * 1000
  contract     committed kW at rate + penalty (penalty avoided), the rest at spot; when spot >=
               rate + penalty the device sells spot and pays the whole penalty
  price        energy price + peak adders; each device kW costs it times (1 + auxiliary fractions
               of the nodes above it); the whole site import (fixed load included) is paid
  strike       price >= strike: mining off; curtailed before: off until price < strike -
               hysteresis and min_off has passed
  range        unavailable: pinned at measured (else setpoint) kW; a device is on when on and its
               setpoint > 0; its ramp base s is its setpoint (0 when off); below min-stable (or at
               0) a rise is a start: up to max(min-stable, ramp*tick), else up to s + ramp*tick;
               never above max; stale data (age > stale_after): on devices no higher than s, off
               devices stay off; min-stable > 0 and on for less than min_on: at least min-stable
               (forced on, at most max(ceiling, min-stable)); min-stable > 0 and off for less than
               min_off: off; ceiling below min-stable: off
  min-stable   a free device is 0 or at least its min-stable power (binary z)
  caps         every node: cap - margin (root: also import limit - margin and each import cap -
               margin); load = fixed load below + device kW * multiplier at that node
  fixed load   declared uncontrolled kW, plus what a node meter sees beyond the measured device
               draw, declared load and auxiliary fraction * measured IT load below it
  restore      sum over commanded devices of max(0, x - s) <= restore per tick
  forecast     a device that is off, with min-stable > 0 and min_on > 0, pays for its start block
               (min-stable kW) at max(price now, average forecast price over min_on): the
               objective is charged (start price - price) * multiplier * min-stable per start
  paid DR      pay * max(0, baseline - site import) is credited: solved below the baseline
               (root capped at it, price + pay) and above it, the better kept

Prints JSON: status, objective_usd_per_h (the decision objective: the plan's objective with each
start charged at its start price), bound_usd_per_h (HiGHS's dual bound), solve_seconds, and with
broker setpoints: broker_objective_usd_per_h, broker_violations, gap.
"""
import json
import math
import sys
import time

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import coo_matrix


class Problem:
    def __init__(self, inst):
        self.inst = inst
        nodes = inst["nodes"]
        self.nodes = nodes
        self.nN = len(nodes)
        self.parent = [n["parent"] for n in nodes]
        sig = inst["signals"]
        self.sig = sig
        price = sig["price_usd_per_mwh"] + sum(a for a in sig.get("adders_usd_per_mwh", []))
        self.price = price
        margin = inst.get("margin_kw", 0.0)
        # Strike.
        curtailed = False
        strike = sig.get("strike")
        if strike is not None:
            if price >= strike["strike_usd_per_mwh"]:
                curtailed = True
            elif inst.get("mining_curtailed", False):
                release = strike["strike_usd_per_mwh"] - strike["hysteresis_usd_per_mwh"]
                if price >= release or inst.get("mining_curtailed_for_s", math.inf) < strike["min_off_s"]:
                    curtailed = True
        self.curtailed = curtailed
        # Multipliers: kW at node n per device kW.
        devs = inst["devices"]
        self.devs = devs
        self.nD = len(devs)
        tick = inst["tick_s"]
        stale_after = inst.get("stale_after_s", math.inf)
        if stale_after is None:
            stale_after = math.inf
        self.mult = []
        for dv in devs:
            m = {}
            n = dv["node"]
            acc = 1.0
            while n >= 0:
                acc += nodes[n].get("aux_fraction", 0.0)
                m[n] = acc
                n = self.parent[n]
            self.mult.append(m)
        # Values and commitments.
        self.value = []
        self.commit = [0.0] * self.nD
        self.rate = [0.0] * self.nD
        self.pen = [0.0] * self.nD
        self.full_penalty = [0.0] * self.nD
        ck = [0.0] * self.nD
        rsum = [0.0] * self.nD
        psum = [0.0] * self.nD
        for c in sig.get("commitments", []):
            d = c["device"]
            if c["committed_kw"] <= 0:
                continue
            ck[d] += c["committed_kw"]
            rsum[d] += c["rate_usd_per_mwh"] * c["committed_kw"]
            psum[d] += c["penalty_usd_per_mwh"] * c["committed_kw"]
        for d, dv in enumerate(devs):
            v = 0.0
            if dv.get("value_usd_per_mwh") is not None:
                v = dv["value_usd_per_mwh"]
            elif dv["class"] == "mining":
                if sig.get("mining_value_usd_per_mwh") is not None:
                    v = sig["mining_value_usd_per_mwh"]
                elif sig.get("hashprice_usd_per_ph_day") is not None and dv.get("efficiency_j_per_th", 0) > 0:
                    v = sig["hashprice_usd_per_ph_day"] / (0.024 * dv["efficiency_j_per_th"])
            else:
                if sig.get("inference_usd_per_mwh") is not None:
                    v = sig["inference_usd_per_mwh"]
                elif sig.get("inference_usd_per_gpu_hour") is not None and dv.get("kw_per_gpu", 0) > 0:
                    v = sig["inference_usd_per_gpu_hour"] / dv["kw_per_gpu"] * 1000
            self.value.append(v)
            if ck[d] > 0:
                r = rsum[d] / ck[d]
                p = psum[d] / ck[d]
                self.rate[d] = r
                self.pen[d] = p
                if v >= r + p:
                    self.full_penalty[d] = p * ck[d] / 1000  # sells spot, pays the whole penalty
                else:
                    self.commit[d] = ck[d]
        # Ranges.
        forecast = sig.get("forecast", [])
        self.kind, self.lo, self.hi, self.base, self.held, self.surcharge = [], [], [], [], [], []
        for d, dv in enumerate(devs):
            st = dv["state"]
            mx, ms = dv["max_kw"], dv["min_stable_kw"]
            kind, lo, hi, base, held, sc = "free", 0.0, 0.0, 0.0, 0.0, 0.0
            if not st["available"]:
                kind = "pinned"
                held = max(0.0, st["measured_kw"] if st.get("measured_kw") is not None else st["setpoint_kw"])
                lo = hi = held
            else:
                on = st["on"] and st["setpoint_kw"] > 0
                s = min(st["setpoint_kw"], mx) if on else 0.0
                base = s
                up = dv["ramp_kw_per_s"] * tick if dv["ramp_kw_per_s"] > 0 else math.inf
                if s <= 0 or s < ms:
                    h = min(mx, max(ms, up))
                else:
                    h = min(mx, s + up)
                stale = st["age_s"] > stale_after
                if stale:
                    h = min(h, s) if on else 0.0
                struck = dv["class"] == "mining" and curtailed
                state_for = st["state_for_s"] if st.get("state_for_s") is not None else math.inf
                if on and ms > 0 and state_for < dv["min_on_s"]:
                    kind, lo = "forced_on", ms
                    hi = ms if struck else max(h, ms)
                elif (not on and ms > 0 and state_for < dv["min_off_s"]) or struck or (stale and not on) \
                        or h < ms - 1e-7 or h <= 1e-7:
                    kind, hi = "forced_off", 0.0
                else:
                    kind, hi = "free", h
                    if ms > 0 and not on and dv["min_on_s"] > 0 and forecast:
                        start = max(price, window_average(sig, dv["min_on_s"]) + (price - sig["price_usd_per_mwh"]))
                        sc = (start - price) * self.mult[d][0] * ms / 1000
            self.kind.append(kind)
            self.lo.append(lo)
            self.hi.append(hi)
            self.base.append(base)
            self.held.append(held)
            self.surcharge.append(sc)
        # Fixed load per node.
        depth = []
        for i in range(self.nN):
            k, n = 0, self.parent[i]
            while n >= 0:
                k += 1
                n = self.parent[n]
            depth.append(k)
        order = sorted(range(self.nN), key=lambda i: -depth[i])
        own = [max(0.0, n.get("uncontrolled_kw", 0.0)) for n in nodes]
        explained = list(own)
        it_below = [0.0] * self.nN
        for d, dv in enumerate(devs):
            mkw = dv["state"].get("measured_kw")
            mkw = max(0.0, mkw) if mkw is not None else 0.0
            explained[dv["node"]] += mkw
            n = dv["node"]
            while n >= 0:
                it_below[n] += mkw
                n = self.parent[n]
        for i in range(self.nN):
            explained[i] += nodes[i].get("aux_fraction", 0.0) * it_below[i]
        for i in order:
            meas = nodes[i].get("measured_kw")
            if meas is not None and meas > explained[i]:
                own[i] += meas - explained[i]
                explained[i] = meas
            if self.parent[i] >= 0:
                explained[self.parent[i]] += explained[i]
        fixed = list(own)
        for i in order:
            if self.parent[i] >= 0:
                fixed[self.parent[i]] += fixed[i]
        self.fixed = fixed
        cap = [n["cap_kw"] - margin for n in nodes]
        il = inst.get("import_limit_kw")
        if il is not None:
            cap[0] = min(cap[0], il - margin)
        for c in sig.get("import_caps_kw", []):
            cap[0] = min(cap[0], c - margin)
        self.cap = cap
        self.restore = inst.get("restore_kw_per_tick")

    def site(self, x):
        return self.fixed[0] + sum(x[d] * self.mult[d][0] for d in range(self.nD))

    def objective(self, x):
        """The plan's objective, $/h, DR credit included (no start charge)."""
        t = 0.0
        for d in range(self.nD):
            c = self.commit[d]
            if c > 0:
                t += (self.rate[d] * min(x[d], c) + self.value[d] * max(0.0, x[d] - c)) / 1000
                t -= self.pen[d] * max(0.0, c - x[d]) / 1000
            else:
                t += self.value[d] * x[d] / 1000
            t -= self.full_penalty[d]
        site = self.site(x)
        t -= self.price * site / 1000
        pr = self.sig.get("paid_reduction")
        if pr is not None:
            t += pr["usd_per_mwh"] * max(0.0, pr["baseline_kw"] - site) / 1000
        return t

    def decision_objective(self, x):
        return self.objective(x) - sum(self.surcharge[d] for d in range(self.nD) if x[d] > 1e-9)

    def violations(self, x, tol=1e-3):
        v = []
        for n in range(self.nN):
            load = self.fixed[n] + sum(x[d] * self.mult[d].get(n, 0.0) for d in range(self.nD))
            if load > self.cap[n] + tol:
                v.append("node %s load %.4f > cap %.4f" % (self.nodes[n]["id"], load, self.cap[n]))
        up = 0.0
        for d in range(self.nD):
            k = self.kind[d]
            did = self.devs[d]["id"]
            if k == "pinned":
                if abs(x[d] - self.held[d]) > tol:
                    v.append("%s unavailable but moved" % did)
                continue
            if k == "forced_off" and x[d] > tol:
                v.append("%s must be off" % did)
            if k == "forced_on" and (x[d] < self.lo[d] - tol or x[d] > self.hi[d] + tol):
                v.append("%s forced on, %.4f outside [%.4f, %.4f]" % (did, x[d], self.lo[d], self.hi[d]))
            if k == "free":
                ms = self.devs[d]["min_stable_kw"]
                if x[d] > self.hi[d] + tol:
                    v.append("%s above its ceiling %.4f > %.4f" % (did, x[d], self.hi[d]))
                if tol < x[d] < ms - tol:
                    v.append("%s below min-stable %.4f < %.4f" % (did, x[d], ms))
                if x[d] < -tol:
                    v.append("%s negative" % did)
            up += max(0.0, x[d] - self.base[d])
        if self.restore is not None and up > self.restore + tol:
            v.append("restore: ramp-up %.4f > %.4f" % (up, self.restore))
        return v

    def solve(self, time_limit):
        """Best decision objective over both sides of a paid-reduction baseline."""
        regimes = [(self.price, None, 0.0)]
        pr = self.sig.get("paid_reduction")
        if pr is not None and pr["usd_per_mwh"] > 0:
            regimes.append((self.price + pr["usd_per_mwh"], pr["baseline_kw"], pr["usd_per_mwh"] * pr["baseline_kw"] / 1000))
        best = None
        bound = -math.inf
        solve_s = 0.0
        status = "infeasible"
        for p, baseline, constant in regimes:
            r = self.solve_regime(p, baseline, constant, time_limit)
            solve_s += r["solve_seconds"]
            if r["x"] is None:
                if r["status"] != "infeasible":
                    status = r["status"]
                continue
            if status == "infeasible":
                status = r["status"]
            elif r["status"] != "optimal":
                status = r["status"]
            bound = max(bound, r["bound"])
            v = self.decision_objective(r["x"])
            if best is None or v > best[0]:
                best = (v, r["x"])
        return best, bound, status, solve_s

    def solve_regime(self, p, baseline, constant, time_limit):
        nD = self.nD
        # Variables per device: a (committed kW), b (the rest), z (on), u (restore use).
        nv = 4 * nD
        c_obj = np.zeros(nv)
        lb = np.zeros(nv)
        ub = np.zeros(nv)
        integrality = np.zeros(nv)
        rows, cols, vals, lo_b, hi_b = [], [], [], [], []
        r = [0]
        const = constant

        def add(entries, lo, hi):
            for col, v in entries:
                rows.append(r[0])
                cols.append(col)
                vals.append(v)
            lo_b.append(lo)
            hi_b.append(hi)
            r[0] += 1

        cap = list(self.cap)
        if baseline is not None:
            cap[0] = min(cap[0], baseline)
        for d in range(nD):
            a, b, z, u = 4 * d, 4 * d + 1, 4 * d + 2, 4 * d + 3
            k = self.kind[d]
            m0 = self.mult[d][0]
            c = self.commit[d]
            const -= self.full_penalty[d]
            if c > 0:
                const -= self.pen[d] * c / 1000  # the penalty of delivering nothing; a earns it back
            lo, hi = self.lo[d], self.hi[d]
            if k == "pinned":
                lo = hi = self.held[d]
            if k == "forced_off":
                lo = hi = 0.0
            ub[a] = min(c, hi)
            ub[b] = max(0.0, hi - min(c, hi))
            c_obj[a] = -((self.rate[d] + self.pen[d]) - p * m0) / 1000
            c_obj[b] = -(self.value[d] - p * m0) / 1000
            ms = self.devs[d]["min_stable_kw"] if k == "free" else 0.0
            if k == "free" and ms > 0:
                ub[z] = 1
                integrality[z] = 1
                c_obj[z] = self.surcharge[d]
                add([(a, 1), (b, 1), (z, -hi)], -np.inf, 0)
                add([(a, 1), (b, 1), (z, -ms)], 0, np.inf)
            elif lo > 0:
                add([(a, 1), (b, 1)], lo, np.inf)
            if k != "pinned" and self.restore is not None:
                ub[u] = np.inf
                add([(a, 1), (b, 1), (u, -1)], -np.inf, self.base[d])
        for n in range(self.nN):
            entries = []
            for d in range(nD):
                mlt = self.mult[d].get(n)
                if mlt:
                    entries += [(4 * d, mlt), (4 * d + 1, mlt)]
            add(entries, -np.inf, cap[n] - self.fixed[n])
        if self.restore is not None:
            add([(4 * d + 3, 1.0) for d in range(nD)], -np.inf, self.restore)
        const -= p * self.fixed[0] / 1000
        A = coo_matrix((vals, (rows, cols)), shape=(r[0], nv)).tocsr()
        t0 = time.perf_counter()
        res = milp(
            c=c_obj,
            constraints=LinearConstraint(A, np.array(lo_b), np.array(hi_b)),
            integrality=integrality,
            bounds=Bounds(lb, ub),
            options={"time_limit": time_limit, "mip_rel_gap": 1e-9},
        )
        solve = time.perf_counter() - t0
        if res.x is None:
            st = "infeasible" if res.status == 2 else res.message
            return {"status": st, "solve_seconds": solve, "x": None, "bound": -math.inf}
        x = [res.x[4 * d] + res.x[4 * d + 1] for d in range(nD)]
        for d in range(nD):
            if self.kind[d] == "pinned":
                x[d] = self.held[d]
        dual = getattr(res, "mip_dual_bound", None)
        value = -res.fun + const
        bound = (-dual + const) if dual is not None and math.isfinite(dual) else value
        return {"status": "optimal" if res.status == 0 else res.message, "solve_seconds": solve, "x": x,
                "bound": max(value, bound)}


def window_average(sig, seconds):
    points = [(0.0, sig["price_usd_per_mwh"])] + [(f[0], f[1]) for f in sig.get("forecast", []) if f[0] > 0]
    acc = 0.0
    for i, (t, p) in enumerate(points):
        end = points[i + 1][0] if i + 1 < len(points) else math.inf
        a, b = min(t, seconds), min(end, seconds)
        if b > a:
            acc += p * (b - a)
    return acc / seconds


def run(inst, time_limit):
    prob = Problem(inst)
    best, bound, status, solve_s = prob.solve(time_limit)
    out = {"id": inst.get("id"), "status": status, "solve_seconds": solve_s}
    if best is not None:
        out["objective_usd_per_h"] = best[0]
        out["bound_usd_per_h"] = max(bound, best[0])
        out["setpoints_kw"] = {prob.devs[d]["id"]: best[1][d] for d in range(prob.nD)}
    bx = inst.get("broker_setpoints_kw")
    if bx is not None:
        out["broker_feasible"] = inst.get("broker_feasible", True)
        if out["broker_feasible"]:
            x = [bx[dv["id"]] for dv in prob.devs]
            out["broker_violations"] = prob.violations(x)
            out["broker_objective_usd_per_h"] = prob.decision_objective(x)
            if best is not None:
                # Against the proven bound when HiGHS stopped early: the gap can only be smaller.
                ref = best[0] if status == "optimal" else out["bound_usd_per_h"]
                out["gap"] = (ref - out["broker_objective_usd_per_h"]) / max(1.0, abs(ref))
    return out


def clean(v):
    """JSON has no NaN or infinity: those become null."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: clean(x) for k, x in v.items()}
    if isinstance(v, list):
        return [clean(x) for x in v]
    return v


def main() -> int:
    args = sys.argv[1:]
    if not args:
        print(__doc__, file=sys.stderr)
        return 2
    time_limit = 600.0
    if "--time-limit" in args:
        time_limit = float(args[args.index("--time-limit") + 1])
    if args[0] == "--batch":
        with open(args[1]) as f:
            for line in f:
                if line.strip():
                    print(json.dumps(clean(run(json.loads(line), time_limit))), flush=True)
        return 0
    with open(args[0]) as f:
        inst = json.load(f)
    out = run(inst, time_limit)
    print(json.dumps(clean(out)))
    return 0 if "objective_usd_per_h" in out else 1


if __name__ == "__main__":
    sys.exit(main())
