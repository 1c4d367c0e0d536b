// `switchyard hub`: the fleet's Sparkplug primary host, its PostgreSQL store and the fleet API (docs/fleet.md).
// `switchyard hub token create`: a fleet API token, written straight into the hub's database.

import ArgumentParser
import Basics
import Foundation
import HTTPBasics
import Hub
import Logging
import ServiceLifecycle
import Sparkplug

/// Where the hub's PostgreSQL is, and how to reach it (libpq's PG* variables are the defaults).
struct PostgresOptions: ParsableArguments {
    @Option(name: .customLong("pg-host"), help: ArgumentHelp("PostgreSQL host (else $PGHOST, else 127.0.0.1).", valueName: "HOST"))
    var pgHost: String?
    @Option(name: .customLong("pg-port"), help: ArgumentHelp("PostgreSQL port (else $PGPORT, else 5432).", valueName: "PORT"))
    var pgPort: Int?
    @Option(name: .customLong("pg-user"), help: ArgumentHelp("PostgreSQL user (else $PGUSER, else postgres).", valueName: "USER"))
    var pgUser: String?
    @Option(name: .customLong("pg-database"), help: ArgumentHelp("PostgreSQL database (else $PGDATABASE, else the user's name).", valueName: "DB"))
    var pgDatabase: String?
    @Option(name: .customLong("pg-password-file"), help: ArgumentHelp("A file holding the PostgreSQL password (else $PGPASSWORD).", valueName: "FILE"))
    var pgPasswordFile: String?
    @Option(name: .customLong("pg-sslmode"), help: ArgumentHelp("disable, prefer, require, verify-ca or verify-full, as libpq (else $PGSSLMODE, else prefer).", valueName: "MODE"))
    var pgSSLMode: String?
    @Option(name: .customLong("pg-sslrootcert"), help: ArgumentHelp("CA certificates (PEM) that sign the server's certificate, for verify-ca and verify-full (else $PGSSLROOTCERT, else the system's).", valueName: "FILE"))
    var pgSSLRootCert: String?
    @Option(name: .customLong("pg-sslcert"), help: ArgumentHelp("Client certificate (PEM), for servers that ask for one (else $PGSSLCERT).", valueName: "FILE"))
    var pgSSLCert: String?
    @Option(name: .customLong("pg-sslkey"), help: ArgumentHelp("The client certificate's key (PEM) (else $PGSSLKEY).", valueName: "FILE"))
    var pgSSLKey: String?

    func validate() throws {
        if let p = pgPort, !(1...65535).contains(p) { throw ValidationError("--pg-port must be 1…65535") }
        let env = ProcessInfo.processInfo.environment
        if let m = pgSSLMode ?? env["PGSSLMODE"], HubStoreTLS.Mode(rawValue: m) == nil {
            throw ValidationError("--pg-sslmode '\(m)' is not one of \(HubStoreTLS.Mode.allCases.map(\.rawValue).joined(separator: ", "))")
        }
    }

    /// The store's configuration; reads the password file (an unreadable one is an error naming it).
    func configuration() throws -> HubStoreConfiguration {
        let env = ProcessInfo.processInfo.environment
        let user = pgUser ?? env["PGUSER"] ?? "postgres"
        let password = try pgPasswordFile.map { try readSecretFile($0, option: "--pg-password-file") } ?? env["PGPASSWORD"]
        let tls = HubStoreTLS(mode: HubStoreTLS.Mode(rawValue: pgSSLMode ?? env["PGSSLMODE"] ?? "prefer") ?? .prefer,
                              rootCertFile: pgSSLRootCert ?? env["PGSSLROOTCERT"], certFile: pgSSLCert ?? env["PGSSLCERT"],
                              keyFile: pgSSLKey ?? env["PGSSLKEY"])
        _ = try tls.tlsConfiguration()  // the files named are read now, so a bad one is refused before anything starts
        return HubStoreConfiguration(host: pgHost ?? env["PGHOST"] ?? "127.0.0.1", port: pgPort ?? env["PGPORT"].flatMap { Int($0) } ?? 5432,
                                     username: user, password: password, database: pgDatabase ?? env["PGDATABASE"] ?? user, tls: tls)
    }
}

/// How the hub reaches the MQTT broker: credentials and TLS.
struct HubMQTTOptions: ParsableArguments {
    @Option(name: .customLong("mqtt-username"), help: ArgumentHelp("MQTT user name (else $SWITCHYARD_MQTT_USERNAME).", valueName: "USER"))
    var username: String?
    @Option(name: .customLong("mqtt-password-file"), help: ArgumentHelp("A file holding the MQTT password (else $SWITCHYARD_MQTT_PASSWORD).", valueName: "FILE"))
    var passwordFile: String?
    @Option(name: .customLong("mqtt-ca"), help: ArgumentHelp("CA certificates (PEM) for the broker's TLS certificate; turns TLS on.", valueName: "FILE"))
    var caFile: String?
    @Option(name: .customLong("mqtt-cert"), help: ArgumentHelp("The hub's client certificate (PEM), with --mqtt-key.", valueName: "FILE"))
    var certFile: String?
    @Option(name: .customLong("mqtt-key"), help: ArgumentHelp("The client certificate's key (PEM).", valueName: "FILE"))
    var keyFile: String?

