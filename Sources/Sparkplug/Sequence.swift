// seq and bdSeq (Sparkplug 3.0).
//
// seq: NBIRTH carries 0; every later message from the edge node (DBIRTH, NDATA, DDATA, DDEATH)
// carries the previous value + 1, wrapping 255 -> 0. NDEATH carries no seq.
// bdSeq: one value per MQTT session, in the NDEATH registered as the will and in the NBIRTH of
// that session; the next session uses the next value (wrapping 255 -> 0). Kept across restarts.

import Foundation

/// The message sequence number, 0...255, wrapping.
public struct SparkplugSeq: Sendable, Hashable, CustomStringConvertible {
    public private(set) var value: UInt8

    public init(_ value: UInt8 = 0) { self.value = value }

    /// The number for the next message after `value` (255 -> 0).
    public var next: SparkplugSeq { SparkplugSeq(value &+ 1) }

    public var description: String { "\(value)" }
}

/// The birth/death sequence number of one MQTT session, 0...255, wrapping.
public struct BdSeq: Sendable, Hashable, CustomStringConvertible {
    public let value: UInt8
    public init(_ value: UInt8) { self.value = value }
    public var next: BdSeq { BdSeq(value &+ 1) }
    public var description: String { "\(value)" }
}

/// Where the last used bdSeq is kept across restarts.
public protocol BdSeqStore: Sendable {
    /// The bdSeq of the last session started, or nil if none was ever started.
    func load() throws -> BdSeq?
    func save(_ bdSeq: BdSeq) throws
}

/// A bdSeq kept in a small text file ("17\n"), replaced atomically (write, fsync, rename).
public struct FileBdSeqStore: BdSeqStore {
    public let path: String

    public init(path: String) { self.path = path }

    public func load() throws -> BdSeq? {
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        let text = try String(contentsOfFile: path, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        guard let v = UInt8(text) else {
            throw SparkplugStoreError.corrupt(path: path, line: 1, text: text)
        }
        return BdSeq(v)
    }

    public func save(_ bdSeq: BdSeq) throws {
        let tmp = path + ".tmp"
        let data = Data("\(bdSeq.value)\n".utf8)
        guard FileManager.default.createFile(atPath: tmp, contents: data) else {
            throw SparkplugStoreError.writeFailed(path: tmp)
        }
        let fd = open(tmp, O_RDONLY)
        if fd >= 0 { fsync(fd); close(fd) }
        guard rename(tmp, path) == 0 else { throw SparkplugStoreError.writeFailed(path: path) }
    }
}

public enum SparkplugStoreError: Error, Sendable, Hashable, CustomStringConvertible {
    case corrupt(path: String, line: Int, text: String)
    case writeFailed(path: String)

    public var description: String {
        switch self {
        case let .corrupt(path, line, text): "\(path):\(line): not a bdSeq (0-255): '\(text)'"
        case let .writeFailed(path): "\(path): cannot write the bdSeq"
        }
    }
}
