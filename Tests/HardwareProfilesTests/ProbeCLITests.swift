import Foundation
import HardwareProfiles
import Testing
import TestSupport

/// `switchyard probe` end to end: the built executable against pymodbus-served devices.
@Suite("switchyard probe")
struct ProbeCLITests {
    func probeJSON(_ args: [String]) async throws -> (status: Int32, object: [String: Any], stderr: String) {
        let (status, out, err) = try await runCommand(switchyardExecutable(), ["probe"] + args + ["--json"])
        let data = Data(out.utf8)
        let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any], "stdout: \(out)\nstderr: \(err)")
        return (status, object, err)
    }

    @Test("probe --json reads engineering values from each meter and PDU", arguments: [
        "eastron-sdm630", "janitza-umg604", "sunspec-meter-203", "raritan-px3",
    ])
    func json(_ id: String) async throws {
        let device = try #require(DeviceProbeTests.peerDevice[id])
        let peer = try await PeerProcess.python("profile_devices.py", [device])
        defer { peer.stop() }
        let (status, object, err) = try await probeJSON(["--profile", id, "--tcp", "127.0.0.1:\(peer.port)",
                                                         "--profiles-dir", profilesDirectory.path])
        #expect(status == 0, "stderr: \(err)")
        let expected = try #require(DeviceProbeTests.expected[id])
        #expect(Set(object.keys) == Set(expected.keys))
        for (name, want) in expected {
            switch want {
            case .number(let v):
                let got = object[name] as? Double
                #expect(got.map { abs($0 - v) <= 1e-9 * max(1, abs(v)) } == true, "\(name): \(String(describing: object[name])) vs \(v)")
            case .label(let s): #expect(object[name] as? String == s, "\(name)")
            case .missing: #expect(object[name] is NSNull, "\(name)")
            }
        }
    }

    @Test("probe --profile PATH prints a table, and a failing point shows its error while the others print")
    func tableWithFailure() async throws {
        var text = try String(contentsOf: profilesDirectory.appendingPathComponent("eastron-sdm630.yaml"), encoding: .utf8)
        text += "  - {name: x_not_there, table: input, address: 0x0300, type: float32}\n"
        text = text.replacingOccurrences(of: "../firmware-notes/", with: profilesDirectory.deletingLastPathComponent().path + "/firmware-notes/")
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("sdm630-extra-\(UUID().uuidString).yaml")
        try text.write(to: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: path) }

        let peer = try await PeerProcess.python("profile_devices.py", ["sdm630"])
        defer { peer.stop() }
        let (status, out, err) = try await runCommand(switchyardExecutable(),
                                                      ["probe", "--profile", path.path, "--tcp", "127.0.0.1:\(peer.port)"])
        #expect(status == 1, "stderr: \(err)")
        let lines = out.split(separator: "\n").map(String.init)
        #expect(lines.first?.split(separator: " ", omittingEmptySubsequences: true) == ["POINT", "VALUE", "UNIT", "RAW"])
        let power = try #require(lines.first { $0.hasPrefix("active_power_w ") })
        #expect(power.split(separator: " ", omittingEmptySubsequences: true) == ["active_power_w", "7101.5", "W", "0x45DD", "0xEC00"])
        let bad = try #require(lines.first { $0.hasPrefix("x_not_there ") })
        #expect(bad.contains("error:") && bad.contains("ILLEGAL DATA ADDRESS"), "\(bad)")
        #expect(lines.count == 1 + 16)
    }

    @Test("probe --sunspec lists the models it discovers")
    func sunSpecListing() async throws {
        let peer = try await PeerProcess.python("profile_devices.py", ["sunspec203"])
        defer { peer.stop() }
        let (status, out, err) = try await runCommand(switchyardExecutable(),
                                                      ["probe", "--sunspec", "--tcp", "127.0.0.1:\(peer.port)", "--json",
                                                       "--profiles-dir", profilesDirectory.path])
        #expect(status == 0, "stderr: \(err)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any])
        #expect(object["base"] as? Int == 40000)
        #expect(object["end_marker"] as? Bool == true)
        let models = try #require(object["models"] as? [[String: Any]])
        #expect(models.map { $0["id"] as? Int } == [1, 203])
        #expect(models.map { $0["address"] as? Int } == [40002, 40070])
        #expect(models.map { $0["length"] as? Int } == [66, 105])
        #expect(models.map { $0["name"] as? String } == ["common", "ac_meter_abcn"])

        let (status2, table, _) = try await runCommand(switchyardExecutable(), ["probe", "--sunspec", "--tcp", "127.0.0.1:\(peer.port)"])
        #expect(status2 == 0)
        #expect(table.contains("SunSpec marker \"SunS\" at 40000"))
        #expect(table.contains("end marker 0xFFFF found"))
    }

    @Test("probe finds profiles through SWITCHYARD_PROFILES and rejects unknown ids")
    func registry() async throws {
        var env = ProcessInfo.processInfo.environment
        env["SWITCHYARD_PROFILES"] = profilesDirectory.path
        let (status, _, err) = try await runCommand(switchyardExecutable(),
                                                    ["probe", "--profile", "no-such-device", "--tcp", "127.0.0.1:1"],
                                                    environment: env)
        #expect(status == 65)
        #expect(err.contains("no profile 'no-such-device' found"))
        #expect(err.contains(profilesDirectory.path))

        let registry = ProfileRegistry.standard(environment: ["SWITCHYARD_PROFILES": profilesDirectory.path],
                                                currentDirectory: "/nonexistent", executablePath: nil)
        #expect(try registry.locate("raritan-px3").lastPathComponent == "raritan-px3.yaml")
        #expect(try registry.load("sunspec-meter-203").kind == .meter)
    }
}