    func validate() throws {
        if (certFile == nil) != (keyFile == nil) { throw ValidationError("give both --mqtt-cert and --mqtt-key, or neither") }
        if certFile != nil && caFile == nil { throw ValidationError("--mqtt-cert needs --mqtt-ca (TLS to the broker)") }
        for (option, path) in [("--mqtt-ca", caFile), ("--mqtt-cert", certFile), ("--mqtt-key", keyFile)] {
            if let path, !FileManager.default.isReadableFile(atPath: path) { throw ValidationError("\(option) \(path): no such file, or not readable") }
        }
        if passwordFile != nil && (username ?? ProcessInfo.processInfo.environment["SWITCHYARD_MQTT_USERNAME"]) == nil {
            throw ValidationError("--mqtt-password-file needs --mqtt-username")
        }
    }

    /// `base` with the credentials and TLS; reads the password file.
    func apply(to base: MQTTConfiguration) throws -> MQTTConfiguration {
        let env = ProcessInfo.processInfo.environment
        var c = base
        c.username = username ?? env["SWITCHYARD_MQTT_USERNAME"]
        if c.username != nil {
            c.password = try passwordFile.map { try readSecretFile($0, option: "--mqtt-password-file") } ?? env["SWITCHYARD_MQTT_PASSWORD"]
        }
        if let caFile { c.tls = MQTTTLS(caFile: caFile, certFile: certFile, keyFile: keyFile) }
        return c
    }
}

/// A secret kept in a file (a password): its first line, without the line end. Refused when unreadable or empty.
func readSecretFile(_ path: String, option: String) throws -> String {
    guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
        throw ValidationError("\(option) \(path): no such file, or not readable")
    }
    let first = text.split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
    let secret = first.hasSuffix("\r") ? String(first.dropLast()) : first
    guard !secret.isEmpty else { throw ValidationError("\(option) \(path): the file's first line is empty") }
    return secret
}

