import Modbus
import Site
import Synchronization

/// One Modbus client per endpoint for the daemon's lifetime, shared across
/// configuration changes (devices limit their TCP connections; never open a second).
final class ModbusClientPool: Sendable {
    let clients = Mutex<[ModbusEndpoint: ModbusClient]>([:])

    func buses(for site: Site) -> [String: any RegisterBus] {
        var buses: [String: any RegisterBus] = [:]
        for d in site.devices {
            guard let a = d.address else { continue }
            let endpoint: ModbusEndpoint
            var connections = 1
            switch a {
            case let .tcp(host, port, _):
                endpoint = .tcp(host: host, port: port)
                connections = site.maxConnections(host: host, port: port)
            case let .rtu(dev, baud, parity, dataBits, stopBits, _):
                endpoint = .rtu(RTUSettings(device: dev, baud: baud, parity: parity,
                                            dataBits: dataBits, stopBits: stopBits))
            }
            let client = clients.withLock { c in
                if let existing = c[endpoint] { return existing }
                // The site file's `gateways: max_connections` (read once: a changed value takes effect on restart).
                let n = ModbusClient(endpoint: endpoint, options: .init(responseTimeout: .milliseconds(500), maxInFlight: connections))
                c[endpoint] = n
                return n
            }
            buses[d.id] = client.bus(unit: a.unit, deviceName: "\(d.id) (\(endpoint))")
        }
        return buses
    }

    /// Closes every client (the daemon has stopped).
    func closeAll() async {
        for c in clients.withLock({ Array($0.values) }) { await c.close() }
    }
}
