import Foundation
import HardwareProfiles
import Testing
import TestSupport

/// One broken profile per lint rule; each must fail with that rule at the exact line and column.
@Suite("Lint rules on broken profiles")
struct LintRuleTests {
    struct Case: CustomTestStringConvertible, Sendable {
        var file: String
        var rule: Diagnostic.Rule
        var line: Int
        var column: Int
        var messageContains: String
        var testDescription: String { file }
    }

    static let cases: [Case] = [
        Case(file: "overlap.yaml", rule: .overlap, line: 17, column: 50,
             messageContains: "'x_overlapping' (input 3…4) overlaps point 'import_energy_kwh' (input 2…3) defined at line 12"),
        Case(file: "writable-without-limits.yaml", rule: .writableWithoutLimits, line: 21, column: 13,
             messageContains: "writable point 'x_relay_delay_s' has no max"),
        Case(file: "unknown-type.yaml", rule: .unknownType, line: 17, column: 62,
             messageContains: "unknown type 'float16'"),
        Case(file: "unknown-point-name.yaml", rule: .unknownPointName, line: 17, column: 12,
             messageContains: "unknown point name 'active_power_kw'"),
        Case(file: "address-out-of-range.yaml", rule: .addressOutOfRange, line: 17, column: 47,
             messageContains: "address 70000 is out of range"),
        Case(file: "missing-canonical-point.yaml", rule: .missingCanonicalPoint, line: 10, column: 1,
             messageContains: "must define the canonical point 'frequency_hz'"),
    ]

    @Test("each broken profile fails with its rule at the right place", arguments: cases)
    func brokenProfile(_ c: Case) throws {
        let path = brokenDirectory.appendingPathComponent(c.file).path
        let (profile, diagnostics) = ProfileLoader.load(path: path)
        #expect(profile == nil)
        #expect(diagnostics.count == 1, "expected exactly one error, got: \(diagnostics.map(\.description))")
        let d = try #require(diagnostics.first)
        #expect(d.rule == c.rule)
        #expect(d.severity == .error)
        #expect(d.location.file == path)
        #expect(d.location.line == c.line)
        #expect(d.location.column == c.column)
        #expect(d.message.contains(c.messageContains), "message was: \(d.message)")
        #expect(d.description == "\(path):\(c.line):\(c.column): error: \(d.message)")
    }

    @Test("every rule of the issue has a broken fixture")
    func everyRuleCovered() {
        let required: Set<Diagnostic.Rule> = [.overlap, .writableWithoutLimits, .unknownType, .unknownPointName,
                                              .addressOutOfRange, .missingCanonicalPoint]
        #expect(Set(Self.cases.map(\.rule)) == required)
    }

    @Test("lint reports every error of a file, in line order, not just the first")
    func allErrorsReported() throws {
        let path = brokenDirectory.appendingPathComponent("many-errors.yaml").path
        let (profile, diagnostics) = ProfileLoader.load(path: path)
        #expect(profile == nil)
        let found = diagnostics.map { "\($0.location.line):\($0.rule.rawValue)" }
        #expect(found == [
            "6:format",                       // unknown key 'colour'
            "11:missing-canonical-point",     // fallback_setpoint_w (misnamed fallback_power_w)
            "14:overlap",                     // alarm_bits on active_power_w's low word
            "15:unknown-type",                // int12
            "16:address-out-of-range",        // 0x1_0000
            "17:writable-without-limits",     // power_setpoint_w without min
            "20:unknown-point-name",          // fallback_power_w
        ])
        // A point defined with an error still counts as defined: no "missing" for hashrate_ths or inlet_temperature_c.
        #expect(!diagnostics.contains { $0.message.contains("'hashrate_ths'") && $0.rule == .missingCanonicalPoint })
        #expect(diagnostics.first { $0.rule == .format }?.message.contains("unknown key 'colour'") == true)
    }

    @Test("the CLI prints every error with file:line:column and exits non-zero")
    func cliOnBrokenProfiles() async throws {
        let files = Self.cases.map { brokenDirectory.appendingPathComponent($0.file).path }
            + [brokenDirectory.appendingPathComponent("many-errors.yaml").path]
        let (status, out, _) = try await runCommand(switchyardExecutable(), ["profile", "lint"] + files)
        #expect(status == 1)
        for c in Self.cases {
            let path = brokenDirectory.appendingPathComponent(c.file).path
            #expect(out.contains("\(path):\(c.line):\(c.column): error: "), "missing \(c.file) in:\n\(out)")
        }
        let manyLines = out.split(separator: "\n").filter { $0.contains("many-errors.yaml:") }
        #expect(manyLines.count == 7)
        #expect(out.contains("13 errors in 7 of 7 files"))
    }

    @Test("the CLI passes every shipped profile and SunSpec model")
    func cliOnShippedProfiles() async throws {
        let files = shippedProfileIDs.map { profilesDirectory.appendingPathComponent("\($0).yaml").path }
            + [1, 201, 202, 203, 204].map { profilesDirectory.appendingPathComponent("sunspec/model-\($0).yaml").path }
        let (status, out, err) = try await runCommand(switchyardExecutable(), ["profile", "lint"] + files)
        #expect(status == 0, "stdout:\n\(out)\nstderr:\n\(err)")
        #expect(!out.contains("error:"))
        #expect(out.split(separator: "\n").filter { $0.hasPrefix("ok: ") }.count == files.count)
    }
}
