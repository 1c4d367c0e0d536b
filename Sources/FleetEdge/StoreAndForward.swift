// Store-and-forward for the fleet uplink (issue 17, docs/fleet.md "Store-and-forward").
//
// While the node is not born (broker unreachable, connecting, waiting for the primary host), every tick's
// site-level sample (the node metrics of its FleetSample) is written to a bounded buffer (the site's SQLite
// store in the daemon); once born, the buffer is sent oldest first as NDATA whose metrics are flagged
// `is_historical`, with their own timestamps, one batch at a time, and a batch is deleted only after the
// broker has acknowledged it (EdgeNodeRunner.publishHistorical).
//
// The pieces here are pure or in memory, so they can be tested without a broker or a clock:
// - `HandOffQueue`: the tick hook's side. A bounded FIFO under a mutex: the hook appends in O(1) and returns;
//   the service drains everything on its own task. Unlike the latest-report stream, it drops nothing unless
//   the service falls `capacity` ticks behind (then the oldest go first and are counted).
// - `BufferedSample`: one buffered tick, encoded as a Sparkplug payload (its metrics with their timestamps).
// - `FleetBufferStorage`: where buffered samples live (the daemon's Store; `InMemoryFleetBuffer` for tests).
// - `BackfillThrottle`: batch size and pace of the backfill.
// - `Backfill`: sends the buffer, batch by batch, over anything that can publish historical node data.

import Sparkplug
import Synchronization

/// A bounded FIFO between the control loop's tick hook and the edge node service. `append` never waits on
/// anything but the mutex; past `capacity` the oldest element is dropped (and counted).
public final class HandOffQueue<Element: Sendable>: Sendable {
    public let capacity: Int
    private let state: Mutex<(items: [Element], head: Int, dropped: Int)>

    public init(capacity: Int) {
        precondition(capacity > 0, "hand-off queue capacity must be positive")
        self.capacity = capacity
        state = Mutex(([], 0, 0))
    }

    /// The tick hook's side: O(1) amortised.
    public func append(_ element: Element) {
        state.withLock { s in
            if s.items.count - s.head >= capacity {
                s.head += 1
                s.dropped += 1
            }
            s.items.append(element)
            // Compact now and then, so the array does not grow without bound while nobody drains.
            if s.head > capacity { s.items.removeFirst(s.head); s.head = 0 }
        }
    }

    /// Everything appended since the last drain, oldest first, and how many were dropped meanwhile.
    public func drain() -> (items: [Element], dropped: Int) {
        // Only swap under the lock (the tick hook may be waiting on it); copy the live part outside it.
        let (items, head, dropped) = state.withLock { s in
            let taken = s
            s = ([], 0, 0)
            return taken
        }
        return (head == 0 ? items : Array(items[head...]), dropped)
    }

    public var count: Int { state.withLock { $0.items.count - $0.head } }
}

/// One tick's site-level sample as buffered: its loop time (ms since the epoch), whether it carries an event,
/// and the node metrics with their timestamps.
public struct BufferedSample: Sendable, Equatable {
    /// `event`: the tick's governor mode or its list of active events (DR events, peak windows) differs from the
    /// previous tick's, e.g. a DR event started or ended. `sample`: any other tick.
    public enum Kind: String, Sendable { case sample, event }
    public var at: UInt64
    public var kind: Kind
    public var metrics: [SparkplugMetric]

    public init(at: UInt64, kind: Kind, metrics: [SparkplugMetric]) {
        self.at = at
        self.kind = kind
        self.metrics = metrics
    }

    /// The stored form: a Sparkplug payload (timestamp `at`, no seq) with the metrics.
    public var payload: [UInt8] { SparkplugPayload(timestamp: at, seq: nil, metrics: metrics).encoded() }

    public init(at: UInt64, kind: Kind, payload: [UInt8]) throws(SparkplugDecodeError) {
        self.init(at: at, kind: kind, metrics: try SparkplugPayload(decoding: payload).metrics)
    }

    /// The metrics as backfill sends them: flagged historical, each with its timestamp (the tick's when absent).
    public var historicalMetrics: [SparkplugMetric] {
        metrics.map { m in
            var h = m
            h.isHistorical = true
            if h.timestamp == nil { h.timestamp = at }
            return h
        }
    }
}

/// Tells ticks that carry an event from the others: a tick whose governor mode or list of active events (the
/// report's `events` lines: DR events, peak windows) differs from the previous tick's. The first tick seen is a
/// plain sample (there is nothing to compare it with).
public struct TickEventTracker: Sendable {
    private var last: (mode: String, events: [String])?

    public init() {}

    public mutating func kind(mode: String, events: [String]) -> BufferedSample.Kind {
        defer { last = (mode, events) }
        guard let last else { return .sample }
        return last.mode != mode || last.events != events ? .event : .sample
    }
}

