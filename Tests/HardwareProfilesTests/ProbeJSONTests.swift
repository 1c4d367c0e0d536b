import Foundation
import HardwareProfiles
import Testing
import TestSupport

/// `probe --json` moved from string interpolation to Codable (issue 14); the text must not change.
@Suite("probe --json by Codable")
struct ProbeJSONTests {
    /// The interpolating encoder `probe --json` used before (ProbeCommand.swift), kept as the oracle.
    static func before(_ outcomes: [(name: String, outcome: PointOutcome)]) -> String {
        func jsonString(_ s: String) -> String {
            var out = "\""
            for u in s.unicodeScalars {
                switch u {
                case "\"": out += "\\\""
                case "\\": out += "\\\\"
                case "\n": out += "\\n"
                case "\r": out += "\\r"
                case "\t": out += "\\t"
                default:
                    if u.value < 0x20 { out += String(format: "\\u%04x", u.value) } else { out.unicodeScalars.append(u) }
                }
            }
            return out + "\""
        }
        let fields = outcomes.map { r -> String in
            let value: String
            switch r.outcome {
            case .value(let v):
                switch v {
                case .number(let d): value = d.isFinite ? PointValue.format(d) : "null"
                case .state(let code, let label): value = label.map(jsonString) ?? String(code)
                case .bool(let b): value = b ? "true" : "false"
                }
            case .missing: value = "null"
            case .failed(let message): value = "{\"error\":\(jsonString(message))}"
            }
            return "\(jsonString(r.name)):\(value)"
        }
        return "{" + fields.joined(separator: ",") + "}"
    }

    @Test func sameTextAsTheInterpolatedEncoder() throws {
        var rng = SeededRandom(seed: 0x9_0BE)
        var outcomes: [(name: String, outcome: PointOutcome)] = [
            ("voltage_l1_v", .value(.number(Double(Float(230.1))))),
            ("active_power_w", .value(.number(7101.5))),
            ("energy_import_kwh", .value(.number(1_234_567_890_123))),
            ("tiny", .value(.number(Double(Float(0.00001234))))),
            ("huge", .value(.number(Double(Float(3.4e38))))),
            ("negative", .value(.number(-0.25))),
            ("not_finite", .value(.number(.nan))),
            ("state", .value(.state(code: 2, label: "running"))),
            ("state_unlisted", .value(.state(code: 7, label: nil))),
            ("on", .value(.bool(true))),
            ("off", .value(.bool(false))),
            ("x_not_implemented", .missing("sentinel 0xFFFF")),
            ("x_failed", .failed("ILLEGAL DATA ADDRESS at input 0x0300 \"quoted\" \\ back\nnext/line é")),
        ]
        for i in 0..<2000 {
            // float32 values of every magnitude, as decoded registers are, and scaled integers.
            let f = Float(bitPattern: UInt32(truncatingIfNeeded: rng.next()))
            let scaled = Double(rng.int(-100_000, 100_000)) * [1, 0.1, 0.01, 0.001][rng.int(0, 3)]
            outcomes.append(("x_f\(i)", .value(.number(f.isFinite ? Double(f) : 1))))
            outcomes.append(("x_s\(i)", .value(.number(scaled))))
        }
        // Every value prints as before: each point alone gives the same text byte for byte, except
        // that an integral value of 1e15 or more loses Swift's ".0" (-1041052895020000.0 became
        // -1041052895020000: the same JSON number).
        var differing: [String] = []
        var bigIntegral = 0
        for o in outcomes {
            let after = try ProbeJSON(outcomes: [o]).text(), before = Self.before([o])
            if after == before { continue }
            if case .value(.number(let v)) = o.outcome, abs(v) >= 1e15, v == v.rounded(),
               before.hasSuffix(".0}"), after == String(before.dropLast(3)) + "}" {
                bigIntegral += 1
                continue
            }
            differing.append("\(after) vs \(before)")
        }
        #expect(bigIntegral < outcomes.count / 50)
        #expect(differing.isEmpty, "\(differing.count) differ, e.g. \(differing.prefix(5))")
        // The whole object has the same entries; its keys are now sorted (JSONEncoder keeps no order).
        let whole = try ProbeJSON(outcomes: outcomes).text()
        let parsedAfter = try #require(try JSONSerialization.jsonObject(with: Data(whole.utf8)) as? NSDictionary)
        let parsedBefore = try #require(try JSONSerialization.jsonObject(with: Data(Self.before(outcomes).utf8)) as? NSDictionary)
        #expect(parsedAfter == parsedBefore)
        let keyOrder = try NSRegularExpression(pattern: #"(?:^\{|,)"([^"]+)":"#)
            .matches(in: whole, range: NSRange(whole.startIndex..., in: whole))
            .map { String(whole[Range($0.range(at: 1), in: whole)!]) }
        #expect(keyOrder == outcomes.map(\.name).sorted())
    }
}
