// OpenADR 3 curtailment reports for `serve --openadr`: the measured site import of every
// tick, the curtailment of each OpenADR event interval against a baseline, and the
// reports still to be POSTed to the VTN (kept and retried until the VTN accepts them).
//
// Timing (see docs/signals.md, "Curtailment reports"):
// * every interval of a DR event (import cap, paid reduction, SIMPLE level) that is in force
//   while serve runs gets a *progress* report every `report_s` of loop time (covering the
//   interval's start up to now), and a *final* report at the first VTN poll after it ends;
// * a report covers one interval; a newer report for an interval replaces an unsent older one;
// * a failed POST leaves the report queued; the next poll retries it (oldest first).
//
// Baseline: the event's own (a BASELINE payload, or the program's configured baseline of a paid
// reduction), else the mean measured import over the `baseline_window_s` before the event's first
// interval starts (or before serve first saw the event, if it was already in force then).

import Basics
import Foundation
import Logging
import Signals
import Store
import Synchronization

final class CurtailmentLedger: Sendable {
    struct Options: Sendable {
        /// The window before the event whose mean measured import is the baseline.
        var baselineWindowS: Double = 900
        /// Progress reports while an interval is in force (0: only the final report).
        var reportEveryS: Double = 300
    }

    struct Key: Hashable, Sendable, Comparable, CustomStringConvertible, Codable {
        var eventID: String
        var intervalID: Int
        static func < (a: Key, b: Key) -> Bool { (a.eventID, a.intervalID) < (b.eventID, b.intervalID) }
        var description: String { "\(eventID)#\(intervalID)" }
    }

    /// One event interval being measured.
    struct Tracked: Sendable {
        var programID: String
        var start: Double
        var end: Double
        var explicitBaselineKW: Double?
        /// Reports cover the interval from here: its start, or the first measurement if serve came up during it.
        var measuredFrom: Double?
        var sumKW = 0.0
        var samples = 0
        var lastReportAt: Double?

        mutating func add(_ t: Double, _ kw: Double) {
            sumKW += kw
            samples += 1
            if measuredFrom == nil { measuredFrom = t }
        }
    }

    /// The measured baseline of one event (shared by its intervals).
    struct EventBaseline: Sendable {
        /// Samples before this instant count (the event's start, or when serve first saw it in force).
        var before: Double
        var kw: Double?
        var how = ""
    }

    /// A report waiting to be sent.
    struct Pending: Sendable, Codable {
        var key: Key
        var programID: String
        var interval: CurtailmentInterval
        var final: Bool
        var baselineHow: String
        var attempts = 0
        var lastError: String?
    }

    private struct State {
        var samples: [(t: Double, kw: Double)] = []
        var tracked: [Key: Tracked] = [:]
        var baselines: [String: EventBaseline] = [:]
        var done: Set<Key> = []
        var pending: [Key: Pending] = [:]
        /// Bumped by every change the journal must reflect (snapshots are written newest-wins).
        var journalGeneration: UInt64 = 0
    }

    let options: Options
    /// Where final reports not yet accepted by the VTN (and the intervals already reported) are kept,
    /// so a restart or crash loses none of them. nil: memory only.
    let journal: URL?
    /// Raw samples are kept this long (for baselines and for intervals first seen after they started).
    let retentionS: Double
    /// At most this many reports wait for the VTN; beyond it the oldest progress reports are dropped.
    static let maxPending = 1000
    private let state = Mutex(State())
    /// Serialises journal writes, outside `state` (the tick records into `state` and must never wait on disk);
    /// holds the generation last written so an older snapshot never replaces a newer one.
    private let writer = Mutex<UInt64>(0)
    let logger: Logger

    init(options: Options = Options(), journal: URL? = nil, logger: Logger = Logger(label: "switchyard")) {
        self.options = options
        self.journal = journal
        self.logger = logger
        self.retentionS = max(options.baselineWindowS, 3600) + 60
        guard let journal else { return }
        switch PrivateFiles.loadOrQuarantine(journal.path, decode: { try JSONDecoder().decode(Journal.self, from: $0) }) {
        case .absent:
            break
        case .loaded(let saved):
            state.withLock { s in
                for p in saved.pending { s.pending[p.key] = p }
                s.done.formUnion(saved.done)
            }
        case .quarantined(let movedTo, let error):
            // Loud: reports waiting for the VTN may be lost, and intervals already reported may be reported again.
            let line = "OpenADR report journal \(journal.path) is unreadable (\(error)); moved aside to \(movedTo) and starting with an empty journal: unsent final reports in it are NOT sent"
            writeErrorLine("ERROR: " + line)
            logger.error("\(line)", metadata: ["journal": "\(journal.path)", "quarantined": "\(movedTo)"])
        }
    }

