import Foundation
import Testing
import TestSupport

/// Issue 12 §2/§5: `switchyard status` and `devices` show what the daemon's API reports about containers that do
/// not follow their setpoint and meters that cannot be trusted (the API side: APITests' ActuationStatusTests).
@Suite("CLI: not-following and suspect meters")
struct StatusHealthTests {
    let exe = switchyardExecutable()

    @Test func statusAndDevicesShowNotFollowingAndFrozen() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sy-health-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let status = dir.appendingPathComponent("status.json").path, devices = dir.appendingPathComponent("devices.json").path
        // The API's wire form (StatusDTO, DeviceDTO), as the daemon sends it.
        try """
        {"site": "hil", "at": 1755194400, "site_kw": 3100, "limit_kw": 3800, "mining_kw": 2600, "inference_kw": 500,
         "price_usd_per_mwh": 42, "mode": "normal", "broker_feasible": true, "events": [], "interventions": [],
         "config_version": 3, "devices_up": 6, "devices_total": 6,
         "not_following": ["asic-2"], "suspect_meters": {"site-meter": "frozen"}}
        """.write(toFile: status, atomically: true, encoding: .utf8)
        try """
        [{"id": "asic-1", "device_class": "mining", "up": true, "power_kw": 1000, "setpoint_kw": 1000, "consecutive_failures": 0, "actuation": "following"},
         {"id": "asic-2", "device_class": "mining", "up": true, "power_kw": 900, "setpoint_kw": 200, "consecutive_failures": 0, "actuation": "not-following"},
         {"id": "site-meter", "device_class": "meter", "up": true, "power_kw": 3100, "consecutive_failures": 0, "meter": "frozen"},
         {"id": "xfmr-1-meter", "device_class": "meter", "up": true, "power_kw": 1700, "consecutive_failures": 0, "meter": "ok"}]
        """.write(toFile: devices, atomically: true, encoding: .utf8)
        let api = try await PeerProcess.python("json_standin.py", ["/v1/status=\(status)", "/v1/devices=\(devices)"])
        defer { api.stop() }
        let url = "http://127.0.0.1:\(try #require(api.readyWords.first))"
        let env = ["PATH": "/usr/bin:/bin", "HOME": dir.path]

        let st = try await runCommand(exe, ["status", "--server", url, "--token", "sy_x"], environment: env)
        #expect(st.status == 0, "\(st.stderr)")
        #expect(st.stdout.contains("NOT FOLLOWING 1: asic-2"), "\(st.stdout)")
        #expect(st.stdout.contains("SUSPECT METERS 1: site-meter frozen"), "\(st.stdout)")

        let dv = try await runCommand(exe, ["devices", "--server", url, "--token", "sy_x"], environment: env)
        #expect(dv.status == 0, "\(dv.stderr)")
        let row = { (id: String) in dv.stdout.split(separator: "\n").first { $0.hasPrefix(id + " ") }.map(String.init) ?? "" }
        #expect(row("asic-2").contains("not-following"), "\(dv.stdout)")
        #expect(row("asic-1").contains(" ok "), "\(dv.stdout)")
        #expect(row("site-meter").contains("frozen"), "\(dv.stdout)")
        #expect(row("xfmr-1-meter").contains(" ok "), "\(dv.stdout)")
    }
}
