// The one place where YAML and JSON text (JSON is YAML flow style) becomes a tree of Yams nodes that
// keep their positions, and where libyaml's errors become located problems. Every file the project
// reads (site, snapshot and signals files, device profiles, SunSpec models, signal files, simulator
// scenarios) goes through `LocatedYAML.compose`; each reader keeps its own wording for the problem.

import Yams

/// Why a text is not a YAML/JSON document, and where (when libyaml knows).
public struct YAMLSyntaxError: Error, Sendable, CustomStringConvertible {
    public enum Problem: Sendable, Equatable {
        /// No document at all (an empty file, or only comments).
        case empty
        /// A scanner, parser or composer error: libyaml's sentence ("found character that cannot start any token").
        case invalid(String)
        /// One mapping names the same key more than once (the keys, in order).
        case duplicateKeys([String])
        /// The text could not be read as characters (libyaml's reader problem).
        case unreadable(String)
        /// Anything else, by its description.
        case other
    }

    public var problem: Problem
    /// 1-based position from libyaml's mark, when it gave one.
    public var line: Int?
    public var column: Int?
    /// The underlying error's own description (what readers printed before they shared this one).
    public var underlying: String

    public init(_ problem: Problem, line: Int? = nil, column: Int? = nil, underlying: String) {
        self.problem = problem
        self.line = line
        self.column = column
        self.underlying = underlying
    }

    /// Where to report it: the mark, or the start of the file.
    public func location(in file: String) -> SourceLocation {
        SourceLocation(file: file, line: line ?? 1, column: column ?? 1)
    }

    public var description: String { underlying }
}

public enum LocatedYAML {
    /// Composes `text` into a node tree; every node keeps its mark (line and column).
    public static func compose(_ text: String) throws(YAMLSyntaxError) -> Node {
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch let e as YamlError {
            throw translate(e)
        } catch {
            throw YAMLSyntaxError(.other, underlying: "\(error)")
        }
        guard let root else { throw YAMLSyntaxError(.empty, underlying: "the document is empty") }
        return root
    }

    static func translate(_ e: YamlError) -> YAMLSyntaxError {
        switch e {
        case let .scanner(_, problem, mark, _), let .parser(_, problem, mark, _), let .composer(_, problem, mark, _):
            return YAMLSyntaxError(.invalid(problem), line: mark.line, column: mark.column, underlying: "\(e)")
        case let .duplicatedKeysInMapping(duplicates, context):
            return YAMLSyntaxError(
                .duplicateKeys(duplicates), line: context.mark.line, column: context.mark.column, underlying: "\(e)")
        case let .reader(problem, _, _, _):
            return YAMLSyntaxError(.unreadable(problem), underlying: "\(e)")
        default:
            return YAMLSyntaxError(.other, underlying: "\(e)")
        }
    }
}

extension Node {
    /// Where this node starts in `file` (1:1 when Yams kept no mark).
    public func location(in file: String) -> SourceLocation {
        SourceLocation(file: file, line: mark?.line ?? 1, column: mark?.column ?? 1)
    }
}

/// The scalar grammars every reader shares.
public enum YAMLScalar {
    /// Decimal or 0x-hex integers with an optional sign; underscores are allowed as separators.
    public static func integer(_ text: String) -> Int? {
        var s = Substring(text.replacingOccurrences(of: "_", with: ""))
        var negative = false
        if s.hasPrefix("-") {
            negative = true
            s = s.dropFirst()
        } else if s.hasPrefix("+") {
            s = s.dropFirst()
        }
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

    /// A finite number: an integer as above, or a decimal (underscores allowed).
    public static func number(_ text: String) -> Double? {
        if let v = integer(text) { return Double(v) }
        guard let v = Double(text.replacingOccurrences(of: "_", with: "")), v.isFinite else { return nil }
        return v
    }

    /// true/yes/on or false/no/off, in any case.
    public static func bool(_ text: String) -> Bool? {
        switch text.lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default: return nil
        }
    }
}
