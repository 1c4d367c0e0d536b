// Report by exception (issue 17): a metric is sent when it moved past its deadband since the
// value last reported (Float/Double: default 1 % or 10; other types: any change), or when it was last reported `maxInterval` ago or more. Pure: the time
// (ms since the epoch) is passed in, nothing reads a clock.

import Sparkplug

/// A numeric metric's deadband: a change is reported once it reaches the larger of
/// `relative` × |last reported value| and `absolute` (in the metric's unit).
public struct Deadband: Sendable, Hashable {
    public var relative: Double
    public var absolute: Double

    public init(relative: Double, absolute: Double) {
        self.relative = relative
        self.absolute = absolute
    }

    /// 1 % or 10 (kW for power metrics), whichever is larger.
    public static let `default` = Deadband(relative: 0.01, absolute: 10)

    public func width(around reported: Double) -> Double { max(relative * abs(reported), absolute) }
}

public struct ReportByException: Sendable {
    public let maxIntervalMilliseconds: UInt64
    public let defaultDeadband: Deadband
    public let deadbands: [String: Deadband]
    /// Per metric key: the value last reported and when.
    public private(set) var reported: [String: (value: MetricValue?, at: UInt64)] = [:]
    /// Per metric key: the time of the value the baseline holds (a birth's metric carries its own; a report's is its
    /// `now`), which `backfilled` compares with.
    private var valueAt: [String: UInt64] = [:]

    public init(maxIntervalMilliseconds: UInt64 = 60_000, defaultDeadband: Deadband = .default, deadbands: [String: Deadband] = [:]) {
        self.maxIntervalMilliseconds = maxIntervalMilliseconds
        self.defaultDeadband = defaultDeadband
        self.deadbands = deadbands
    }

    /// The metrics of this sample that must be sent now; they count as reported at `now`.
    /// `scope` separates devices that share metric names (nil: node level).
    public mutating func filter(_ metrics: [SparkplugMetric], scope: String? = nil, now: UInt64) -> [SparkplugMetric] {
        let out = pending(metrics, scope: scope, now: now)
        markReported(out, scope: scope, now: now)
        return out
    }

    /// The metrics of this sample that are due now, without counting them as reported: call `markReported`
    /// once they have really been sent (while offline nothing is, and the baselines must stay as they were).
    public func pending(_ metrics: [SparkplugMetric], scope: String? = nil, now: UInt64) -> [SparkplugMetric] {
        metrics.filter { metric in
            guard let name = metric.name else { return true }
            guard let last = reported[key(name, scope)] else { return true }
            return due(last: last, metric: metric, name: name, now: now)
        }
    }

    /// These metrics (from `pending`) were sent at `now`: they are the new baselines.
    public mutating func markReported(_ metrics: [SparkplugMetric], scope: String? = nil, now: UInt64) {
        for metric in metrics {
            guard let name = metric.name else { continue }
            let k = key(name, scope)
            reported[k] = (metric.value, now)
            valueAt[k] = now
        }
    }

    private func key(_ name: String, _ scope: String?) -> String { scope.map { "\($0)\u{1F}\(name)" } ?? name }

    /// After a birth: the birth carried these values, so they are the new baselines.
    public mutating func births(_ metrics: [SparkplugMetric], scope: String? = nil, now: UInt64) {
        for metric in metrics {
            guard let name = metric.name else { continue }
            let k = key(name, scope)
            reported[k] = (metric.value, now)
            valueAt[k] = metric.timestamp ?? now
        }
    }

    /// Values the host received as historical data (store-and-forward backfill), each with its time: a value newer
    /// than the one its metric's baseline came from is the host's newest (it keeps the newest by time), so it becomes
    /// the baseline; an older one, or one of a metric with no baseline yet (not reported in this session), changes
    /// nothing.
    public mutating func backfilled(_ metrics: [SparkplugMetric], scope: String? = nil) {
        for metric in metrics {
            guard let name = metric.name, let at = metric.timestamp else { continue }
            let k = key(name, scope)
            guard let held = valueAt[k], held < at, let last = reported[k] else { continue }
            reported[k] = (metric.value, max(at, last.at))
            valueAt[k] = at
        }
    }

    /// Forget every baseline (e.g. a new session): everything is reported again.
    public mutating func reset() {
        reported.removeAll()
        valueAt.removeAll()
    }

    private func due(last: (value: MetricValue?, at: UInt64), metric: SparkplugMetric, name: String, now: UInt64) -> Bool {
        if now &- last.at >= maxIntervalMilliseconds || now < last.at { return true }
        guard let new = metric.value, let old = last.value else { return metric.value != last.value }
        // Float/Double take the default deadband; integers (codes, counts, modes) report every
        // change unless a deadband is configured for them by name.
        let band = deadbands[name] ?? (new.dataType == .float || new.dataType == .double ? defaultDeadband : nil)
        if let band, let x = new.numeric, let y = old.numeric, new.dataType == old.dataType {
            if x.isNaN || y.isNaN { return x.isNaN != y.isNaN }
            return abs(x - y) >= band.width(around: y)
        }
        return new != old
    }
}

extension MetricValue {
    /// The value as a Double for deadband arithmetic; nil for non-numeric datatypes.
    public var numeric: Double? {
        switch self {
        case .int8(let v): Double(v)
        case .int16(let v): Double(v)
        case .int32(let v): Double(v)
        case .int64(let v): Double(v)
        case .uint8(let v): Double(v)
        case .uint16(let v): Double(v)
        case .uint32(let v): Double(v)
        case .uint64(let v): Double(v)
        case .float(let v): Double(v)
        case .double(let v): v
        case .boolean, .string, .text, .dateTime, .bytes: nil
        }
    }
}
