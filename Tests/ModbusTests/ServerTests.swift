import Foundation
import Testing
import Synchronization
import TestSupport
@testable import Modbus

/// Our libmodbus-backed server, driven by mbpoll (Debian's libmodbus CLI, a master we did not write)
/// and by our own client for fault injection.
@Suite("Modbus TCP server", .serialized)
struct ServerTests {
    static func server(units: [Int] = [1]) throws -> ModbusTCPServer {
        let s = ModbusTCPServer(units: Dictionary(uniqueKeysWithValues: units.map {
            ($0, ServerUnitLayout(coils: 0..<64, discreteInputs: 0..<64, holding: 0..<200, input: 0..<200))
        }))
        try s.start()
        return s
    }

    @Test func mbpollReadsOurRegisters() async throws {
        let s = try Self.server()
        defer { s.stop() }
        s.set(unit: 1, .holding, address: 100, [1234, 0xFFFE])
        s.set(unit: 1, .input, address: 10, try RegisterCodec.encode(230.5, as: .float32, order: .ABCD))
        // -0: 0-based addresses; -1: poll once; -t 4 holding, -t 3 input.
        let r = try await runCommand("/usr/bin/mbpoll", ["-m", "tcp", "-a", "1", "-0", "-1", "-t", "4", "-r", "100", "-c", "2",
                                                         "-p", "\(s.port)", "127.0.0.1"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("[100]: \t1234"))
        #expect(r.stdout.contains("[101]: \t65534"))
        let f = try await runCommand("/usr/bin/mbpoll", ["-m", "tcp", "-a", "1", "-0", "-1", "-t", "3:float", "-B", "-r", "10", "-c", "1",
                                                         "-p", "\(s.port)", "127.0.0.1"])
        #expect(f.stdout.contains("[10]: \t230.5"), "\(f.stdout)")
    }

    @Test func mbpollWriteIsSeenByTheServer() async throws {
        let s = try Self.server()
        defer { s.stop() }
        var writes = s.writes.makeAsyncIterator()
        let r = try await runCommand("/usr/bin/mbpoll", ["-m", "tcp", "-a", "1", "-0", "-1", "-t", "4", "-r", "42",
                                                         "-p", "\(s.port)", "127.0.0.1", "4242"])
        #expect(r.status == 0, "\(r.stderr)")
        let w = await writes.next()
        #expect(w == ServerWrite(unit: 1, table: .holding, address: 42, values: [4242]))
        #expect(s.get(unit: 1, .holding, address: 42, count: 1) == [4242])
        // Coils through mbpoll -t 0.
        let c = try await runCommand("/usr/bin/mbpoll", ["-m", "tcp", "-a", "1", "-0", "-1", "-t", "0", "-r", "5",
                                                         "-p", "\(s.port)", "127.0.0.1", "1", "0", "1"])
        #expect(c.status == 0, "\(c.stderr)")
        let cw = await writes.next()
        #expect(cw == ServerWrite(unit: 1, table: .coil, address: 5, values: [1, 0, 1]))
    }

    @Test func mbpollSeesIllegalAddress() async throws {
        let s = try Self.server()
        defer { s.stop() }
        let r = try await runCommand("/usr/bin/mbpoll", ["-m", "tcp", "-a", "1", "-0", "-1", "-t", "4", "-r", "500",
                                                         "-p", "\(s.port)", "127.0.0.1"])
        #expect((r.stdout + r.stderr).lowercased().contains("illegal data address"))
    }

    @Test func severalUnitsAndClientsAtOnce() async throws {
        let s = try Self.server(units: [1, 2, 7])
        defer { s.stop() }
        for u in [1, 2, 7] { s.set(unit: u, .holding, address: 0, [UInt16(u * 100)]) }
        let clients = (0..<4).map { _ in ModbusClient(endpoint: .tcp(host: "127.0.0.1", port: s.port)) }
        try await withThrowingTaskGroup(of: Void.self) { g in
            for (i, c) in clients.enumerated() {
                g.addTask {
                    for _ in 0..<25 {
                        for u in [1, 2, 7] {
                            let v = try await c.read(.holding, unit: u, address: 0, count: 1)
                            #expect(v == [UInt16(u * 100)], "client \(i) unit \(u)")
                        }
                    }
                }
            }
            try await g.waitForAll()
        }
        // A unit the server does not have: the gateway answers exception 0x0B.
        await #expect { _ = try await clients[0].read(.holding, unit: 9, address: 0, count: 1) }
            throws: { ($0 as? ModbusError)?.kind == .exception(.gatewayTargetFailedToRespond) }
        for c in clients { await c.close() }
    }

    /// Swift code changes registers while the server serves; readers never see a torn update.
    @Test func tablesChangeSafelyWhileServing() async throws {
        let s = try Self.server()
        defer { s.stop() }
        let client = ModbusClient(endpoint: .tcp(host: "127.0.0.1", port: s.port))
        try await withThrowingTaskGroup(of: Void.self) { g in
            g.addTask {
                for i in 0..<500 {
                    s.update { set in set(1, .holding, 0, [UInt16(i), UInt16(i)]) }
                }
            }
            g.addTask {
                for _ in 0..<200 {
                    let v = try await client.read(.holding, unit: 1, address: 0, count: 2)
                    #expect(v[0] == v[1], "torn read \(v)")
                }
            }
            try await g.waitForAll()
        }
        await client.close()
    }

    @Test(arguments: [ServerAction.garbage, .short])
    func malformedResponsesAreInvalidResponse(action: ServerAction) async throws {
        let s = try Self.server()
        defer { s.stop() }
        s.setHook { _ in action }
        let client = ModbusClient(endpoint: .tcp(host: "127.0.0.1", port: s.port),
                                  options: .init(responseTimeout: .milliseconds(300), backoff: .immediate))
        for _ in 0..<6 {
            await #expect {
                _ = try await client.read(.holding, unit: 1, address: 0, count: 4)
            } throws: { error in
                guard let e = error as? ModbusError else { return false }
                switch e.kind {
                case .invalidResponse, .timeout, .connectionLost: return true  // short frames may also wait out the byte timeout
                default: return false
                }
            }
        }
        s.setHook(nil)
        // And the client recovers once the device behaves.
        var ok = false
        for _ in 0..<3 where !ok { ok = (try? await client.read(.holding, unit: 1, address: 0, count: 4)) != nil }
        #expect(ok)
        await client.close()
    }

