// Diagnostics: every problem found while loading a profile is one line,
// `file:line:column: error: sentence`, in the format compilers use, so editors
// and CI logs can jump to it. `SourceLocation` is the shared one (Basics).

import Basics

/// One problem in a profile or model file.
public struct Diagnostic: Sendable, Hashable, CustomStringConvertible, Error {
    public enum Severity: String, Sendable { case error, warning }

    /// The lint rule a diagnostic belongs to, so tests and tools can tell them apart.
    public enum Rule: String, Sendable, CaseIterable {
        /// The file is not valid YAML.
        case syntax
        /// A key, value type or shape does not match the profile format.
        case format
        /// Two points use the same register.
        case overlap
        /// A writable point has no min or max.
        case writableWithoutLimits = "writable-without-limits"
        /// A `type` that is not one of the known register types.
        case unknownType = "unknown-type"
        /// A point name that is neither canonical for the kind nor vendor-specific (`x_…`).
        case unknownPointName = "unknown-point-name"
        /// An address outside 0…65535 (or a value running past 65535).
        case addressOutOfRange = "address-out-of-range"
        /// The kind requires a canonical point that the profile does not define.
        case missingCanonicalPoint = "missing-canonical-point"
        /// A canonical point defined in a way its meaning forbids (read-only setpoint, wrong unit …).
        case canonicalContract = "canonical-contract"
        /// A point inside a range the transport forbids reading.
        case forbiddenRange = "forbidden-range"
        /// A reference (scale register, SunSpec point, firmware note) that does not resolve.
        case reference
    }

    public var severity: Severity
    public var rule: Rule
    public var location: SourceLocation
    public var message: String

    public init(_ rule: Rule, _ message: String, at location: SourceLocation, severity: Severity = .error) {
        self.rule = rule
        self.message = message
        self.location = location
        self.severity = severity
    }

    public var description: String { "\(location): \(severity.rawValue): \(message)" }
}

/// Thrown when a profile has errors; carries all of them, in file order.
public struct ProfileErrors: Error, Sendable, CustomStringConvertible {
    public var diagnostics: [Diagnostic]
    public init(_ diagnostics: [Diagnostic]) { self.diagnostics = diagnostics }
    public var description: String { diagnostics.map(\.description).joined(separator: "\n") }
}
