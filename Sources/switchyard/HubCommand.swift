import ArgumentParser
import Foundation
import Hub
import Logging
import ServiceLifecycle
import Sparkplug

extension Switchyard {
    /// `switchyard hub`: the fleet's Sparkplug B primary host, for now with its records in memory (no database) and
    /// the fleet logged.
    struct HubCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "hub",
            abstract: "Run the fleet's Sparkplug B primary host until SIGTERM (records kept in memory only; the fleet is logged)."
        )

        @Option(name: .customLong("broker-host"), help: "MQTT broker host.")
        var brokerHost: String = "127.0.0.1"

        @Option(name: .customLong("broker-port"), help: "MQTT broker port.")
        var brokerPort: Int = 1883

        @Option(name: .customLong("host-id"), help: "Sparkplug host id: STATE goes to spBv1.0/STATE/<host-id>; sites name it as their primary host.")
        var hostID: String = "switchyard-hub"

        @Option(name: .customLong("client-id"), help: "MQTT client id (default: the host id).")
        var clientID: String?

        @Option(name: .customLong("ca-file"), help: ArgumentHelp("TLS: the CA that signed the broker's certificate.", valueName: "FILE"))
        var caFile: String?

        @Option(name: .customLong("cert-file"), help: ArgumentHelp("TLS: the hub's client certificate.", valueName: "FILE"))
        var certFile: String?

        @Option(name: .customLong("key-file"), help: ArgumentHelp("TLS: the hub's client key.", valueName: "FILE"))
        var keyFile: String?

        @Option(name: .customLong("status-every-s"), help: "Seconds between fleet status log lines (0: none).")
        var statusEveryS: Int = 60

        @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error, critical.")
        var logLevel: String = "notice"

        func validate() throws {
            do { try validateSparkplugID(hostID, kind: "host id") } catch { throw ValidationError("--host-id: \(error)") }
            guard (1...65535).contains(brokerPort) else { throw ValidationError("--broker-port must be 1-65535, got \(brokerPort)") }
            guard statusEveryS >= 0 else { throw ValidationError("--status-every-s must be 0 or more, got \(statusEveryS)") }
            if Logger.Level(rawValue: logLevel) == nil { throw ValidationError("--log-level '\(logLevel)' is not a swift-log level") }
            if (certFile == nil) != (keyFile == nil) { throw ValidationError("--cert-file and --key-file go together") }
        }

        func run() async throws {
            var logger = Logger(label: "switchyard-hub")
            logger.logLevel = Logger.Level(rawValue: logLevel) ?? .notice
            let tls = (caFile != nil || certFile != nil) ? MQTTTLS(caFile: caFile, certFile: certFile, keyFile: keyFile) : nil
            let mqtt = MQTTConfiguration(host: brokerHost, port: brokerPort, clientID: clientID ?? hostID, tls: tls)
            let host = try HostApplication(configuration: HostConfiguration(hostID: hostID, mqtt: mqtt),
                                           sink: MemoryRecordSink(limit: 100_000), logger: logger)
            var services: [any Service] = [host]
            if statusEveryS > 0 { services.append(FleetStatusLog(host: host, every: .seconds(statusEveryS), logger: logger)) }
            let group = ServiceGroup(configuration: .init(
                services: services.map { ServiceGroupConfiguration.ServiceConfiguration(service: $0) },
                gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
            try await group.run()
        }
    }
}

/// Logs one line per site every `every`, until shutdown.
struct FleetStatusLog: Service {
    let host: HostApplication
    let every: Duration
    let logger: Logger

    func run() async throws {
        while !Task.isShuttingDownGracefully, !Task.isCancelled {
            do { try await cancelWhenGracefulShutdown { try await Task.sleep(for: every) } } catch { return }
            let rows = await host.status()
            logger.notice("hub: \(rows.count) sites")
            for r in rows {
                func f(_ v: Double?) -> String { v.map { String(format: "%.1f", $0) } ?? "-" }
                logger.notice("hub: \(r.region)/\(r.edge) \(r.liveness) import \(f(r.importKW)) kW cap \(f(r.capKW)) kW mining \(f(r.miningMW)) MW inference \(f(r.inferenceMW)) MW price \(f(r.priceUsdPerMWh)) mode \(r.governorMode ?? "-") config \(r.configVersion.map { "\($0)" } ?? "-")")
            }
        }
    }
}
