// The libmosquitto wrapper against Debian's mosquitto on a free loopback port.

import Foundation
import Testing
@testable import Sparkplug
import TestSupport

/// Reads `events` until `match` accepts one (the suite's time limit bounds a missing event).
func nextEvent(_ it: inout AsyncStream<MQTTEvent>.AsyncIterator, _ match: (MQTTEvent) -> Bool) async -> MQTTEvent? {
    while let e = await it.next() {
        if match(e) { return e }
    }
    return nil
}

func isConnected(_ e: MQTTEvent) -> Bool { if case .connected = e { true } else { false } }
func message(_ e: MQTTEvent) -> MQTTMessage? { if case .message(let m) = e { m } else { nil } }

@Suite("MQTT client (libmosquitto) against mosquitto", .serialized, .timeLimit(.minutes(1)))
struct MQTTClientTests {
    @Test func publishSubscribeRoundTrip() async throws {
        let broker = try await MosquittoBroker.start()
        defer { broker.stop() }
        let client = MQTTClient(MQTTConfiguration(host: "127.0.0.1", port: broker.port, clientID: "rt"))
        defer { client.close() }
        var it = client.events.makeAsyncIterator()
        try await client.connect(will: nil)
        let c_it = await nextEvent(&it, isConnected)
        #expect(c_it == .connected)
        try await client.subscribe("t/#", qos: 1)
        try await client.publish(topic: "t/a", payload: Array("hello".utf8), qos: 1)
        let m = await nextEvent(&it) { message($0) != nil }.flatMap(message)
        #expect(m == MQTTMessage(topic: "t/a", payload: Array("hello".utf8), qos: 1, retain: false))
    }

    /// `submitAcknowledged` (store-and-forward's delete-only-what-the-broker-has): done once QoS 0 is written, QoS 1
    /// PUBACKed and the SUBSCRIBE SUBACKed; an error if not connected, or if the connection ends before the SUBACK
    /// (the broker is stopped with SIGSTOP, so no SUBACK can come, then the connection is dropped).
    @Test func acknowledgedSubmissionsCompleteOnlyOnceTheBrokerHasThem() async throws {
        let broker = try await MosquittoBroker.start()
        defer { broker.stop() }
        let client = MQTTClient(MQTTConfiguration(host: "127.0.0.1", port: broker.port, clientID: "acked"))
        defer { client.close() }
        func acknowledged(_ ops: [MQTTOperation]) async -> MosquittoError? {
            await withCheckedContinuation { cont in client.submitAcknowledged(ops) { cont.resume(returning: $0) } }
        }
        let ops: [MQTTOperation] = [.publish(topic: "a/0", payload: [0], qos: 0, retain: false),
                                    .publish(topic: "a/1", payload: [1], qos: 1, retain: false),
                                    .subscribe("a/#", qos: 1)]
        #expect(await acknowledged(ops) != nil, "not connected: refused at once")
        var it = client.events.makeAsyncIterator()
        try await client.connect(will: nil)
        _ = await nextEvent(&it, isConnected)
        for _ in 0..<20 { #expect(await acknowledged(ops) == nil) }

        kill(broker.process.processIdentifier, SIGSTOP)
        // Submitted synchronously, so the operations run on the client's thread before the drop (one queue, in order).
        let (results, sink) = AsyncStream<MosquittoError?>.makeStream()
        client.submitAcknowledged([.publish(topic: "a/0", payload: [0], qos: 0, retain: false), .subscribe("a/#", qos: 1)]) {
            sink.yield($0); sink.finish()
        }
        try await client.dropConnection()
        var outcome: [MosquittoError?] = []
        for await r in results { outcome.append(r) }
        kill(broker.process.processIdentifier, SIGCONT)
        #expect(outcome.count == 1)
        #expect(outcome.first??.call.hasPrefix("awaiting acknowledgement") == true,
                "the connection ended before the SUBACK: \(String(describing: outcome))")
    }

    @Test func willIsPublishedWhenTheConnectionDropsWithoutDisconnect() async throws {
        let broker = try await MosquittoBroker.start()
        defer { broker.stop() }
        let watcher = MQTTClient(MQTTConfiguration(host: "127.0.0.1", port: broker.port, clientID: "watcher"))
        let dying = MQTTClient(MQTTConfiguration(host: "127.0.0.1", port: broker.port, clientID: "dying"))
        defer { watcher.close(); dying.close() }
        var w = watcher.events.makeAsyncIterator()
        var d = dying.events.makeAsyncIterator()
        try await watcher.connect(will: nil)
        let c_w = await nextEvent(&w, isConnected)
        #expect(c_w == .connected)
        try await watcher.subscribe("w/#", qos: 1)
        try await dying.connect(will: MQTTWill(topic: "w/dying", payload: [0xDE, 0xAD], qos: 1, retain: false))
        let c_d = await nextEvent(&d, isConnected)
        #expect(c_d == .connected)
        try await dying.dropConnection()
        let lost = await nextEvent(&d) { if case .disconnected = $0 { true } else { false } }
        guard case .disconnected(let unexpected, _)? = lost else { Issue.record("no disconnect event"); return }
        #expect(unexpected)
        let will = await nextEvent(&w) { message($0) != nil }.flatMap(message)
        #expect(will == MQTTMessage(topic: "w/dying", payload: [0xDE, 0xAD], qos: 1, retain: false))
    }

    @Test func cleanDisconnectDiscardsTheWill() async throws {
        let broker = try await MosquittoBroker.start()
        defer { broker.stop() }
        let watcher = MQTTClient(MQTTConfiguration(host: "127.0.0.1", port: broker.port, clientID: "watcher"))
        let leaving = MQTTClient(MQTTConfiguration(host: "127.0.0.1", port: broker.port, clientID: "leaving"))
        defer { watcher.close(); leaving.close() }
        var w = watcher.events.makeAsyncIterator()
        var l = leaving.events.makeAsyncIterator()
        try await watcher.connect(will: nil)
        let c_w = await nextEvent(&w, isConnected)
        #expect(c_w == .connected)
        try await watcher.subscribe("w/#", qos: 1)
        try await leaving.connect(will: MQTTWill(topic: "w/leaving", payload: [1], qos: 1))
        let c_l = await nextEvent(&l, isConnected)
        #expect(c_l == .connected)
        try await leaving.disconnect()
        let lost = await nextEvent(&l) { if case .disconnected = $0 { true } else { false } }
        #expect(lost == .disconnected(unexpected: false, reason: "disconnected"))
        try await watcher.publish(topic: "w/marker", payload: [2], qos: 1)
        let first = await nextEvent(&w) { message($0) != nil }.flatMap(message)
        #expect(first?.topic == "w/marker")
    }

    @Test func errorsNameTheCall() async throws {
        let port = try freeLoopbackPort()  // nothing listens there
        let client = MQTTClient(MQTTConfiguration(host: "127.0.0.1", port: port, clientID: "err"))
        defer { client.close() }
        await #expect(throws: MosquittoError(call: "mosquitto_publish", code: MosquittoError.noConnection)) {
            try await client.publish(topic: "t", payload: [1])
        }
        do {
            try await client.connect(will: nil)
            Issue.record("connect to a closed port succeeded")
        } catch {
            #expect(error.call == "mosquitto_connect")
            #expect(error.description == "mosquitto_connect: Connection refused")
        }
    }
}
