// Test support: a throwaway PKI made with openssl for one test: a CA ("ca"), another CA ("other-ca"),
// the broker's certificate for 127.0.0.1 ("server"), a site's ("site", CN site-7), a head office's ("hq",
// CN hq) and a stranger's from the other CA ("stranger", CN site-7). Files are `<name>.crt` / `<name>.key`.

import Foundation

/// A throwaway PKI in a temporary directory.
public struct TestPKI: Sendable {
    public let dir: URL
    public func path(_ name: String) -> String { dir.appendingPathComponent(name).path }

    public static func make() throws -> TestPKI {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sy-pki-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        chmod(dir.path, 0o755)
        let pki = TestPKI(dir: dir)
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        for ca in ["ca", "other-ca"] {
            try openssl(["req", "-x509"] + ec + ["-keyout", pki.path("\(ca).key"), "-out", pki.path("\(ca).crt"), "-days", "2",
                                                 "-subj", "/CN=Switchyard test \(ca)"])
        }
        try pki.issue("server", cn: "127.0.0.1", by: "ca", san: "IP:127.0.0.1,DNS:localhost")
        try pki.issue("site", cn: "site-7", by: "ca")
        try pki.issue("hq", cn: "hq", by: "ca")
        try pki.issue("stranger", cn: "site-7", by: "other-ca")
        // mosquitto started as root drops to its own user: it must read the broker's key.
        for f in try FileManager.default.contentsOfDirectory(atPath: dir.path) { chmod(pki.path(f), 0o644) }
        return pki
    }

    public func issue(_ name: String, cn: String, by ca: String, san: String? = nil) throws {
        try Self.openssl(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                          "-keyout", path("\(name).key"), "-out", path("\(name).csr"), "-subj", "/CN=\(cn)"])
        var args = ["x509", "-req", "-in", path("\(name).csr"), "-CA", path("\(ca).crt"), "-CAkey", path("\(ca).key"),
                    "-CAcreateserial", "-out", path("\(name).crt"), "-days", "2"]
        if let san {
            try "subjectAltName=\(san)\n".write(toFile: path("\(name).ext"), atomically: true, encoding: .utf8)
            args += ["-extfile", path("\(name).ext")]
        }
        try Self.openssl(args)
    }

    public static func openssl(_ args: [String]) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        p.arguments = args
        let err = Pipe()
        p.standardError = err
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { throw TestSupportError.peerFailed("openssl \(args.joined(separator: " ")): \(text)") }
    }

    public func remove() { try? FileManager.default.removeItem(at: dir) }
}

