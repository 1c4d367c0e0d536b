// The hub's record spool: every batch of records the host takes from the fleet bus is appended to a file before it
// waits for the store, and is marked written (committed) only once the store has it. So:
// - while PostgreSQL is down or slow, batches beyond the in-memory queue wait on disk instead of being dropped;
// - a hub killed (kill -9, a crash) loses nothing it had taken: the next hub on the same spool directory writes the
//   uncommitted batches first, in their order, before anything new.
//
// Files in the spool directory (`hub run --spool-dir`):
// - `records.spool`: frames, appended at the end. A frame is "SYR1", the body's length (UInt32 LE), its FNV-1a
//   32-bit checksum (UInt32 LE), then the body: one batch (`RecordSpoolCodec`). A torn frame at the end (a kill in
//   mid-write) fails its length or checksum and is cut off when the spool is opened.
// - `records.committed`: the offset (UInt64 LE) below which every frame is in the store. Written after each
//   successful store write; when everything is committed and the spool is past `compactBytes`, the spool file is
//   truncated to empty first and the offset set to 0 after (a kill between the two leaves an offset past the end:
//   read as "all committed").
// - The spool file is locked (flock, exclusive): a second hub on the same directory is refused with a clear error.
//
// Writes go to the page cache (no fsync per batch): they survive a killed process, not a power cut; a batch holding a
// command the hub is about to send is synced to disk first (HostCommands.swift). A batch the store committed just
// before a kill can be written once more by the next hub; the store's primary keys keep samples at most once, and a
// command or outcome written again changes nothing (StoreWrite).

import Basics
import Foundation
import Sparkplug
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Why the spool cannot be used.
public struct RecordSpoolError: Error, CustomStringConvertible, Sendable {
    public var path: String
    public var message: String
    public var description: String { "hub spool \(path): \(message)" }
}

/// Batches of `HubRecord` to bytes and back (the body of one spool frame).
enum RecordSpoolCodec {
    struct Writer {
        var bytes: [UInt8] = []
        mutating func u8(_ v: UInt8) { bytes.append(v) }
        mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
        mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
        mutating func blob(_ b: [UInt8]) { u32(UInt32(b.count)); bytes.append(contentsOf: b) }
        mutating func string(_ s: String) { blob(Array(s.utf8)) }
        mutating func optionalString(_ s: String?) { if let s { u8(1); string(s) } else { u8(0) } }
        mutating func optionalU64(_ v: UInt64?) { if let v { u8(1); u64(v) } else { u8(0) } }
        mutating func site(_ k: SiteKey) { string(k.group); string(k.edge) }
    }

    struct Reader {
        let bytes: [UInt8]
        var at = 0
        struct Short: Error {}
        mutating func take(_ n: Int) throws -> ArraySlice<UInt8> {
            guard n >= 0, bytes.count - at >= n else { throw Short() }
            defer { at += n }
            return bytes[at..<(at + n)]
        }
        mutating func u8() throws -> UInt8 { try take(1).first! }
        mutating func u32() throws -> UInt32 { try take(4).reversed().reduce(0) { $0 << 8 | UInt32($1) } }
        mutating func u64() throws -> UInt64 { try take(8).reversed().reduce(0) { $0 << 8 | UInt64($1) } }
        mutating func blob() throws -> [UInt8] { Array(try take(Int(try u32()))) }
        mutating func string() throws -> String {
            guard let s = String(validating: try blob(), as: UTF8.self) else { throw Short() }
            return s
        }
        mutating func optionalString() throws -> String? { try u8() == 1 ? try string() : nil }
        mutating func optionalU64() throws -> UInt64? { try u8() == 1 ? try u64() : nil }
        mutating func site() throws -> SiteKey { SiteKey(group: try string(), edge: try string()) }
    }

    /// Metrics go through their Sparkplug protobuf form (every field the store keeps survives it).
    static func metrics(_ m: [SparkplugMetric]) -> [UInt8] { SparkplugPayload(timestamp: nil, seq: nil, metrics: m).encoded() }

