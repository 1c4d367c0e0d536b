// A located document tree for JSON and YAML inputs. Both are read with Yams
// (JSON is YAML flow style), so every value keeps its source line and a
// key path (`events[1].cap_kw`) for error messages.

import Basics
import Foundation
import Yams

/// One value of a JSON or YAML document, with where it came from.
struct TreeNode {
    enum Value {
        case map([(key: String, node: TreeNode)])
        case list([TreeNode])
        case string(String)
        case number(Double, text: String)
        case bool(Bool)
        case null
    }

    var value: Value
    var line: Int?
    var path: String
    var file: String

    var source: SignalSource { SignalSource(file: file, line: line, keyPath: path) }

    func fail(_ kind: SignalsError.Kind, _ message: String) -> SignalsError {
        SignalsError(kind, message, at: source)
    }

    // MARK: Parsing

    static func parse(_ text: String, file: String) throws(SignalsError) -> TreeNode {
        let root: Node
        do {
            root = try LocatedYAML.compose(text)
        } catch {
            let problem: String
            switch error.problem {
            case .empty: throw SignalsError(.syntax, "the document is empty", at: SignalSource(file: file, line: 1))
            case .invalid(let p): problem = p
            case .duplicateKeys(let keys): problem = "the key '\(keys.joined(separator: "', '"))' appears more than once"
            case .unreadable, .other: problem = error.underlying
            }
            throw SignalsError(.syntax, "cannot parse: \(problem)", at: SignalSource(file: file, line: error.line))
        }
        return convert(root, path: "", file: file)
    }

    private static func convert(_ node: Node, path: String, file: String) -> TreeNode {
        let line = node.mark?.line
        switch node {
        case .mapping(let m):
            var entries: [(String, TreeNode)] = []
            for (k, v) in m {
                let key = k.string ?? "\(k)"
                entries.append((key, convert(v, path: path.isEmpty ? key : "\(path).\(key)", file: file)))
            }
            return TreeNode(value: .map(entries), line: line, path: path, file: file)
        case .sequence(let s):
            let items = s.enumerated().map { convert($1, path: "\(path)[\($0)]", file: file) }
            return TreeNode(value: .list(items), line: line, path: path, file: file)
        case .scalar(let sc):
            let text = sc.string
            if sc.style == .plain {
                switch text {
                case "", "~", "null", "Null", "NULL": return TreeNode(value: .null, line: line, path: path, file: file)
                case "true", "True", "TRUE": return TreeNode(value: .bool(true), line: line, path: path, file: file)
                case "false", "False", "FALSE": return TreeNode(value: .bool(false), line: line, path: path, file: file)
                default:
                    if let d = Double(text.replacingOccurrences(of: "_", with: "")), d.isFinite, text.first != "." {
                        return TreeNode(value: .number(d, text: text), line: line, path: path, file: file)
                    }
                }
            }
            return TreeNode(value: .string(text), line: line, path: path, file: file)
        case .alias:
            return TreeNode(value: .null, line: line, path: path, file: file)
        }
    }

    // MARK: Access

    var typeName: String {
        switch value {
        case .map: "a mapping"
        case .list: "a list"
        case .string: "a string"
        case .number: "a number"
        case .bool: "a boolean"
        case .null: "null"
        }
    }

    /// The entries of a mapping; unknown keys are an error unless `allowed` is nil.
    func map(_ what: String, allowed: Set<String>? = nil) throws(SignalsError) -> [String: TreeNode] {
        guard case .map(let entries) = value else { throw fail(.badValue, "\(what) must be a mapping, not \(typeName)") }
        var out: [String: TreeNode] = [:]
        for (k, v) in entries {
            if let allowed, !allowed.contains(k) {
                throw v.fail(.badValue, "unknown key \"\(k)\" in \(what) (known keys: \(allowed.sorted().joined(separator: ", ")))")
            }
            out[k] = v
        }
        return out
    }

    func list(_ what: String) throws(SignalsError) -> [TreeNode] {
        guard case .list(let items) = value else { throw fail(.badValue, "\(what) must be a list, not \(typeName)") }
        return items
    }

    func string(_ what: String) throws(SignalsError) -> String {
        switch value {
        case .string(let s): return s
        case .number(_, let text): return text
        default: throw fail(.badValue, "\(what) must be a string, not \(typeName)")
        }
    }

    func number(_ what: String) throws(SignalsError) -> Double {
        switch value {
        case .number(let d, _): return d
        case .string(let s):
            if let d = Double(s.trimmingCharacters(in: .whitespaces)), d.isFinite { return d }
            throw fail(.badValue, "\(what) \"\(s)\" is not a number")
        default: throw fail(.badValue, "\(what) must be a number, not \(typeName)")
        }
    }

    func timestamp(_ what: String) throws(SignalsError) -> Date {
        let s = try string(what)
        guard let d = ISO8601.parseDate(s.trimmingCharacters(in: .whitespaces)) else {
            throw fail(.badValue, "\(what) \"\(s)\" is not an ISO 8601 time with an offset (e.g. 2025-08-14T15:00:00-05:00)")
        }
        return d
    }

    func duration(_ what: String) throws(SignalsError) -> ISODuration {
        let s = try string(what)
        guard let d = ISODuration(s) else { throw fail(.badValue, "\(what) \"\(s)\" is not an ISO 8601 duration (e.g. PT15M, PT1H, P1D)") }
        return d
    }
}

extension Dictionary where Key == String, Value == TreeNode {
    /// The value of a required key, or an error naming the mapping.
    func required(_ key: String, in parent: TreeNode) throws(SignalsError) -> TreeNode {
        guard let v = self[key], !v.isNull else {
            throw parent.fail(.missingField, "missing key \"\(key)\"")
        }
        return v
    }

    func optional(_ key: String) -> TreeNode? {
        guard let v = self[key], !v.isNull else { return nil }
        return v
    }
}

extension TreeNode {
    var isNull: Bool { if case .null = value { true } else { false } }
}
