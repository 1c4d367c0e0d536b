// errno → text, one helper for every C call site (libmodbus, libi2c, private files, file reads).

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The C library's sentence for an errno value ("No such file or directory"), or "errno N".
public func errnoText(_ code: Int32) -> String {
    guard let p = strerror(code) else { return "errno \(code)" }
    return String(cString: p)
}
