// Replay protection for fleet commands: the ids seen within the window, kept in a small file replaced atomically
// (written to `<path>.tmp`, fsync'd, renamed over `<path>`) before a command is applied, so a restart within the
// window still refuses a replay. One line per id: `<id> <timestamp ms>`.

import Foundation
import Store
import Synchronization

public final class CommandReplayStore: Sendable {
    public enum Admission: Sendable, Equatable {
        case admitted
        case rejected(FleetRejection)
    }

    /// At most this many ids within one window; more are refused (evicting one would allow its replay).
    public let capacity: Int
    public let path: String?
    struct State {
        /// id → the command's timestamp (ms since the epoch).
        var seen: [String: UInt64] = [:]
        /// Set when the file could not be read: commands stamped before this instant (ms) are refused, since
        /// their ids may have been seen before the restart.
        var notBeforeMS: UInt64?
    }
    let state: Mutex<State>

    /// `path` nil: in memory only (tests). `loadedAtS`: the loop's clock now, used only when the file is unreadable.
    public init(path: String?, capacity: Int = 10_000, loadedAtS: Double, onProblem: (String) -> Void = { _ in }) {
        self.path = path
        self.capacity = capacity
        var s = State()
        if let path, FileManager.default.fileExists(atPath: path) {
            do {
                s.seen = try Self.read(path)
            } catch {
                s.notBeforeMS = UInt64(max(0, loadedAtS * 1000))
                onProblem("\(error); commands stamped before this start are refused")
            }
        }
        state = Mutex(s)
    }

    public struct CorruptFile: Error, CustomStringConvertible {
        public var path: String
        public var line: Int
        public var text: String
        public var description: String { "\(path):\(line): not '<command id> <timestamp ms>': '\(text)'" }
    }

    static func read(_ path: String) throws -> [String: UInt64] {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        var seen: [String: UInt64] = [:]
        for (i, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() where !line.isEmpty {
            let parts = line.split(separator: " ")
            guard parts.count == 2, let ms = UInt64(parts[1]) else { throw CorruptFile(path: path, line: i + 1, text: String(line)) }
            seen[String(parts[0])] = ms
        }
        return seen
    }

    /// Admits a command id once: refused when its timestamp is outside `windowS` of `nowS` (the loop's clock) or the id
    /// was seen within the window. An admitted id is recorded (and the file replaced) before this returns; if it
    /// cannot be recorded the command is refused.
    public func admit(id: String, timestampMS: UInt64, nowS: Double, windowS: Double) -> Admission {
        let nowMS = Int64(nowS * 1000)
        let windowMS = Int64(windowS * 1000)
        let skew = Int64(clamping: timestampMS) - nowMS
        guard abs(skew) <= windowMS else {
            return .rejected(FleetRejection(.stale, "'\(FleetCommandName.timestamp)' is \(Double(skew) / 1000) s from the site's clock; the window is ±\(Int(windowS)) s"))
        }
        return state.withLock { s in
            if let notBefore = s.notBeforeMS, timestampMS < notBefore {
                return .rejected(FleetRejection(.replayed, "the replay record was unreadable at start: commands stamped before it are refused"))
            }
            // Forget ids whose timestamp has left the window: a replay of them is stale anyway.
            s.seen = s.seen.filter { Int64(clamping: $0.value) + windowMS >= nowMS }
            if let seenAt = s.seen[id] {
                return .rejected(FleetRejection(.replayed, "command id '\(id)' was already used (stamped \(seenAt) ms)"))
            }
            guard s.seen.count < capacity else {
                return .rejected(FleetRejection(.failed, "more than \(capacity) commands within the window: refused"))
            }
            var next = s.seen
            next[id] = timestampMS
            if let path {
                do { try Self.write(next, to: path) } catch {
                    return .rejected(FleetRejection(.failed, "cannot record the command id: \(error)"))
                }
            }
            s.seen = next
            return .admitted
        }
    }

    public var seenIDs: Set<String> { state.withLock { Set($0.seen.keys) } }

    /// The store's atomic private-file write (temporary file, fsync, rename, fsync of the directory; mode 0600).
    static func write(_ seen: [String: UInt64], to path: String) throws {
        let text = seen.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)\n" }.joined()
        try PrivateFiles.writeAtomically(Data(text.utf8), to: path)
    }
}
