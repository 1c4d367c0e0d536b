import Foundation
import Yams

/// A problem in a site, snapshot or signals file, with its position.
public struct SiteFileError: Error, CustomStringConvertible, Equatable, Sendable {
    public var file: String
    public var line: Int
    public var column: Int
    public var message: String

    public init(file: String, line: Int, column: Int, message: String) {
        self.file = file
        self.line = line
        self.column = column
        self.message = message
    }

    /// "file:line:column: message"
    public var description: String { "\(file):\(line):\(column): \(message)" }
}

/// Walks a composed YAML (or JSON) document node by node so every error can name its position.
struct Reader {
    let file: String

    func fail(_ node: Node?, _ message: String) -> SiteFileError {
        let m = node?.mark
        return SiteFileError(file: file, line: m?.line ?? 1, column: m?.column ?? 1, message: message)
    }

    /// Parse the text; syntax errors keep libyaml's position.
    func compose(_ text: String) throws(SiteFileError) -> Node {
        do {
            guard let node = try Yams.compose(yaml: text) else {
                throw SiteFileError(file: file, line: 1, column: 1, message: "the file is empty")
            }
            return node
        } catch let e as SiteFileError {
            throw e
        } catch let e as YamlError {
            switch e {
            case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _),
                .composer(_, let problem, let mark, _):
                throw SiteFileError(
                    file: file, line: mark.line, column: mark.column, message: "this is not valid YAML/JSON: \(problem)")
            case .duplicatedKeysInMapping(let dups, let ctx):
                throw SiteFileError(
                    file: file, line: ctx.mark.line, column: ctx.mark.column,
                    message: "key \(dups.map { "'\($0)'" }.joined(separator: ", ")) appears more than once")
            default:
                throw SiteFileError(file: file, line: 1, column: 1, message: "this is not valid YAML/JSON: \(e)")
            }
        } catch {
            throw SiteFileError(file: file, line: 1, column: 1, message: "this is not valid YAML/JSON: \(error)")
        }
    }

    /// The entries of a mapping, checking that every key is one of `allowed`.
    func fields(_ node: Node, _ what: String, allowed: [String]) throws(SiteFileError) -> Fields {
        guard case .mapping(let map) = node else {
            throw fail(node, "\(what) should be a mapping (key: value pairs), found \(kind(node))")
        }
        var out: [String: (key: Node, value: Node)] = [:]
        for (k, v) in map {
            guard case .scalar(let s) = k else { throw fail(k, "a key in \(what) should be a plain name") }
            guard allowed.contains(s.string) else {
                throw fail(
                    k,
                    "unknown key '\(s.string)' in \(what); expected one of: \(allowed.joined(separator: ", "))")
            }
            out[s.string] = (k, v)
        }
        return Fields(node: node, what: what, entries: out, reader: self)
    }

    func sequence(_ node: Node, _ what: String) throws(SiteFileError) -> [Node] {
        guard case .sequence(let seq) = node else {
            throw fail(node, "\(what) should be a list, found \(kind(node))")
        }
        return Array(seq)
    }

    func string(_ node: Node, _ what: String) throws(SiteFileError) -> String {
        guard case .scalar(let s) = node else { throw fail(node, "\(what) should be a single value, found \(kind(node))") }
        return s.string
    }

    func number(_ node: Node, _ what: String) throws(SiteFileError) -> Double {
        guard case .scalar(let s) = node, let v = Double(s.string.replacingOccurrences(of: "_", with: "")), v.isFinite
        else {
            throw fail(node, "\(what) should be a number, found \(describe(node))")
        }
        return v
    }

    func nonNegative(_ node: Node, _ what: String) throws(SiteFileError) -> Double {
        let v = try number(node, what)
        guard v >= 0 else { throw fail(node, "\(what) cannot be negative (found \(v))") }
        return v
    }

    func integer(_ node: Node, _ what: String) throws(SiteFileError) -> Int {
        guard case .scalar(let s) = node, let v = Int(s.string) else {
            throw fail(node, "\(what) should be a whole number, found \(describe(node))")
        }
        return v
    }

    func bool(_ node: Node, _ what: String) throws(SiteFileError) -> Bool {
        guard case .scalar(let s) = node else { throw fail(node, "\(what) should be true or false") }
        switch s.string.lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default: throw fail(node, "\(what) should be true or false, found '\(s.string)'")
        }
    }

    func time(_ node: Node, _ what: String) throws(SiteFileError) -> Double {
        let s = try string(node, what)
        guard let t = ISO8601.parse(s) else {
            throw fail(node, "\(what) should be an ISO 8601 time like 2026-07-15T14:00:00Z, found '\(s)'")
        }
        return t
    }

    func kind(_ node: Node) -> String {
        switch node {
        case .scalar(let s): return "the value '\(s.string)'"
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .alias: return "an alias"
        }
    }

    func describe(_ node: Node) -> String {
        if case .scalar(let s) = node { return "'\(s.string)'" }
        return kind(node)
    }
}

/// The checked keys of one mapping.
struct Fields {
    let node: Node
    let what: String
    let entries: [String: (key: Node, value: Node)]
    let reader: Reader

    subscript(_ key: String) -> Node? { entries[key]?.value }

    func require(_ key: String) throws(SiteFileError) -> Node {
        guard let v = entries[key]?.value else { throw reader.fail(node, "\(what) is missing '\(key)'") }
        return v
    }

    func has(_ key: String) -> Bool { entries[key] != nil }
}