    /// What survives a restart: final reports waiting for the VTN, and the intervals already settled.
    struct Journal: Codable {
        var pending: [Pending]
        var done: [Key]
    }

    /// A snapshot of what the journal must hold, taken under `state` (cheap: no I/O).
    private func snapshot(_ s: inout State) -> (Journal, UInt64)? {
        guard journal != nil else { return nil }
        s.journalGeneration += 1
        return (Journal(pending: s.pending.values.filter(\.final).sorted { $0.key < $1.key }, done: s.done.sorted()), s.journalGeneration)
    }

    /// Writes a snapshot (atomically, 0600, directory fsynced) after `state` is released; a snapshot older than
    /// the one already written is skipped. Failures are logged, never silent.
    private func persist(_ snap: (Journal, UInt64)?) {
        guard let journal, let (j, generation) = snap else { return }
        writer.withLock { written in
            guard generation > written else { return }
            do {
                try PrivateFiles.writeAtomically(try JSONEncoder().encode(j), to: journal.path)
                written = generation
            } catch {
                logger.error("OpenADR report journal not written; pending reports survive only in memory",
                             metadata: ["journal": "\(journal.path)", "error": "\(error)"])
            }
        }
    }

    // MARK: Measurements (from every tick)

    /// Records the site import measured at loop time `t` (nil: the meter reading was stale or missing).
    /// True when an event's measured baseline was settled by it (the signals can now value the event).
    @discardableResult
    func record(at t: Double, siteKW: Double?) -> Bool {
        guard let kw = siteKW, kw.isFinite else { return false }
        return state.withLock { s in
            var settled = false
            s.samples.append((t, kw))
            if let cut = s.samples.firstIndex(where: { $0.t >= t - retentionS }), cut > 512 { s.samples.removeFirst(cut) }
            for (k, var tr) in s.tracked where tr.start <= t && t < tr.end {
                tr.add(t, kw)
                s.tracked[k] = tr
            }
            for (id, var b) in s.baselines where b.kw == nil && t >= b.before {
                Self.settle(&b, samples: s.samples, window: options.baselineWindowS, fallback: kw)
                s.baselines[id] = b
                settled = settled || b.kw != nil
            }
            return settled
        }
    }

    /// Measures a baseline for an event that brings none and is not an OpenADR event (a paid reduction of
    /// `--events`): the window before its start, or before `now` if it is already in force (settled by the
    /// first tick after that). Keyed apart from OpenADR event ids. Nothing is reported for it.
    func watchBaseline(fileEventID id: String, start: Double, now: Double) {
        state.withLock { s in
            let key = "file:" + id
            guard s.baselines[key] == nil else { return }
            s.baselines[key] = newBaseline(start: start, now: now, samples: s.samples)
        }
    }

    /// The baseline of an event first seen at `now` that starts at `start`. Announced ahead: the window before
    /// its start (settled by the first tick after it). Already in force: the window before now (serve was not
    /// curtailing for it yet), settled at once from what was recorded.
    private func newBaseline(start: Double, now: Double, samples: [(t: Double, kw: Double)]) -> EventBaseline {
        var b = EventBaseline(before: start > now ? start : now)
        if start <= now { Self.settle(&b, samples: samples, window: options.baselineWindowS, fallback: nil) }
        return b
    }

    /// The measured baseline of an `--events` paid reduction (nil until measured).
    func measuredBaselineKW(fileEventID id: String) -> Double? {
        state.withLock { $0.baselines["file:" + id]?.kw }
    }

    /// The baseline an OpenADR event interval is measured against, as its report will send it: the
    /// interval's BASELINE payload, else the program's configured baseline of a paid reduction, else
    /// the event's measured mean import over `baseline_window_s` (nil until measured).
    func baselineKW(for e: Signals.DREvent, explicit: [Key: Double]) -> Double? {
        guard case .openADR(_, let eventID, let intervalID) = e.origin else { return nil }
        if let b = explicit[Key(eventID: eventID, intervalID: intervalID)] { return b }
        if case .paidReduction(_, let b?) = e.action { return b }
        return state.withLock { $0.baselines[eventID]?.kw }
    }

    private static func settle(_ b: inout EventBaseline, samples: [(t: Double, kw: Double)], window: Double, fallback: Double?) {
        if let m = MeasuredBaseline.settle(samples: samples, before: b.before, windowS: window, fallback: fallback) {
            b.kw = m.kw
            b.how = m.how
        }
    }

