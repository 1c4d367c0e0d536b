// `switchyard hub`: the fleet's Sparkplug primary host, its PostgreSQL store and the fleet API (docs/fleet.md).
// `switchyard hub token create`: a fleet API token, written straight into the hub's database.

import ArgumentParser
import Basics
import Foundation
import Hub
import Logging
import ServiceLifecycle
import Sparkplug

/// Where the hub's PostgreSQL is (libpq's PG* variables are the defaults).
struct PostgresOptions: ParsableArguments {
    @Option(name: .customLong("pg-host"), help: ArgumentHelp("PostgreSQL host (else $PGHOST, else 127.0.0.1).", valueName: "HOST"))
    var pgHost: String?
    @Option(name: .customLong("pg-port"), help: ArgumentHelp("PostgreSQL port (else $PGPORT, else 5432).", valueName: "PORT"))
    var pgPort: Int?
    @Option(name: .customLong("pg-user"), help: ArgumentHelp("PostgreSQL user (else $PGUSER, else postgres).", valueName: "USER"))
    var pgUser: String?
    @Option(name: .customLong("pg-database"), help: ArgumentHelp("PostgreSQL database (else $PGDATABASE, else the user's name).", valueName: "DB"))
    var pgDatabase: String?

    func validate() throws {
        if let p = pgPort, !(1...65535).contains(p) { throw ValidationError("--pg-port must be 1…65535") }
    }

    var configuration: HubStoreConfiguration {
        let env = ProcessInfo.processInfo.environment
        let user = pgUser ?? env["PGUSER"] ?? "postgres"
        return HubStoreConfiguration(host: pgHost ?? env["PGHOST"] ?? "127.0.0.1", port: pgPort ?? env["PGPORT"].flatMap { Int($0) } ?? 5432,
                                     username: user, password: env["PGPASSWORD"], database: pgDatabase ?? env["PGDATABASE"] ?? user)
    }
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
        @Option(name: .long, help: ArgumentHelp("The fleet API's address.", valueName: "HOST:PORT"))
        var listen: String = "127.0.0.1:8444"
        @Option(name: .customLong("retention-days"), help: ArgumentHelp("Days of samples kept (1…3650); older day partitions are dropped at start and hourly.", valueName: "N"))
        var retentionDays: Int = HubRetention.defaultDays
        @Option(name: .customLong("command-client-id"), help: "The Command/Client ID the hub's fleet commands claim (default: --client-id); the sites' fleet.roles must map it to a role.")
        var commandClientID: String?
        @Option(name: .customLong("allocation-period"), help: ArgumentHelp("How often a fleet shed's shares are checked against the meters and re-allocated, seconds.", valueName: "S"))
        var allocationPeriodS: Int = 30
        @OptionGroup var postgres: PostgresOptions

        func validate() throws {
            if let problem = HubRetention.problem(days: retentionDays) { throw ValidationError(problem) }
            if FleetSimRun.parseBroker(broker) == nil { throw ValidationError("--broker '\(broker)' should be HOST:PORT") }
            if Self.parseListen(listen) == nil { throw ValidationError("--listen '\(listen)' should be HOST:PORT (port 0…65535; 0: a free one)") }
            if !(1...3600).contains(allocationPeriodS) { throw ValidationError("--allocation-period must be 1…3600 s, not \(allocationPeriodS)") }
            if validateSparkplugIDProblem(hostID) != nil { throw ValidationError("--host-id '\(hostID)': \(validateSparkplugIDProblem(hostID)!)") }
        }

        /// HOST:PORT for the API to listen on; unlike the broker's address, port 0 (a free port) is allowed.
        static func parseListen(_ s: String) -> (host: String, port: Int)? {
            guard let colon = s.lastIndex(of: ":"), colon > s.startIndex, let port = Int(s[s.index(after: colon)...]),
                  (0...65535).contains(port) else { return nil }
            return (String(s[..<colon]), port)
        }

        func run() async throws {
            let (mqttHost, mqttPort) = FleetSimRun.parseBroker(broker)!
            let (apiHost, apiPort) = Self.parseListen(listen)!
            var logger = Logger(label: "switchyard-hub")
            logger.logLevel = .notice
            let config = HubConfiguration(host: HostConfiguration(hostID: hostID, mqtt: MQTTConfiguration(host: mqttHost, port: mqttPort, clientID: clientID),
                                                                  commandClientID: commandClientID),
                                          store: postgres.configuration, apiHost: apiHost, apiPort: apiPort,
                                          retentionDays: retentionDays,
                                          operations: FleetOperations.Configuration(allocationPeriod: .seconds(allocationPeriodS)))
            let hub = HubService(configuration: config, logger: logger, onListening: { port in
                print("switchyard hub: fleet API on http://\(apiHost):\(port), primary host '\(hostID)' on MQTT \(mqttHost):\(mqttPort)")
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
            do {
                let (secret, id) = try await HubStore.withRunning(postgres.configuration, logger: logger) { store in
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
