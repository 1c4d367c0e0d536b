// Tests and benchmarks get the shared helpers (SeededRandom, ManualClock, ISO8601 …) with TestSupport.
@_exported import Basics