    /// A device that refuses FC23 (ILLEGAL FUNCTION): the write is done with FC16 + FC03 in the same
    /// call, the unit is remembered, and later calls no longer try FC23. FC23 writes that the
    /// server does take are observed like any other write.
    @Test func fc23FallsBackOnIllegalFunctionAndIsObserved() async throws {
        let s = try Self.server(units: [1, 2])
        defer { s.stop() }
        let seen = Mutex<[UInt8]>([])
        s.setHook { r in
            seen.withLock { $0.append(r.function) }
            return r.function == 0x17 && r.unit == 2 ? .exception(.illegalFunction) : .reply
        }
        var writes = s.writes.makeAsyncIterator()
        let client = ModbusClient(endpoint: .tcp(host: "127.0.0.1", port: s.port))
        // Unit 1 takes FC23: one request, and the server reports the write.
        #expect(try await client.writeAndReadBack(unit: 1, address: 20, values: [0x1234, 0x5678], combined: true) == [0x1234, 0x5678])
        #expect(seen.withLock { $0 } == [0x17])
        let w = await writes.next()
        #expect(w == ServerWrite(unit: 1, table: .holding, address: 20, values: [0x1234, 0x5678]))
        // Unit 2 refuses it: FC23, then FC16 + FC03, all in one call.
        #expect(try await client.writeAndReadBack(unit: 2, address: 30, values: [7, 8], combined: true) == [7, 8])
        #expect(seen.withLock { $0 } == [0x17, 0x17, 0x10, 0x03])
        #expect(!client.triesFC23(unit: 2) && client.triesFC23(unit: 1))
        // Remembered: the next write to unit 2 goes straight to FC16 + FC03.
        #expect(try await client.writeAndReadBack(unit: 2, address: 30, values: [9, 10], combined: true) == [9, 10])
        #expect(seen.withLock { Array($0.suffix(2)) } == [0x10, 0x03])
        #expect(seen.withLock { $0.count } == 6)
        await client.close()
    }

    @Test func exceptionInjection() async throws {
        let s = try Self.server()
        defer { s.stop() }
        s.setHook { r in r.address == 7 ? .exception(.serverDeviceBusy) : .reply }
        let client = ModbusClient(endpoint: .tcp(host: "127.0.0.1", port: s.port))
        await #expect { _ = try await client.read(.holding, unit: 1, address: 7, count: 1) }
            throws: { ($0 as? ModbusError)?.kind == .exception(.serverDeviceBusy) }
        #expect(try await client.read(.holding, unit: 1, address: 8, count: 1) == [0])
        await client.close()
    }

    /// Requests behind one gateway are serialised on one connection by default;
    /// maxInFlight opens more connections, never more than asked.
    @Test(arguments: [1, 3])
    func inFlightPerGateway(maxInFlight: Int) async throws {
        let s = try Self.server(units: [1, 2])
        defer { s.stop() }
        let client = ModbusClient(endpoint: .tcp(host: "127.0.0.1", port: s.port), options: .init(maxInFlight: maxInFlight))
        try await withThrowingTaskGroup(of: Void.self) { g in
            for i in 0..<60 { g.addTask { _ = try await client.read(.holding, unit: 1 + i % 2, address: 0, count: 10) } }
            try await g.waitForAll()
        }
        #expect(client.stats.connects >= 1 && client.stats.connects <= maxInFlight)
        #expect(client.stats.requests == 60)
        if maxInFlight == 1 { #expect(client.stats.connects == 1) }
        await client.close()
    }
}
