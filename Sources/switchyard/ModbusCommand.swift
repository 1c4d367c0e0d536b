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
    struct Read: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Read registers or bits and decode them.")

        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var register: RegisterOptions

        @Option(name: .long, help: "Number of values of --type to read.")
        var count: Int = 1

        @Flag(name: .long, help: "Print JSON.")
        var json = false

        func validate() throws {
            let regs = count * register.parsedType.registerCount
            let limit = register.parsedTable.isBitTable ? 2000 : 125
            guard count >= 1, regs <= limit else {
                throw ValidationError("--count \(count) of \(register.parsedType.rawValue) needs \(regs) registers; one read allows 1…\(limit)")
            }
            guard register.parsedAddress + regs <= 65536 else {
                throw ValidationError("--address \(register.parsedAddress) + \(regs) registers runs past 65535")
            }
        }

        func run() async throws { try await connection.withClient { try await run(with: $0) } }

        func run(with client: ModbusClient) async throws {
            let type = register.parsedType
            let n = type.registerCount
            let words: [UInt16]
            do {
                words = try await client.read(register.parsedTable, unit: register.unit, address: register.parsedAddress, count: count * n)
            } catch {
                throw fail(error)
            }
            var values: [RawValue] = []
            for i in 0..<count {
                values.append(try RegisterCodec.decode(words[(i * n)..<(i * n + n)], as: type, order: register.parsedOrder))
            }
            if json {
                let obj: [String: Any] = [
                    "endpoint": client.endpoint.description, "unit": register.unit,
                    "table": register.parsedTable.rawValue, "address": register.parsedAddress,
                    "type": type.rawValue, "order": register.parsedOrder.rawValue,
                    "values": values.map { jsonValue($0, type) }, "raw": words.map(Int.init),
                ]
                let data = try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys])
                print(String(decoding: data, as: UTF8.self))
            } else {
                for (i, v) in values.enumerated() {
                    let addr = register.parsedAddress + i * n
                    let raw = words[(i * n)..<(i * n + n)].map { hex4($0) }.joined(separator: " ")
                    print("[\(addr)] \(format(v))\t(\(raw))")
                }
            }
        }
    }

    struct Write: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Encode values and write them (holding registers or coils).")

        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var register: RegisterOptions

        @Argument(help: "Values to write, in engineering form (e.g. 230.5 for float32, 1/0 or true/false for coils).")
        var values: [String]

        func validate() throws {
            guard register.parsedTable.isWritable else {
                throw ValidationError("--table \(register.parsedTable.rawValue) is read-only; write holding or coil")
            }
            guard !values.isEmpty else { throw ValidationError("give at least one value to write") }
            for v in values where parseValue(v) == nil {
                throw ValidationError("value '\(v)' is not a number (or true/false)")
            }
            let regs = values.count * register.parsedType.registerCount
            guard regs <= (register.parsedTable.isBitTable ? 1968 : 123) else {
                throw ValidationError("\(regs) registers exceed the Modbus write limit")
            }
        }

        func run() async throws { try await connection.withClient { try await run(with: $0) } }

        func run(with client: ModbusClient) async throws {
            let nums = values.compactMap(parseValue)
            do {
                if register.parsedTable == .coil {
                    try await client.writeCoils(unit: register.unit, address: register.parsedAddress, values: nums.map { $0 != 0 })
                } else {
                    var words: [UInt16] = []
                    for v in nums {
                        do { words += try RegisterCodec.encode(v, as: register.parsedType, order: register.parsedOrder) }
                        catch { throw ValidationError("\(error)") }
                    }
                    try await client.writeRegisters(unit: register.unit, address: register.parsedAddress, values: words)
                }
            } catch let e as ModbusError {
                throw fail(e)
            }
            print("wrote \(nums.count) value(s) to \(client.endpoint) unit \(register.unit) \(register.parsedTable.rawValue) @\(register.parsedAddress)")
        }
    }
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
