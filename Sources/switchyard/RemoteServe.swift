// The API side of `switchyard serve`: the flags, the store in the state
// directory, the configuration to start with, and the services to add.

import API
import ArgumentParser
import Control
import Foundation
import HardwareProfiles
import Logging
import Modbus
import ServiceLifecycle
import Simulation
import Site
import Store
import Synchronization

struct APIOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("API listen address.", valueName: "HOST:PORT"))
    var listen: String = "127.0.0.1:8443"

    @Option(name: .customLong("tls-cert"), help: ArgumentHelp("TLS certificate chain (PEM).", valueName: "FILE"))
    var tlsCert: String?

    @Option(name: .customLong("tls-key"), help: ArgumentHelp("TLS private key (PEM).", valueName: "FILE"))
    var tlsKey: String?

    @Flag(name: .long, help: "Allow plain HTTP on a non-loopback address (tokens travel in clear text).")
    var insecure = false

    @Option(name: .customLong("decision-retention-days"), help: "Keep the per-tick decision log this many days.")
    var decisionRetentionDays: Double = 7

    func validate() throws {
        do { _ = try configuration() } catch { throw ValidationError("\(error)") }
        if !(decisionRetentionDays > 0 && decisionRetentionDays <= 3650) { throw ValidationError("--decision-retention-days must be 0…3650") }
    }

    func configuration() throws -> APIConfiguration {
        try APIConfiguration(listen: listen, tlsCertPath: tlsCert, tlsKeyPath: tlsKey, insecure: insecure)
    }
}

/// serve's site options: `--site` is optional (without it the stored configuration runs).
struct ServeSiteOptions: ParsableArguments {
    @Option(name: .customLong("site"), help: ArgumentHelp("The site file (YAML). Given: it runs, and is stored as a new version if it differs from the stored one. Absent: the stored configuration runs.", valueName: "FILE"))
    var siteFile: String?

    @Option(name: .customLong("initial-site"), help: ArgumentHelp("The site file for a state directory that holds no configuration yet (ignored once one is stored; for service units).", valueName: "FILE"))
    var initialSite: String?

    @Option(name: .customLong("profiles-dir"), help: ArgumentHelp("Extra directory of hardware profiles.", valueName: "DIR"))
    var profilesDir: String?

    func validate() throws {
        if siteFile != nil && initialSite != nil { throw ValidationError("give --site or --initial-site, not both") }
    }

    /// The file named in messages.
    var site: String { siteFile ?? initialSite ?? "the stored configuration" }
}

enum RemoteServe {
    struct Prepared {
        var store: Store
        var site: Site
        var profiles: [String: DeviceProfile]
        var version: ConfigVersion
    }

