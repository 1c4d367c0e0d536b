/// A place in a source file (1-based line and column), written `file:line:column` as compilers do.
public struct SourceLocation: Sendable, Hashable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var column: Int

    public init(file: String, line: Int, column: Int) {
        self.file = file
        self.line = line
        self.column = column
    }

    /// The start of `file` (1:1): where problems with no better place are reported.
    public static func start(of file: String) -> SourceLocation { SourceLocation(file: file, line: 1, column: 1) }

    public var description: String { "\(file):\(line):\(column)" }
}