extension Switchyard {
    struct HubCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "hub",
            abstract: "Run the fleet hub: the Sparkplug primary host, its PostgreSQL store and the fleet API, until SIGTERM.",
            subcommands: [HubRun.self, HubToken.self],
            defaultSubcommand: HubRun.self)
    }

    struct HubRun: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "run", abstract: "Run the hub (the default).")

        @Option(name: .long, help: ArgumentHelp("The MQTT broker.", valueName: "HOST:PORT"))
        var broker: String = "127.0.0.1:1883"
        @Option(name: .customLong("host-id"), help: "The primary host id (spBv1.0/STATE/<id>); the sites' fleet.primary_host_id.")
        var hostID: String = "hub"
        @Option(name: .customLong("client-id"), help: "The MQTT client id (the sites' fleet.roles map it to a role).")
        var clientID: String = "switchyard-hub"
        @Option(name: .long, help: ArgumentHelp("The fleet API's address; plain HTTP only on loopback, unless --insecure.", valueName: "HOST:PORT"))
        var listen: String = "127.0.0.1:8444"
        @Option(name: .customLong("tls-cert"), help: ArgumentHelp("The fleet API's TLS certificate chain (PEM).", valueName: "FILE"))
        var tlsCert: String?
        @Option(name: .customLong("tls-key"), help: ArgumentHelp("The fleet API's TLS private key (PEM).", valueName: "FILE"))
        var tlsKey: String?
        @Flag(name: .long, help: "Allow plain HTTP on a non-loopback --listen (tokens travel in clear text).")
        var insecure = false
        @OptionGroup var mqtt: HubMQTTOptions
        @Option(name: .customLong("retention-days"), help: ArgumentHelp("Days of samples kept (1…3650); older day partitions are dropped at start and hourly.", valueName: "N"))
        var retentionDays: Int = HubRetention.defaultDays
        @Option(name: .customLong("command-client-id"), help: "The Command/Client ID the hub's fleet commands claim (default: --client-id); the sites' fleet.roles must map it to a role.")
        var commandClientID: String?
        @Option(name: .customLong("allocation-period"), help: ArgumentHelp("How often a fleet shed's shares are checked against the meters and re-allocated, seconds.", valueName: "S"))
        var allocationPeriodS: Int = 30
        @Option(name: .customLong("spool-dir"), help: ArgumentHelp("Where records wait on disk until PostgreSQL has them (kept across restarts; one hub per directory).", valueName: "DIR"))
        var spoolDir: String = "./hub-spool"
        @OptionGroup var postgres: PostgresOptions

        func validate() throws {
            if spoolDir.isEmpty { throw ValidationError("--spool-dir must name a directory") }
            if let problem = HubRetention.problem(days: retentionDays) { throw ValidationError(problem) }
            if FleetSimRun.parseBroker(broker) == nil { throw ValidationError("--broker '\(broker)' should be HOST:PORT") }
            if ListenConfiguration.parseListen(listen) == nil { throw ValidationError("--listen '\(listen)' should be HOST:PORT (port 0…65535; 0: a free one)") }
            do { _ = try listenConfiguration() } catch let e as ListenConfigError { throw ValidationError(e.description) }
            if !(1...3600).contains(allocationPeriodS) { throw ValidationError("--allocation-period must be 1…3600 s, not \(allocationPeriodS)") }
            if validateSparkplugIDProblem(hostID) != nil { throw ValidationError("--host-id '\(hostID)': \(validateSparkplugIDProblem(hostID)!)") }
        }

        /// The fleet API's address and TLS, with the site API's rules (port 0: a free one).
        func listenConfiguration() throws -> ListenConfiguration {
            try ListenConfiguration(listen: listen, tlsCertPath: tlsCert, tlsKeyPath: tlsKey, insecure: insecure)
        }

        func run() async throws {
            let (mqttHost, mqttPort) = FleetSimRun.parseBroker(broker)!
            let api = try listenConfiguration()
            var logger = Logger(label: "switchyard-hub")
            logger.logLevel = .notice
            let mqttConfig: MQTTConfiguration, storeConfig: HubStoreConfiguration
            do {
                mqttConfig = try mqtt.apply(to: MQTTConfiguration(host: mqttHost, port: mqttPort, clientID: clientID))
                storeConfig = try postgres.configuration()
            } catch let e as ValidationError {
                printError("error: \(e.message)")
                throw ExitCode(ExitCodes.usage)
            } catch {
                printError("error: \(error)")
                throw ExitCode(ExitCodes.usage)
            }
            if !api.usesTLS && !api.isLoopback {
                printError("WARNING: --insecure: the fleet API listens on \(listen) WITHOUT TLS; bearer tokens can be sniffed on this network")
            }
            var config = HubConfiguration(host: HostConfiguration(hostID: hostID, mqtt: mqttConfig, commandClientID: commandClientID,
                                                                            spoolDirectory: spoolDir),
                                          store: storeConfig, apiHost: api.bindAddress, apiPort: api.port,
                                          retentionDays: retentionDays,
                                          operations: FleetOperations.Configuration(allocationPeriod: .seconds(allocationPeriodS)))
            config.apiTLSCertPath = api.tlsCertPath
            config.apiTLSKeyPath = api.tlsKeyPath
            let hub = HubService(configuration: config, logger: logger, onListening: { port in
                print("switchyard hub: fleet API on \(api.url(port: port)) (primary host '\(hostID)' on MQTT \(mqttHost):\(mqttPort)\(mqttConfig.tls == nil ? "" : " over TLS"))")
                fflushStdout()
            })
            let group = ServiceGroup(configuration: .init(services: [.init(service: hub)], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
            do { try await group.run() } catch {
                printError("switchyard hub: \(error)")
                throw ExitCode(ExitCodes.unreachable)
            }
        }
    }

    struct HubToken: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "token", abstract: "Fleet API tokens, in the hub's database.",
                                                        subcommands: [HubTokenCreate.self])
    }

    struct HubTokenCreate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "create", abstract: "Create a fleet API token; prints its secret once.")
        @Option(name: .long, help: "A name for the token (who or what uses it).")
        var name: String
        @Option(name: .long, help: "viewer, operator or admin.")
        var role: String
        @OptionGroup var postgres: PostgresOptions

        func validate() throws {
            if Role(rawValue: role) == nil { throw ValidationError("--role must be viewer, operator or admin, not '\(role)'") }
            if name.isEmpty || name.count > 100 { throw ValidationError("--name must be 1…100 characters") }
        }

        func run() async throws {
            var logger = Logger(label: "switchyard-hub")
            logger.logLevel = .warning
            let storeConfig: HubStoreConfiguration
            do { storeConfig = try postgres.configuration() } catch {
                printError("error: \(error)")
                throw ExitCode(ExitCodes.usage)
            }
            do {
                let (secret, id) = try await HubStore.withRunning(storeConfig, logger: logger) { store in
                    try await store.migrate()
                    return try await store.createToken(name: name, role: Role(rawValue: role)!)
                }
                print(secret)
                printError("created fleet API token \(id) (\(name), \(role)); the secret above is shown once")
            } catch {
                printError("error: \(error)")
                throw ExitCode(ExitCodes.unreachable)
            }
        }
    }
}

func validateSparkplugIDProblem(_ id: String) -> String? {
    do { try validateSparkplugID(id, kind: "host id"); return nil } catch { return "\(error)" }
}
