// CPU time of a process, for the benchmarks (and anything else that reports its own cost).

import Foundation
#if canImport(Glibc)
import Glibc
#endif

public enum ProcessCPU {
    /// User + system CPU seconds of this process so far (getrusage).
    public static func ownSeconds() -> Double {
        var ru = rusage()
        getrusage(RUSAGE_SELF.rawValue, &ru)
        return Double(ru.ru_utime.tv_sec) + Double(ru.ru_utime.tv_usec) / 1e6 + Double(ru.ru_stime.tv_sec) + Double(ru.ru_stime.tv_usec) / 1e6
    }

    /// User + system CPU seconds of another process, from /proc/PID/stat (in clock ticks of 10 ms: sum over many
    /// events); NaN when it cannot be read.
    public static func seconds(pid: Int32) -> Double {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = text.lastIndex(of: ")") else { return .nan }
        let fields = text[text.index(after: close)...].split(separator: " ")
        // After the command: the state is fields[0]; utime and stime are the 14th and 15th fields of the line.
        guard fields.count > 12, let u = Double(fields[11]), let s = Double(fields[12]) else { return .nan }
        return (u + s) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }
}
