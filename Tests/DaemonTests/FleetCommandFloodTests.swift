import Control
import FleetEdge
import Foundation
import Logging
import ServiceLifecycle
import Sparkplug
import Store
import Synchronization
import Testing
import TestSupport
@testable import Daemon

// A flood of fleet commands against the daemon (issue 17, "a flood of commands changes nothing in the tick timing"):
// the daemon in-process on the manual clock against the simulated site, Debian's mosquitto on a free port, and a
// second MQTT client publishing valid, invalid and replayed NCMD/DCMD as fast as it can while the loop ticks. No
// timing is asserted (that is the benchmark's: `SwitchyardBench fleet-ticks`); what is asserted is that the loop
// never waits on the commands: every advance of the clock gives its tick while commands are still waiting, at most
// the budget of commands changes the loop per tick, at most one command-triggered fast path runs per tick (the
// decision log's own rows), and the queue is bounded: what it had no room for is dropped and reported, not kept.

/// What the daemon's fleet command queue reported, as a list and as a stream.
final class CommandQueueWatch: Sendable {
    let events = Mutex<[FleetCommandQueueEvent]>([])
    let stream: AsyncStream<FleetCommandQueueEvent>
    let streamIn: AsyncStream<FleetCommandQueueEvent>.Continuation
    init() { (stream, streamIn) = AsyncStream.makeStream() }
    func record(_ e: FleetCommandQueueEvent) {
        events.withLock { $0.append(e) }
        streamIn.yield(e)
    }
    var handled: [(id: String, accepted: Bool, tick: Int?)] {
        events.withLock { $0.compactMap { if case let .handled(id, ok, tick) = $0 { (id, ok, tick) } else { nil } } }
    }
    var dropped: Int { events.withLock { $0.reduce(0) { if case .dropped(let n, _) = $1 { $0 + n } else { $0 } } } }
    var fastPaths: [(ran: Bool, tick: Int)] {
        events.withLock { $0.compactMap { if case let .fastPath(ran, tick) = $0 { (ran, tick) } else { nil } } }
    }
}

@Suite("Daemon under a flood of fleet commands", .serialized, .timeLimit(.minutes(3)))
struct FleetCommandFloodTests {
    static let perTick = 4
    static let capacity = 32
    static let flood = 400

    /// One command's payload: the envelope (id, loop-time timestamp, a client mapped to `operator`) and `extra`.
    static func command(_ id: String, at: Double, _ extra: [SparkplugMetric]) -> [UInt8] {
        SparkplugPayload(timestamp: 1, seq: nil, metrics: [
            SparkplugMetric(name: FleetCommandName.id, value: .string(id)),
            SparkplugMetric(name: FleetCommandName.timestamp, value: .dateTime(millisecondsSinceEpoch: UInt64(at * 1000))),
            SparkplugMetric(name: FleetCommandName.clientID, value: .string("hq-op")),
        ] + extra).encoded()
    }

    /// In turn: a valid DR event in force now (its own id: each would run a fast path), a valid DCMD `auto`, an
    /// unknown metric, and a replay of the DCMD two before it.
    static func floodMessage(_ n: Int, at: Double) -> (topic: String, payload: [UInt8], kind: String) {
        let node = "spBv1.0/test-group/NCMD/daemon-test", device = "spBv1.0/test-group/DCMD/daemon-test/asic-1"
        switch n % 4 {
        case 0:
            return (node, command("flood-\(n)", at: at, [
                SparkplugMetric(name: FleetCommandName.eventID, value: .string("flood-\(n)")),
                SparkplugMetric(name: FleetCommandName.eventCapKW, value: .double(1_000_000)),
                SparkplugMetric(name: FleetCommandName.eventDurationS, value: .int64(3600)),
                SparkplugMetric(name: FleetCommandName.eventReason, value: .string("flood")),
            ]), "event")
        case 1:
            return (device, command("flood-\(n)", at: at, [SparkplugMetric(name: FleetCommandName.mode, value: .string("auto"))]), "mode")
        case 2:
            return (node, command("flood-\(n)", at: at, [SparkplugMetric(name: "Bogus", value: .double(1))]), "invalid")
        default:
            return (device, command("flood-\(n - 2)", at: at, [SparkplugMetric(name: FleetCommandName.mode, value: .string("auto"))]), "replay")
        }
    }

