// Walks a composed YAML/JSON document and records a located diagnostic for every shape problem,
// so a caller can report all of them at once (profiles) or stop at the first (site files). The
// sentences are the caller's (`Wording`): each file format keeps the messages its users know.

import Yams

/// What kind of problem a reader found: the text is not YAML/JSON, or the document has the wrong shape.
public enum ReadProblem: Sendable, Hashable {
    case syntax
    case format
}

/// A key/value pair of a mapping, with the key's text and node.
public struct LocatedEntry {
    public var key: String
    public var keyNode: Node
    public var value: Node
}

/// Reads nodes of one file and collects its diagnostics (`D`, the caller's diagnostic type). Not shared
/// across tasks.
public final class LocatedReader<D> {
    public let file: String
    public let wording: ReaderWording
    public private(set) var diagnostics: [D] = []
    private let make: (ReadProblem, String, SourceLocation) -> D

    public init(
        file: String, wording: ReaderWording,
        diagnostic make: @escaping (ReadProblem, String, SourceLocation) -> D
    ) {
        self.file = file
        self.wording = wording
        self.make = make
    }

    // MARK: Diagnostics

    public func location(_ node: Node) -> SourceLocation { node.location(in: file) }

    public func record(_ diagnostic: D) { diagnostics.append(diagnostic) }

    /// Records a problem and returns it.
    @discardableResult
    public func report(_ problem: ReadProblem, _ message: String, at location: SourceLocation) -> D {
        let d = make(problem, message, location)
        diagnostics.append(d)
        return d
    }

    @discardableResult
    public func report(_ message: String, at node: Node?) -> D {
        report(.format, message, at: node.map(location) ?? .start(of: file))
    }

    // MARK: Parsing

    /// Composes `text`; on a syntax error records it (in the caller's words) and returns nil.
    public func compose(_ text: String) -> Node? {
        do {
            return try LocatedYAML.compose(text)
        } catch {
            let (problem, message) = wording.syntax(error)
            report(problem, message, at: error.location(in: file))
            return nil
        }
    }

    // MARK: Shapes

    /// The entries of a mapping, checking keys against `allowed` (listed in that order in the message)
    /// and the presence of `required`.
    public func mapping(_ node: Node, _ what: String, keys allowed: [String], required: [String] = [])
        -> [String: LocatedEntry]?
    {
        guard case .mapping(let m) = node else {
            report(wording.notMapping(what, node), at: node)
            return nil
        }
        var out: [String: LocatedEntry] = [:]
        for (k, v) in m {
            guard case .scalar(let s) = k else {
                report(wording.keyNotPlain(what), at: k)
                continue
            }
            let key = s.string
            guard allowed.contains(key) else {
                report(wording.unknownKey(key, what, allowed), at: k)
                continue
            }
            out[key] = LocatedEntry(key: key, keyNode: k, value: v)
        }
        for key in required where out[key] == nil {
            report(wording.missingKey(key, what), at: node)
        }
        return out
    }

    public func sequence(_ node: Node, _ what: String) -> [Node]? {
        guard case .sequence(let s) = node else {
            report(wording.notList(what, node), at: node)
            return nil
        }
        return Array(s)
    }

    /// The text of a scalar; with `nonEmpty`, an empty text is a problem too.
    public func scalar(_ node: Node, _ what: String, nonEmpty: Bool = false) -> String? {
        guard case .scalar(let s) = node else {
            report(wording.notScalar(what, node), at: node)
            return nil
        }
        if nonEmpty && s.string.isEmpty {
            report(wording.empty(what), at: node)
            return nil
        }
        return s.string
    }

    public func number(_ node: Node, _ what: String) -> Double? {
        guard case .scalar(let s) = node, let v = YAMLScalar.number(s.string) else {
            report(wording.notNumber(what, node), at: node)
            return nil
        }
        return v
    }

    public func integer(_ node: Node, _ what: String) -> Int? {
        guard case .scalar(let s) = node, let v = YAMLScalar.integer(s.string) else {
            report(wording.notInteger(what, node), at: node)
            return nil
        }
        return v
    }

    public func bool(_ node: Node, _ what: String) -> Bool? {
        guard case .scalar(let s) = node, let v = YAMLScalar.bool(s.string) else {
            report(wording.notBool(what, node), at: node)
            return nil
        }
        return v
    }

    /// An ISO 8601 time with an offset, as seconds since 1970 (`ISO8601.parse`).
    public func time(_ node: Node, _ what: String) -> Double? {
        guard case .scalar(let s) = node, let t = ISO8601.parse(s.string) else {
            report(wording.notTime(what, node), at: node)
            return nil
        }
        return t
    }
}

/// The sentences a file format uses for each problem. `node` is the offending node.
public struct ReaderWording: Sendable {
    public var syntax: @Sendable (YAMLSyntaxError) -> (ReadProblem, String)
    public var notMapping: @Sendable (_ what: String, _ node: Node) -> String
    public var keyNotPlain: @Sendable (_ what: String) -> String
    public var unknownKey: @Sendable (_ key: String, _ what: String, _ allowed: [String]) -> String
    public var missingKey: @Sendable (_ key: String, _ what: String) -> String
    public var notList: @Sendable (_ what: String, _ node: Node) -> String
    public var notScalar: @Sendable (_ what: String, _ node: Node) -> String
    public var empty: @Sendable (_ what: String) -> String
    public var notNumber: @Sendable (_ what: String, _ node: Node) -> String
    public var notInteger: @Sendable (_ what: String, _ node: Node) -> String
    public var notBool: @Sendable (_ what: String, _ node: Node) -> String
    public var notTime: @Sendable (_ what: String, _ node: Node) -> String

    public init(
        syntax: @escaping @Sendable (YAMLSyntaxError) -> (ReadProblem, String),
        notMapping: @escaping @Sendable (String, Node) -> String,
        keyNotPlain: @escaping @Sendable (String) -> String,
        unknownKey: @escaping @Sendable (String, String, [String]) -> String,
        missingKey: @escaping @Sendable (String, String) -> String,
        notList: @escaping @Sendable (String, Node) -> String,
        notScalar: @escaping @Sendable (String, Node) -> String,
        empty: @escaping @Sendable (String) -> String,
        notNumber: @escaping @Sendable (String, Node) -> String,
        notInteger: @escaping @Sendable (String, Node) -> String,
        notBool: @escaping @Sendable (String, Node) -> String,
        notTime: @escaping @Sendable (String, Node) -> String
    ) {
        self.syntax = syntax
        self.notMapping = notMapping
        self.keyNotPlain = keyNotPlain
        self.unknownKey = unknownKey
        self.missingKey = missingKey
        self.notList = notList
        self.notScalar = notScalar
        self.empty = empty
        self.notNumber = notNumber
        self.notInteger = notInteger
        self.notBool = notBool
        self.notTime = notTime
    }
}

extension Node {
    /// "a mapping", "a list", "an alias" or "the value 'x'": how messages name what they found.
    public var kindDescription: String {
        switch self {
        case .scalar(let s): return "the value '\(s.string)'"
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .alias: return "an alias"
        }
    }

    /// A scalar in quotes ('x'), anything else by its kind.
    public var quotedDescription: String {
        if case .scalar(let s) = self { return "'\(s.string)'" }
        return kindDescription
    }

    /// The text of a scalar (nil for mappings, lists and aliases).
    public var scalarText: String? {
        if case .scalar(let s) = self { return s.string }
        return nil
    }
}