    static func encode(_ batch: [HubRecord]) -> [UInt8] {
        var w = Writer()
        w.u32(UInt32(batch.count))
        for record in batch {
            switch record {
            case .birth(let b):
                w.u8(0); w.site(b.site); w.optionalString(b.device); w.optionalU64(b.bdSeq); w.u64(b.at)
                w.blob(metrics(b.metrics))
            case let .death(site, device, bdSeq, at):
                w.u8(1); w.site(site); w.optionalString(device); w.optionalU64(bdSeq); w.u64(at)
            case .samples(let samples):
                w.u8(2); w.u32(UInt32(samples.count))
                for s in samples { w.site(s.site); w.optionalString(s.device) }
                // A null sample keeps no datatype (MetricSample has none): Double stands in and reads back as nil.
                w.blob(metrics(samples.map { s in
                    s.value.map { SparkplugMetric(name: s.name, timestamp: s.at, value: $0, isHistorical: s.historical) }
                        ?? SparkplugMetric(name: s.name, timestamp: s.at, null: .double, isHistorical: s.historical)
                }))
            case let .sequenceGap(site, expected, received, at):
                w.u8(3); w.site(site); w.u8(expected); w.u8(received); w.u64(at)
            case .command(let c):
                w.u8(4); w.string(c.id); w.site(c.site); w.optionalString(c.device); w.u64(c.issuedAt); w.u64(c.expiresAt)
                w.string(c.payloadJSON)
            case let .commandOutcome(id, status, outcome, at):
                w.u8(5); w.string(id); w.string(status.rawValue); w.string(outcome); w.u64(at)
            }
        }
        return w.bytes
    }

    static func decode(_ bytes: [UInt8]) throws -> [HubRecord] {
        var r = Reader(bytes: bytes)
        var out: [HubRecord] = []
        for _ in 0..<(try r.u32()) {
            switch try r.u8() {
            case 0:
                let site = try r.site(), device = try r.optionalString(), bdSeq = try r.optionalU64(), at = try r.u64()
                let metrics = try SparkplugPayload(decoding: try r.blob()).metrics
                out.append(.birth(BirthRecord(site: site, device: device, bdSeq: bdSeq, at: at, metrics: metrics)))
            case 1:
                let site = try r.site(), device = try r.optionalString(), bdSeq = try r.optionalU64(), at = try r.u64()
                out.append(.death(site: site, device: device, bdSeq: bdSeq, at: at))
            case 2:
                let n = Int(try r.u32())
                var places: [(SiteKey, String?)] = []
                for _ in 0..<n { places.append((try r.site(), try r.optionalString())) }
                let metrics = try SparkplugPayload(decoding: try r.blob()).metrics
                guard metrics.count == n else { throw Reader.Short() }
                out.append(.samples(zip(places, metrics).map { place, m in
                    MetricSample(site: place.0, device: place.1, name: m.name ?? "", at: m.timestamp ?? 0, value: m.value, historical: m.isHistorical)
                }))
            case 3:
                let site = try r.site(), expected = try r.u8(), received = try r.u8(), at = try r.u64()
                out.append(.sequenceGap(site: site, expected: expected, received: received, at: at))
            case 4:
                let id = try r.string(), site = try r.site(), device = try r.optionalString()
                let issued = try r.u64(), expires = try r.u64(), payload = try r.string()
                out.append(.command(HubCommand(id: id, site: site, device: device, issuedAt: issued, expiresAt: expires, payloadJSON: payload)))
            case 5:
                let id = try r.string()
                guard let status = HubCommandStatus(rawValue: try r.string()) else { throw Reader.Short() }
                let outcome = try r.string(), at = try r.u64()
                out.append(.commandOutcome(commandID: id, status: status, outcome: outcome, at: at))
            default:
                throw Reader.Short()
            }
        }
        return out
    }

    static func checksum(_ bytes: [UInt8]) -> UInt32 {
        var h: UInt32 = 0x811C_9DC5
        for b in bytes { h = (h ^ UInt32(b)) &* 0x0100_0193 }
        return h
    }

