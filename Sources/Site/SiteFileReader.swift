import Basics
import Yams

// A problem in a site, snapshot or signals file is a `LocatedError` (Basics).

extension ReaderWording {
    /// The site, snapshot and signals files' sentences.
    public static let siteFile = ReaderWording(
        syntax: { e in
            switch e.problem {
            case .empty: (.syntax, "the file is empty")
            case .invalid(let problem): (.syntax, "this is not valid YAML/JSON: \(problem)")
            case .duplicateKeys(let keys):
                (.syntax, "key \(keys.map { "'\($0)'" }.joined(separator: ", ")) appears more than once")
            case .unreadable, .other: (.syntax, "this is not valid YAML/JSON: \(e.underlying)")
            }
        },
        notMapping: { what, node in "\(what) should be a mapping (key: value pairs), found \(node.kindDescription)" },
        keyNotPlain: { what in "a key in \(what) should be a plain name" },
        unknownKey: { key, what, allowed in
            "unknown key '\(key)' in \(what); expected one of: \(allowed.joined(separator: ", "))"
        },
        missingKey: { key, what in "\(what) is missing '\(key)'" },
        notList: { what, node in "\(what) should be a list, found \(node.kindDescription)" },
        notScalar: { what, node in "\(what) should be a single value, found \(node.kindDescription)" },
        empty: { what in "\(what) should not be empty" },
        notNumber: { what, node in "\(what) should be a number, found \(node.quotedDescription)" },
        notInteger: { what, node in "\(what) should be a whole number, found \(node.quotedDescription)" },
        notBool: { what, node in
            node.scalarText.map { "\(what) should be true or false, found '\($0)'" } ?? "\(what) should be true or false"
        },
        notTime: { what, node in
            guard let s = node.scalarText else { return "\(what) should be a single value, found \(node.kindDescription)" }
            return "\(what) should be an ISO 8601 time like 2026-07-15T14:00:00Z, found '\(s)'"
        }
    )
}

/// The shared located reader in the site files' words, stopping at the first problem (the site
/// loader reports one error at a time).
struct Reader {
    let file: String
    let core: LocatedReader<LocatedError>

    init(file: String) {
        self.file = file
        core = LocatedReader(file: file, wording: .siteFile) { _, message, at in LocatedError(at: at, message) }
    }

    func fail(_ node: Node?, _ message: String) -> LocatedError {
        LocatedError(at: node?.location(in: file) ?? .start(of: file), message)
    }

    /// The value `read` returns, or the first problem it records, thrown.
    private func first<T>(_ read: () -> T?) throws(LocatedError) -> T {
        let before = core.diagnostics.count
        let value = read()
        if core.diagnostics.count > before { throw core.diagnostics[before] }
        guard let value else { throw LocatedError(at: .start(of: file), "unreadable value") }
        return value
    }

    /// Parse the text; syntax errors keep libyaml's position.
    func compose(_ text: String) throws(LocatedError) -> Node { try first { core.compose(text) } }

    /// The entries of a mapping, checking that every key is one of `allowed`.
    func fields(_ node: Node, _ what: String, allowed: [String]) throws(LocatedError) -> Fields {
        let entries = try first { core.mapping(node, what, keys: allowed) }
        return Fields(node: node, what: what, entries: entries, reader: self)
    }

    func sequence(_ node: Node, _ what: String) throws(LocatedError) -> [Node] { try first { core.sequence(node, what) } }
    func string(_ node: Node, _ what: String) throws(LocatedError) -> String { try first { core.scalar(node, what) } }
    func number(_ node: Node, _ what: String) throws(LocatedError) -> Double { try first { core.number(node, what) } }
    func integer(_ node: Node, _ what: String) throws(LocatedError) -> Int { try first { core.integer(node, what) } }
    func bool(_ node: Node, _ what: String) throws(LocatedError) -> Bool { try first { core.bool(node, what) } }
    func time(_ node: Node, _ what: String) throws(LocatedError) -> Double { try first { core.time(node, what) } }

    func nonNegative(_ node: Node, _ what: String) throws(LocatedError) -> Double {
        let v = try number(node, what)
        guard v >= 0 else { throw fail(node, "\(what) cannot be negative (found \(v))") }
        return v
    }
}

/// The checked keys of one mapping.
struct Fields {
    let node: Node
    let what: String
    let entries: [String: LocatedEntry]
    let reader: Reader

    subscript(_ key: String) -> Node? { entries[key]?.value }

    func require(_ key: String) throws(LocatedError) -> Node {
        guard let v = entries[key]?.value else { throw reader.fail(node, "\(what) is missing '\(key)'") }
        return v
    }

    func has(_ key: String) -> Bool { entries[key] != nil }
}
