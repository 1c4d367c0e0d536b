// Wiring for `switchyard serve`: the store, the stored configuration on start,
// the tick recorder and the HTTP application as services.

import Basics
import Control
import Foundation
import Hummingbird
import Logging
import ServiceLifecycle
import Site
import Store

public enum ConfigBootstrap {
    public struct Resolved: Sendable {
        public var version: ConfigVersion
        /// True when the stored version runs (no --site given, or --site identical to it).
        public var fromStore: Bool
        /// The stored version the --site file replaced (it differed), if any.
        public var replaced: ConfigVersion?
    }

    public enum BootstrapError: Error, CustomStringConvertible {
        case nothingToRun(stateDir: String)
        public var description: String {
            switch self {
            case .nothingToRun(let dir): "no --site given and no stored configuration in \(dir): give --site FILE for the first start"
            }
        }
    }

    /// The configuration to start with. One rule, with no silent winner:
    /// * `--site` given: it wins. If it differs from the newest stored version (or none is stored) it is
    ///   stored as a new version, so history shows the switch; if identical, the stored version runs.
    /// * no `--site`: the newest stored version runs (a restart resumes what the API applied).
    public static func resolve(store: Store, siteFile: String?, siteYAML: String?, now: Double, actor: String,
                               stateDir: String = "the state directory") throws -> Resolved {
        let latest = try store.latestConfig()
        guard let siteFile, let siteYAML else {
            guard let latest else { throw BootstrapError.nothingToRun(stateDir: stateDir) }
            return Resolved(version: latest, fromStore: true, replaced: nil)
        }
        if let latest, latest.sha256 == SHA256.hex(siteYAML) { return Resolved(version: latest, fromStore: true, replaced: nil) }
        let comment = latest.map { "serve --site \(siteFile): replaces v\($0.version)" } ?? "initial: imported from \(siteFile)"
        let v = try store.appendConfig(yaml: siteYAML, author: actor, comment: comment, at: now, expected: latest?.version ?? 0,
                                       audit: AuditEntry(at: now, actor: actor, role: "local", action: "serve --site", status: 0, detail: siteFile))
        return Resolved(version: v, fromStore: false, replaced: latest)
    }
}

/// The API's HTTP service (a Hummingbird `Application`).
public func makeAPIService(config: APIConfiguration, deps: APIDependencies,
                           onListening: @escaping @Sendable (Int) -> Void = { _ in }) throws -> some Service {
    try buildApplication(config, deps: deps, onListening: onListening)
}

/// The store-side services of the daemon: the recorder (decisions, series, events).
public func makeStoreService(recorder: TickRecorder, logger: Logger) -> some Service {
    RecorderService(recorder: recorder, logger: logger)
}
