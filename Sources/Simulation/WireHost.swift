// The over-the-wire side: every simulated device served by the libmodbus
// server on loopback, one port per device or one gateway port with unit ids.

import Foundation
import Modbus

public struct WireEndpoint: Sendable, Equatable {
    public var device: String
    public var host: String
    public var port: Int
    public var unit: Int
}

/// Serves a `SiteSimulator` over Modbus TCP. Call `publish()` after each
/// physics step (the simulator's measurements go into the server's tables);
/// writes by clients flow back into the physics as they arrive: each server applies them
/// on its own serving thread (`ModbusTCPServer.setWriteObserver`), so the host starts no task.
public final class WireHost: Sendable {
    public let simulator: SiteSimulator
    public let endpoints: [WireEndpoint]
    let servers: [ModbusTCPServer]
    /// For each server: unit id → device index.
    let unitsByServer: [[Int: Int]]
    /// Every client write once the physics has applied it (device id, table, address, values).
    public let appliedWrites: AsyncStream<ServerWrite>
    private let appliedContinuation: AsyncStream<ServerWrite>.Continuation
    let progress: ApplyProgress

    /// - Parameters:
    ///   - basePort: with `gateway: false`, device k listens on basePort + k (0 = any free port);
    ///     with `gateway: true`, gateway ports serve `unitsPerGateway` devices each, under unit ids 1, 2, …
    ///     (port basePort + g for gateway g; 0 = any free port).
    public init(simulator: SiteSimulator, host: String = "127.0.0.1", basePort: Int = 0, gateway: Bool = false,
                unitsPerGateway: Int = 247) throws(ModbusError) {
        self.simulator = simulator
        let devices = simulator.spec.devices
        var groups: [[Int]] = []
        let served = devices.indices.filter { devices[$0].profile != nil }
        if gateway {
            let size = max(1, min(247, unitsPerGateway))
            groups = stride(from: 0, to: served.count, by: size).map { Array(served[$0..<min($0 + size, served.count)]) }
        } else {
            groups = served.map { [$0] }
        }
        let progress = ApplyProgress()
        let (appliedStream, applied) = AsyncStream.makeStream(of: ServerWrite.self, bufferingPolicy: .bufferingNewest(10_000))
        var servers: [ModbusTCPServer] = []
        var unitsByServer: [[Int: Int]] = []
        var endpoints: [WireEndpoint] = []
        for (g, members) in groups.enumerated() {
            var units: [Int: ServerUnitLayout] = [:]
            var map: [Int: Int] = [:]
            for (k, i) in members.enumerated() {
                let unit = gateway ? k + 1 : devices[i].address.unit
                let r = simulator.layouts[i].ranges
                units[unit] = ServerUnitLayout(coils: r[.coil] ?? 0..<0, discreteInputs: r[.discrete] ?? 0..<0,
                                               holding: r[.holding] ?? 0..<0, input: r[.input] ?? 0..<0)
                map[unit] = i
            }
            // With one port per device, a device's own configured port wins when basePort is 0.
            let port = basePort != 0 ? basePort + g : gateway ? 0 : (devices[members[0]].address.port ?? 0)
            let server = ModbusTCPServer(host: host, port: port, units: units)
            // Before start: a client that knows the port may write at once.
            let unitMap = map
            server.setWriteObserver { w in
                guard let i = unitMap[w.unit] else { return }
                try? simulator.write(device: i, w.table, address: w.address, values: w.values)
                applied.yield(w)
                let ready = progress.state.withLock { p -> [CheckedContinuation<Void, Never>] in
                    p.applied += 1
                    let n = p.applied
                    let done = p.waiters.filter { $0.target <= n }.map(\.continuation)
                    p.waiters.removeAll { $0.target <= n }
                    return done
                }
                for c in ready { c.resume() }
            }
            let bound = try server.start()
            for (unit, i) in map.sorted(by: { $0.key < $1.key }) {
                endpoints.append(WireEndpoint(device: devices[i].id, host: host, port: bound, unit: unit))
            }
            let sim = simulator
            server.setHook { request in
                guard let i = unitMap[request.unit] else { return .reply }
                switch sim.fault(of: i) {
                case nil, .frozen?, .ignoreSetpoint?:
                    // A register write the device's controller refuses gets its exception and changes nothing.
                    guard !request.values.isEmpty else { return .reply }
                    return sim.refusal(device: i, .holding, address: request.writeAddress, values: request.values).map { .exception($0) } ?? .reply
                case .silent?, .vanish?: return .drop
                case .exception(let e)?: return .exception(e)
                case .garbage?: return .garbage
                case .short?: return .short
                case .delay(let ms)?: return .delay(.milliseconds(ms))
                case .disconnect?: return .disconnect
                }
            }
            servers.append(server)
            unitsByServer.append(map)
        }
        self.servers = servers
        self.unitsByServer = unitsByServer
        self.endpoints = endpoints.sorted { (simulator.index(of: $0.device) ?? 0) < (simulator.index(of: $1.device) ?? 0) }
        self.progress = progress
        (appliedWrites, appliedContinuation) = (appliedStream, applied)
        publish(includingWritable: true)
    }

    /// Copies the simulator's current measurements into the servers' tables.
    /// Writable points are owned by the clients after start-up and are not overwritten.
    public func publish(includingWritable: Bool = false) {
        for (s, server) in servers.enumerated() {
            // Encode under the simulator's lock, then hold the server's table lock only to copy,
            // so clients being served are not held up by the encoding.
            var writes: [(Int, ModbusTable, Int, [UInt16])] = []
            simulator.state.withLock { st in
                for (unit, i) in unitsByServer[s] {
                    for p in simulator.layouts[i].served where includingWritable || !p.writable {
                        writes.append((unit, p.table, p.address, simulator.encode(p, device: i, in: st)))
                    }
                }
            }
            server.update { set in for (unit, table, address, words) in writes { set(unit, table, address, words) } }
        }
    }

    /// Waits until every write the servers have received so far has reached the physics.
    public func settle() async {
        let target = servers.reduce(0) { $0 + $1.writesYielded }
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let now = progress.state.withLock { p -> Bool in
                if p.applied >= target { return true }
                p.waiters.append((target, c))
                return false
            }
            if now { c.resume() }
        }
    }

    /// Stops serving.
    public func stop() {
        for s in servers {
            s.stop()
            s.setWriteObserver(nil)
        }
        appliedContinuation.finish()
    }

    /// "device  host:port  unit" lines.
    public var addressMap: String {
        endpoints.map { "\($0.device.padding(toLength: 20, withPad: " ", startingAt: 0)) \($0.host):\($0.port)  unit \($0.unit)" }
            .joined(separator: "\n")
    }
}

import Synchronization

/// Writes applied to the physics, and who waits for a count.
final class ApplyProgress: Sendable {
    let state = Mutex<(applied: Int, waiters: [(target: Int, continuation: CheckedContinuation<Void, Never>)])>((0, []))
}
