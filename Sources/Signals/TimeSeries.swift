// A contiguous series of intervals with one value each: prices in $/MWh or
// hashprice in $/PH/day. Loaders guarantee the series is sorted and gap-free.

import Basics
import Foundation

/// One interval `[start, end)` and its value.
public struct SeriesPoint: Sendable, Hashable {
    public var start: Date
    public var end: Date
    public var value: Double

    public init(start: Date, end: Date, value: Double) {
        self.start = start
        self.end = end
        self.value = value
    }

    public func contains(_ t: Date) -> Bool { start <= t && t < end }
}

/// A sorted, contiguous list of intervals (each one starts where the previous ended).
public struct TimeSeries: Sendable, Hashable {
    public private(set) var points: [SeriesPoint]
    /// Where the series came from (a path or URL), for messages.
    public var origin: String

    /// Checks order and contiguity. `lines` (same count as `points`) gives the
    /// source line of each point so an error names it.
    public init(_ points: [SeriesPoint], origin: String, lines: [Int?]? = nil, keyPaths: [String?]? = nil) throws(SignalsError) {
        self.origin = origin
        for (i, p) in points.enumerated() {
            let here = SignalSource(file: origin, line: lines?[i], keyPath: keyPaths?[i])
            guard p.end > p.start else {
                throw SignalsError(.badValue, "interval starting \(ISO8601.format(p.start)) has no length", at: here)
            }
            guard p.value.isFinite else { throw SignalsError(.badValue, "value is not a finite number", at: here) }
            guard i > 0 else { continue }
            let prev = points[i - 1]
            if p.start < prev.end {
                throw SignalsError(.unsorted, "series is not sorted: \(ISO8601.format(p.start)) comes after \(ISO8601.format(prev.start))\(lines?[i - 1].map { " (line \($0))" } ?? "")", at: here)
            }
            if p.start > prev.end {
                throw SignalsError(.gap, "series has a gap: nothing from \(ISO8601.format(prev.end)) to \(ISO8601.format(p.start))", at: here)
            }
        }
        self.points = points
    }

    public var isEmpty: Bool { points.isEmpty }
    public var start: Date? { points.first?.start }
    public var end: Date? { points.last?.end }

    /// The point covering `t`, by binary search.
    public func point(at t: Date) -> SeriesPoint? {
        var lo = 0, hi = points.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if points[mid].end <= t { lo = mid + 1 } else { hi = mid }
        }
        guard lo < points.count, points[lo].contains(t) else { return nil }
        return points[lo]
    }

    public func value(at t: Date) -> Double? { point(at: t)?.value }

    /// Points overlapping `[from, to)`, clipped to it.
    public func points(from: Date, to: Date) -> [SeriesPoint] {
        guard from < to else { return [] }
        var lo = 0, hi = points.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if points[mid].end <= from { lo = mid + 1 } else { hi = mid }
        }
        var out: [SeriesPoint] = []
        var i = lo
        while i < points.count, points[i].start < to {
            let p = points[i]
            out.append(SeriesPoint(start: max(p.start, from), end: min(p.end, to), value: p.value))
            i += 1
        }
        return out
    }
}
