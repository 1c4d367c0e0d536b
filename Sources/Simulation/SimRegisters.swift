// Register emulation: what a read sees (after faults) and what a write does, with the firmware's limits.

import Foundation
import HardwareProfiles
import Modbus
import Synchronization

extension SiteSimulator {
    // MARK: Registers

    /// What a read of `device` sees now (after faults), or the error a client would get.
    public func read(device i: Int, _ table: ModbusTable, address: Int, count: Int) throws(ModbusError) -> [UInt16] {
        try state.withLock { s throws(ModbusError) -> [UInt16] in try read(device: i, table, address: address, count: count, in: s) }
    }

    func read(device i: Int, _ table: ModbusTable, address: Int, count: Int, in s: SimState) throws(ModbusError) -> [UInt16] {
        func err(_ k: ModbusError.Kind) -> ModbusError {
            ModbusError(k, device: spec.devices[i].id, unit: spec.devices[i].address.unit, function: .read(table), address: address, count: count)
        }
        switch s.devices[i].fault {
        case .silent?, .vanish?: throw err(.timeout)
        case .exception(let e)?: throw err(.exception(e))
        case .garbage?: throw err(.invalidResponse("garbled response"))
        case .short?: throw err(.invalidResponse("short response"))
        case .disconnect?: throw err(.connectionLost("connection reset by peer"))
        default: break
        }
        guard let range = layouts[i].ranges[table], address >= range.lowerBound, address + count <= range.upperBound else {
            throw err(.exception(.illegalDataAddress))
        }
        return words(device: i, table, address: address, count: count, in: s)
    }

    func words(device i: Int, _ table: ModbusTable, address: Int, count: Int, in s: SimState) -> [UInt16] {
        var out = [UInt16](repeating: 0, count: count)
        layouts[i].served.withUnsafeBufferPointer { points in
            for k in points.indices where points[k].table == table {
                let n = points[k].count
                let at = points[k].address
                guard at < address + count, at + n > address else { continue }
                encode(points[k], device: i, in: s, into: &out, base: address)
            }
        }
        return out
    }

    /// One point's registers now, written into `out` (register `base + k` at `out[k]`); a value the
    /// point cannot hold reads as 0.
    func encode(_ p: ServedPoint, device i: Int, in s: SimState, into out: inout [UInt16], base: Int) {
        if let words = p.fixed {
            for (k, w) in words.enumerated() where p.address + k - base >= 0 && p.address + k - base < out.count { out[p.address + k - base] = w }
            return
        }
        var v = value(of: p.kind, name: p.name, device: i, in: s) ?? 0
        if let sf = p.sunSpecSF { v /= pow(10, Double(sf)) }
        do {
            try p.encoding.encode(v, at: p.address, into: &out, base: base)
        } catch {
            try? p.encoding.encode(0, at: p.address, into: &out, base: base)
        }
    }

    /// One point's registers now.
    func encode(_ p: ServedPoint, device i: Int, in s: SimState) -> [UInt16] {
        var out = [UInt16](repeating: 0, count: p.count)
        encode(p, device: i, in: s, into: &out, base: p.address)
        return out
    }

    /// Reads every request of a plan under one lock (the in-memory bus's `execute`).
    func execute(device i: Int, _ plan: [ReadRequest], spans: [ReadSpan]) -> [SpanResult?] {
        let results = state.withLock { s in
            plan.map { request -> Result<[UInt16], ModbusError> in
                Result { () throws(ModbusError) in try read(device: i, request.table, address: request.address, count: request.count, in: s) }
            }
        }
        return spanResults(plan, spans: spans, results)
    }