    // MARK: Events (from every successful VTN poll)

    /// Starts measuring every curtailment interval of `events` that has not ended; intervals that
    /// vanished from the VTN while in force end now. `explicitBaselines` are per interval (kW).
    func observe(_ events: [Signals.DREvent], explicitBaselines: [Key: Double], now: Double) {
        state.withLock { s in
            var seen: Set<Key> = []
            var eventStart: [String: Double] = [:]
            for e in events {
                guard case .openADR(_, let eventID, _) = e.origin, Self.isCurtailment(e.action) else { continue }
                eventStart[eventID] = min(eventStart[eventID] ?? .infinity, e.start.timeIntervalSince1970)
            }
            for e in events {
                guard case .openADR(let programID, let eventID, let intervalID) = e.origin, Self.isCurtailment(e.action) else { continue }
                let key = Key(eventID: eventID, intervalID: intervalID)
                seen.insert(key)
                if s.done.contains(key) { continue }
                let start = e.start.timeIntervalSince1970
                let end = e.end?.timeIntervalSince1970 ?? .infinity
                var baseline = explicitBaselines[key]
                if case .paidReduction(_, let b?) = e.action { baseline = baseline ?? b }
                if var tr = s.tracked[key] {
                    // The VTN may move an interval; measurements already taken stay.
                    tr.end = end
                    tr.explicitBaselineKW = baseline
                    s.tracked[key] = tr
                    continue
                }
                guard end > now else { continue }  // over before serve saw it: nothing measured
                var tr = Tracked(programID: programID, start: start, end: end, explicitBaselineKW: baseline)
                // Serve measured the site when the interval began (it is ahead, or a tick shortly before its start
                // is recorded): reports cover the whole interval. Otherwise from the first measurement in it.
                if start > now || s.samples.contains(where: { $0.t < start && $0.t >= start - 60 }) { tr.measuredFrom = start }
                for x in s.samples where x.t >= start && x.t < min(end, now) { tr.add(x.t, x.kw) }
                s.tracked[key] = tr
                if s.baselines[eventID] == nil {
                    s.baselines[eventID] = newBaseline(start: eventStart[eventID] ?? start, now: now, samples: s.samples)
                }
            }
            for (key, var tr) in s.tracked where !seen.contains(key) {
                if tr.start >= now {
                    s.tracked[key] = nil  // cancelled before it started
                } else if tr.end > now {
                    tr.end = now  // cancelled while in force: ends now
                    s.tracked[key] = tr
                }
            }
        }
    }

    static func isCurtailment(_ a: Signals.DREvent.Action) -> Bool {
        switch a {
        case .importCap, .paidReduction: true
        case .level(let n): n > 0
        case .price: false
        }
    }

    // MARK: Reports

    /// Queues the reports due at `now`: final ones for intervals that ended, progress ones every
    /// `reportEveryS` for intervals in force. Returns notes for intervals that end without any measurement.
    @discardableResult
    func queueDue(now: Double) -> [String] {
        let (notes, snap) = state.withLock { s -> ([String], (Journal, UInt64)?) in
            var notes: [String] = []
            for (key, tr) in s.tracked.sorted(by: { $0.key < $1.key }) {
                let ended = now >= tr.end
                let base = tr.explicitBaselineKW.map { (kw: $0, how: "the event's baseline") }
                    ?? s.baselines[key.eventID].flatMap { b in b.kw.map { (kw: $0, how: b.how) } }
                if ended {
                    s.tracked[key] = nil
                    s.done.insert(key)
                    guard tr.samples > 0, let base else {
                        notes.append("\(key): no measured site import during the interval (or no baseline); no report")
                        continue
                    }
                    s.pending[key] = Pending(key: key, programID: tr.programID,
                                             interval: Self.interval(key, tr, to: tr.end, baselineKW: base.kw),
                                             final: true, baselineHow: base.how, attempts: s.pending[key]?.attempts ?? 0)
                } else if options.reportEveryS > 0, now >= tr.start, tr.samples > 0, let base,
                          now - (tr.lastReportAt ?? tr.start) >= options.reportEveryS {
                    var t = tr
                    t.lastReportAt = now
                    s.tracked[key] = t
                    s.pending[key] = Pending(key: key, programID: tr.programID,
                                             interval: Self.interval(key, tr, to: now, baselineKW: base.kw),
                                             final: false, baselineHow: base.how, attempts: s.pending[key]?.attempts ?? 0)
                }
            }
            let measuring = Set(s.tracked.keys.map(\.eventID))
            s.baselines = s.baselines.filter { measuring.contains($0.key) }
            if s.pending.count > Self.maxPending {
                let drop = s.pending.values.filter { !$0.final }.sorted { $0.interval.start < $1.interval.start }
                    .prefix(s.pending.count - Self.maxPending)
                for p in drop { s.pending[p.key] = nil }
                notes.append("\(drop.count) progress reports dropped: more than \(Self.maxPending) reports wait for the VTN")
            }
            return (notes, snapshot(&s))
        }
        persist(snap)
        return notes
    }

