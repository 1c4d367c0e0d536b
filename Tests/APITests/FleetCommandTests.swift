import Basics
import Control
import FleetEdge
import Foundation
import Logging
import Signals
import Site
import Sparkplug
import Store
import Synchronization
import Testing
@testable import API

// Fleet commands (issue 17) against the API's harness: the same simulated site, loop, store and manual clock as
// the HTTP tests. Commands go through the edge node session's schema check (as from the broker) and the
// FleetCommandProcessor; each is answered, audited, and either applied through the API's calls or changes nothing.

/// A processor over a Harness, and a session that turns Sparkplug payloads into its events.
struct FleetRig {
    let h: Harness
    let processor: FleetCommandProcessor
    let identity: EdgeNodeIdentity
    let deviceIDs: [String]

    static let roles = ["hq-op": "operator", "hq-admin": "admin", "hq-view": "viewer"]

    static func make(replayPath: String? = nil, windowS: Double = 300) throws -> FleetRig {
        let h = try Harness.make()
        var logger = Logger(label: "fleet-command-test")
        logger.logLevel = .critical
        let fleet = FleetConfig(brokerHost: "h", brokerPort: 1883, groupID: "g", edgeNodeID: "hil", roles: roles, commandWindowS: windowS)
        let replay = CommandReplayStore(path: replayPath, loadedAtS: h.clock.now)
        let p = FleetCommandProcessor(deps: FleetCommandDependencies(runtime: h.deps.runtime, store: h.store, wallClock: { h.clock.now }),
                                      fleet: fleet, replay: replay, logger: logger)
        return FleetRig(h: h, processor: p, identity: try EdgeNodeIdentity(group: "g", edge: "hil"),
                        deviceIDs: h.host.current.site.devices.map(\.id))
    }

    /// The envelope metrics: id, timestamp (default: the loop's clock now), claimed client.
    func envelope(_ id: String, client: String = "hq-op", at: Double? = nil) -> [SparkplugMetric] {
        [SparkplugMetric(name: FleetCommandName.id, value: .string(id)),
         SparkplugMetric(name: FleetCommandName.timestamp, value: .dateTime(millisecondsSinceEpoch: UInt64((at ?? h.clock.now) * 1000))),
         SparkplugMetric(name: FleetCommandName.clientID, value: .string(client))]
    }

    /// Publishes `metrics` as an NCMD (device nil) or DCMD through the session, and hands its event to the processor.
    func send(_ device: String? = nil, _ metrics: [SparkplugMetric]) async throws -> FleetCommandAnswer {
        var session = EdgeNodeSession(identity: identity, lastBdSeq: nil, nodeCommands: FleetCommandName.nodeSchema,
                                      deviceCommands: Dictionary(uniqueKeysWithValues: deviceIDs.map { ($0, FleetCommandName.deviceSchema) }))
        let topic = device.map { identity.topic(.dcmd, device: $0) } ?? identity.topic(.ncmd)
        let payload = SparkplugPayload(timestamp: 1, seq: nil, metrics: metrics).encoded()
        let actions = session.received(MQTTMessage(topic: topic, payload: payload, qos: 0, retain: false), now: 1,
                                       birth: BirthCertificate(node: [], devices: []))
        let event: EdgeNodeEvent
        switch try #require(actions.first) {
        case let .command(device, commands): event = .command(device: device, commands)
        case let .rejected(device, why, echo): event = .rejected(device: device, why, echo: echo)
        default: throw CancellationError()
        }
        return try #require(await processor.handle(event))
    }

    func createEvent(_ cmd: String, event: String = "fl-1", capKW: Double = 1500, durationS: Int64 = 3600, reason: String = "grid emergency",
                     client: String = "hq-op", at: Double? = nil) async throws -> FleetCommandAnswer {
        try await send(nil, envelope(cmd, client: client, at: at) + [
            SparkplugMetric(name: FleetCommandName.eventID, value: .string(event)),
            SparkplugMetric(name: FleetCommandName.eventCapKW, value: .double(capKW)),
            SparkplugMetric(name: FleetCommandName.eventDurationS, value: .int64(durationS)),
            SparkplugMetric(name: FleetCommandName.eventReason, value: .string(reason)),
        ])
    }

    /// What a command could have changed: DR events, overrides, the newest config version.
    struct Snapshot: Equatable {
        var events: [DREvent]
        var overrides: [Override]
        var config: Int?
    }

    func snapshot() throws -> Snapshot {
        let s = h.host.current.persistentState
        return Snapshot(events: s.events, overrides: s.overrides, config: try h.store.latestConfig()?.version)
    }
}

