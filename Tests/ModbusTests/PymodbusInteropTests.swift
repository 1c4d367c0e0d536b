import Foundation
import Testing
import TestSupport
@testable import Modbus

/// The values Tests/peers/pymodbus_server.py serves, in its documented layout.
/// The server encodes them with Python's struct module; we decode with ours.
let servedValues: [(RegisterType, Double)] = [
    (.uint16, 48879), (.int16, -1234), (.uint32, 3_000_000_000), (.int32, -123_456_789),
    (.uint64, 12_345_678_901_234_567_890), (.int64, -1_234_567_890_123_456_789),
    (.float32, 1234.5625), (.float64, 3.141592653589793),
]
let servedCoils: [UInt16] = [1, 0, 1, 1, 0, 0, 1, 0, 1, 1, 1, 0, 0, 0, 0, 1]

/// Our client against pymodbus (a server we did not write).
@Suite("Client against a pymodbus server", .serialized)
struct PymodbusInteropTests {
    static func server() async throws -> (PeerProcess, ModbusClient) {
        let peer = try await PeerProcess.python("pymodbus_server.py", ["tcp"])
        let client = ModbusClient(endpoint: .tcp(host: "127.0.0.1", port: peer.port),
                                  options: .init(responseTimeout: .milliseconds(500), backoff: .immediate),
                                  name: "pymodbus")
        return (peer, client)
    }

    @Test func everyTypeInEveryOrder() async throws {
        let (peer, client) = try await Self.server()
        defer { peer.stop() }
        for table in [ModbusTable.holding, .input] {
            for (o, order) in WordOrder.allCases.enumerated() {
                for (t, (type, expected)) in servedValues.enumerated() {
                    let addr = 1000 + 100 * o + 4 * t
                    let words = try await client.read(table, unit: 1, address: addr, count: type.registerCount)
                    let raw = try RegisterCodec.decode(words, as: type, order: order)
                    switch raw {
                    case .unsigned(let u) where type == .uint64: #expect(u == 12_345_678_901_234_567_890)
                    case .signed(let s) where type == .int64: #expect(s == -1_234_567_890_123_456_789)
                    default: #expect(raw.doubleValue == expected, "\(table) \(type) \(order) @\(addr)")
                    }
                }
            }
        }
        await client.close()
    }

    @Test func coilsAndDiscreteInputs() async throws {
        let (peer, client) = try await Self.server()
        defer { peer.stop() }
        #expect(try await client.read(.coil, unit: 1, address: 0, count: 16) == servedCoils)
        #expect(try await client.read(.discrete, unit: 1, address: 0, count: 16) == servedCoils.map { 1 - $0 })
        try await client.writeCoils(unit: 1, address: 20, values: [true, false, true])
        #expect(try await client.readBits(.coil, unit: 1, address: 20, count: 3) == [true, false, true])
        try await client.writeCoils(unit: 1, address: 30, values: [true])
        #expect(try await client.readBits(.coil, unit: 1, address: 30, count: 1) == [true])
        await client.close()
    }

    @Test func writeRegistersThenReadBack() async throws {
        let (peer, client) = try await Self.server()
        defer { peer.stop() }
        let words = try RegisterCodec.encode(-42.25, as: .float32, order: .CDAB)
        try await client.writeRegisters(unit: 1, address: 10, values: words)
        try await client.writeRegisters(unit: 1, address: 12, values: [0xBEEF])
        let back = try await client.read(.holding, unit: 1, address: 10, count: 3)
        #expect(try RegisterCodec.decode(back[0..<2], as: .float32, order: .CDAB) == .float(-42.25))
        #expect(back[2] == 0xBEEF)
        await client.close()
    }

    /// FC23 (read/write multiple registers) against pymodbus: the write lands and the read part
    /// returns it, in one transaction; pymodbus supports FC23, so no fallback is taken.
    @Test func writeAndReadBackInOneFC23Transaction() async throws {
        let (peer, client) = try await Self.server()
        defer { peer.stop() }
        let words = try RegisterCodec.encode(1_234_567, as: .uint32)
        let back = try await client.writeAndReadBack(unit: 1, address: 40, values: words, combined: true)
        #expect(back == words)
        #expect(client.triesFC23(unit: 1))
        #expect(try await client.read(.holding, unit: 1, address: 40, count: 2) == words)
        // And the separate FC16 + FC03 path gives the same.
        let other = try RegisterCodec.encode(7, as: .uint32)
        #expect(try await client.writeAndReadBack(unit: 1, address: 40, values: other) == other)
        await client.close()
    }

