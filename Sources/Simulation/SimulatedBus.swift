// The in-memory side of the RegisterBus seam: a simulated device, on virtual time.

import Modbus

/// Reads and writes one simulated device directly, with its injected faults,
/// and no sockets. The poller and actuators use it exactly as they use a
/// `ModbusUnitBus`.
public struct SimulatedBus: RegisterBus {
    public let simulator: SiteSimulator
    public let device: Int
    public let deviceName: String
    public let unit: Int

    public init?(simulator: SiteSimulator, device: String) {
        guard let i = simulator.index(of: device) else { return nil }
        self.simulator = simulator
        self.device = i
        self.deviceName = device
        self.unit = simulator.spec.devices[i].address.unit
    }

    public func read(_ table: ModbusTable, address: Int, count: Int) async throws -> [UInt16] {
        try simulator.read(device: device, table, address: address, count: count)
    }

    /// The whole plan under one lock of the simulator.
    public func execute(_ plan: [ReadRequest], spans: [ReadSpan]) async -> [SpanResult?] {
        simulator.execute(device: device, plan, spans: spans)
    }

    public func writeRegisters(address: Int, values: [UInt16]) async throws {
        try simulator.write(device: device, .holding, address: address, values: values)
    }

    public func writeCoils(address: Int, values: [Bool]) async throws {
        try simulator.write(device: device, .coil, address: address, values: values.map { $0 ? 1 : 0 })
    }
}
