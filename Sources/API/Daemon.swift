// Wiring for `switchyard serve`: the store, the stored configuration on start,
// the tick recorder and the HTTP application as services.

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
        /// True when the stored version was used instead of the file given on the command line.
        public var fromStore: Bool
        public var fileDiffers: Bool
    }

    /// The configuration to start with: the newest stored version if there is one
    /// (restart resumes from it), otherwise the site file, stored as version 1.
    public static func resolve(store: Store, siteFile: String, siteYAML: String, now: Double, actor: String) throws -> Resolved {
        if let latest = try store.latestConfig() {
            return Resolved(version: latest, fromStore: true, fileDiffers: latest.sha256 != SHA256.hex(siteYAML))
        }
        let v = try store.appendConfig(yaml: siteYAML, author: actor, comment: "initial: imported from \(siteFile)", at: now, expected: 0,
                                       audit: AuditEntry(at: now, actor: actor, role: "local", action: "serve: import site file",
                                                         status: 0, detail: siteFile))
        return Resolved(version: v, fromStore: false, fileDiffers: false)
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
