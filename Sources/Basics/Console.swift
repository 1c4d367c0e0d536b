// The console of the commands and the daemon they run: one way to write a line to stderr, one way to
// flush stdout (live frames are printed between ticks).

import Foundation

/// Standard error as a `TextOutputStream` (`print(…, to: &stream)`).
public struct StandardError: TextOutputStream {
    public init() {}
    public mutating func write(_ string: String) {
        FileHandle.standardError.write(Data(string.utf8))
    }
}

/// One line to stderr, as it is (the executable's `printError` adds `--json` error lines on top).
public func writeErrorLine(_ line: String) {
    var stderr = StandardError()
    print(line, to: &stderr)
}

/// Flushes stdout (and every other C stream).
public func fflushStdout() { fflush(nil) }
