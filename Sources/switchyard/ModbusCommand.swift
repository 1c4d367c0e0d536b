import ArgumentParser
import Foundation
import Modbus

extension Switchyard {
    /// `switchyard modbus read|write`: mbpoll with types and clear errors.
    struct ModbusCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "modbus",
            abstract: "Read or write Modbus registers with types, word orders and clear errors.",
            subcommands: [Read.self, Write.self]
        )
    }
}

/// Options naming what to read or write.
struct RegisterOptions: ParsableArguments {
    @Option(name: .long, help: "Unit id (slave address), 0…255.")
    var unit: Int = 1

    @Option(name: .long, help: "Register table: holding, input, coil or discrete.")
    var table: String = "holding"

    @Option(name: .long, help: "Protocol (0-based) address, decimal or 0x hex.")
    var address: String

    @Option(name: .long, help: "Value type: uint16, int16, uint32, int32, uint64, int64, float32, float64, bitfield16, bool.")
    var type: String?

    @Option(name: .long, help: "Word and byte order: ABCD, CDAB, BADC or DCBA.")
    var order: String = "ABCD"

    var parsedTable: ModbusTable { ModbusTable(rawValue: table.lowercased()) ?? .holding }
    var parsedAddress: Int { parseAddress(address) ?? 0 }
    var parsedOrder: WordOrder { WordOrder(rawValue: order.uppercased()) ?? .ABCD }
    var parsedType: RegisterType {
        if let type, let t = RegisterType(rawValue: type.lowercased()) { return t }
        return parsedTable.isBitTable ? .bool : .uint16
    }

    func validate() throws {
        guard ModbusTable(rawValue: table.lowercased()) != nil else {
            throw ValidationError("--table must be holding, input, coil or discrete, not '\(table)'")
        }
        guard let a = parseAddress(address), (0...65535).contains(a) else {
            throw ValidationError("--address '\(address)' is not a register address 0…65535 (decimal or 0x hex)")
        }
        if let type, RegisterType(rawValue: type.lowercased()) == nil {
            throw ValidationError("--type '\(type)' is unknown; use one of \(RegisterType.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard WordOrder(rawValue: order.uppercased()) != nil else {
            throw ValidationError("--order must be ABCD, CDAB, BADC or DCBA, not '\(order)'")
        }
        guard (0...255).contains(unit) else { throw ValidationError("--unit must be 0…255") }
        if parsedTable.isBitTable, parsedType != .bool {
            throw ValidationError("\(parsedTable.rawValue) is a bit table: --type must be bool")
        }
        if !parsedTable.isBitTable, parsedType == .bool {
            throw ValidationError("--type bool needs --table coil or discrete")
        }
    }
}

extension Switchyard.ModbusCommand {
}

func parseValue(_ s: String) -> Double? {
    switch s.lowercased() {
    case "true", "on": return 1
    case "false", "off": return 0
    default:
        if s.lowercased().hasPrefix("0x") { return UInt64(s.dropFirst(2), radix: 16).map(Double.init) }
        return Double(s)
    }
}

func hex4(_ w: UInt16) -> String {
    let h = String(w, radix: 16, uppercase: true)
    return "0x" + String(repeating: "0", count: 4 - h.count) + h
}

/// Exact text for a decoded value (64-bit integers are not routed through Double).
func format(_ v: RawValue) -> String {
    switch v {
    case .unsigned(let u): "\(u)"
    case .signed(let i): "\(i)"
    case .float(let d): "\(d)"
    case .bits(let b): "\(b)"
    case .bool(let b): b ? "1" : "0"
    }
}

func jsonValue(_ v: RawValue, _ type: RegisterType) -> Any {
    switch v {
    case .unsigned(let u): return u
    case .signed(let i): return i
    case .bits(let b): return Int(b)
    case .bool(let b): return b
    case .float(let d):
        guard d.isFinite else { return NSNull() }
        // float32: print the shortest decimal that round-trips the Float, not the widened Double.
        return type == .float32 ? Double("\(Float(d))") ?? d : d
    }
}