    static let magic: [UInt8] = Array("SYR1".utf8)
    static let headerBytes = 12

    /// One frame: magic, body length, checksum, body.
    static func frame(_ batch: [HubRecord]) -> [UInt8] {
        let body = encode(batch)
        var w = Writer(bytes: magic)
        w.u32(UInt32(body.count))
        w.u32(checksum(body))
        w.bytes.append(contentsOf: body)
        return w.bytes
    }
}

/// The spool files of one directory, open and locked. Not thread-safe on its own: `RecordQueue` calls it under its
/// lock (appends, commits) or from its one reader (reads of frames already written, which never change).
final class RecordSpool: @unchecked Sendable {
    static let spoolName = "records.spool"
    static let committedName = "records.committed"

    let directory: String
    private var fd: Int32
    private var committedFD: Int32
    /// The end of the last whole frame.
    private(set) var end: UInt64
    /// Everything below is in the store.
    private(set) var committed: UInt64
    /// Truncated to empty once everything is committed and it has grown past this.
    let compactBytes: UInt64
    private var closed = false

    var path: String { directory + "/" + Self.spoolName }

    /// Opens (creating) and locks the spool in `directory`; cuts off a torn frame at the end.
    init(directory: String, compactBytes: UInt64 = 64 << 20) throws {
        self.directory = directory
        self.compactBytes = compactBytes
        let spoolPath = directory + "/" + Self.spoolName
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw RecordSpoolError(path: directory, message: "cannot create the directory: \(error.localizedDescription)")
        }
        fd = open(spoolPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw RecordSpoolError(path: spoolPath, message: "cannot open: \(errnoText(errno))") }
        // A lock still held briefly is waited for (up to 0.5 s): the hub it belonged to may be exiting, or a child
        // process another thread of this one is just starting holds a copy of the descriptor until its exec closes it
        // (a flock belongs to the open file, which fork shares; a test run lost a reopen to that once).
        var lockError: Int32 = 0
        for attempt in 0...25 {
            if attempt > 0 { usleep(20_000) }
            lockError = flock(fd, LOCK_EX | LOCK_NB) == 0 ? 0 : errno
            if lockError != EWOULDBLOCK && lockError != EINTR { break }
        }
        if lockError != 0 {
            let e = lockError
            close(fd)
            throw RecordSpoolError(path: spoolPath, message: e == EWOULDBLOCK
                ? "another hub is using this spool directory (it is locked); give each hub its own --spool-dir"
                : "cannot lock: \(errnoText(e))")
        }
        let committedPath = directory + "/" + Self.committedName
        let cfd = open(committedPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard cfd >= 0 else {
            close(fd)
            throw RecordSpoolError(path: committedPath, message: "cannot open: \(errnoText(errno))")
        }
        committedFD = cfd
        var offset: UInt64 = 0
        let n = withUnsafeMutableBytes(of: &offset) { pread(cfd, $0.baseAddress, 8, 0) }
        committed = n == 8 ? UInt64(littleEndian: offset) : 0
        var st = stat()
        fstat(fd, &st)
        let size = UInt64(st.st_size)
        end = committed
        if committed >= size {
            // Everything committed (or the file truncated before the offset was reset).
            committed = size
            end = size
        } else {
            // Whole frames from the committed offset on; a torn or damaged one ends the spool.
            while end < size, let f = frame(at: end, size: size) { end += f.length }
            if end < size { ftruncate(fd, off_t(end)) }
        }
    }

    deinit { abandon() }

    /// Closes the files without anything else, as a killed process would (tests); every later call does nothing.
    func abandon() {
        guard !closed else { return }
        closed = true
        close(fd)
        close(committedFD)
    }

    /// Closed by `abandon`.
    var isClosed: Bool { closed }

    /// Bytes waiting to be committed.
    var pendingBytes: UInt64 { end - committed }

