import Control
import FleetEdge
import Foundation
import Logging
import ServiceLifecycle
import Sparkplug
import Store
import Testing
import TestSupport
@testable import Daemon

// Fleet commands end to end (issue 17): the daemon in-process on the manual clock against the simulated site,
// Debian's mosquitto on a free port, and commands encoded by pysparkplug and published by paho-mqtt
// (Tests/peers/sparkplug_host.py): software we did not write.

@Suite("Daemon fleet commands from an independent host", .serialized, .timeLimit(.minutes(2)))
struct FleetCommandsDaemonTests {
    /// One metric of a command, as the host's JSON spec names it (pysparkplug DataType names).
    static func metric(_ name: String, _ type: String, _ value: Any) -> [String: Any] { ["name": name, "type": type, "value": value] }

    /// The answer the site publishes (NDATA `Command/Last …`), as a test-side subscriber decodes it.
    struct Answer: Equatable, CustomStringConvertible {
        var id: String
        var accepted: Bool
        var result: String
        var description: String { "\(id) \(accepted) \(result)" }
    }

    /// Reads the broker's traffic until the next NDATA carrying a command answer.
    static func nextAnswer(_ events: inout AsyncStream<MQTTEvent>.AsyncIterator) async -> Answer? {
        while let e = await events.next() {
            guard case .message(let m) = e, m.topic.contains("/NDATA/"),
                  let p = try? SparkplugPayload(decoding: m.payload),
                  case .string(let id)? = p.metric(named: FleetCommandName.lastID)?.value,
                  case .boolean(let ok)? = p.metric(named: FleetCommandName.lastAccepted)?.value,
                  case .string(let result)? = p.metric(named: FleetCommandName.lastResult)?.value else { continue }
            return Answer(id: id, accepted: ok, result: result)
        }
        return nil
    }

