// Where an API listens, and with what TLS: the site API (`serve`) and the fleet hub (`hub`) take the same
// --listen, --tls-cert, --tls-key and --insecure, and refuse plain HTTP on a non-loopback address unless told.

import Foundation
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import NIOSSL
#if canImport(Glibc)
import Glibc
#endif

public struct ListenConfiguration: Sendable {
    /// The host as given (shown in the listening URL).
    public var host: String
    /// The numeric address the server binds: the first address `host` resolved to (IPv4 first), so the
    /// loopback check and the bind look at the same address.
    public var bindAddress: String
    /// Every address `host` resolved to.
    public var addresses: [String]
    public var port: Int
    public var tlsCertPath: String?
    public var tlsKeyPath: String?
    public var insecure: Bool

    public init(listen: String, tlsCertPath: String? = nil, tlsKeyPath: String? = nil, insecure: Bool = false,
                resolve: (String) throws -> [String] = ListenConfiguration.resolve) throws {
        guard let (h, p) = Self.parseListen(listen) else {
            throw ListenConfigError("--listen '\(listen)' is not HOST:PORT (e.g. 127.0.0.1:8443 or [::1]:8443)")
        }
        host = h
        port = p
        let resolved = try resolve(h)
        guard !resolved.isEmpty else { throw ListenConfigError("--listen '\(listen)': '\(h)' resolves to no address") }
        addresses = resolved
        bindAddress = resolved.first { !$0.contains(":") } ?? resolved[0]
        self.tlsCertPath = tlsCertPath
        self.tlsKeyPath = tlsKeyPath
        self.insecure = insecure
        if (tlsCertPath == nil) != (tlsKeyPath == nil) { throw ListenConfigError("give both --tls-cert and --tls-key, or neither") }
        if !usesTLS && !isLoopback && !insecure {
            let shown = addresses == [host] ? "" : " (\(host) is \(addresses.joined(separator: ", ")))"
            throw ListenConfigError("refusing to listen on \(listen)\(shown) without TLS: give --tls-cert and --tls-key, or --insecure")
        }
    }

    public var usesTLS: Bool { tlsCertPath != nil }
    /// True when every address the host resolved to is a loopback address (127.0.0.0/8, ::1,
    /// ::ffff:127.x): the name itself proves nothing ("127.0.0.1.nip.io" is a name anyone can point anywhere).
    public var isLoopback: Bool { addresses.allSatisfy(Self.isLoopbackAddress) }

    /// A numeric address in 127.0.0.0/8 or ::1 (or IPv4-mapped 127.x).
    public static func isLoopbackAddress(_ a: String) -> Bool {
        var v4 = in_addr()
        if inet_pton(AF_INET, a, &v4) == 1 { return (UInt32(bigEndian: v4.s_addr) >> 24) == 127 }
        var v6 = in6_addr()
        guard inet_pton(AF_INET6, a, &v6) == 1 else { return false }
        let b = withUnsafeBytes(of: &v6) { Array($0) }
        if b[0..<15].allSatisfy({ $0 == 0 }) && b[15] == 1 { return true }
        return b[0..<10].allSatisfy { $0 == 0 } && b[10] == 0xff && b[11] == 0xff && b[12] == 127
    }

    /// The numeric addresses of `host` (getaddrinfo; a literal address is returned as is). Throws if it does not resolve.
    public static func resolve(_ host: String) throws -> [String] {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var res: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, nil, &hints, &res)
        guard rc == 0, let first = res else {
            throw ListenConfigError("--listen: cannot resolve '\(host)': \(String(cString: gai_strerror(rc)))")
        }
        defer { freeaddrinfo(first) }
        func text(_ b: [CChar]) -> String { String(decoding: b.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) }
        var out: [String] = []
        var p: UnsafeMutablePointer<addrinfo>? = first
        while let ai = p {
            var buf = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
            if ai.pointee.ai_family == AF_INET, let sa = ai.pointee.ai_addr {
                var a = sa.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_addr }
                if inet_ntop(AF_INET, &a, &buf, socklen_t(buf.count)) != nil { out.append(text(buf)) }
            } else if ai.pointee.ai_family == AF_INET6, let sa = ai.pointee.ai_addr {
                var a = sa.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee.sin6_addr }
                if inet_ntop(AF_INET6, &a, &buf, socklen_t(buf.count)) != nil { out.append(text(buf)) }
            }
            p = ai.pointee.ai_next
        }
        var seen = Set<String>()
        return out.filter { seen.insert($0).inserted }
    }

    public static func parseListen(_ s: String) -> (String, Int)? {
        var host: Substring, port: Substring
        if s.hasPrefix("[") {
            guard let close = s.firstIndex(of: "]"), s[s.index(after: close)...].hasPrefix(":") else { return nil }
            host = s[s.index(after: s.startIndex)..<close]
            port = s[s.index(close, offsetBy: 2)...]
        } else {
            guard let colon = s.lastIndex(of: ":") else { return nil }
            host = s[..<colon]
            port = s[s.index(after: colon)...]
        }
        guard !host.isEmpty, let p = Int(port), (0...65535).contains(p) else { return nil }
        return (String(host), p)
    }
}

public struct ListenConfigError: Error, CustomStringConvertible {
    public var description: String
    public init(_ d: String) { description = d }
}


extension ListenConfiguration {
    /// The HTTP/1 server, over TLS from the PEM files when they are given.
    public func serverBuilder() throws -> HTTPServerBuilder {
        try Self.serverBuilder(tlsCertPath: tlsCertPath, tlsKeyPath: tlsKeyPath)
    }

    /// The HTTP/1 server, over TLS when both PEM files are given (a certificate chain and its private key).
    public static func serverBuilder(tlsCertPath: String?, tlsKeyPath: String?) throws -> HTTPServerBuilder {
        guard let cert = tlsCertPath, let key = tlsKeyPath else { return .http1() }
        do {
            let tls = TLSConfiguration.makeServerConfiguration(certificateChain: try NIOSSLCertificate.fromPEMFile(cert).map { .certificate($0) },
                                                               privateKey: .privateKey(try NIOSSLPrivateKey(file: key, format: .pem)))
            return try .tls(.http1(), tlsConfiguration: tls)
        } catch {
            throw ListenConfigError("TLS: cannot load \(cert) / \(key): \(error)")
        }
    }

    /// The URL clients use: http(s)://host:port (the port as bound).
    public func url(port: Int) -> String {
        let shownHost = host.contains(":") ? "[\(host)]" : host
        return "\(usesTLS ? "https" : "http")://\(shownHost):\(port)"
    }
}