/// Where buffered samples are kept until the broker has them. Ids grow with insertion: oldest first.
public protocol FleetBufferStorage: Sendable {
    /// Appends (one transaction); past `capacity` rows the oldest are deleted and the eviction logged.
    /// Returns how many were evicted. `now`: seconds since the epoch, for the log.
    func append(_ samples: [BufferedSample], capacity: Int, now: Double) async throws -> Int
    /// The oldest `limit` samples with their ids, oldest first.
    func oldest(limit: Int) async throws -> [(id: Int64, sample: BufferedSample)]
    /// Deletes every sample up to and including `id` (they have been acknowledged).
    func remove(through id: Int64) async throws
    func count() async throws -> Int
}

/// A `FleetBufferStorage` in memory (tests; a daemon always has its store).
public final class InMemoryFleetBuffer: FleetBufferStorage {
    private let rows = Mutex<(next: Int64, items: [(id: Int64, sample: BufferedSample)], evicted: Int)>((1, [], 0))

    public init() {}

    public func append(_ samples: [BufferedSample], capacity: Int, now: Double) async throws -> Int {
        rows.withLock { r in
            for s in samples { r.items.append((r.next, s)); r.next += 1 }
            let excess = max(0, r.items.count - capacity)
            r.items.removeFirst(excess)
            r.evicted += excess
            return excess
        }
    }

    public func oldest(limit: Int) async throws -> [(id: Int64, sample: BufferedSample)] {
        rows.withLock { Array($0.items.prefix(limit)) }
    }

    public func remove(through id: Int64) async throws {
        rows.withLock { $0.items.removeAll { $0.id <= id } }
    }

    public func count() async throws -> Int { rows.withLock { $0.items.count } }

    /// Every sample still buffered, oldest first.
    public var samples: [BufferedSample] { rows.withLock { $0.items.map(\.sample) } }
    /// How many have been evicted in all.
    public var evicted: Int { rows.withLock { $0.evicted } }
}

/// How the backfill is paced. One batch (at most `batchSamples` samples, in one NDATA) is in flight at a time,
/// and the next is sent only after the broker acknowledged it, so a live NDATA waits behind at most one batch;
/// between batches the backfill pauses so that it sends at most `maxSamplesPerSecond`.
public struct BackfillThrottle: Sendable, Hashable {
    public var batchSamples: Int
    public var maxSamplesPerSecond: Double

    /// Defaults: 60 samples per NDATA (22 KB for the demo site's nine node metrics, Benchmarks/README.md), at
    /// most 600 per second: 600× real time at 1 s ticks, so a full 7-day buffer drains in about 17 minutes.
    public init(batchSamples: Int = 60, maxSamplesPerSecond: Double = 600) {
        precondition(batchSamples > 0 && maxSamplesPerSecond > 0, "backfill batch and rate must be positive")
        self.batchSamples = batchSamples
        self.maxSamplesPerSecond = maxSamplesPerSecond
    }

    /// The pause after a batch of `samples` that took `took` to be acknowledged: the rest of its time slot.
    public func pause(afterSending samples: Int, took: Duration) -> Duration {
        let slot = Duration.nanoseconds(Int64((Double(samples) / maxSamplesPerSecond * 1e9).rounded(.up)))
        return took >= slot ? .zero : slot - took
    }

    /// The fastest real-time factor this allows for samples `tickSeconds` apart.
    public func realTimeFactor(tickSeconds: Double) -> Double { maxSamplesPerSecond * tickSeconds }
}

/// Sends the buffer: oldest first, one acknowledged batch at a time, deleting only what was acknowledged.
public struct Backfill: Sendable {
    public let storage: any FleetBufferStorage
    public let throttle: BackfillThrottle

    public init(storage: any FleetBufferStorage, throttle: BackfillThrottle) {
        self.storage = storage
        self.throttle = throttle
    }

    public struct Outcome: Sendable, Equatable {
        /// Samples acknowledged and deleted.
        public var sent = 0
        /// Batches published (acknowledged or not).
        public var batches = 0
        /// True if the buffer was emptied; false if a publish was not acknowledged (offline) or storage failed.
        public var drained = false
        public init() {}
    }

    /// Runs until the buffer is empty or a batch is not acknowledged. `publish` sends one batch's historical
    /// metrics and says whether the broker acknowledged it; `pause` waits (the caller's clock).
    public func run(publish: ([SparkplugMetric]) async -> Bool,
                    pause: (Duration) async throws -> Void = { try await Task.sleep(for: $0) },
                    elapsed: () -> Duration = { .zero },
                    onStorageError: (any Error) -> Void = { _ in }) async -> Outcome {
        var outcome = Outcome()
        while !Task.isCancelled {
            let rows: [(id: Int64, sample: BufferedSample)]
            do { rows = try await storage.oldest(limit: throttle.batchSamples) } catch { onStorageError(error); return outcome }
            guard let last = rows.last else { outcome.drained = true; return outcome }
            let metrics = rows.flatMap(\.sample.historicalMetrics)
            let started = elapsed()
            if !metrics.isEmpty {
                // Nothing to send (rows without metrics) is simply deleted.
                outcome.batches += 1
                guard await publish(metrics) else { return outcome }
            }
            do { try await storage.remove(through: last.id) } catch { onStorageError(error); return outcome }
            outcome.sent += rows.count
            do { try await pause(throttle.pause(afterSending: rows.count, took: elapsed() - started)) } catch { return outcome }
        }
        return outcome
    }
}
