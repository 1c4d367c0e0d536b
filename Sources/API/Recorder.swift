// Records every tick into the store (decision log, per-minute series, event log)
// off the control path: the tick hands its report over and never waits on disk.

import Control
import Foundation
import Logging
import ServiceLifecycle
import Store
import Synchronization

public final class TickRecorder: Sendable {
    struct Item: Sendable { var report: TickReport; var duration: Duration; var loop: ControlLoop }

    let store: Store
    let metrics: MetricsRegistry
    /// Decisions older than this are deleted (checked once per stored minute).
    public let decisionRetentionS: Double
    let stream: AsyncStream<Item>
    let continuation: AsyncStream<Item>.Continuation
    struct Memory { var minute = MinuteAccumulator(); var mode: String?; var down: Set<String> = []; var events: Set<String> = [] }
    let memory = Mutex(Memory())

    public init(store: Store, metrics: MetricsRegistry, decisionRetentionS: Double = 7 * 86_400) {
        self.store = store
        self.metrics = metrics
        self.decisionRetentionS = decisionRetentionS
        (stream, continuation) = AsyncStream.makeStream(of: Item.self, bufferingPolicy: .bufferingNewest(1_000))
    }

    /// The control loop's onTick hook: metrics now, the store write queued.
    public func tick(_ report: TickReport, duration: Duration, loop: ControlLoop) {
        metrics.observe(report, tickDuration: duration, loop: loop)
        continuation.yield(Item(report: report, duration: duration, loop: loop))
    }

    /// A pass that is not a tick (a fast path): recorded like a tick, without counting as one in the metrics.
    public func pass(_ report: TickReport, loop: ControlLoop) {
        continuation.yield(Item(report: report, duration: report.duration, loop: loop))
    }

    /// Every fast path of the host's loops (API and OpenADR events, under-frequency trips) leaves the trace a
    /// tick leaves: a decision-log row, an event-log entry and a log line, with its trigger, duration and writes.
    public func tracePasses(of host: LoopHost, logger: Logger, also: @escaping @Sendable (TickReport) -> Void = { _ in }) {
        host.current.writer.onPass { [self] report in
            guard report.fastPath != nil else { return }
            pass(report, loop: host.current)
            logger.notice("pass", metadata: [
                "pass.trigger": "\(report.trigger)", "pass.duration_ms": "\(String(format: "%.1f", report.durationMS))",
                "pass.writes": "\(report.writesSummary)", "governor.mode": "\(report.mode.rawValue)",
            ])
            also(report)
        }
    }

    /// Writes one tick (also called directly by tests).
    public func write(_ r: TickReport, loop: ControlLoop) throws {
        let rows = rows(r, loop: loop)
        try store.record(decision: rows.decision, minutes: rows.minutes, events: rows.events)
        if let before = rows.pruneBefore { try store.pruneDecisions(before: before) }
    }

    /// Writes one tick through GRDB's async API: the service drains ticks on the cooperative pool,
    /// and a slow disk must hold this task, not a thread the tick and the API need.
    public func writeAsync(_ r: TickReport, loop: ControlLoop) async throws {
        let rows = rows(r, loop: loop)
        try await store.recordAsync(decision: rows.decision, minutes: rows.minutes, events: rows.events)
        if let before = rows.pruneBefore { try await store.pruneDecisionsAsync(before: before) }
    }

    struct Rows { var decision: DecisionEntry; var minutes: [MinuteSample]; var events: [EventEntry]; var pruneBefore: Double? }

    /// What one tick adds to the store (and the recorder's memory of modes, faults and events).
    func rows(_ r: TickReport, loop: ControlLoop) -> Rows {
        var events: [EventEntry] = []
        let tel = loop.plant.devices.map { ($0.id, loop.poller.telemetry($0.id)) }
        let (finished, pruneBefore) = memory.withLock { m -> (MinuteSample?, Double?) in
            if let old = m.mode, old != r.mode.rawValue {
                events.append(EventEntry(at: r.at, kind: .mode, message: "governor mode \(old) → \(r.mode.rawValue)"))
            }
            m.mode = r.mode.rawValue
            for (id, t) in tel {
                let isDown = (t?.consecutiveFailures ?? 0) > 0
                if isDown, !m.down.contains(id) {
                    m.down.insert(id)
                    events.append(EventEntry(at: r.at, kind: .fault, subject: id, message: "\(id) down: \(t?.lastError?.description ?? "no answer")"))
                } else if !isDown, t?.lastSuccess != nil, m.down.contains(id) {
                    m.down.remove(id)
                    events.append(EventEntry(at: r.at, kind: .fault, subject: id, message: "\(id) back"))
                }
            }
            let active = Set(r.events.filter { $0.hasPrefix("DR ") })
            for e in active.subtracting(m.events).sorted() { events.append(EventEntry(at: r.at, kind: .dr, message: "active: \(e)")) }
            for e in m.events.subtracting(active).sorted() { events.append(EventEntry(at: r.at, kind: .dr, message: "ended: \(e)")) }
            m.events = active
            let f = m.minute.add(at: r.at, miningKW: r.miningKW, inferenceKW: r.inferenceKW, importKW: r.siteKW,
                                 capKW: r.limitKW, priceUsdPerMWh: r.priceUsdPerMWh)
            return (f, f != nil ? r.at - decisionRetentionS : nil)
        }
        if let fp = r.fastPath {
            events.append(EventEntry(at: r.at, kind: .dr, message: "fast path: \(fp) — \(String(format: "%.1f", r.durationMS)) ms; \(r.writesSummary)"))
        }
        for note in r.interventions { events.append(EventEntry(at: r.at, kind: .governor, message: note)) }
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        func json<T: Encodable>(_ v: T) -> String { (try? enc.encode(v)).map { String(decoding: $0, as: UTF8.self) } ?? "null" }
        let decision = DecisionEntry(at: r.at, fastPath: r.fastPath, mode: r.mode.rawValue, siteKW: r.siteKW, limitKW: r.limitKW,
                                     priceUsdPerMWh: r.priceUsdPerMWh, setpointsJSON: json(r.setpointsKW),
                                     reasonsJSON: json(r.reasons), interventionsJSON: json(r.interventions))
        return Rows(decision: decision, minutes: finished.map { [$0] } ?? [], events: events, pruneBefore: pruneBefore)
    }

    /// The minute in progress (flushed on shutdown).
    func flush() throws {
        if let m = memory.withLock({ $0.minute.current }) { try store.record(decision: nil, minutes: [m], events: []) }
    }

    func flushAsync() async throws {
        if let m = memory.withLock({ $0.minute.current }) { try await store.recordAsync(decision: nil, minutes: [m], events: []) }
    }
}

/// Drains the recorder into the store; on shutdown, writes what is queued and the minute in progress.
public struct RecorderService: Service {
    public let recorder: TickRecorder
    public let logger: Logger

    public init(recorder: TickRecorder, logger: Logger) {
        self.recorder = recorder
        self.logger = logger
    }

    public func run() async throws {
        await withGracefulShutdownHandler {
            for await item in recorder.stream {
                do { try await recorder.writeAsync(item.report, loop: item.loop) } catch {
                    logger.error("tick not recorded", metadata: ["error": "\(error)"])
                }
            }
        } onGracefulShutdown: {
            recorder.continuation.finish()
        }
        do { try await recorder.flushAsync() } catch { logger.error("minute not flushed", metadata: ["error": "\(error)"]) }
    }
}
