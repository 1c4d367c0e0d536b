// The one error type of a file format that is read whole: a message at a place (file:line:column).
// Site files, snapshots and scenario files throw it; formats with their own kinds of problem
// (profiles, signals) wrap a `SourceLocation` in their own error instead.

/// A problem at a place in a file.
public struct LocatedError: Error, Sendable, Equatable, CustomStringConvertible {
    /// How `description` reads: `file:line:column: message`, or the compiler's
    /// `file:line:column: error: message` (scenario files, whose tools print it beside compilers' output).
    public enum Style: Sendable, Equatable {
        case plain
        case compiler
    }

    public var file: String
    public var line: Int
    public var column: Int
    public var message: String
    public var style: Style

    public init(file: String, line: Int, column: Int, message: String, style: Style = .plain) {
        self.file = file
        self.line = line
        self.column = column
        self.message = message
        self.style = style
    }

    public init(at location: SourceLocation, _ message: String, style: Style = .plain) {
        self.init(file: location.file, line: location.line, column: location.column, message: message, style: style)
    }

    public var location: SourceLocation { SourceLocation(file: file, line: line, column: column) }

    public var description: String {
        switch style {
        case .plain: "\(file):\(line):\(column): \(message)"
        case .compiler: "\(file):\(line):\(column): error: \(message)"
        }
    }
}
