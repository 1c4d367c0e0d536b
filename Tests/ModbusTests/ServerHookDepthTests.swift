// The server's request hook and write observer are called through a constant number of frames, however
// many requests it served (see ObserverDepthTests in ControlTests for the failure this guards against: a
// closure read back out of a `Mutex` gained two thunks a request, so a simulated site slowed with every
// request and overflowed its serving thread's stack after about 100,000).

import Foundation
import Synchronization
import Testing
@testable import Modbus

@Suite("Modbus server hook depth")
struct ServerHookDepthTests {
    @Test func hookAndWriteObserverDepthDoNotGrowWithRequests() async throws {
        let s = ModbusTCPServer(units: [1: ServerUnitLayout(holding: 0..<10)])
        let hookDepths = Mutex<[Int]>([]), observerDepths = Mutex<[Int]>([])
        s.setHook { _ in
            let d = Thread.callStackReturnAddresses.count
            hookDepths.withLock { $0.append(d) }
            return .reply
        }
        s.setWriteObserver { _ in
            let d = Thread.callStackReturnAddresses.count
            observerDepths.withLock { $0.append(d) }
        }
        try s.start()
        defer { s.stop() }
        var writes = s.writes.makeAsyncIterator()
        let client = ModbusClient(endpoint: .tcp(host: "127.0.0.1", port: s.port))
        for k in 0..<40 { try await client.writeRegisters(unit: 1, address: 0, values: [UInt16(k), 1]) }
        await client.close()
        // The observer runs after the reply, before the write is yielded to `writes`: 40 yielded, 40 observed.
        for _ in 0..<40 { _ = await writes.next() }
        let hooks = hookDepths.withLock { $0 }, observed = observerDepths.withLock { $0 }
        #expect(hooks.count == 40 && observed.count == 40)
        #expect(hooks.max() == hooks.min(), "hook called through \(hooks.min() ?? 0)…\(hooks.max() ?? 0) frames: \(hooks)")
        #expect(observed.max() == observed.min(), "write observer called through \(observed.min() ?? 0)…\(observed.max() ?? 0) frames: \(observed)")
    }
}