@Suite("Fleet commands through the API's rules", .serialized)
struct FleetCommandTests {
    @Test func aDREventCommandCapsTheSiteAndIsAnsweredAndAudited() async throws {
        let rig = try FleetRig.make()
        for _ in 0..<10 { await rig.h.tick() }
        let answer = try await rig.createEvent("cmd-1", capKW: 1500)
        #expect(answer.accepted, "\(answer.result)")
        #expect(answer.id == "cmd-1")
        #expect(answer.result.hasPrefix("accepted: DR event fl-1 cap 1500.0 kW"), "\(answer.result)")
        #expect(rig.processor.lastAnswer == answer)
        let event = try #require(rig.h.host.current.persistentState.events.first { $0.id == "fl-1" })
        #expect(event.capKW == 1500 && event.startS == rig.h.clock.now && event.endS == rig.h.clock.now + 3600)
        #expect(event.reason == "grid emergency [fleet:hq-op]")
        // The cap is in force: the fast path ran, and the next tick keeps the limit at or under it.
        let r = await rig.h.tick()
        #expect(try #require(r.limitKW) <= 1500, "limit \(String(describing: r.limitKW))")
        let audit = try #require(try rig.h.store.auditLog(limit: 10).first)
        #expect(audit.actor == "fleet:hq-op" && audit.role == "operator" && audit.action == "NCMD DR event create")
        #expect(audit.target == "cmd-1" && audit.status == 200)
        #expect(audit.detail.contains("accepted: DR event fl-1"), "\(audit.detail)")

        // Cancel it by id.
        let cancel = try await rig.send(nil, rig.envelope("cmd-2") + [SparkplugMetric(name: FleetCommandName.cancelEventID, value: .string("fl-1"))])
        #expect(cancel.accepted && cancel.result == "accepted: DR event fl-1 cancelled", "\(cancel.result)")
        #expect(rig.h.host.current.persistentState.events.allSatisfy { $0.id != "fl-1" })
        let missing = try await rig.send(nil, rig.envelope("cmd-3") + [SparkplugMetric(name: FleetCommandName.cancelEventID, value: .string("fl-1"))])
        #expect(!missing.accepted && missing.result == "rejected: not-found: no event 'fl-1'", "\(missing.result)")
    }

    @Test func aDeviceModeCommandSetsAndClearsAnOverride() async throws {
        let rig = try FleetRig.make()
        await rig.h.tick()
        let manual = try await rig.send("asic-1", rig.envelope("m-1") + [
            SparkplugMetric(name: FleetCommandName.mode, value: .string("manual")),
            SparkplugMetric(name: FleetCommandName.setpointKW, value: .double(400)),
            SparkplugMetric(name: FleetCommandName.durationS, value: .int64(600)),
        ])
        #expect(manual.accepted, "\(manual.result)")
        #expect(rig.h.host.current.persistentState.overrides == [.make(device: "asic-1", kw: 400, until: rig.h.clock.now + 600)])
        let auto = try await rig.send("asic-1", rig.envelope("m-2") + [SparkplugMetric(name: FleetCommandName.mode, value: .string("auto"))])
        #expect(auto.accepted && auto.result == "accepted: asic-1 auto", "\(auto.result)")
        #expect(rig.h.host.current.persistentState.overrides.isEmpty)
        // A meter is a Sparkplug device but not a controllable one, as in the API.
        let meter = try await rig.send("site-meter", rig.envelope("m-3") + [SparkplugMetric(name: FleetCommandName.mode, value: .string("auto"))])
        #expect(meter.result == "rejected: not-found: no controllable device 'site-meter'", "\(meter.result)")
    }

