import Testing
import TestSupport
@testable import Modbus

@Suite("Read planner")
struct ReadPlannerTests {
    @Test func mergesAdjacentAndBridgesSmallGaps() throws {
        let spans = [ReadSpan(table: .input, address: 0, count: 2), ReadSpan(table: .input, address: 2, count: 2),
                     ReadSpan(table: .input, address: 10, count: 2), ReadSpan(table: .input, address: 100, count: 2)]
        let plan = try ReadPlanner.plan(spans, limits: ReadLimits(maxGap: 6))
        #expect(plan.map { [$0.address, $0.count] } == [[0, 12], [100, 2]])
        #expect(plan[0].spans.sorted() == [0, 1, 2])
    }

    @Test func respectsForbiddenRanges() throws {
        let spans = [ReadSpan(table: .holding, address: 0, count: 2), ReadSpan(table: .holding, address: 4, count: 2)]
        let plan = try ReadPlanner.plan(spans, limits: ReadLimits(maxGap: 10, forbidden: [.holding: [2...3]]))
        #expect(plan.count == 2)
        #expect(throws: ReadPlanError.self) {
            try ReadPlanner.plan([ReadSpan(table: .holding, address: 3, count: 1)], limits: ReadLimits(forbidden: [.holding: [2...3]]))
        }
    }

    @Test func rejectsPointLargerThanLimit() {
        #expect(throws: ReadPlanError.spanTooLarge(ReadSpan(table: .holding, address: 0, count: 4), limit: 2)) {
            try ReadPlanner.plan([ReadSpan(table: .holding, address: 0, count: 4)], limits: ReadLimits(maxRegisters: 2))
        }
    }

    /// Properties over random devices: every point covered, no request over the
    /// limit, no forbidden register read, never more requests than points.
    @Test(arguments: 0..<8)
    func properties(seed: Int) throws {
        var rng = SeededRandom(seed: UInt64(seed) * 7919 + 1)
        for _ in 0..<250 {
            let maxRegs = Int.random(in: 4...125, using: &rng)
            var forbidden: [ModbusTable: [ClosedRange<Int>]] = [:]
            for t in [ModbusTable.holding, .input] where Bool.random(using: &rng) {
                forbidden[t] = (0..<Int.random(in: 1...4, using: &rng)).map { _ in
                    let a = Int.random(in: 0...600, using: &rng)
                    return a...(a + Int.random(in: 0...20, using: &rng))
                }
            }
            let limits = ReadLimits(maxRegisters: maxRegs, maxBits: Int.random(in: 8...2000, using: &rng),
                                    maxGap: Int.random(in: 0...30, using: &rng), forbidden: forbidden)
            var spans: [ReadSpan] = []
            for _ in 0..<Int.random(in: 1...60, using: &rng) {
                let table = ModbusTable.allCases.randomElement(using: &rng)!
                let count = table.isBitTable ? 1 : [1, 2, 4].randomElement(using: &rng)!
                let addr = Int.random(in: 0...700, using: &rng)
                let span = ReadSpan(table: table, address: addr, count: min(count, maxRegs))
                if limits.isForbidden(table, span.address..<span.end) { continue }
                spans.append(span)
            }
            let plan = try ReadPlanner.plan(spans, limits: limits)
            #expect(plan.count <= spans.count)
            var covered = Set<Int>()
            for r in plan {
                #expect(r.count <= limits.limit(for: r.table))
                #expect(!limits.isForbidden(r.table, r.address..<r.end), "request \(r) reads a forbidden register")
                for i in r.spans {
                    let s = spans[i]
                    #expect(s.table == r.table && s.address >= r.address && s.end <= r.end, "span \(s) not inside \(r)")
                    covered.insert(i)
                }
            }
            #expect(covered == Set(spans.indices))
        }
    }
}
