// The read planner: merge the points a device needs into as few requests as
// the device allows.

/// One thing to read: `count` registers (or bits) at `address` in `table`.
public struct ReadSpan: Sendable, Hashable {
    public var table: ModbusTable
    public var address: Int
    public var count: Int

    public init(table: ModbusTable, address: Int, count: Int) {
        self.table = table
        self.address = address
        self.count = count
    }

    public var end: Int { address + count }  // exclusive
}

/// What a device allows.
public struct ReadLimits: Sendable, Equatable {
    /// Most registers in one read (Modbus: 125 for registers).
    public var maxRegisters: Int
    /// Most bits in one read (Modbus: 2000 for coils and discrete inputs).
    public var maxBits: Int
    /// The largest run of unneeded registers a request may bridge.
    public var maxGap: Int
    /// Ranges that must never be read (devices that answer "illegal data
    /// address" for holes), per table, inclusive.
    public var forbidden: [ModbusTable: [ClosedRange<Int>]]

    public init(maxRegisters: Int = 125, maxBits: Int = 2000, maxGap: Int = 8, forbidden: [ModbusTable: [ClosedRange<Int>]] = [:]) {
        self.maxRegisters = max(1, min(maxRegisters, 125))
        self.maxBits = max(1, min(maxBits, 2000))
        self.maxGap = max(0, maxGap)
        self.forbidden = forbidden
    }

    func limit(for table: ModbusTable) -> Int { table.isBitTable ? maxBits : maxRegisters }

    func isForbidden(_ table: ModbusTable, _ range: Range<Int>) -> Bool {
        guard let list = forbidden[table] else { return false }
        return list.contains { $0.lowerBound < range.upperBound && range.lowerBound <= $0.upperBound }
    }
}

/// One request of a plan, and which of the input spans it serves.
public struct ReadRequest: Sendable, Equatable {
    public var table: ModbusTable
    public var address: Int
    public var count: Int
    /// Indices into the spans given to `ReadPlanner.plan`.
    public var spans: [Int]

    public var end: Int { address + count }

    public init(table: ModbusTable, address: Int, count: Int, spans: [Int] = []) {
        self.table = table
        self.address = address
        self.count = count
        self.spans = spans
    }
}

public enum ReadPlanError: Error, Equatable, CustomStringConvertible {
    /// A single point is larger than the device's per-read limit.
    case spanTooLarge(ReadSpan, limit: Int)
    /// A point lies in a range the device forbids.
    case spanForbidden(ReadSpan)

    public var description: String {
        switch self {
        case let .spanTooLarge(s, limit):
            "\(s.table.rawValue) \(s.address)+\(s.count) exceeds the device's limit of \(limit) per read"
        case let .spanForbidden(s):
            "\(s.table.rawValue) \(s.address)+\(s.count) lies in a forbidden range"
        }
    }
}

public enum ReadPlanner {
    /// Plans the fewest requests that cover every span, each within the
    /// per-read limit, bridging gaps of at most `maxGap` unneeded registers,
    /// and never touching a forbidden register.
    ///
    /// Greedy left-to-right per table is optimal here: for intervals sorted by
    /// start, extending the current request whenever the merged request stays
    /// legal can never need more requests than closing it early.
    public static func plan(_ spans: [ReadSpan], limits: ReadLimits) throws(ReadPlanError) -> [ReadRequest] {
        var requests: [ReadRequest] = []
        let order = spans.indices.sorted { a, b in
            let x = spans[a], y = spans[b]
            if x.table != y.table { return tableRank(x.table) < tableRank(y.table) }
            if x.address != y.address { return x.address < y.address }
            return x.count > y.count
        }
        var current: ReadRequest?
        for i in order {
            let s = spans[i]
            let limit = limits.limit(for: s.table)
            guard s.count <= limit else { throw .spanTooLarge(s, limit: limit) }
            guard !limits.isForbidden(s.table, s.address..<s.end) else { throw .spanForbidden(s) }
            if var c = current, c.table == s.table {
                let newEnd = max(c.end, s.end)
                let gap = s.address - c.end
                if gap <= limits.maxGap, newEnd - c.address <= limit,
                   !limits.isForbidden(s.table, c.address..<newEnd) {
                    c.count = newEnd - c.address
                    c.spans.append(i)
                    current = c
                    continue
                }
                requests.append(c)
            } else if let c = current {
                requests.append(c)
            }
            current = ReadRequest(table: s.table, address: s.address, count: s.count, spans: [i])
        }
        if let c = current { requests.append(c) }
        return requests
    }

    private static func tableRank(_ t: ModbusTable) -> Int {
        switch t {
        case .holding: 0
        case .input: 1
        case .coil: 2
        case .discrete: 3
        }
    }
}