    @Test func commandsPublishedByPysparkplugAreAppliedOrRefused() async throws {
        let broker = try await MosquittoBroker.start()
        defer { broker.stop() }
        let host = try await PeerProcess.python("sparkplug_host.py", ["\(broker.port)", "hq", "1000000"])
        defer { host.stop() }
        let roles = "  roles:\n    hq-op: operator\n    hq-view: viewer\n"
        let rig = try FleetSiteRig("cmd", extraYAML: fleetYAML(port: broker.port) + roles)
        defer { rig.close() }
        let site = rig.site
        var config = rig.config
        let tap = SparkplugTap(port: broker.port)
        defer { tap.client.close() }
        var tapEvents = try await tap.subscribeToEverything()

        var logger = Logger(label: "fleet-cmd-test")
        logger.logLevel = .critical
        let clock = ManualClock()
        let watch = DaemonWatch()
        let group = ServiceGroup(services: [SiteDaemon(config: config, clock: clock, logger: logger, hooks: watch.hooks)], logger: logger)
        var answers: [Answer] = []
        var limits: [Double?] = []
        var eventLines: [[String]] = []
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            var ticks = watch.ticks.makeAsyncIterator()
            var last = try #require(await ticks.next())
            await site.step()
            _ = await tap.wait(for: "NBIRTH", &tapEvents)
            for _ in 0..<5 {
                clock.advance(by: .seconds(1))
                last = try #require(await ticks.next())
                await site.step()
            }
            let before = last.limitKW
            #expect(before > 1000, "the site's limit before the event: \(before)")
            let edge = "spBv1.0/test-group/NCMD/daemon-test"
            func send(_ topic: String, _ metrics: [[String: Any]]) async throws -> Answer {
                let spec = try JSONSerialization.data(withJSONObject: ["topic": topic, "metrics": metrics])
                try await tap.client.publish(topic: "switchyard-test/control", payload: Array("command ".utf8) + Array(spec), qos: 1)
                return try #require(await Self.nextAnswer(&tapEvents))
            }
            func envelope(_ id: String, client: String = "hq-op", at: Double? = nil) -> [[String: Any]] {
                [Self.metric("Command/ID", "STRING", id), Self.metric("Command/Timestamp", "DATETIME", Int((at ?? last.at) * 1000)),
                 Self.metric("Command/Client ID", "STRING", client)]
            }
            func event(_ cap: Any, type: String = "DOUBLE") -> [[String: Any]] {
                [Self.metric("DR Event/ID", "STRING", "grid-1"), Self.metric("DR Event/Cap kW", type, cap),
                 Self.metric("DR Event/Duration s", "INT64", 3600), Self.metric("DR Event/Reason", "STRING", "grid emergency")]
            }
            // Accepted: a 1000 kW DR event now, for an hour.
            answers.append(try await send(edge, envelope("cmd-1") + event(1000.0)))
            // Refused, each changing nothing: wrong role, a replayed id, an unknown metric, a wrong datatype, out of
            // range, a stale timestamp, an unknown device mode.
            answers.append(try await send(edge, envelope("cmd-2", client: "hq-view") + event(500.0)))
            answers.append(try await send(edge, envelope("cmd-1") + event(500.0)))
            answers.append(try await send(edge, envelope("cmd-3") + [Self.metric("DR Event/Cap MW", "DOUBLE", 0.5)]))
            answers.append(try await send(edge, envelope("cmd-4") + event(500.0, type: "FLOAT")))
            answers.append(try await send(edge, envelope("cmd-5") + event(-1.0)))
            answers.append(try await send(edge, envelope("cmd-6", at: last.at - 3600) + event(500.0)))
            answers.append(try await send("spBv1.0/test-group/DCMD/daemon-test/asic-1",
                                          envelope("cmd-7") + [Self.metric("Mode", "STRING", "turbo")]))
            // The loop's cap in force: the DR event's, and only it.
            for _ in 0..<3 {
                clock.advance(by: .seconds(1))
                last = try #require(await ticks.next())
                await site.step()
                limits.append(last.limitKW)
                eventLines.append(last.events)
            }
            try await tap.client.publish(topic: "switchyard-test/control", payload: Array("done".utf8), qos: 1)
            _ = await host.waitForExit()
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
        #expect(answers.map(\.id) == ["cmd-1", "cmd-2", "cmd-1", "cmd-3", "cmd-4", "cmd-5", "cmd-6", "cmd-7"], "\(answers)")
        #expect(answers.map(\.accepted) == [true] + Array(repeating: false, count: 7), "\(answers)")
        let codes = answers.dropFirst().map { $0.result.split(separator: ":").dropFirst().first.map { $0.trimmingCharacters(in: .whitespaces) } ?? "" }
        #expect(codes == ["wrong-role", "replayed", "unknown-metric", "wrong-datatype", "out-of-range", "stale", "out-of-range"], "\(answers)")
        #expect(answers[0].result.hasPrefix("accepted: DR event grid-1 cap 1000.0 kW"), "\(answers[0])")
        // The cap in force is the event's (less the site's margin): at most 1000 kW, on every tick after it.
        #expect(limits.allSatisfy { ($0 ?? .infinity) <= 1000 }, "\(limits)")
        #expect(eventLines.allSatisfy { $0.count == 1 && $0[0].contains("grid-1") }, "\(eventLines)")

        // The host decoded every message, with the answer metrics declared in the NBIRTH.
        let (line, verdict) = try lastJSONLine(host.standardOutput)
        #expect(verdict["errors"] as? [String] == [], "\(line)")
        #expect(verdict["commands_sent"] as? Int == 8)
        let node = verdict["node_metrics"] as? [String: Int] ?? [:]
        #expect(node["Command/Last ID"] == 12 && node["Command/Last Accepted"] == 11 && node["Command/Last Result"] == 12, "\(node)")
        let hostAnswers = (verdict["command_answers"] as? [[String: Any]] ?? []).compactMap { a -> Answer? in
            guard let id = a["id"] as? String, let ok = a["accepted"] as? Bool, let r = a["result"] as? String else { return nil }
            return Answer(id: id, accepted: ok, result: r)
        }
        #expect(hostAnswers == answers)

        // Every command is in the audit log with the claimed client, the command and the outcome.
        let store = try Store.open(directory: config.stateDir)
        let audit = try store.auditLog(limit: 100).filter { $0.actor.hasPrefix("fleet:") }.reversed()
        #expect(audit.map(\.target) == answers.map(\.id), "\(audit)")
        #expect(audit.map(\.actor) == ["fleet:hq-op", "fleet:hq-view"] + Array(repeating: "fleet:hq-op", count: 6))
        #expect(audit.map(\.status) == [200, 403, 409, 400, 400, 422, 422, 422])
        #expect(zip(audit, answers).allSatisfy { $0.detail.hasSuffix($1.result) }, "\(audit)")
    }

