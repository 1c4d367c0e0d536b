#!/usr/bin/env python3
"""A synthetic real-time price trace for replays: generic CSV (timestamp,price_usd_per_mwh).

Deterministic (seeded). A daily shape (cheap nights, an afternoon peak that is higher in
summer), noise, the odd negative price, and scarcity spikes of $300-$5,000/MWh lasting
15 minutes to 2 hours, more of them on summer afternoons. Not real ERCOT data.

    python3 examples/replay/gen-prices.py --start 2025-01-01 --days 365 --step-min 5 > /tmp/year.csv
"""
import argparse
import datetime as dt
import math
import random


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--start", default="2025-01-01", help="first day (UTC midnight)")
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--step-min", type=int, default=5)
    ap.add_argument("--seed", type=int, default=2025)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    t0 = dt.datetime.fromisoformat(a.start).replace(tzinfo=dt.timezone.utc)
    n = a.days * 24 * 60 // a.step_min
    spike_left, spike_price = 0, 0.0
    print("timestamp,price_usd_per_mwh")
    level = 0.0
    for k in range(n):
        t = t0 + dt.timedelta(minutes=k * a.step_min)
        doy = t.timetuple().tm_yday
        summer = max(0.0, math.cos((doy - 200) / 365 * 2 * math.pi))  # 1 in mid July
        hour_local = (t.hour - 5 + t.minute / 60) % 24             # roughly Central time
        shape = 28 + 18 * math.exp(-((hour_local - 17) / 3.0) ** 2) * (1 + 2 * summer) - 8 * math.exp(-((hour_local - 4) / 2.5) ** 2)
        level = 0.97 * level + rng.gauss(0, 2.5)                   # slow noise
        price = shape + level + rng.gauss(0, 3)
        if rng.random() < 0.004:
            price = -rng.uniform(1, 25)                             # windy night
        if spike_left == 0 and rng.random() < (0.0008 + 0.004 * summer * math.exp(-((hour_local - 17) / 2.0) ** 2)):
            spike_left = rng.randint(3, 24) * 5 // a.step_min or 1
            spike_price = rng.choice([300, 450, 800, 1500, 3000, 5000]) * rng.uniform(0.8, 1.1)
        if spike_left > 0:
            price = spike_price * rng.uniform(0.85, 1.0)
            spike_left -= 1
        print(f"{t.strftime('%Y-%m-%dT%H:%M:%SZ')},{price:.2f}")


if __name__ == "__main__":
    main()
