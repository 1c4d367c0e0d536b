import Foundation
import Testing
@testable import Store

func posixMode(_ path: String) throws -> Int {
    try #require(FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int) & 0o777
}

func octal(_ m: Int) -> String { String(m, radix: 8) }

@Suite("State directory permissions")
struct StatePermissionsTests {
    func freshDir() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("sy-perm-\(UUID().uuidString)").appendingPathComponent("state").path
    }

    @Test func newStateDirIs0700AndTheDatabase0600() throws {
        let dir = freshDir()
        defer { try? FileManager.default.removeItem(atPath: (dir as NSString).deletingLastPathComponent) }
        let store = try Store.open(directory: dir)
        _ = try Tokens.create(in: store, name: "a", role: .admin, createdBy: "t", creatorRole: "local", at: 0, validForS: nil, action: "x", status: 0)
        #expect(try posixMode(dir) == 0o700, "state dir is \(octal(try posixMode(dir)))")
        for f in try FileManager.default.contentsOfDirectory(atPath: dir) where f.hasPrefix("switchyard.sqlite") {
            #expect(try posixMode(dir + "/" + f) == 0o600, "\(f) is \(octal(try posixMode(dir + "/" + f)))")
        }
        #expect(FileManager.default.fileExists(atPath: dir + "/switchyard.sqlite"))
    }

    @Test func anExistingOpenStateDirIsTightened() throws {
        let dir = freshDir()
        defer { try? FileManager.default.removeItem(atPath: (dir as NSString).deletingLastPathComponent) }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        FileManager.default.createFile(atPath: dir + "/switchyard.sqlite", contents: nil, attributes: [.posixPermissions: 0o644])
        _ = try Store.open(directory: dir)
        #expect(try posixMode(dir) == 0o700)
        #expect(try posixMode(dir + "/switchyard.sqlite") == 0o600)
    }
}