    @Test func aConfigVersionIsAppliedByItsContentHash() async throws {
        let rig = try FleetRig.make()
        await rig.h.tick()
        // v2 lowers the import limit; v3 (the newest) is v1 again with a comment. Apply v2 by its hash.
        let changed = apiSiteYAML.replacingOccurrences(of: "import_limit_kw: 6000", with: "import_limit_kw: 5900")
        let v2 = try rig.h.store.appendConfig(yaml: changed, author: "test", comment: "v2", at: rig.h.clock.now, expected: 1)
        _ = try rig.h.store.appendConfig(yaml: apiSiteYAML + "\n# v3\n", author: "test", comment: "v3", at: rig.h.clock.now, expected: 2)
        #expect(rig.h.host.current.site.importLimitKw == 6000)
        let apply = rig.envelope("c-1", client: "hq-admin") + [
            SparkplugMetric(name: FleetCommandName.configSHA256, value: .string(v2.sha256.uppercased())),
            SparkplugMetric(name: FleetCommandName.configComment, value: .string("back to the lower limit")),
        ]
        // The apply takes effect at a tick boundary: tick until the command has its answer.
        let done = Mutex<FleetCommandAnswer?>(nil)
        let task = Task { let a = try await rig.send(nil, apply); done.withLock { $0 = a }; return a }
        var ticks = 0
        while done.withLock({ $0 == nil }), ticks < 10_000 {
            await rig.h.tick()
            await Task.yield()
            ticks += 1
        }
        let answer = try await task.value
        #expect(answer.accepted, "\(answer.result)")
        let v4 = try #require(try rig.h.store.latestConfig())
        #expect(v4.version == 4 && v4.sha256 == v2.sha256 && v4.rollbackOf == 2 && v4.author == "fleet:hq-admin")
        #expect(v4.comment == "back to the lower limit")
        #expect(rig.h.host.current.site.importLimitKw == 5900)
        // Applying the newest version's hash again changes nothing.
        let again = try await rig.send(nil, rig.envelope("c-3", client: "hq-admin") + [
            SparkplugMetric(name: FleetCommandName.configSHA256, value: .string(v2.sha256))])
        #expect(again.accepted && again.result.contains("already in force"), "\(again.result)")
        // A hash no version has.
        let unknown = try await rig.send(nil, rig.envelope("c-2", client: "hq-admin") + [
            SparkplugMetric(name: FleetCommandName.configSHA256, value: .string(String(repeating: "ab", count: 32)))])
        #expect(unknown.result.hasPrefix("rejected: not-found: no stored config version"), "\(unknown.result)")
        #expect(try rig.h.store.latestConfig()?.version == 4)
    }

    /// A rollout sends the site file with its hash: stored as a new version and applied; a file that does not hash
    /// to the hash, or does not validate, changes nothing.
    @Test func aConfigSentWithTheCommandIsStoredAndApplied() async throws {
        let rig = try FleetRig.make()
        await rig.h.tick()
        let changed = apiSiteYAML.replacingOccurrences(of: "import_limit_kw: 6000", with: "import_limit_kw: 5800")
        func apply(_ id: String, sha: String, yaml: String) async throws -> FleetCommandAnswer {
            let metrics = rig.envelope(id, client: "hq-admin") + [
                SparkplugMetric(name: FleetCommandName.configSHA256, value: .string(sha)),
                SparkplugMetric(name: FleetCommandName.configYAML, value: .text(yaml)),
            ]
            let done = Mutex<FleetCommandAnswer?>(nil)
            let task = Task { let a = try await rig.send(nil, metrics); done.withLock { $0 = a }; return a }
            var ticks = 0
            while done.withLock({ $0 == nil }), ticks < 10_000 {
                await rig.h.tick()
                await Task.yield()
                ticks += 1
            }
            return try await task.value
        }
        let wrong = try await apply("y-1", sha: SHA256.hex(apiSiteYAML), yaml: changed)
        #expect(wrong.result.hasPrefix("rejected: malformed: 'Config/YAML' hashes to \(SHA256.hex(changed).prefix(12))…"), "\(wrong.result)")
        let broken = apiSiteYAML.replacingOccurrences(of: "import_limit_kw: 6000", with: "import_limit_kw: lots")
        let invalid = try await apply("y-2", sha: SHA256.hex(broken), yaml: broken)
        #expect(invalid.result.hasPrefix("rejected: out-of-range: config sha256 \(SHA256.hex(broken).prefix(12)):"), "\(invalid.result)")
        #expect(try rig.h.store.latestConfig()?.version == 1)
        let good = try await apply("y-3", sha: SHA256.hex(changed), yaml: changed)
        #expect(good.accepted, "\(good.result)")
        let v2 = try #require(try rig.h.store.latestConfig())
        #expect(v2.version == 2 && v2.sha256 == SHA256.hex(changed) && v2.rollbackOf == nil && v2.author == "fleet:hq-admin")
        #expect(rig.h.host.current.site.importLimitKw == 5800)
    }