    @Test func illegalAddressIsATypedException() async throws {
        let (peer, client) = try await Self.server()
        defer { peer.stop() }
        await #expect {
            _ = try await client.read(.holding, unit: 1, address: 5000, count: 2)
        } throws: { error in
            guard let e = error as? ModbusError else { return false }
            return e.kind == .exception(.illegalDataAddress) && e.address == 5000 && e.count == 2
                && e.function == .readHoldingRegisters
                && e.description.contains("ILLEGAL DATA ADDRESS")
        }
        // The connection survives an exception.
        #expect(try await client.read(.holding, unit: 1, address: 1000, count: 1) == [48879])
        #expect(client.stats.connects == 1)
        await client.close()
    }

    @Test func requestsBeyondModbusLimitsAreRejectedLocally() async throws {
        let client = ModbusClient(endpoint: .tcp(host: "127.0.0.1", port: 1), name: "nowhere")
        await #expect(throws: ModbusError.self) { _ = try await client.read(.holding, unit: 1, address: 0, count: 126) }
        await #expect(throws: ModbusError.self) { _ = try await client.read(.holding, unit: 1, address: 65535, count: 2) }
        await #expect(throws: ModbusError.self) { _ = try await client.read(.holding, unit: 300, address: 0, count: 1) }
        await client.close()
    }

    /// A server that stops answering gives `timeout`; once it answers again the
    /// same client reconnects by itself.
    @Test func timeoutThenReconnect() async throws {
        let (peer, client) = try await Self.server()
        defer { peer.stop() }
        #expect(try await client.read(.holding, unit: 1, address: 1000, count: 1) == [48879])
        peer.signal(SIGSTOP)
        for _ in 0..<2 {
            await #expect {
                _ = try await client.read(.holding, unit: 1, address: 1000, count: 1)
            } throws: { ($0 as? ModbusError)?.kind == .timeout }
        }
        peer.signal(SIGCONT)
        var recovered = false
        for _ in 0..<5 where !recovered {
            if let v = try? await client.read(.holding, unit: 1, address: 1000, count: 1) { recovered = v == [48879] }
        }
        #expect(recovered)
        #expect(client.stats.timeouts >= 2)
        #expect(client.stats.reconnectsAfterFailure >= 1)
        await client.close()
    }

    /// A refused connection is typed, and the client backs off instead of spinning.
    @Test func refusedConnectionBacksOff() async throws {
        // Bind a port, then close it: nothing listens there.
        let probe = ModbusTCPServer(units: [1: ServerUnitLayout(holding: 0..<1)])
        let port = try probe.start()
        probe.stop()
        let client = ModbusClient(endpoint: .tcp(host: "127.0.0.1", port: port),
                                  options: .init(backoff: BackoffPolicy(initial: .seconds(30), maximum: .seconds(60))))
        await #expect { _ = try await client.read(.holding, unit: 1, address: 0, count: 1) }
            throws: { ($0 as? ModbusError)?.kind == .connectionRefused }
        await #expect {
            _ = try await client.read(.holding, unit: 1, address: 0, count: 1)
        } throws: { error in
            if case .backingOff = (error as? ModbusError)?.kind { return true }
            return false
        }
        await client.close()
    }

    /// A dead device (server frozen) never delays requests to a live one.
    @Test func deadDeviceDoesNotDelayOthers() async throws {
        let (dead, shortTimeout) = try await Self.server()
        await shortTimeout.close()
        // The dead device's timeout is long (5 s) so that the order below says what the test is about (the live
        // device is not held up), not how fast a loaded box answers ten reads (500 ms was too tight under load).
        let deadClient = ModbusClient(endpoint: .tcp(host: "127.0.0.1", port: dead.port),
                                      options: .init(responseTimeout: .seconds(5), backoff: .immediate), name: "pymodbus-dead")
        let (live, liveClient) = try await Self.server()
        defer { dead.stop(); live.stop() }
        dead.signal(SIGSTOP)
        defer { dead.signal(SIGCONT) }
        let order = OrderLog()
        async let deadRead: Void = {
            _ = try? await deadClient.read(.holding, unit: 1, address: 1000, count: 1)
            order.append("dead")
        }()
        // Ten reads to the live device complete while the dead one waits out its timeout.
        for _ in 0..<10 {
            #expect(try await liveClient.read(.holding, unit: 1, address: 1000, count: 1) == [48879])
        }
        order.append("live")
        await deadRead
        #expect(order.entries == ["live", "dead"])
        await deadClient.close()
        await liveClient.close()
    }
}

final class OrderLog: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [String] = []
    func append(_ s: String) { lock.lock(); items.append(s); lock.unlock() }
    var entries: [String] { lock.lock(); defer { lock.unlock() }; return items }
}

/// Modbus RTU over a linked pair of pseudo-terminals (socat), against pymodbus's RTU server.
@Suite("RTU against pymodbus over a pty pair", .serialized)
struct RTUInteropTests {
    @Test func readTypedValuesOverRTU() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sy-rtu-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let a = dir.appendingPathComponent("a").path, b = dir.appendingPathComponent("b").path
        let socat = try await PeerProcess.start("/usr/bin/socat",
            ["-d", "-d", "pty,raw,echo=0,link=\(a)", "pty,raw,echo=0,link=\(b)"],
            readyPrefix: "starting data transfer loop", readyOnStderr: true)
        defer { socat.stop() }
        let server = try await PeerProcess.python("pymodbus_server.py", ["rtu", a, "19200"])
        defer { server.stop() }
        let client = ModbusClient(endpoint: .rtu(RTUSettings(device: b, baud: 19200, parity: .none)),
                                  options: .init(responseTimeout: .seconds(1), backoff: .immediate), name: "rtu-pty")
        // The first frame may race the server opening its end; allow a couple of tries.
        var words: [UInt16]?
        for _ in 0..<5 where words == nil {
            words = try? await client.read(.holding, unit: 1, address: 1000 + 100 + 4 * 6, count: 2)
        }
        let w = try #require(words)
        #expect(try RegisterCodec.decode(w, as: .float32, order: .CDAB) == .float(1234.5625))
        #expect(try await client.read(.input, unit: 1, address: 1000 + 4 * 3, count: 2) == [0xF8A4, 0x32EB])
        try await client.writeRegisters(unit: 1, address: 5, values: [321])
        #expect(try await client.read(.holding, unit: 1, address: 5, count: 1) == [321])
        await client.close()
    }
}

