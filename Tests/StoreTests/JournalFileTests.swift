import Foundation
import Testing
@testable import Store

@Suite("Private journal files")
struct JournalFileTests {
    func dir() throws -> String {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("sy-journal-\(UUID().uuidString)").path
        try PrivateFiles.prepareDirectory(d)
        return d
    }

    @Test func atomicWritesArePrivateAndReplace() throws {
        let d = try dir()
        defer { try? FileManager.default.removeItem(atPath: d) }
        let path = d + "/openadr-reports.json"
        try PrivateFiles.writeAtomically(Data("[1]".utf8), to: path)
        try PrivateFiles.writeAtomically(Data("[2]".utf8), to: path)
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "[2]")
        #expect(posixMode(path) == 0o600)
        #expect(!FileManager.default.fileExists(atPath: path + ".tmp"))
    }

    @Test func aCorruptJournalIsMovedAsideNotIgnored() throws {
        let d = try dir()
        defer { try? FileManager.default.removeItem(atPath: d) }
        let path = d + "/openadr-reports.json"
        try Data("{\"pending\": [tru".utf8).write(to: URL(fileURLWithPath: path))
        let r = PrivateFiles.loadOrQuarantine(path, now: Date(timeIntervalSince1970: 1_784_116_800)) {
            try JSONSerialization.jsonObject(with: $0)
        }
        guard case .quarantined(let movedTo, let error) = r else { Issue.record("not quarantined: \(r)"); return }
        #expect(movedTo == path + ".corrupt-1784116800")
        #expect(!error.isEmpty)
        #expect(!FileManager.default.fileExists(atPath: path), "the corrupt file must not stay in the way")
        #expect(try String(contentsOfFile: movedTo, encoding: .utf8) == "{\"pending\": [tru", "the bytes are kept for inspection")
        // Absent and good files.
        guard case .absent = PrivateFiles.loadOrQuarantine(path, decode: { $0 }) else { Issue.record("expected absent"); return }
        try PrivateFiles.writeAtomically(Data("[3]".utf8), to: path)
        guard case .loaded(let v) = PrivateFiles.loadOrQuarantine(path, decode: { try JSONSerialization.jsonObject(with: $0) as? [Int] }) else {
            Issue.record("expected loaded"); return
        }
        #expect(v == [3])
        // A second corruption in the same second does not overwrite the first copy.
        try Data("x".utf8).write(to: URL(fileURLWithPath: path))
        guard case .quarantined(let second, _) = PrivateFiles.loadOrQuarantine(path, now: Date(timeIntervalSince1970: 1_784_116_800), decode: {
            try JSONSerialization.jsonObject(with: $0)
        }) else { Issue.record("not quarantined"); return }
        #expect(second != movedTo && FileManager.default.fileExists(atPath: movedTo))
    }
}
