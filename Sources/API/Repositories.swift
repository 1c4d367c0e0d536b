// What the API needs from storage, behind Sendable protocols. `Store` (GRDB)
// implements them all; tests can substitute any of them.

import Basics
import Control
import Foundation
import Site
import Store

public protocol TokenRepository: Sendable {
    func token(hash: String) throws -> TokenRecord?
    /// The same lookup without blocking a cooperative thread (the auth middleware runs on every request).
    func tokenAsync(hash: String) async throws -> TokenRecord?
    func tokens() throws -> [TokenRecord]
    func insertToken(_ t: TokenRecord, audit: AuditEntry?) throws
    func revokeToken(id: String, at: Double, audit: AuditEntry?) throws -> Bool
}

public protocol AuditRepository: Sendable {
    func audit(_ entry: AuditEntry) throws
    /// The same write without blocking a cooperative thread.
    func auditAsync(_ entry: AuditEntry) async throws
    func auditLog(limit: Int) throws -> [AuditEntry]
}

public protocol ConfigRepository: Sendable {
    func latestConfig() throws -> ConfigVersion?
    func config(version: Int) throws -> ConfigVersion?
    func configHistory(limit: Int) throws -> [ConfigVersion]
    func appendConfig(yaml: String, author: String, comment: String, at: Double, expected: Int,
                      rollbackOf: Int?, audit: AuditEntry?) throws -> ConfigVersion
}

public protocol EventLogRepository: Sendable {
    func logEvents(_ entries: [EventEntry]) throws
    func eventLog(limit: Int, kind: EventEntry.Kind?) throws -> [EventEntry]
}

extension Store: TokenRepository, AuditRepository, ConfigRepository, EventLogRepository {}

/// The running controller, as the API sees it.
public protocol SiteRuntime: Sendable {
    /// The loop in force now (it changes when a configuration is applied).
    var loop: ControlLoop { get }
    /// Loop time now (seconds since 1970).
    func now() -> Double
    /// Parses and fully validates a site file (profiles, wiring) with the daemon's own validator.
    func validate(yaml: String, file: String) throws -> Site
    /// Applies a validated site at the next tick boundary; returns when it is in force.
    func apply(_ site: Site, version: Int) async throws
}

/// The production runtime: a `LoopHost` ticking under `HostedControlLoopService`.
public struct HostedRuntime: SiteRuntime {
    public let host: LoopHost
    let clock: @Sendable () -> Double

    public init(host: LoopHost, now: @escaping @Sendable () -> Double) {
        self.host = host
        self.clock = now
    }

    public var loop: ControlLoop { host.current }
    public func now() -> Double { clock() }

    public func validate(yaml: String, file: String) throws -> Site {
        try SiteValidator.validate(yaml: yaml, file: file) { site in try host.validate(site) }
    }

    public func apply(_ site: Site, version: Int) async throws {
        _ = try await host.apply(site, label: "v\(version)")
    }
}

/// One validator for the CLI (`config validate`) and the daemon: the site parser
/// (file:line:column errors), then the wiring check (profiles load, devices map).
public enum SiteValidator {
    /// The one line both the CLI and the API print for a validation error: `file:line:column: message`,
    /// with any line breaks inside the message folded, so a terminal or a JSON client sees one line.
    public static func oneLine(_ error: any Error, file: String) -> String {
        let text: String
        if let e = error as? LocatedError {
            text = e.description
        } else {
            text = "\(file):1:1: \(error)"
        }
        return text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            .joined(separator: " | ")
    }

    public static func validate(yaml: String, file: String, wiring: (Site) throws -> Void) throws -> Site {
        let site = try Site.parse(yaml: yaml, file: file)
        do { try wiring(site) } catch {
            throw LocatedError(file: file, line: 1, column: 1, message: "\(error)")
        }
        return site
    }
}