    /// Opens the store and picks the configuration (see `ConfigBootstrap.resolve`): a given --site wins and is
    /// stored as a new version; otherwise the newest stored version runs. Either way the log says which, loudly.
    static func prepare(stateDir: String, siteOptions: ServeSiteOptions, logger: Logger) throws -> Prepared {
        let store: Store
        do { store = try Store.open(directory: stateDir) } catch {
            printError("error: \(error)")
            throw ExitCode(ExitCodes.unreachable)
        }
        var file = siteOptions.siteFile
        if file == nil, let initial = siteOptions.initialSite, (try? store.latestConfig()) == nil { file = initial }
        let fileYAML = try file.map { try readFile($0) }
        let resolved: ConfigBootstrap.Resolved
        do {
            resolved = try ConfigBootstrap.resolve(store: store, siteFile: file, siteYAML: fileYAML, now: Date().timeIntervalSince1970,
                                                   actor: "local:serve", stateDir: stateDir)
        } catch let e as ConfigBootstrap.BootstrapError {
            printError("error: \(e)")
            throw ExitCode(ExitCodes.usage)
        }
        let v = resolved.version
        let meta: Logger.Metadata = ["config.version": "\(v.version)", "config.sha256": "\(v.sha256.prefix(12))", "state.dir": "\(stateDir)"]
        if let old = resolved.replaced, let file {
            let line = "configuration: --site \(file) differs from the stored v\(old.version) (\(old.comment)); the file wins and is stored as v\(v.version)"
            printError("NOTICE: " + line)
            logger.warning("\(line)", metadata: meta)
        } else if let file, !resolved.fromStore {
            logger.notice("configuration: \(file) imported as v\(v.version)", metadata: meta)
        } else if let file {
            logger.notice("configuration: --site \(file) is identical to the stored v\(v.version); running it", metadata: meta)
        } else {
            let line = "configuration: no --site given; running the stored v\(v.version) (\(v.comment), by \(v.author)) from \(stateDir)"
            printError("NOTICE: " + line)
            logger.warning("\(line)", metadata: meta)
        }
        let name = resolved.fromStore ? "config v\(v.version)" : (file ?? "config v\(v.version)")
        let site: Site
        do { site = try Site.parse(yaml: v.yaml, file: name) } catch {
            printError("\(error)")
            throw ExitCode(ExitCodes.validation)
        }
        do {
            return Prepared(store: store, site: site, profiles: try loadProfiles(for: site, registry: .standard(profilesDir: siteOptions.profilesDir)), version: v)
        } catch {
            printError("\(name): error: \(error)")
            throw ExitCode(ExitCodes.validation)
        }
    }

    struct APIStack {
        var recorder: TickRecorder
        var services: [any Service]
    }

    /// The HTTP API and the recorder, as services. Prints "switchyard API listening on URL" once bound.
    static func services(options: APIOptions, store: Store, host: LoopHost, now: @escaping @Sendable () -> Double,
                         logger: Logger) throws -> APIStack {
        let config = try options.configuration()
        let metrics = MetricsRegistry.bootstrap(site: host.current.site.id)
        let recorder = TickRecorder(store: store, metrics: metrics, decisionRetentionS: options.decisionRetentionDays * 86_400)
        let deps = APIDependencies(store: store, runtime: HostedRuntime(host: host, now: now), metrics: metrics, logger: logger)
        if !config.usesTLS && !config.isLoopback {
            printError("WARNING: --insecure: the API listens on \(options.listen) WITHOUT TLS; bearer tokens can be sniffed on this network")
        }
        let scheme = config.usesTLS ? "https" : "http"
        let hostText = config.host.contains(":") ? "[\(config.host)]" : config.host
        let app = try makeAPIService(config: config, deps: deps) { port in
            print("switchyard API listening on \(scheme)://\(hostText):\(port)")
            fflushStdout()
        }
        return APIStack(recorder: recorder, services: [makeStoreService(recorder: recorder, logger: logger), app])
    }
}

/// One Modbus client per endpoint for the daemon's lifetime, shared across
/// configuration changes (devices limit their TCP connections; never open a second).
final class ModbusClientPool: Sendable {
    let clients = Mutex<[ModbusEndpoint: ModbusClient]>([:])

    func buses(for site: Site) -> [String: any RegisterBus] {
        var buses: [String: any RegisterBus] = [:]
        for d in site.devices {
            guard let a = d.address else { continue }
            let endpoint: ModbusEndpoint
            switch a {
            case let .tcp(host, port, _): endpoint = .tcp(host: host, port: port)
            case let .rtu(dev, baud, parity, dataBits, stopBits, _):
                endpoint = .rtu(RTUSettings(device: dev, baud: baud, parity: Modbus.Parity(rawValue: parity.rawValue) ?? .none,
                                            dataBits: dataBits, stopBits: stopBits))
            }
            let client = clients.withLock { c in
                if let existing = c[endpoint] { return existing }
                let n = ModbusClient(endpoint: endpoint, options: .init(responseTimeout: .milliseconds(500)))
                c[endpoint] = n
                return n
            }
            buses[d.id] = client.bus(unit: a.unit, deviceName: "\(d.id) (\(endpoint))")
        }
        return buses
    }
}
