// The state directory's files are private to the service user: the directory 0700,
// every file in it 0600 (the store, the token hashes, the loop state, the journals).
// Journals are replaced atomically (write a temporary file, fsync it, rename, fsync the
// directory), and one that cannot be read is moved aside, never silently dropped.

import Basics
import Foundation
#if canImport(Glibc)
import Glibc
#endif

public enum PrivateFiles {
    /// Creates `directory` (and its parents) if needed and makes it 0700.
    public static func prepareDirectory(_ directory: String) throws {
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw StoreError(.io, "\(directory): cannot create the state directory: \(error.localizedDescription)")
        }
        if chmod(directory, 0o700) != 0 {
            throw StoreError(.io, "\(directory): cannot make the state directory 0700: \(errnoText(errno))")
        }
    }

    /// Creates `path` empty with mode 0600 if it does not exist; makes an existing file 0600.
    public static func createPrivate(_ path: String) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw StoreError(.io, "\(path): cannot create: \(errnoText(errno))") }
        defer { close(fd) }
        if fchmod(fd, 0o600) != 0 { throw StoreError(.io, "\(path): cannot make it 0600: \(errnoText(errno))") }
    }

    /// Replaces `path` with `data` atomically, mode 0600: temporary file, fsync, rename, fsync of the directory
    /// (so the rename itself survives a power cut).
    public static func writeAtomically(_ data: Data, to path: String) throws {
        let tmp = path + ".tmp"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw StoreError(.io, "\(tmp): cannot create: \(errnoText(errno))") }
        var ok = fchmod(fd, 0o600) == 0
        data.withUnsafeBytes { raw in
            var off = 0
            while ok && off < raw.count {
                let n = write(fd, raw.baseAddress! + off, raw.count - off)
                if n < 0 { if errno == EINTR { continue }; ok = false } else { off += n }
            }
        }
        if ok { ok = fsync(fd) == 0 }
        let err = errno
        close(fd)
        guard ok else {
            unlink(tmp)
            throw StoreError(.io, "\(tmp): cannot write: \(errnoText(err))")
        }
        guard rename(tmp, path) == 0 else { throw StoreError(.io, "\(path): cannot replace: \(errnoText(errno))") }
        syncDirectory(of: path)
    }

    /// fsyncs the directory holding `path` (makes a rename or a new file durable).
    public static func syncDirectory(of path: String) {
        let dir = (path as NSString).deletingLastPathComponent
        let fd = open(dir.isEmpty ? "." : dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd >= 0 { fsync(fd); close(fd) }
    }

    /// What `loadOrQuarantine` found.
    public enum Loaded<T> {
        /// No file: a fresh start.
        case absent
        case loaded(T)
        /// The file could not be read or decoded; it was renamed to `movedTo` (kept for inspection).
        case quarantined(movedTo: String, error: String)
    }

    /// Reads and decodes `path`. A file that cannot be decoded is renamed aside to
    /// `path.corrupt-<unix time>` (never deleted, never silently ignored) so the caller can log it and go on.
    public static func loadOrQuarantine<T>(_ path: String, now: Date = Date(), decode: (Data) throws -> T) -> Loaded<T> {
        guard FileManager.default.fileExists(atPath: path) else { return .absent }
        do {
            let data = try Data(contentsOf: URL(fileURLWithPath: path))
            return .loaded(try decode(data))
        } catch {
            var target = path + ".corrupt-\(Int(now.timeIntervalSince1970))"
            var n = 1
            while FileManager.default.fileExists(atPath: target) { target = path + ".corrupt-\(Int(now.timeIntervalSince1970))-\(n)"; n += 1 }
            if rename(path, target) != 0 {
                return .quarantined(movedTo: path, error: "\(error) (and it could not be moved aside: \(errnoText(errno)))")
            }
            syncDirectory(of: path)
            return .quarantined(movedTo: target, error: "\(error)")
        }
    }
}
