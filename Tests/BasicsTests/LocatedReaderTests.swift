import Basics
import Testing
import Yams

/// A reader that keeps diagnostics as "line:column: message" for easy comparison.
private func reader(_ file: String = "f.yaml") -> LocatedReader<String> {
    LocatedReader(file: file, wording: .plain) { problem, message, at in "\(at.line):\(at.column): \(problem): \(message)" }
}

extension ReaderWording {
    fileprivate static let plain = ReaderWording(
        syntax: { e in
            switch e.problem {
            case .empty: (.format, "empty")
            case .invalid(let p): (.syntax, "invalid: \(p)")
            case .duplicateKeys(let k): (.syntax, "duplicate \(k.joined(separator: ","))")
            case .unreadable(let p): (.syntax, "unreadable: \(p)")
            case .other: (.syntax, "other")
            }
        },
        notMapping: { what, n in "\(what) not a mapping (\(n.kindDescription))" },
        keyNotPlain: { what in "\(what) key not plain" },
        unknownKey: { key, what, allowed in "\(what) unknown \(key) [\(allowed.joined(separator: ","))]" },
        missingKey: { key, what in "\(what) missing \(key)" },
        notList: { what, _ in "\(what) not a list" },
        notScalar: { what, _ in "\(what) not a scalar" },
        empty: { what in "\(what) empty" },
        notNumber: { what, n in "\(what) not a number \(n.quotedDescription)" },
        notInteger: { what, n in "\(what) not an integer \(n.quotedDescription)" },
        notBool: { what, n in "\(what) not a bool \(n.quotedDescription)" },
        notTime: { what, n in "\(what) not a time \(n.quotedDescription)" }
    )
}

@Suite("The located YAML/JSON reader")
struct LocatedReaderTests {
    @Test func collectsEveryProblemWithItsPosition() throws {
        let r = reader()
        let root = try #require(r.compose("a: x\nb: [1, 2]\nzz: 3\nc: maybe\n"))
        let m = try #require(r.mapping(root, "top", keys: ["a", "b", "c", "d"], required: ["d"]))
        _ = r.number(m["a"]!.value, "a")
        _ = r.scalar(m["b"]!.value, "b")
        _ = r.bool(m["c"]!.value, "c")
        #expect(r.diagnostics == [
            "3:1: format: top unknown zz [a,b,c,d]",
            "1:1: format: top missing d",
            "1:4: format: a not a number 'x'",
            "2:4: format: b not a scalar",
            "4:4: format: c not a bool 'maybe'",
        ])
    }

    @Test func syntaxErrorsKeepLibyamlsPosition() throws {
        let r = reader()
        #expect(r.compose("a: [1, 2\nb: 3\n") == nil)
        let d = try #require(r.diagnostics.first)
        #expect(d.contains(": syntax: invalid: ") && !d.hasPrefix("1:1:"), "\(d)")

        let dup = reader()
        #expect(dup.compose("a: 1\na: 2\n") == nil)
        #expect(dup.diagnostics.first?.contains("syntax: duplicate a") == true)

        let empty = reader()
        #expect(empty.compose("# nothing\n") == nil)
        #expect(empty.diagnostics == ["1:1: format: empty"])
    }

    @Test func jsonIsReadToo() throws {
        let r = reader()
        let root = try #require(r.compose("{\"n\": 0x10, \"t\": \"2026-07-15T14:00:00Z\", \"on\": \"on\"}"))
        let m = try #require(r.mapping(root, "doc", keys: ["n", "t", "on"]))
        #expect(r.integer(m["n"]!.value, "n") == 16)
        #expect(r.time(m["t"]!.value, "t") == 1_784_124_000)
        #expect(r.bool(m["on"]!.value, "on") == true)
        #expect(r.diagnostics.isEmpty)
    }

    @Test(arguments: [
        ("12", 12), ("-3", -3), ("+4", 4), ("0x1F", 31), ("0X10", 16), ("1_000", 1000), ("-0x10", -16),
    ])
    func integers(text: String, value: Int) { #expect(YAMLScalar.integer(text) == value) }

    @Test(arguments: ["", "0x", "1.5", "abc", "１２", "-"])
    func notIntegers(text: String) { #expect(YAMLScalar.integer(text) == nil) }

    @Test func numbersAndBools() {
        #expect(YAMLScalar.number("2.5e3") == 2500)
        #expect(YAMLScalar.number("0x10") == 16)
        #expect(YAMLScalar.number("inf") == nil)
        #expect(YAMLScalar.number("nan") == nil)
        #expect(YAMLScalar.bool("Yes") == true)
        #expect(YAMLScalar.bool("off") == false)
        #expect(YAMLScalar.bool("1") == nil)
    }
}
