// The hub's record writer when its store fails (PostgreSQL restarting): the failed writes are kept and tried again,
// and nothing is lost. Debian's mosquitto on a free port; every wait is on an event.

import Foundation
import Hub
import Logging
import ServiceLifecycle
import Sparkplug
import Synchronization
import Testing
import TestSupport

/// Fails its first `failures` writes (as a database that is down would), then keeps everything; reports each write.
actor FlakySink: FleetRecordSink {
    private var failuresLeft: Int
    private(set) var records: [HubRecord] = []
    private(set) var failed = 0
    nonisolated let writes: AsyncStream<Void>
    private let wrote: AsyncStream<Void>.Continuation

    init(failures: Int) {
        failuresLeft = failures
        (writes, wrote) = AsyncStream.makeStream(of: Void.self)
    }

    struct Down: Error {}

    func write(_ batch: [HubRecord]) async throws {
        if failuresLeft > 0 {
            failuresLeft -= 1
            failed += 1
            wrote.yield()
            throw Down()
        }
        records += batch
        wrote.yield()
    }

    func importValues() -> [Double] {
        records.flatMap { r -> [Double] in
            guard case .samples(let s) = r else { return [] }
            return s.compactMap { m in
                if m.name == FleetMetricName.importKW, case .double(let v)? = m.value { v } else { nil }
            }
        }
    }
}

@Suite("Hub: the record writer when the store fails", .serialized, .timeLimit(.minutes(2)))
struct HostSinkRetryTests {
    @Test func failedWritesAreRetriedAndNothingIsLost() async throws {
        let broker = try await MosquittoBroker.start()
        defer { broker.stop() }
        var logger = Logger(label: "hub-sink-test")
        logger.logLevel = .critical
        let sink = FlakySink(failures: 3)
        let (events, eventsIn) = AsyncStream.makeStream(of: HostEvent.self)
        let host = try HostApplication(
            configuration: HostConfiguration(hostID: "hq", mqtt: MQTTConfiguration(host: "127.0.0.1", port: broker.port, clientID: "hub-sink-test"),
                                             retryDelay: .milliseconds(100), sinkRetryDelay: .milliseconds(5)),
            sink: sink, logger: logger, observe: { eventsIn.yield($0) })
        let group = ServiceGroup(configuration: .init(services: [host], gracefulShutdownSignals: [], logger: logger))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            var it = events.makeAsyncIterator()
            var failures = 0, received = 0
            var online = false
            /// Waits, event by event, until `condition` holds (at once if it already does); false if the events end.
            func until(_ condition: () -> Bool) async -> Bool {
                if condition() { return true }
                while let e = await it.next() {
                    if case .sinkFailed = e { failures += 1 }
                    if case .received = e { received += 1 }
                    if case .online = e { online = true }
                    if condition() { return true }
                }
                return false
            }
            #expect(await until { online })
            let edge = MQTTClient(MQTTConfiguration(host: "127.0.0.1", port: broker.port, clientID: "edge-sink-test"))
            try await edge.connect(will: nil)
            var edgeEvents = edge.events.makeAsyncIterator()
            #expect(await edgeEvents.next() == .connected)
            let t0 = wallMS()
            _ = try await edge.publish(topic: "spBv1.0/ERCOT/NBIRTH/site-1",
                                       payload: SparkplugPayloads.nbirth(timestamp: t0, bdSeq: BdSeq(0), metrics: [
                                           SparkplugMetric(name: FleetMetricName.importKW, timestamp: t0, value: .double(0))]).encoded())
            for k in 1...20 {
                _ = try await edge.publish(topic: "spBv1.0/ERCOT/NDATA/site-1",
                                           payload: SparkplugPayloads.data(timestamp: t0 + UInt64(k), seq: SparkplugSeq(UInt8(k)), metrics: [
                                               SparkplugMetric(name: FleetMetricName.importKW, timestamp: t0 + UInt64(k), value: .double(Double(k)))]).encoded())
            }
            #expect(await until { received == 21 })
            // Every write reported: wait until the sink holds every value (or the writes stop coming).
            var writes = sink.writes.makeAsyncIterator()
            while await sink.importValues().count < 21, await writes.next() != nil {}
            #expect(await sink.importValues() == (0...20).map(Double.init), "every sample written once, in order")
            #expect(await sink.failed == 3)
            #expect(await until { failures >= 3 })
            #expect(failures == 3, "each failed write reported")
            #expect(host.droppedRecords == 0)
            edge.close()
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
    }
}
