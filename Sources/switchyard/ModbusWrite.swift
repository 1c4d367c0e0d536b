// `switchyard modbus write`.

import ArgumentParser
import Foundation
import Modbus

extension Switchyard.ModbusCommand {
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
