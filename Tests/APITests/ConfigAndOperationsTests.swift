import Control
import Foundation
import Synchronization
import Hummingbird
import Modbus
import HummingbirdTesting
import Store
import Testing
import TestSupport
@testable import API

@Suite("Config lifecycle and operations")
struct ConfigAndOperationsTests {
    static func applyBody(_ yaml: String, comment: String = "test", dryRun: Bool = false) throws -> ByteBuffer {
        let data = try JSONSerialization.data(withJSONObject: ["yaml": yaml, "comment": comment, "dry_run": dryRun, "file": "site.yaml"])
        return ByteBuffer(data: data)
    }

    static let changedYAML = apiSiteYAML.replacingOccurrences(of: "cap_kw: 3800", with: "cap_kw: 3000")

    @Test func applyNeedsIfMatchAndRejectsStaleVersions() async throws {
        let h = try Harness.make()
        await h.tick()
        try await h.app().test(.router) { client in
            let admin = bearer(h.tokens[.admin])
            #expect(try await client.execute(uri: "/v1/config", method: .put, headers: admin, body: try Self.applyBody(Self.changedYAML)) { $0.status }
                    == .preconditionRequired)
            var stale = admin; stale[.ifMatch] = "\"7\""
            #expect(try await client.execute(uri: "/v1/config", method: .put, headers: stale, body: try Self.applyBody(Self.changedYAML)) { $0.status }
                    == .preconditionFailed)
            // Dry run: validated and diffed, nothing stored.
            var ok = admin; ok[.ifMatch] = "\"1\""
            let dry = try await client.execute(uri: "/v1/config", method: .put, headers: ok, body: try Self.applyBody(Self.changedYAML, dryRun: true)) {
                try decode(ApplyResultDTO.self, $0.body)
            }
            #expect(dry.dryRun && !dry.applied && dry.changes.map(\.line) == ["~ tree.children[xfmr-1].cap_kw: 3800 → 3000"])
            #expect(try h.store.latestConfig()?.version == 1)
            // The real apply waits for the tick boundary: run a tick concurrently.
            let res = try await whileTicking(h) {
                try await client.execute(uri: "/v1/config", method: .put, headers: ok, body: try Self.applyBody(Self.changedYAML)) { r in
                    #expect(r.headers[.eTag] == "\"2\"")
                    return try decode(ApplyResultDTO.self, r.body)
                }
            }
            #expect(res.version == 2 && res.applied)
            #expect(h.host.current.site.node("xfmr-1")?.capKw == 3000)
            #expect(try h.store.latestConfig()?.yaml == Self.changedYAML)
            let audit = try h.store.auditLog().filter { $0.action == "PUT /v1/config" }
            // 428, 412, the dry run and the apply: every mutating call is audited once.
            #expect(audit.map(\.status) == [200, 200, 412, 428])
            #expect(audit.first?.detail.contains("1 change(s)") == true)
        }
    }

    @Test func invalidFileIsRejectedWithFileLineAndNothingChanges() async throws {
        let h = try Harness.make()
        let bad = apiSiteYAML.replacingOccurrences(of: "cap_kw: 3800", with: "cap_kw: lots")
        try await h.app().test(.router) { client in
            var hdr = bearer(h.tokens[.admin]); hdr[.ifMatch] = "1"
            try await client.execute(uri: "/v1/config", method: .put, headers: hdr, body: try Self.applyBody(bad)) { r in
                #expect(r.status == .unprocessableContent)
                let msg = errorMessage(r.body) ?? ""
                #expect(msg.hasPrefix("site.yaml:7:"), "\(msg)")
            }
            // A profile that does not exist fails the wiring check, also before anything is stored.
            let noProfile = apiSiteYAML.replacingOccurrences(of: "profile: eastron-sdm630", with: "profile: no-such-meter")
            #expect(try await client.execute(uri: "/v1/config", method: .put, headers: hdr, body: try Self.applyBody(noProfile)) { $0.status }
                    == .unprocessableContent)
        }
        #expect(try h.store.latestConfig()?.version == 1)
        #expect(h.host.generation == 0)
    }

    @Test func twoConcurrentAppliesOneConflicts() async throws {
        let h = try Harness.make()
        let a = apiSiteYAML.replacingOccurrences(of: "cap_kw: 3800", with: "cap_kw: 3100")
        let b = apiSiteYAML.replacingOccurrences(of: "cap_kw: 3800", with: "cap_kw: 3200")
        try await h.app().test(.router) { client in
            var h1 = bearer(h.tokens[.admin]); h1[.ifMatch] = "1"
            let hdr = h1
            let statuses = try await whileTicking(h) {
                async let ra = client.execute(uri: "/v1/config", method: .put, headers: hdr, body: try Self.applyBody(a, comment: "a")) { $0.status }
                async let rb = client.execute(uri: "/v1/config", method: .put, headers: hdr, body: try Self.applyBody(b, comment: "b")) { $0.status }
                return try await [ra, rb]
            }
            #expect(statuses.filter { $0 == .ok }.count == 1, "\(statuses)")
            #expect(statuses.filter { $0 == .preconditionFailed }.count == 1, "\(statuses)")
        }
        let latest = try #require(try h.store.latestConfig())
        #expect(latest.version == 2)
        #expect(h.host.current.site.node("xfmr-1")?.capKw == (latest.comment == "a" ? 3100 : 3200))
    }

    @Test func rollbackRestoresAnOldVersionAsANewOne() async throws {
        let h = try Harness.make()
        try h.store.appendConfig(yaml: Self.changedYAML, author: "x", comment: "v2", at: t0, expected: 1)
        try await h.app().test(.router) { client in
            var hdr = bearer(h.tokens[.admin]); hdr[.ifMatch] = "2"
            let r = try await whileTicking(h) {
                try await client.execute(uri: "/v1/config/rollback", method: .post, headers: hdr, body: json(#"{"version":1}"#)) {
                    try decode(ApplyResultDTO.self, $0.body)
                }
            }
            #expect(r.version == 3)
        }
        let v3 = try #require(try h.store.config(version: 3))
        #expect(v3.yaml == apiSiteYAML && v3.rollbackOf == 1)
    }

    @Test func drEventAppliesTheCapThroughTheFastPath() async throws {
        let h = try Harness.make()
        for _ in 0..<10 { await h.tick() }
        try await h.app().test(.router) { client in
            let body = json(#"{"id":"ers-1","cap_kw":1500,"until":\#(h.clock.now + 3600),"reason":"grid emergency"}"#)
            let e = try await client.execute(uri: "/v1/events", method: .post, headers: bearer(h.tokens[.operator]), body: body) { r in
                #expect(r.status == .created)
                return try decode(EventDTO.self, r.body)
            }
            #expect(e.active)
            let last = try #require(h.host.current.lastReport)
            #expect(last.fastPath == "DR event ers-1" && last.limitKW == 1500)
            let list = try await client.execute(uri: "/v1/events", method: .get, headers: bearer(h.tokens[.viewer])) { try decode([EventDTO].self, $0.body) }
            #expect(list.map(\.id) == ["ers-1"])
            #expect(try await client.execute(uri: "/v1/events/ers-1", method: .delete, headers: bearer(h.tokens[.operator])) { $0.status } == .ok)
            #expect(try await client.execute(uri: "/v1/events/ers-1", method: .delete, headers: bearer(h.tokens[.operator])) { $0.status } == .notFound)
        }
    }

    @Test func manualModeNeedsAnExpiryAndIsBounded() async throws {
        let h = try Harness.make()
        await h.tick()
        try await h.app().test(.router) { client in
            let op = bearer(h.tokens[.operator])
            #expect(try await client.execute(uri: "/v1/devices/asic-1/mode", method: .put, headers: op,
                                             body: json(#"{"mode":"manual","setpoint_kw":500}"#)) { $0.status } == .unprocessableContent)
            #expect(try await client.execute(uri: "/v1/devices/asic-1/mode", method: .put, headers: op,
                                             body: json(#"{"mode":"manual","setpoint_kw":5000,"for_s":60}"#)) { $0.status } == .unprocessableContent)
            #expect(try await client.execute(uri: "/v1/devices/nope/mode", method: .put, headers: op,
                                             body: json(#"{"mode":"auto"}"#)) { $0.status } == .notFound)
            #expect(try await client.execute(uri: "/v1/devices/asic-1/mode", method: .put, headers: op,
                                             body: json(#"{"mode":"manual","setpoint_kw":300,"for_s":7200}"#)) { $0.status } == .ok)
            let o = try #require(h.host.current.persistentState.overrides.first)
            #expect(o.device == "asic-1" && o.kw == 300 && o.until == h.clock.now + 7200)
        }
    }

    @Test func metricsHaveTheFixedNamesAndLabels() async throws {
        let h = try Harness.make()
        for _ in 0..<5 {
            let started = ContinuousClock.now
            let r = await h.tick()
            h.deps.metrics.observe(r, tickDuration: ContinuousClock.now - started, loop: h.host.current)
        }
        try await h.app().test(.router) { client in
            let text = try await client.execute(uri: "/metrics", method: .get, headers: bearer(h.tokens[.viewer])) { r in
                #expect(r.headers[.contentType]?.hasPrefix("text/plain; version=0.0.4") == true)
                return String(buffer: r.body)
            }
            for name in ["switchyard_site_import_kw{site=\"hil\"}", "switchyard_site_cap_kw{site=\"hil\"} 6000",
                         "switchyard_class_kw{site=\"hil\",class=\"mining\"}", "switchyard_device_power_kw{site=\"hil\",device=\"asic-1\"}",
                         "switchyard_device_setpoint_kw{site=\"hil\",device=\"gpu-1\"}",
                         "switchyard_poll_latency_seconds_bucket{site=\"hil\",device=\"asic-1\",le=\"+Inf\"} 5",
                         "switchyard_tick_duration_seconds_count{site=\"hil\"} 5", "switchyard_governor_interventions_total{site=\"hil\"}",
                         "# TYPE switchyard_modbus_errors_total counter"] {
                #expect(text.contains(name), "missing \(name)")
            }
            // Every sample line parses as name{labels} value.
            for line in text.split(separator: "\n") where !line.hasPrefix("#") {
                #expect(line.split(separator: " ").count == 2 && Double(line.split(separator: " ")[1]) != nil, "\(line)")
            }
        }
        // The code label comes from the error's kind, not its text.
        #expect(DeviceFault.modbus(ModbusError(.exception(.illegalDataAddress), device: "asic-1", unit: 1, function: .readHoldingRegisters, count: 10)).code == "2")
        #expect(DeviceFault.modbus(ModbusError(.timeout, device: "asic-1", unit: 1)).code == "timeout")
        #expect(DeviceFault.modbus(ModbusError(.connectionRefused, device: "x")).code == "connection")
    }

    @Test func semanticDiffIgnoresFormattingAndKeysListsById() throws {
        let a = "site: {id: s, import_limit_kw: 6000}\ndevices:\n  - {id: a, max_kw: 1000}\n  - {id: b, max_kw: 500}\n"
        let b = "# comment\nsite:\n  import_limit_kw: 6000.0\n  id: s\ndevices:\n  - {id: b, max_kw: 400}\n  - {id: a, max_kw: 1000}\n  - {id: c, max_kw: 1}\n"
        let changes = try ConfigDiff.diff(old: a, new: b)
        #expect(changes.map(\.line) == ["~ devices[b].max_kw: 500 → 400", "+ devices[c].max_kw: 1"])
    }

    @Test func recorderWritesDecisionsMinutesAndEvents() async throws {
        let h = try Harness.make()
        let rec = TickRecorder(store: h.store, metrics: h.deps.metrics, decisionRetentionS: 30)
        for _ in 0..<130 { let r = await h.tick(); try rec.write(r, loop: h.host.current) }
        #expect(try h.store.minuteSamples(from: 0, to: Int64.max).count == 2)
        // Ticks at t0 … t0+129; the minute flushed at t0+120 prunes decisions older than 30 s.
        let decisions = try h.store.decisions(limit: 1000)
        #expect(decisions.count == 40 && decisions.last?.at == t0 + 90, "retention: \(decisions.count) from \(decisions.last?.at ?? 0)")
        #expect(decisions.first?.setpointsJSON.contains("asic-1") == true)
    }
}

final class ManagedFlag: Sendable {
    let v = Mutex(false)
    var isSet: Bool { v.withLock { $0 } }
    func set() { v.withLock { $0 = true } }
}

/// Runs `body` while the loop ticks (config applies wait for a tick boundary).
func whileTicking<T: Sendable>(_ h: Harness, _ body: () async throws -> T) async throws -> T {
    let stop = ManagedFlag()
    async let ticker: Void = { while !stop.isSet { await h.tick(); await Task.yield() } }()
    do {
        let r = try await body()
        stop.set()
        await ticker
        return r
    } catch {
        stop.set()
        await ticker
        throw error
    }
}