    @Test func aFloodOfValidInvalidAndReplayedCommandsNeverHoldsUpTheTicks() async throws {
        let broker = try await MosquittoBroker.start()
        defer { broker.stop() }
        let rig = try FleetSiteRig("flood-bound", extraYAML: fleetYAML(port: broker.port) + "  roles: {hq-op: operator}\n")
        defer { rig.close() }
        let site = rig.site
        var config = rig.config
        config.fleetCommandQueueCapacity = Self.capacity
        config.fleetCommandsPerTick = Self.perTick
        let tap = SparkplugTap(port: broker.port)
        defer { tap.client.close() }
        var tapEvents = try await tap.subscribeToEverything()
        // The flood comes from a client of its own.
        let sender = SparkplugTap(port: broker.port)
        defer { sender.client.close() }
        _ = try await sender.subscribeToEverything()

        var logger = Logger(label: "fleet-flood-bound-test")
        logger.logLevel = .critical
        let clock = ManualClock()
        let watch = DaemonWatch()
        let queue = CommandQueueWatch()
        var hooks = watch.hooks
        hooks.fleetCommands = { e in queue.record(e) }
        let group = ServiceGroup(services: [SiteDaemon(config: config, clock: clock, logger: logger, hooks: hooks)], logger: logger)
        var reports: [TickReport] = []
        // Commands published but neither answered nor reported dropped when each tick's report arrived.
        var waitingAtTick: [Int] = []
        var kinds: [String: String] = [:]
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            var ticks = watch.ticks.makeAsyncIterator()
            reports.append(try #require(await ticks.next()))
            await site.step()
            _ = await tap.wait(for: "NBIRTH", &tapEvents)
            let at = reports[0].at
            let messages = (0..<Self.flood).map { Self.floodMessage($0, at: at) }
            for (n, m) in messages.enumerated() { kinds["flood-\(n)"] = m.kind }
            // The flood, in flight while the loop ticks: published without waiting for a single answer.
            let published = Mutex(0)
            tasks.addTask {
                for m in messages {
                    try await sender.client.publish(topic: m.topic, payload: m.payload, qos: 0)
                    published.withLock { $0 += 1 }
                }
            }
            // Twenty ticks while the commands come and wait: each advance gives its tick. (The budget lets 4 commands
            // change the loop per tick and half the flood is valid, so a full queue takes several ticks to drain.)
            for _ in 0..<20 {
                clock.advance(by: .seconds(1))
                reports.append(try #require(await ticks.next()))
                waitingAtTick.append(published.withLock { $0 } - queue.handled.count - queue.dropped)
                await site.step()
            }
            // Then the commands outrun the ticks: tick only when the worker has used a tick's budget and waits for the
            // next, until every command is accounted for (answered or dropped).
            var events = queue.stream.makeAsyncIterator()
            while queue.handled.count + queue.dropped < Self.flood, let e = await events.next() {
                guard case .waitingForTick = e else { continue }
                clock.advance(by: .seconds(1))
                reports.append(try #require(await ticks.next()))
                await site.step()
            }
            #expect(published.withLock { $0 } == Self.flood)
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
        // Every advance gave exactly one tick, at its time: the loop never waited on the commands.
        #expect(reports.enumerated().allSatisfy { $0.element.at == t0 + Double($0.offset) }, "\(reports.map(\.at))")
        #expect(waitingAtTick.contains { $0 > 0 }, "ticks went on while commands waited: \(waitingAtTick)")

        // Bounded: every command answered or dropped (and reported), none twice; the queue dropped some.
        let handled = queue.handled
        let dropped = queue.dropped
        print("flood: \(handled.count) handled (\(handled.filter(\.accepted).count) accepted), \(dropped) dropped, \(reports.count) ticks; "
              + "fast paths \(queue.fastPaths.filter(\.ran).count) run, \(queue.fastPaths.filter { !$0.ran }.count) left to the next tick")
        #expect(handled.count + dropped == Self.flood, "\(handled.count) handled + \(dropped) dropped")
        #expect(dropped > 0, "the flood outran a queue of \(Self.capacity)")
        // The budget: at most `perTick` accepted commands changed the loop in any one tick.
        let perTick = Dictionary(grouping: handled.filter(\.accepted).compactMap(\.tick), by: { $0 }).mapValues(\.count)
        #expect(perTick.values.allSatisfy { $0 <= Self.perTick }, "\(perTick.sorted { $0.key < $1.key })")
        #expect(perTick.values.contains(Self.perTick), "the budget was used up in some tick: \(perTick.sorted { $0.key < $1.key })")
        // Invalid ones and replays never change anything; an id is accepted at most once.
        #expect(handled.filter { kinds[$0.id] == "invalid" }.allSatisfy { !$0.accepted })
        let acceptedIDs = handled.filter(\.accepted).map(\.id)
        #expect(Set(acceptedIDs).count == acceptedIDs.count, "an id accepted twice")
        #expect(handled.filter(\.accepted).allSatisfy { kinds[$0.id] == "event" || kinds[$0.id] == "mode" })
        #expect(acceptedIDs.contains { kinds[$0] == "event" } && acceptedIDs.contains { kinds[$0] == "mode" }, "valid commands applied")
        // One fast path per tick at most, as the node saw it and as the decision log recorded the passes.
        let ran = Dictionary(grouping: queue.fastPaths.filter(\.ran).map(\.tick), by: { $0 }).mapValues(\.count)
        #expect(ran.values.allSatisfy { $0 == 1 }, "\(ran)")
        #expect(queue.fastPaths.contains { !$0.ran }, "later DR events of a tick wait for the next tick")
        let store = try Store.open(directory: rig.config.stateDir)
        let fastRows = try store.decisions(limit: 100_000).filter { $0.fastPath?.hasPrefix("DR event flood-") == true }
        let rowsPerTime = Dictionary(grouping: fastRows, by: \.at).mapValues(\.count)
        #expect(!fastRows.isEmpty)
        // (Per loop time a second one is possible: one granted just before a tick's hand-off, one just after it.)
        #expect(rowsPerTime.values.allSatisfy { $0 <= 2 }, "command fast paths per loop time: \(rowsPerTime.sorted { $0.key < $1.key })")
        #expect(fastRows.count <= reports.count, "\(fastRows.count) command fast paths in \(reports.count) ticks")
    }
}
