// Errors from loading signal inputs. Every error names where it came from
// (`file:line`, and for JSON/YAML the key path) and prints as one line in
// the format compilers use: `file:line: error: sentence`.

/// Where a bad value was found: a file (or URL) and, when known, a 1-based
/// line number and a key path such as `events[2].intervals[0].payloads[0].values`.
public struct SignalSource: Sendable, Hashable, CustomStringConvertible {
    public var file: String
    public var line: Int?
    public var keyPath: String?

    public init(file: String, line: Int? = nil, keyPath: String? = nil) {
        self.file = file
        self.line = line
        self.keyPath = keyPath
    }

    /// `file:line` (or just `file` when the line is unknown).
    public var description: String {
        if let line { return "\(file):\(line)" }
        return file
    }
}

/// A problem with a price trace, hashprice feed, event file, contract calendar,
/// or an OpenADR / HTTP peer.
public struct SignalsError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Kind: String, Sendable, Hashable {
        /// A required column or key is missing.
        case missingField = "missing-field"
        /// A number, date, duration or enum value does not parse.
        case badValue = "bad-value"
        /// A series is out of order or overlaps.
        case unsorted
        /// A series skips an interval.
        case gap
        /// A local time that happens twice (DST fall-back) without a flag saying which.
        case ambiguousLocalTime = "ambiguous-local-time"
        /// A local time that does not exist (DST spring-forward), or a repeated-hour flag on a time that is not repeated.
        case nonexistentLocalTime = "nonexistent-local-time"
        /// The file is not valid CSV/JSON/YAML, or is empty.
        case syntax
        /// An I/O failure reading a file or talking to a peer.
        case io
        /// A peer answered with an HTTP error status or an unusable body.
        case http
        /// The OAuth2 token endpoint refused the credentials.
        case auth
    }

    public var kind: Kind
    public var source: SignalSource
    public var message: String

    public init(_ kind: Kind, _ message: String, at source: SignalSource) {
        self.kind = kind
        self.message = message
        self.source = source
    }

    /// One line: `file:line: error: [at key.path: ]message`.
    public var description: String {
        let path = source.keyPath.map { $0.isEmpty ? "" : "at \($0): " } ?? ""
        return "\(source): error: \(path)\(message)"
    }
}