    /// A flood of commands (300 refused ones, then one DR event) published while the loop ticks: every advance of the
    /// manual clock still gives exactly one tick at the expected time, every command is answered, and the last one
    /// applies. (The tick hook never waits on the fleet; this checks that ticks go on and are not reordered, not
    /// their duration.)
    @Test func aFloodOfCommandsDoesNotStopTheTicks() async throws {
        let broker = try await MosquittoBroker.start()
        defer { broker.stop() }
        let rig = try FleetSiteRig("flood", extraYAML: fleetYAML(port: broker.port) + "  roles: {hq-op: operator}\n")
        defer { rig.close() }
        let site = rig.site
        var config = rig.config
        let tap = SparkplugTap(port: broker.port)
        defer { tap.client.close() }
        var tapEvents = try await tap.subscribeToEverything()
        var logger = Logger(label: "fleet-flood-test")
        logger.logLevel = .critical
        let clock = ManualClock()
        let watch = DaemonWatch()
        let group = ServiceGroup(services: [SiteDaemon(config: config, clock: clock, logger: logger, hooks: watch.hooks)], logger: logger)
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            var ticks = watch.ticks.makeAsyncIterator()
            var reports = [try #require(await ticks.next())]
            await site.step()
            _ = await tap.wait(for: "NBIRTH", &tapEvents)
            let topic = "spBv1.0/test-group/NCMD/daemon-test"
            func command(_ id: String, at: Double, _ extra: [SparkplugMetric]) -> [UInt8] {
                SparkplugPayload(timestamp: 1, seq: nil, metrics: [
                    SparkplugMetric(name: FleetCommandName.id, value: .string(id)),
                    SparkplugMetric(name: FleetCommandName.timestamp, value: .dateTime(millisecondsSinceEpoch: UInt64(at * 1000))),
                    SparkplugMetric(name: FleetCommandName.clientID, value: .string("hq-op")),
                ] + extra).encoded()
            }
            for batch in 0..<30 {
                for i in 0..<10 {
                    let n = batch * 10 + i
                    // Alternately an unknown metric and a stale timestamp: refused, each with an audit row and an answer.
                    let payload = n % 2 == 0
                        ? command("f-\(n)", at: reports.last!.at, [SparkplugMetric(name: "Bogus", value: .double(1))])
                        : command("f-\(n)", at: reports.last!.at - 3600, [SparkplugMetric(name: FleetCommandName.cancelEventID, value: .string("x"))])
                    try await tap.client.publish(topic: topic, payload: payload, qos: 0)
                }
                clock.advance(by: .seconds(1))
                reports.append(try #require(await ticks.next()))
                await site.step()
            }
            try await tap.client.publish(topic: topic, payload: command("f-final", at: reports.last!.at, [
                SparkplugMetric(name: FleetCommandName.eventID, value: .string("flood-cap")),
                SparkplugMetric(name: FleetCommandName.eventCapKW, value: .double(900)),
                SparkplugMetric(name: FleetCommandName.eventDurationS, value: .int64(600)),
                SparkplugMetric(name: FleetCommandName.eventReason, value: .string("after the flood")),
            ]), qos: 1)
            var answered: [Answer] = []
            while let a = await Self.nextAnswer(&tapEvents) {
                answered.append(a)
                if a.id == "f-final" { break }
            }
            clock.advance(by: .seconds(1))
            reports.append(try #require(await ticks.next()))
            #expect(reports.count == 32)
            #expect(reports.enumerated().allSatisfy { $0.element.at == t0 + Double($0.offset) }, "\(reports.map(\.at))")
            #expect(answered.count == 301, "\(answered.count) answers")
            #expect(answered.dropLast().allSatisfy { !$0.accepted })
            #expect(answered.last?.accepted == true, "\(String(describing: answered.last))")
            #expect((reports.last?.limitKW ?? .infinity) <= 900, "\(String(describing: reports.last?.limitKW))")
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
    }
}