    private static func interval(_ key: Key, _ tr: Tracked, to end: Double, baselineKW: Double) -> CurtailmentInterval {
        let from = tr.measuredFrom ?? tr.start
        return CurtailmentInterval(id: key.intervalID, start: Date(timeIntervalSince1970: from), duration: max(0, end - from),
                            baselineKW: baselineKW, measuredKW: tr.sumKW / Double(tr.samples))
    }

    /// The reports waiting for the VTN, oldest interval first.
    var pending: [Pending] {
        state.withLock { s in s.pending.values.sorted { ($0.interval.start, $0.key) < ($1.interval.start, $1.key) } }
    }

    /// The VTN accepted `report` (unless a newer one for the same interval was queued meanwhile).
    func sent(_ report: Pending) {
        let snap = state.withLock { s -> (Journal, UInt64)? in
            if let p = s.pending[report.key], p.interval == report.interval, p.final == report.final { s.pending[report.key] = nil }
            return report.final ? snapshot(&s) : nil
        }
        persist(snap)
    }

    /// The POST failed: the report stays queued.
    func failed(_ report: Pending, error: String) {
        state.withLock { s in
            guard var p = s.pending[report.key] else { return }
            p.attempts += 1
            p.lastError = error
            s.pending[report.key] = p
        }
    }

    /// The intervals being measured (for tests and logs).
    var trackedKeys: [Key] { state.withLock { $0.tracked.keys.sorted() } }
}

/// The BASELINE payloads (kW) an OpenADR event carries, per interval (an event-wide value applies to every interval).
func explicitBaselines(_ snapshot: VENSnapshot) -> [CurtailmentLedger.Key: Double] {
    var out: [CurtailmentLedger.Key: Double] = [:]
    for e in snapshot.events {
        guard let id = e.id else { continue }
        let program = snapshot.programs.first { $0.id == e.programID }
        let units = (e.payloadDescriptors ?? []).first { $0.payloadType == "BASELINE" }?.units
            ?? (program?.payloadDescriptors ?? []).first { $0.payloadType == "BASELINE" }?.units ?? "KW"
        let factor = OpenADRMapper.kilowatts(per: units) ?? 1
        for i in e.intervals {
            if let v = i.payloads.first(where: { $0.type == "BASELINE" })?.values.first?.number {
                out[.init(eventID: id, intervalID: i.id)] = v * factor
            }
        }
    }
    return out
}

extension OpenADRVEN {
    /// Sends the queued curtailment reports, oldest first, and stops at the first failure
    /// (the rest wait for the next poll). Never throws: failures are logged and kept.
    func flush(_ ledger: CurtailmentLedger, logger: Logger) async {
        for p in ledger.pending {
            let report = curtailmentReport(programID: p.programID, eventID: p.key.eventID, intervals: [p.interval],
                                           reportName: "curtailment \(p.key) \(p.final ? "final" : "so far")")
            do {
                let stored = try await send(report: report)
                ledger.sent(p)
                logger.notice("OpenADR curtailment report sent", metadata: [
                    "event.id": "\(p.key.eventID)", "event.interval": "\(p.key.intervalID)", "report.final": "\(p.final)",
                    "report.id": "\(stored.id ?? "")", "report.baseline_kw": "\(Int(p.interval.baselineKW.rounded()))",
                    "report.measured_kw": "\(Int(p.interval.measuredKW.rounded()))",
                    "report.curtailed_kw": "\(Int(p.interval.curtailedKW.rounded()))",
                    "report.baseline": "\(p.baselineHow)",
                ])
            } catch {
                ledger.failed(p, error: "\(error)")
                logger.warning("OpenADR curtailment report not sent; kept and retried on the next poll", metadata: [
                    "event.id": "\(p.key.eventID)", "event.interval": "\(p.key.intervalID)", "report.final": "\(p.final)",
                    "reports.waiting": "\(ledger.pending.count)", "error": "\(error)",
                ])
                return
            }
        }
    }
}
