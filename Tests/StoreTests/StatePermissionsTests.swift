import Foundation
import Testing
@testable import Store

/// The permission bits of `path` (-1 if it cannot be read).
func posixMode(_ path: String) -> Int {
    ((try? FileManager.default.attributesOfItem(atPath: path))?[.posixPermissions] as? Int).map { $0 & 0o777 } ?? -1
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
        #expect(posixMode(dir) == 0o700, "state dir is \(octal(posixMode(dir)))")
        for f in try FileManager.default.contentsOfDirectory(atPath: dir) where f.hasPrefix("switchyard.sqlite") {
            #expect(posixMode(dir + "/" + f) == 0o600, "\(f) is \(octal(posixMode(dir + "/" + f)))")
        }
        #expect(FileManager.default.fileExists(atPath: dir + "/switchyard.sqlite"))
    }

    @Test func anExistingOpenStateDirIsTightened() throws {
        let dir = freshDir()
        defer { try? FileManager.default.removeItem(atPath: (dir as NSString).deletingLastPathComponent) }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        FileManager.default.createFile(atPath: dir + "/switchyard.sqlite", contents: nil, attributes: [.posixPermissions: 0o644])
        _ = try Store.open(directory: dir)
        #expect(posixMode(dir) == 0o700)
        #expect(posixMode(dir + "/switchyard.sqlite") == 0o600)
    }
}
