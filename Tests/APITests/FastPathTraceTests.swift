import Control
import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import Store
import Testing
import TestSupport
@testable import API

// Issue 12 §5 "A fast path leaves a trace": a DR event through the API runs the fast path, and that
// pass gets a decision-log row, an event-log entry and a log line, with its trigger, duration and writes.
@Suite("Fast path trace")
struct FastPathTraceTests {
    @Test func drEventThroughTheAPILeavesADecisionRowAnEventAndALogLine() async throws {
        let h = try Harness.make()
        for _ in 0..<10 { await h.tick() }
        let recorder = TickRecorder(store: h.store, metrics: h.deps.metrics)
        let lines = LogLines()
        recorder.tracePasses(of: h.host, logger: Logger(label: "trace") { _ in lines })
        try await h.app().test(.router) { client in
            let body = json(#"{"id":"ers-7","cap_kw":1000,"until":\#(h.clock.now + 600),"reason":"grid emergency"}"#)
            let status = try await client.execute(uri: "/v1/events", method: .post, headers: bearer(h.tokens[.operator]), body: body) { $0.status }
            #expect(status == .created)
        }
        // What the recorder service would drain and write. (The pass reported before the route answered:
        // closing the stream now leaves exactly what was queued, and never waits.)
        recorder.continuation.finish()
        var queue = recorder.stream.makeAsyncIterator()
        let item = try #require(await queue.next(), "the fast path queued nothing for the decision log")
        try recorder.write(item.report, loop: item.loop)
        let row = try #require(try h.store.decisions(limit: 5).first { $0.fastPath != nil })
        #expect(row.fastPath == "DR event ers-7")
        #expect(row.limitKW == 1000)
        let entry = try #require(try h.store.eventLog(limit: 20).first { $0.message.hasPrefix("fast path:") })
        #expect(entry.message.contains("DR event ers-7") && entry.message.contains(" ms; wrote "), "\(entry.message)")
        #expect(entry.message.contains("asic-1 0 kW") || entry.message.contains("asic-1 "), "the writes are named: \(entry.message)")
        let line = try #require(lines.records.first { $0.message == "pass" })
        #expect(line.metadata["pass.trigger"] == "fast path: DR event ers-7")
        #expect(line.metadata["pass.duration_ms"].flatMap(Double.init) != nil)
        #expect(line.metadata["pass.writes"]?.hasPrefix("wrote ") == true, "\(line.metadata)")
        #expect(await queue.next() == nil, "one pass, one record")
        // Ticks are not traced twice (the tick service records them).
        await h.tick()
        #expect(lines.records.filter { $0.message == "pass" }.count == 1)
    }
}

/// A log handler that keeps what it is given.
final class LogLines: LogHandler, @unchecked Sendable {
    struct Record { var message: String; var metadata: [String: String] }
    private let lock = NSLock()
    private var stored: [Record] = []
    var records: [Record] { lock.lock(); defer { lock.unlock() }; return stored }
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace
    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }
    func log(level: Logger.Level, message: Logger.Message, metadata: Logger.Metadata?, source: String, file: String, function: String, line: UInt) {
        lock.lock(); defer { lock.unlock() }
        stored.append(Record(message: "\(message)", metadata: (metadata ?? [:]).mapValues { "\($0)" }))
    }
}
