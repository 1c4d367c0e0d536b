// The loop's state file keeps the operator's DR caps as Signals `DREvent`s. Files written before that
// (when the loop had its own `ManualEvent`, encoded by the synthesized Codable as
// `{id, capKW, from, until, reason}`) must still restore.
import Foundation
import Signals
import Testing
@testable import Control

@Suite struct StateFileEventsTests {
    func tempDir() throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sy-statefile-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    @Test func aStateFileWrittenWithTheOldEventTypeRestoresItsCaps() throws {
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // Byte for byte what the old encoder wrote for one operator event (keys in declaration order).
        let old = #"{"commandedKW":{"asic-01":500},"changedAt":{"asic-01":1700000000},"events":[{"id":"ers-9","capKW":2500,"from":1700000005.5,"until":1700000605.5,"reason":"saved [ops]"}],"overrides":[],"miningShedUntil":1700000010}"#
        try old.write(toFile: dir + "/loop-state.json", atomically: true, encoding: .utf8)
        let state = try #require(try StateFile(directory: dir).load())
        #expect(state.events == [DREvent.operatorCap(id: "ers-9", capKW: 2500, from: 1_700_000_005.5, until: 1_700_000_605.5, reason: "saved [ops]")])
        let e = try #require(state.events.first)
        #expect(e.origin == .manual)
        #expect(e.capKW == 2500)
        #expect(e.startS == 1_700_000_005.5 && e.endS == 1_700_000_605.5)
        #expect(e.isActive(atS: 1_700_000_005.5) && !e.isActive(atS: 1_700_000_605.5))
        #expect(state.commandedKW == ["asic-01": 500])
        #expect(state.miningShedUntil == 1_700_000_010)
    }

    @Test func anOperatorCapIsStoredInTheShapeOldFilesHave() throws {
        var state = LoopState()
        state.events = [DREvent.operatorCap(id: "ers-1", capKW: 1500, from: 1_700_000_000, until: 1_700_003_600, reason: "test")]
        let json = try JSONSerialization.jsonObject(with: JSONEncoder().encode(state)) as? [String: Any]
        let events = try #require(json?["events"] as? [[String: Any]])
        #expect(events.count == 1)
        #expect(Set(events[0].keys) == ["id", "capKW", "from", "until", "reason"])
        #expect(events[0]["capKW"] as? Double == 1500)
        #expect(events[0]["from"] as? Double == 1_700_000_000)
        #expect(try JSONDecoder().decode(LoopState.self, from: JSONEncoder().encode(state)) == state)
    }
}
