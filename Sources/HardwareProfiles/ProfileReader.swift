// Profiles and SunSpec models are read with the shared located reader (Basics), in the profile
// format's words; it records every problem and keeps going, so one lint run reports all of them.

import Basics
import Yams

/// The located reader whose diagnostics are profile `Diagnostic`s.
typealias ProfileReader = LocatedReader<Diagnostic>

extension ReaderWording {
    /// The sentences of profile and SunSpec model diagnostics.
    static let profile = ReaderWording(
        syntax: { e in
            switch e.problem {
            case .empty: (.format, "the file is empty; a profile is a YAML mapping")
            case .invalid(let problem): (.syntax, "YAML syntax: \(problem)")
            case .duplicateKeys(let keys):
                (.syntax, "the key '\(keys.joined(separator: "', '"))' appears more than once in one mapping")
            case .unreadable(let problem): (.syntax, "cannot read the file: \(problem)")
            case .other: (.syntax, "cannot parse YAML: \(e.underlying)")
            }
        },
        notMapping: { what, _ in "\(what) must be a mapping of keys to values" },
        keyNotPlain: { what in "a key in \(what) must be a plain word" },
        unknownKey: { key, what, allowed in
            "unknown key '\(key)' in \(what); known keys are: \(allowed.joined(separator: ", "))"
        },
        missingKey: { key, what in "\(what) is missing the required key '\(key)'" },
        notList: { what, _ in "\(what) must be a list" },
        notScalar: { what, _ in "\(what) must be a single value, not a list or mapping" },
        empty: { what in "\(what) must not be empty" },
        notNumber: { what, node in profileScalar(what, node) { "\(what) must be a number, not '\($0)'" } },
        notInteger: { what, node in profileScalar(what, node) { "\(what) must be an integer (decimal or 0x hex), not '\($0)'" } },
        notBool: { what, node in profileScalar(what, node) { "\(what) must be true or false, not '\($0)'" } },
        notTime: { what, node in profileScalar(what, node) { "\(what) must be an ISO 8601 time, not '\($0)'" } }
    )
}

/// A bad scalar in the given words, or the single-value message for a list or mapping.
private func profileScalar(_ what: String, _ node: Node, _ message: (String) -> String) -> String {
    node.scalarText.map(message) ?? "\(what) must be a single value, not a list or mapping"
}

extension LocatedReader where D == Diagnostic {
    convenience init(file: String) {
        self.init(file: file, wording: .profile) { problem, message, at in
            Diagnostic(problem == .syntax ? .syntax : .format, message, at: at)
        }
    }

    func error(_ rule: Diagnostic.Rule, _ message: String, at location: SourceLocation) {
        record(Diagnostic(rule, message, at: location))
    }

    func error(_ rule: Diagnostic.Rule, _ message: String, at node: Node) { error(rule, message, at: location(node)) }

    /// The entries of a mapping; the known keys are listed sorted in messages.
    func mapping(_ node: Node, _ what: String, allowed: Set<String>, required: [String] = []) -> [String: LocatedEntry]? {
        mapping(node, what, keys: allowed.sorted(), required: required)
    }

    /// A non-empty scalar.
    func string(_ node: Node, _ what: String) -> String? { scalar(node, what, nonEmpty: true) }
    func int(_ node: Node, _ what: String) -> Int? { integer(node, what) }
    func double(_ node: Node, _ what: String) -> Double? { number(node, what) }
}
