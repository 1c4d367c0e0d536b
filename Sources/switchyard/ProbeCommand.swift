import ArgumentParser
import Foundation
import HardwareProfiles
import Modbus

extension Switchyard {
    /// `switchyard probe`: read every readable point of a profile once, or list SunSpec models.
    struct Probe: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "probe",
            abstract: "Read every point of a hardware profile once, or list a device's SunSpec models.",
            discussion: """
                switchyard probe --profile ID|PATH (--tcp HOST:PORT | --rtu DEV --baud B --parity P) [--unit N] [--json]
                switchyard probe --sunspec --tcp HOST:PORT [--unit N] [--json]

                Points are read through the read planner (merged requests within the device's limits). \
                A point that fails shows its error; the others still print. Exit status: 0 when every point \
                was read, 1 when any failed or the device could not be reached, 65 for a missing or invalid profile.
                """
        )

        @Option(name: .long, help: ArgumentHelp("Profile id (searched in the profile directories) or path to a profile file.", valueName: "ID|PATH"))
        var profile: String?

        @Flag(name: .long, help: "Discover SunSpec models (\"SunS\" at 40000, 0 or 50000) and list them.")
        var sunspec = false

        @OptionGroup var connection: ConnectionOptions

        @Option(name: .long, help: "Unit id (default: the profile's unit id, or 1).")
        var unit: Int?

        @Flag(name: .long, help: "Print one JSON object: {\"<point name>\": value, …} in engineering units.")
        var json = false

        @Option(name: .customLong("profiles-dir"), help: ArgumentHelp("Directory searched first for profiles (then $SWITCHYARD_PROFILES, ./hardware-profiles).", valueName: "DIR"))
        var profilesDir: String?

        func validate() throws {
            if profile == nil && !sunspec { throw ValidationError("give --profile ID|PATH, or --sunspec to list SunSpec models") }
            if let unit, !(0...255).contains(unit) { throw ValidationError("--unit must be 0…255") }
        }

        func run() async throws {
            let registry = ProfileRegistry.standard(profilesDir: profilesDir)
            guard let id = profile else {
                try await listSunSpec(registry: registry)
                return
            }
            let deviceProfile: DeviceProfile
            do {
                deviceProfile = try registry.load(id)
            } catch {
                emitError(error.description)
                throw ExitCode(65)
            }
            let client = connection.makeClient()
            let unitID = unit ?? deviceProfile.transport.unitID
            let bus = client.bus(unit: unitID, deviceName: "\(deviceProfile.id) (\(client.endpoint))")
            let result: ProbeResult
            do {
                result = try await ProfileProbe.read(profile: deviceProfile, bus: bus)
            } catch {
                await client.close()
                emitError("\(error)")
                throw ExitCode(1)
            }
            await client.close()
            if json {
                print(try ProbeJSON(result).text())
            } else {
                if let d = result.discovery {
                    print("SunSpec base \(d.base): models \(d.models.map { "\($0.id)@\($0.address)" }.joined(separator: ", "))")
                }
                print(Self.table(result))
            }
            if !result.failures.isEmpty { throw ExitCode(1) }
        }

        func listSunSpec(registry: ProfileRegistry) async throws {
            let client = connection.makeClient()
            let bus = client.bus(unit: unit ?? 1, deviceName: client.endpoint.description)
            let result: SunSpecDiscoveryResult
            do {
                result = try await SunSpecDiscovery.discover(bus: bus)
            } catch {
                await client.close()
                emitError(error.description)
                throw ExitCode(1)
            }
            await client.close()
            var library = SunSpecModelLibrary()
            for dir in registry.searchPaths {
                let (lib, _) = SunSpecModelLibrary.load(directory: dir.appendingPathComponent("sunspec"))
                if !lib.models.isEmpty { library = lib; break }
            }
            if json {
                let listing = SunSpecListing(
                    base: result.base,
                    models: result.models.map { .init(id: $0.id, name: library[$0.id]?.name, address: $0.address, length: $0.length) },
                    endMarker: result.endMarkerFound, note: result.note)
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
                print(String(decoding: try encoder.encode(listing), as: UTF8.self))
            } else {
                print("SunSpec marker \"SunS\" at \(result.base)")
                let rows = result.models.map { m -> [String] in
                    let known = library[m.id]
                    let lengthNote = known.map { $0.length == m.length ? "" : " (definition: \($0.length))" } ?? ""
                    return [String(m.id), known?.label ?? known?.name ?? "(not described here)", String(m.address), "\(m.length)\(lengthNote)"]
                }
                print(renderTable(header: ["MODEL", "NAME", "ADDRESS", "LENGTH"], rows: rows))
                print(result.endMarkerFound ? "end marker 0xFFFF found" : "no end marker: \(result.note ?? "")")
            }
        }

        static func table(_ result: ProbeResult) -> String {
            let rows = result.readings.map { r -> [String] in
                let raw = r.raw.map { "0x" + String($0, radix: 16, uppercase: true).leftPad(4) }.joined(separator: " ")
                switch r.outcome {
                case .value(let v): return [r.name, v.text, r.point.definition.unit ?? "", raw]
                case .missing(let why): return [r.name, "— (\(why))", r.point.definition.unit ?? "", raw]
                case .failed(let message): return [r.name, "error: \(message)", r.point.definition.unit ?? "", raw]
                }
            }
            return renderTable(header: ["POINT", "VALUE", "UNIT", "RAW"], rows: rows)
        }
    }
}

private func renderTable(header: [String], rows: [[String]]) -> String {
    let all = [header] + rows
    var widths = header.map(\.count)
    for row in all { for (i, cell) in row.enumerated() where i < widths.count - 1 { widths[i] = max(widths[i], cell.count) } }
    return all.map { row in
        row.enumerated().map { i, cell in i < row.count - 1 ? cell.padding(toLength: widths[i], withPad: " ", startingAt: 0) : cell }
            .joined(separator: "  ")
            .trimmingCharacters(in: .whitespaces)
    }.joined(separator: "\n")
}

/// `probe --sunspec --json`: the marker's base, the models found (with their names where a model
/// definition describes them) and whether the end marker was found.
private struct SunSpecListing: Encodable {
    struct Model: Encodable {
        var id: Int
        var name: String?
        var address: Int
        var length: Int

        enum CodingKeys: String, CodingKey { case id, name, address, length }

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(id, forKey: .id)
            try c.encode(name, forKey: .name)  // null when no definition describes the model
            try c.encode(address, forKey: .address)
            try c.encode(length, forKey: .length)
        }
    }
    var base: Int
    var models: [Model]
    var endMarker: Bool
    var note: String?

    enum CodingKeys: String, CodingKey { case base, models, endMarker = "end_marker", note }
}

/// One error line on stderr (`{"error": …}` with `--json`).
private func emitError(_ message: String) { printError("error: " + message) }

private extension String {
    func leftPad(_ width: Int) -> String { count >= width ? self : String(repeating: "0", count: width - count) + self }
}
