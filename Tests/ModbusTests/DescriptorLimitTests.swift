// A process that holds more than FD_SETSIZE (1,024) open files must not be aborted by libmodbus's select(2):
// a TCP connect then fails with a clear error, and succeeds again once descriptors are free. Run in a child
// process (an exit test), because the failure it guards against aborts the whole process, and because holding
// 1,100 descriptors would push every other suite's sockets past the limit.

import Foundation
import Testing
@testable import Modbus

@Suite("Modbus and the FD_SETSIZE limit")
struct DescriptorLimitTests {
    @Test func connectBeyondFDSetSizeFailsCleanly() async {
        await #expect(processExitsWith: .success) {
            let server = ModbusTCPServer(units: [1: ServerUnitLayout(holding: 0..<4)])
            guard let port = try? server.start() else { exit(10) }
            // Take every descriptor below 1,100, so that the next socket would be one of them or above.
            var held: [Int32] = []
            while true {
                let fd = open("/dev/null", O_RDONLY)
                guard fd >= 0 else { exit(11) }
                held.append(fd)
                if fd >= 1100 { break }
            }
            // No backoff, so that the connect after the descriptors are freed is the very next request.
            let client = ModbusClient(endpoint: .tcp(host: "127.0.0.1", port: port),
                                      options: .init(backoff: .init(initial: .zero, maximum: .zero, jitter: 0)))
            do {
                _ = try await client.read(.holding, unit: 1, address: 0, count: 2)
                exit(12)  // connected with a descriptor libmodbus cannot select on
            } catch {
                // The error says why, in words an operator can act on.
                guard "\(error)".contains("FD_SETSIZE") else { exit(13) }
            }
            for fd in held { close(fd) }
            // With descriptors free again, the same client connects and reads.
            let read = (try? await client.read(.holding, unit: 1, address: 0, count: 2)) != nil
            await client.close()
            server.stop()
            exit(read ? 0 : 14)
        }
    }
}
