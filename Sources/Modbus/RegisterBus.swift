/// The seam where the poller, the actuators and the simulator meet: read and
/// write register ranges of one unit id. Implemented over the wire by
/// `ModbusClient` (through `ModbusClient.bus(unit:)`) and in memory by the
/// simulator.
///
/// Bit tables (coil, discrete) are read as one word per bit, 0 or 1.
/// Errors thrown are `ModbusError`.
public protocol RegisterBus: Sendable {
    /// A human name for errors and logs, e.g. "sdm630-1 (127.0.0.1:1502)".
    var deviceName: String { get }
    var unit: Int { get }

    func read(_ table: ModbusTable, address: Int, count: Int) async throws -> [UInt16]
    func writeRegisters(address: Int, values: [UInt16]) async throws
    func writeCoils(address: Int, values: [Bool]) async throws

    /// Reads every request of a plan; for each input span index, its words or
    /// the error of the request that served it. Has a default implementation.
    func execute(_ plan: [ReadRequest], spans: [ReadSpan]) async -> [Int: Result<[UInt16], ModbusError>]

    /// Writes holding registers and reads them back; returns what was read. Has a default
    /// implementation; the libmodbus bus does both in one trip to its connection's thread.
    func writeAndReadBack(address: Int, values: [UInt16]) async throws -> [UInt16]
}

extension RegisterBus {
    public func writeRegister(address: Int, value: UInt16) async throws {
        try await writeRegisters(address: address, values: [value])
    }

    public func writeAndReadBack(address: Int, values: [UInt16]) async throws -> [UInt16] {
        try await writeRegisters(address: address, values: values)
        return try await read(.holding, address: address, count: values.count)
    }

    /// Reads every span of `plan` and returns, for each input span index, its words.
    /// A failed request fails only the spans it serves.
    public func execute(_ plan: [ReadRequest], spans: [ReadSpan]) async -> [Int: Result<[UInt16], ModbusError>] {
        var out: [Int: Result<[UInt16], ModbusError>] = [:]
        for request in plan {
            do {
                let words = try await read(request.table, address: request.address, count: request.count)
                for i in request.spans {
                    let s = spans[i]
                    let lo = s.address - request.address
                    out[i] = .success(Array(words[lo..<(lo + s.count)]))
                }
            } catch let e as ModbusError {
                for i in request.spans { out[i] = .failure(e) }
            } catch {
                let e = ModbusError(.invalidResponse("\(error)"), device: deviceName, unit: unit,
                                    function: .read(request.table), address: request.address, count: request.count)
                for i in request.spans { out[i] = .failure(e) }
            }
        }
        return out
    }
}
