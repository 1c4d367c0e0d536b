// A small reader over Yams nodes that records a located diagnostic for every
// shape problem and keeps going, so one lint run reports all of them.

import Yams

/// A key/value pair of a YAML mapping, with the key's text.
struct YAMLEntry {
    var key: String
    var keyNode: Node
    var value: Node
}

/// Walks composed YAML and collects diagnostics. Not shared across tasks.
final class YAMLReader {
    let file: String
    private(set) var diagnostics: [Diagnostic] = []

    init(file: String) { self.file = file }

    // MARK: Parsing

    /// Composes `text`; on a syntax error records it and returns nil.
    func compose(_ text: String) -> Node? {
        do {
            guard let root = try Yams.compose(yaml: text) else {
                error(.format, "the file is empty; a profile is a YAML mapping", at: SourceLocation(file: file, line: 1, column: 1))
                return nil
            }
            return root
        } catch let e as YamlError {
            let (mark, problem) = Self.describe(e)
            error(.syntax, problem, at: SourceLocation(file: file, line: mark?.line ?? 1, column: mark?.column ?? 1))
            return nil
        } catch {
            self.error(.syntax, "cannot parse YAML: \(error)", at: SourceLocation(file: file, line: 1, column: 1))
            return nil
        }
    }

    private static func describe(_ e: YamlError) -> (Mark?, String) {
        switch e {
        case let .scanner(_, problem, mark, _): return (mark, "YAML syntax: \(problem)")
        case let .parser(_, problem, mark, _): return (mark, "YAML syntax: \(problem)")
        case let .composer(_, problem, mark, _): return (mark, "YAML syntax: \(problem)")
        case let .duplicatedKeysInMapping(duplicates, context):
            return (context.mark, "the key '\(duplicates.joined(separator: "', '"))' appears more than once in one mapping")
        case let .reader(problem, _, _, _): return (nil, "cannot read the file: \(problem)")
        default: return (nil, "cannot parse YAML: \(e)")
        }
    }

    // MARK: Locations and diagnostics

    func location(_ node: Node) -> SourceLocation {
        let mark = node.mark
        return SourceLocation(file: file, line: mark?.line ?? 1, column: mark?.column ?? 1)
    }

    func error(_ rule: Diagnostic.Rule, _ message: String, at location: SourceLocation) {
        diagnostics.append(Diagnostic(rule, message, at: location))
    }

    func error(_ rule: Diagnostic.Rule, _ message: String, at node: Node) {
        error(rule, message, at: location(node))
    }

    // MARK: Shapes

    /// The entries of a mapping, checking keys against `allowed` and `required`.
    func mapping(_ node: Node, _ what: String, allowed: Set<String>, required: [String] = []) -> [String: YAMLEntry]? {
        guard case .mapping(let m) = node else {
            error(.format, "\(what) must be a mapping of keys to values", at: node)
            return nil
        }
        var out: [String: YAMLEntry] = [:]
        for (k, v) in m {
            guard case .scalar(let s) = k else {
                error(.format, "a key in \(what) must be a plain word", at: k)
                continue
            }
            let key = s.string
            guard allowed.contains(key) else {
                let known = allowed.sorted().joined(separator: ", ")
                error(.format, "unknown key '\(key)' in \(what); known keys are: \(known)", at: k)
                continue
            }
            out[key] = YAMLEntry(key: key, keyNode: k, value: v)
        }
        for key in required where out[key] == nil {
            error(.format, "\(what) is missing the required key '\(key)'", at: node)
        }
        return out
    }

    func sequence(_ node: Node, _ what: String) -> [Node]? {
        guard case .sequence(let s) = node else {
            error(.format, "\(what) must be a list", at: node)
            return nil
        }
        return Array(s)
    }

    func scalar(_ node: Node, _ what: String) -> String? {
        guard case .scalar(let s) = node else {
            error(.format, "\(what) must be a single value, not a list or mapping", at: node)
            return nil
        }
        return s.string
    }

    func string(_ node: Node, _ what: String) -> String? {
        guard let s = scalar(node, what) else { return nil }
        guard !s.isEmpty else {
            error(.format, "\(what) must not be empty", at: node)
            return nil
        }
        return s
    }

    /// An integer written in decimal or as 0x hex (an optional leading minus).
    func int(_ node: Node, _ what: String) -> Int? {
        guard let s = scalar(node, what) else { return nil }
        if let v = Self.parseInt(s) { return v }
        error(.format, "\(what) must be an integer (decimal or 0x hex), not '\(s)'", at: node)
        return nil
    }

    func double(_ node: Node, _ what: String) -> Double? {
        guard let s = scalar(node, what) else { return nil }
        if let v = Self.parseInt(s) { return Double(v) }
        if let v = Double(s.replacingOccurrences(of: "_", with: "")), v.isFinite { return v }
        error(.format, "\(what) must be a number, not '\(s)'", at: node)
        return nil
    }

    func bool(_ node: Node, _ what: String) -> Bool? {
        guard let s = scalar(node, what) else { return nil }
        switch s.lowercased() {
        case "true", "yes": return true
        case "false", "no": return false
        default:
            error(.format, "\(what) must be true or false, not '\(s)'", at: node)
            return nil
        }
    }

    /// Parses decimal or 0x-hex integers; underscores are allowed as separators.
    static func parseInt(_ text: String) -> Int? {
        var s = Substring(text.replacingOccurrences(of: "_", with: ""))
        var negative = false
        if s.hasPrefix("-") { negative = true; s = s.dropFirst() } else if s.hasPrefix("+") { s = s.dropFirst() }
        guard !s.isEmpty else { return nil }
        let value: Int?
        if s.hasPrefix("0x") || s.hasPrefix("0X") {
            let digits = s.dropFirst(2)
            value = digits.isEmpty ? nil : Int(digits, radix: 16)
        } else {
            value = s.allSatisfy(\.isASCII) ? Int(s, radix: 10) : nil
        }
        guard let v = value else { return nil }
        return negative ? -v : v
    }
}