    /// Each bad command changes nothing, is answered with why, and leaves an audit row with its outcome.
    static let bad: [(name: String, code: String)] = [
        ("unknown metric", "unknown-metric"), ("wrong datatype", "wrong-datatype"), ("cap out of range", "out-of-range"),
        ("setpoint out of range", "out-of-range"), ("wrong role", "wrong-role"), ("unknown client", "unknown-client"),
        ("replayed id", "replayed"), ("stale timestamp", "stale"), ("future timestamp", "stale"), ("no id", "missing"),
        ("unknown device", "unknown-device"), ("viewer", "wrong-role"), ("config by an operator", "wrong-role"),
    ]

    @Test("bad commands change nothing and are answered", arguments: bad.indices)
    func badCommands(_ i: Int) async throws {
        let (name, code) = Self.bad[i]
        let rig = try FleetRig.make()
        for _ in 0..<3 { await rig.h.tick() }
        if name == "replayed id" {
            #expect(try await rig.createEvent("dup", event: "first").accepted)
        }
        let before = try rig.snapshot()
        let auditBefore = try rig.h.store.auditLog(limit: 1000).count
        let now = rig.h.clock.now
        let answer: FleetCommandAnswer
        switch name {
        case "unknown metric":
            answer = try await rig.send(nil, rig.envelope("b-1") + [SparkplugMetric(name: "DR Event/Cap MW", value: .double(1))])
        case "wrong datatype":
            answer = try await rig.send(nil, rig.envelope("b-1") + [
                SparkplugMetric(name: FleetCommandName.eventID, value: .string("x")),
                SparkplugMetric(name: FleetCommandName.eventCapKW, value: .float(1500)),
                SparkplugMetric(name: FleetCommandName.eventDurationS, value: .int64(60)),
                SparkplugMetric(name: FleetCommandName.eventReason, value: .string("r"))])
        case "cap out of range": answer = try await rig.createEvent("b-1", capKW: -5)
        case "setpoint out of range":
            answer = try await rig.send("asic-1", rig.envelope("b-1") + [
                SparkplugMetric(name: FleetCommandName.mode, value: .string("manual")),
                SparkplugMetric(name: FleetCommandName.setpointKW, value: .double(5000)),
                SparkplugMetric(name: FleetCommandName.durationS, value: .int64(60))])
        case "wrong role": answer = try await rig.createEvent("b-1", client: "hq-view")
        case "viewer":
            answer = try await rig.send("asic-1", rig.envelope("b-1", client: "hq-view") + [
                SparkplugMetric(name: FleetCommandName.mode, value: .string("auto"))])
        case "unknown client": answer = try await rig.createEvent("b-1", client: "mallory")
        case "replayed id": answer = try await rig.createEvent("dup", event: "second")
        case "stale timestamp": answer = try await rig.createEvent("b-1", at: now - 301)
        case "future timestamp": answer = try await rig.createEvent("b-1", at: now + 301)
        case "no id":
            answer = try await rig.send(nil, Array(rig.envelope("b-1").dropFirst()) + [
                SparkplugMetric(name: FleetCommandName.cancelEventID, value: .string("x"))])
        case "unknown device":
            answer = try await rig.send("asic-99", rig.envelope("b-1") + [SparkplugMetric(name: FleetCommandName.mode, value: .string("auto"))])
        case "config by an operator":
            answer = try await rig.send(nil, rig.envelope("b-1") + [
                SparkplugMetric(name: FleetCommandName.configSHA256, value: .string(try #require(try rig.h.store.latestConfig()).sha256))])
        default: Issue.record("no case \(name)"); return
        }
        #expect(!answer.accepted)
        #expect(answer.result.hasPrefix("rejected: \(code): "), "\(name): \(answer.result)")
        // The id is echoed even when the session refused the payload (unknown metric, wrong datatype, unknown device).
        #expect(answer.id == (name == "no id" ? "" : name == "replayed id" ? "dup" : "b-1"))
        #expect(rig.processor.lastAnswer == answer)
        #expect(try rig.snapshot() == before, "\(name) changed something")
        let audit = try rig.h.store.auditLog(limit: 1000)
        #expect(audit.count == auditBefore + 1)
        let row = try #require(audit.first)
        #expect(row.status >= 400 && row.detail.contains("rejected: \(code)"), "\(row)")
        #expect(row.actor == (name == "unknown client" ? "fleet:mallory" : name.contains("role") || name == "viewer" ? "fleet:hq-view" : "fleet:hq-op"))
        // The role column is the claimed client's, also for payloads the schema check refused.
        #expect(row.role == (name == "unknown client" ? "" : name.contains("role") || name == "viewer" ? "viewer" : "operator"), "\(row)")
        // An unmapped client cannot fill the replay record.
        if name == "unknown client" { #expect(!rig.processor.replay.seenIDs.contains("b-1")) }
        // And the loop's next tick has no cap from it.
        let r = await rig.h.tick()
        #expect(r.events.isEmpty || name == "replayed id", "\(r.events)")
    }

    /// The seen ids are in a file replaced atomically: a restarted processor (a new store object on the same path)
    /// still refuses a replay within the window, and forgets ids once their timestamps leave it.
    @Test func seenIDsSurviveARestartWithinTheWindow() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sy-fleet-ids-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("fleet-command-ids").path
        let t = t0
        let first = CommandReplayStore(path: path, loadedAtS: t)
        #expect(first.admit(id: "a", timestampMS: UInt64(t * 1000), nowS: t, windowS: 300) == .admitted)
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "a \(UInt64(t * 1000))\n")
        let restarted = CommandReplayStore(path: path, loadedAtS: t + 10)
        guard case .rejected(let r) = restarted.admit(id: "a", timestampMS: UInt64(t * 1000), nowS: t + 10, windowS: 300) else {
            Issue.record("a replay after a restart was admitted"); return
        }
        #expect(r.code == .replayed)
        // Past the window the old id is forgotten when the next command is recorded (its replay would be stale).
        #expect(restarted.admit(id: "b", timestampMS: UInt64((t + 400) * 1000), nowS: t + 400, windowS: 300) == .admitted)
        #expect(restarted.seenIDs == ["b"])
        // An unreadable record: commands stamped before the start are refused, later ones admitted.
        try "garbage\n".write(toFile: path, atomically: true, encoding: .utf8)
        let problems = Mutex<[String]>([])
        let corrupt = CommandReplayStore(path: path, loadedAtS: t + 500) { p in problems.withLock { $0.append(p) } }
        #expect(problems.withLock { $0 } == ["\(path):1: not '<command id> <timestamp ms>': 'garbage'; commands stamped before this start are refused"])
        #expect(corrupt.admit(id: "c", timestampMS: UInt64((t + 499) * 1000), nowS: t + 500, windowS: 300) != .admitted)
        #expect(corrupt.admit(id: "d", timestampMS: UInt64((t + 501) * 1000), nowS: t + 500, windowS: 300) == .admitted)
    }

    /// A fleet command needs the role of the API route doing the same thing, and the site file's role names are
    /// the API's.
    @Test func fleetRolesAreTheAPIRoutesRoles() throws {
        let h = try Harness.make()
        let routes = buildRouter(h.deps).routes
        func role(_ method: String, _ path: String) -> Role? {
            routes.first { $0.method.rawValue == method && $0.path == path }?.role
        }
        #expect(role("POST", "/v1/events") == OperatorRules.createEventRole)
        #expect(role("DELETE", "/v1/events/{id}") == OperatorRules.cancelEventRole)
        #expect(role("PUT", "/v1/devices/{id}/mode") == OperatorRules.setModeRole)
        #expect(role("POST", "/v1/config/rollback") == OperatorRules.applyConfigRole)
        #expect(FleetConfig.roleNames == Role.allCases.map(\.rawValue))
    }
}
