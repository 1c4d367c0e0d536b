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

    /// Reads every request of a plan; for each input span index, its words (a slice of the
    /// request's response, no copy) or the error of the request that served it; nil for a span
    /// no request serves. Has a default implementation.
    func execute(_ plan: [ReadRequest], spans: [ReadSpan]) async -> [SpanResult?]

    /// Writes holding registers and reads them back; returns what was read. With `combined`, as
    /// one read/write transaction (FC23) where the bus can. Has a default implementation (write,
    /// then read; `combined` ignored); the libmodbus bus does both in one trip to its connection's thread.
    func writeAndReadBack(address: Int, values: [UInt16], combined: Bool) async throws -> [UInt16]

    /// The executor a task working this device should prefer (`TaskGroup.addTask(executorPreference:)`):
    /// for the libmodbus bus, one of its connection's threads, so the task's requests are made in place
    /// instead of hopping there and back each time. nil (the default): no preference.
    func preferredExecutor() -> (any TaskExecutor)?
}

/// The words of one span of a read plan, or the error of the request that served it.
public typealias SpanResult = Result<ArraySlice<UInt16>, ModbusError>

/// Spreads each request's result over the spans it serves (slices, not copies).
public func spanResults(_ plan: [ReadRequest], spans: [ReadSpan], _ results: [Result<[UInt16], ModbusError>]) -> [SpanResult?] {
    spanResults(plan, spans: spans, results.map { $0.map { $0[...] } })
}

/// Spreads each request's result (a slice, e.g. of a plan's shared buffer) over the spans it serves.
public func spanResults(_ plan: [ReadRequest], spans: [ReadSpan], _ results: [Result<ArraySlice<UInt16>, ModbusError>]) -> [SpanResult?] {
    var out = [SpanResult?](repeating: nil, count: spans.count)
    for (request, result) in zip(plan, results) {
        for i in request.spans {
            switch result {
            case .success(let words):
                let lo = words.startIndex + spans[i].address - request.address
                out[i] = .success(words[lo..<(lo + spans[i].count)])
            case .failure(let e):
                out[i] = .failure(e)
            }
        }
    }
    return out
}

extension RegisterBus {
    public func preferredExecutor() -> (any TaskExecutor)? { nil }

    public func writeRegister(address: Int, value: UInt16) async throws {
        try await writeRegisters(address: address, values: [value])
    }

    public func writeAndReadBack(address: Int, values: [UInt16], combined: Bool) async throws -> [UInt16] {
        try await writeRegisters(address: address, values: values)
        return try await read(.holding, address: address, count: values.count)
    }

    /// Write and read back in separate transactions (FC06/FC16, then FC03).
    public func writeAndReadBack(address: Int, values: [UInt16]) async throws -> [UInt16] {
        try await writeAndReadBack(address: address, values: values, combined: false)
    }

    /// Reads every span of `plan` and returns, for each input span index, its words.
    /// A failed request fails only the spans it serves.
    public func execute(_ plan: [ReadRequest], spans: [ReadSpan]) async -> [SpanResult?] {
        var results: [Result<[UInt16], ModbusError>] = []
        results.reserveCapacity(plan.count)
        for request in plan {
            do {
                results.append(.success(try await read(request.table, address: request.address, count: request.count)))
            } catch let e as ModbusError {
                results.append(.failure(e))
            } catch {
                results.append(.failure(ModbusError(.invalidResponse("\(error)"), device: deviceName, unit: unit,
                                                    function: .read(request.table), address: request.address, count: request.count)))
            }
        }
        return spanResults(plan, spans: spans, results)
    }
}