    private func readFully(_ count: Int, at offset: UInt64) -> [UInt8]? {
        var out = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let n = out.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + done, count - done, off_t(offset) + off_t(done)) }
            if n <= 0 { return nil }
            done += n
        }
        return out
    }

    /// The whole frame at `offset` (its length with the header, and its body), or nil if there is none (short, or
    /// damaged).
    private func frame(at offset: UInt64, size: UInt64) -> (length: UInt64, body: [UInt8])? {
        guard size - offset >= UInt64(RecordSpoolCodec.headerBytes),
              let header = readFully(RecordSpoolCodec.headerBytes, at: offset),
              Array(header[0..<4]) == RecordSpoolCodec.magic else { return nil }
        var r = RecordSpoolCodec.Reader(bytes: header, at: 4)
        guard let length = try? r.u32(), let sum = try? r.u32(),
              size - offset - UInt64(RecordSpoolCodec.headerBytes) >= UInt64(length),
              let body = readFully(Int(length), at: offset + UInt64(RecordSpoolCodec.headerBytes)),
              RecordSpoolCodec.checksum(body) == sum else { return nil }
        return (UInt64(RecordSpoolCodec.headerBytes) + UInt64(length), body)
    }

    /// Appends one frame; returns its start and end offsets.
    func append(_ frame: [UInt8]) throws -> (start: UInt64, end: UInt64) {
        guard !closed else { throw RecordSpoolError(path: path, message: "closed") }
        var done = 0
        while done < frame.count {
            let n = frame.withUnsafeBytes { pwrite(fd, $0.baseAddress! + done, frame.count - done, off_t(end) + off_t(done)) }
            if n < 0 {
                if errno == EINTR { continue }
                let why = errnoText(errno)
                // A partial frame stays past `end`: the next append writes over it.
                throw RecordSpoolError(path: path, message: "cannot append \(frame.count) bytes: \(why)")
            }
            done += n
        }
        let start = end
        end += UInt64(frame.count)
        return (start, end)
    }

    /// Syncs the spool file to disk (fdatasync).
    func sync() throws {
        guard !closed else { throw RecordSpoolError(path: path, message: "closed") }
        guard fdatasync(fd) == 0 else { throw RecordSpoolError(path: path, message: "cannot sync: \(errnoText(errno))") }
    }

    /// The batches of the whole frames from `offset` on (up to `end` as it was when called), at most about
    /// `maxRecords` records (at least one frame); and the offset after the last one read.
    func read(from offset: UInt64, upTo limit: UInt64, maxRecords: Int) throws -> (records: [HubRecord], next: UInt64) {
        guard !closed else { throw RecordSpoolError(path: path, message: "closed") }
        var at = offset, out: [HubRecord] = []
        while at < limit {
            guard let (length, body) = frame(at: at, size: limit) else {
                throw RecordSpoolError(path: path, message: "damaged frame at offset \(at)")
            }
            let batch: [HubRecord]
            do { batch = try RecordSpoolCodec.decode(body) } catch {
                throw RecordSpoolError(path: path, message: "undecodable frame at offset \(at)")
            }
            if !out.isEmpty && out.count + batch.count > maxRecords { break }
            out += batch
            at += length
        }
        return (out, at)
    }

    /// Everything below `offset` is in the store; compacts when everything is.
    func commit(through offset: UInt64) throws {
        guard !closed, offset > committed else { return }
        committed = min(offset, end)
        if committed == end && end >= compactBytes {
            // Truncate first, then the offset: a kill between leaves committed > size, read as all committed.
            guard ftruncate(fd, 0) == 0 else { throw RecordSpoolError(path: path, message: "cannot truncate: \(errnoText(errno))") }
            end = 0
            committed = 0
        }
        var v = committed.littleEndian
        let n = withUnsafeBytes(of: &v) { pwrite(committedFD, $0.baseAddress, 8, 0) }
        guard n == 8 else {
            throw RecordSpoolError(path: directory + "/" + Self.committedName, message: "cannot write: \(errnoText(errno))")
        }
    }
}