    /// Applies a client's write to `device`, as its controller would.
    public func write(device i: Int, _ table: ModbusTable, address: Int, values: [UInt16]) throws(ModbusError) {
        let d = spec.devices[i]
        let fc: FunctionCode = table == .coil ? .writeMultipleCoils : .writeMultipleRegisters
        let err = { (k: ModbusError.Kind) in ModbusError(k, device: d.id, unit: d.address.unit, function: fc, address: address, count: values.count) }
        // The check reads only the layout: done before taking the lock, which every serving thread and the
        // physics share (its result is used only if the device has no fault, as before).
        let checked = Result { () throws(ModbusError) in try check(device: i, table, address: address, values: values, err) }
        try state.withLock { s throws(ModbusError) in
            switch s.devices[i].fault {
            case .silent?, .vanish?: throw err(.timeout)
            case .exception(let e)?: throw err(.exception(e))
            case .garbage?: throw err(.invalidResponse("garbled response"))
            case .short?: throw err(.invalidResponse("short response"))
            case .disconnect?: throw err(.connectionLost("connection reset by peer"))
            default: break
            }
            apply(&s, device: i, try checked.get())
        }
    }

    /// What a write would set, point by point, as the device's controller checks it before applying
    /// anything: every written register must belong to a whole writable point (else ILLEGAL DATA ADDRESS)
    /// and every value must lie within the point's documented limits (else ILLEGAL DATA VALUE, and
    /// nothing of the write is applied). The over-the-wire host answers with the same check.
    func check(device i: Int, _ table: ModbusTable, address: Int, values: [UInt16],
               _ err: (ModbusError.Kind) -> ModbusError) throws(ModbusError) -> [(String, Double)] {
        let targets = layouts[i].points.filter {
            $0.table == table && $0.address >= address && $0.address + $0.type.registerCount <= address + values.count
        }
        // Half of a 32-bit point is never written on its own (the controller would apply a torn value).
        let torn = layouts[i].points.contains {
            $0.table == table && $0.address < address + values.count && $0.address + $0.type.registerCount > address
                && ($0.address < address || $0.address + $0.type.registerCount > address + values.count)
        }
        guard !targets.isEmpty, !torn, targets.allSatisfy({ $0.definition.access.isWritable }) else {
            throw err(.exception(.illegalDataAddress))
        }
        var decoded: [(String, Double)] = []
        for p in targets {
            let lo = p.address - address
            let w = Array(values[lo..<(lo + p.type.registerCount)])
            let v: Double
            switch PointDecoder.decode(p, words: w) {
            case .value(.number(let x)): v = x
            case .value(.state(let code, _)): v = Double(code)
            case .value(.bool(let b)): v = b ? 1 : 0
            default: throw err(.exception(.illegalDataValue))
            }
            if let lo = p.definition.min, v < lo { throw err(.exception(.illegalDataValue)) }
            if let hi = p.definition.max, v > hi { throw err(.exception(.illegalDataValue)) }
            decoded.append((p.name, v))
        }
        return decoded
    }

    /// The exception a device's controller answers a register write with, or nil when it accepts it
    /// (the wire host's hook, before the server's tables change).
    public func refusal(device i: Int, _ table: ModbusTable, address: Int, values: [UInt16]) -> ModbusException? {
        let d = spec.devices[i]
        do {
            _ = try check(device: i, table, address: address, values: values) {
                ModbusError($0, device: d.id, unit: d.address.unit, function: .writeMultipleRegisters, address: address, count: values.count)
            }
            return nil
        } catch {
            if case .exception(let e) = error.kind { return e }
            return .serverDeviceFailure
        }
    }

    /// Applies decoded point writes; any write restarts the comm watchdog.
    func apply(_ s: inout SimState, device i: Int, _ points: [(String, Double)]) {
        var dev = s.devices[i]
        for (name, v) in points {
            switch name {
            case "power_setpoint_w": dev.setpointKW = v / 1000
            case "fallback_setpoint_w": dev.fallbackKW = v / 1000
            case "comm_watchdog_s": dev.watchdogS = v
            case "run_command":
                let label = layouts[i].commandLabels[Int(v)] ?? ""
                dev.runCommand = label == "stop" ? 0 : label == "sleep" ? 2 : 1
            case "gpu_power_cap_w": dev.gpuCapW = v
            case "x_ramp_rate_w_per_s": dev.rampKWPerS = v / 1000
            default: break
            }
        }
        dev.lastWriteAt = s.time
        dev.fallbackActive = false
        dev.writes += 1
        s.devices[i] = dev
    }
}
