// The daemon's start: the store in the state directory, the configuration to start with,
// and the API services to add.

import API
import Basics
import Control
import Foundation
import HardwareProfiles
import Logging
import ServiceLifecycle
import Site
import Store

enum Startup {
    struct Prepared {
        var store: Store
        var site: Site
        var profiles: [String: DeviceProfile]
        var version: ConfigVersion
    }

    /// Opens the store and picks the configuration (see `ConfigBootstrap.resolve`): a given --site wins and is
    /// stored as a new version; otherwise the newest stored version runs. Either way the log says which, loudly.
    static func prepare(_ config: DaemonConfig, logger: Logger) throws -> Prepared {
        let stateDir = config.stateDir
        let store: Store
        do { store = try Store.open(directory: stateDir) } catch {
            throw DaemonError(.unreachable, "error: \(error)")
        }
        var file = config.siteFile
        if file == nil, let initial = config.initialSite, (try? store.latestConfig()) == nil { file = initial }
        let fileYAML = try file.map { path in
            do { return try String(contentsOfFile: path, encoding: .utf8) } catch {
                throw DaemonError(.validation, "\(path): error: cannot read: \(error.localizedDescription)")
            }
        }
        let resolved: ConfigBootstrap.Resolved
        do {
            resolved = try ConfigBootstrap.resolve(store: store, siteFile: file, siteYAML: fileYAML, now: Date().timeIntervalSince1970,
                                                   actor: "local:serve", stateDir: stateDir)
        } catch let e as ConfigBootstrap.BootstrapError {
            throw DaemonError(.usage, "error: \(e)")
        }
        let v = resolved.version
        let meta: Logger.Metadata = ["config.version": "\(v.version)", "config.sha256": "\(v.sha256.prefix(12))", "state.dir": "\(stateDir)"]
        if let old = resolved.replaced, let file {
            let line = "configuration: --site \(file) differs from the stored v\(old.version) (\(old.comment)); the file wins and is stored as v\(v.version)"
            writeErrorLine("NOTICE: " + line)
            logger.warning("\(line)", metadata: meta)
        } else if let file, !resolved.fromStore {
            logger.notice("configuration: \(file) imported as v\(v.version)", metadata: meta)
        } else if let file {
            logger.notice("configuration: --site \(file) is identical to the stored v\(v.version); running it", metadata: meta)
        } else {
            let line = "configuration: no --site given; running the stored v\(v.version) (\(v.comment), by \(v.author)) from \(stateDir)"
            writeErrorLine("NOTICE: " + line)
            logger.warning("\(line)", metadata: meta)
        }
        let name = resolved.fromStore ? "config v\(v.version)" : (file ?? "config v\(v.version)")
        let site: Site
        do { site = try Site.parse(yaml: v.yaml, file: name) } catch {
            throw DaemonError(.validation, "\(error)")
        }
        do {
            return Prepared(store: store, site: site, profiles: try profiles(for: site, profilesDir: config.profilesDir), version: v)
        } catch {
            throw DaemonError(.validation, "\(name): error: \(error)")
        }
    }

    /// Every profile a site names, from the standard search path (and `profilesDir`).
    static func profiles(for site: Site, profilesDir: String?) throws -> [String: DeviceProfile] {
        try ProfileRegistry.standard(profilesDir: profilesDir).load(each: site.devices.compactMap(\.profile))
    }

    struct APIStack {
        var recorder: TickRecorder
        var services: [any Service]
    }

    /// The HTTP API and the recorder, as services. Calls `onListening` with the bound port.
    static func services(_ config: DaemonConfig, store: Store, host: LoopHost, now: @escaping @Sendable () -> Double,
                         logger: Logger, onListening: @escaping @Sendable (_ url: String, _ port: Int) -> Void) throws -> APIStack {
        let api = try APIConfiguration(listen: config.listen, tlsCertPath: config.tlsCert, tlsKeyPath: config.tlsKey, insecure: config.insecure)
        let metrics = MetricsRegistry.bootstrap(site: host.current.site.id)
        let recorder = TickRecorder(store: store, metrics: metrics, decisionRetentionS: config.decisionRetentionDays * 86_400)
        let deps = APIDependencies(store: store, runtime: HostedRuntime(host: host, now: now), metrics: metrics, logger: logger)
        if !api.usesTLS && !api.isLoopback {
            writeErrorLine("WARNING: --insecure: the API listens on \(config.listen) WITHOUT TLS; bearer tokens can be sniffed on this network")
        }
        let app = try makeAPIService(config: api, deps: deps) { port in onListening(api.url(port: port), port) }
        return APIStack(recorder: recorder, services: [makeStoreService(recorder: recorder, logger: logger), app])
    }
}
