// `switchyard modbus read`.

import ArgumentParser
import Foundation
import Modbus

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
}
