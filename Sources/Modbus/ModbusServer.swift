// A libmodbus-backed Modbus TCP server: several clients at once, several unit
// ids, register tables that Swift code reads and changes while it serves, and
// writes observable as an AsyncStream.
//
// The server owns one `modbus_t` and one thread that runs a poll(2) loop over
// the listening socket, the client sockets and a wake-up pipe. The register
// tables (`modbus_mapping_t`, one per unit) are guarded by a mutex that the
// serving thread holds only while it answers one request.

import Basics
import CModbus
import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Which addresses a unit serves, per table. Reads outside answer ILLEGAL DATA ADDRESS.
public struct ServerUnitLayout: Sendable, Equatable {
    public var coils: Range<Int>
    public var discreteInputs: Range<Int>
    public var holding: Range<Int>
    public var input: Range<Int>

    public init(coils: Range<Int> = 0..<0, discreteInputs: Range<Int> = 0..<0, holding: Range<Int> = 0..<0, input: Range<Int> = 0..<0) {
        self.coils = coils
        self.discreteInputs = discreteInputs
        self.holding = holding
        self.input = input
    }

    /// Every address in every table.
    public static let full = ServerUnitLayout(coils: 0..<65536, discreteInputs: 0..<65536, holding: 0..<65536, input: 0..<65536)

    func range(_ t: ModbusTable) -> Range<Int> {
        switch t {
        case .coil: coils
        case .discrete: discreteInputs
        case .holding: holding
        case .input: input
        }
    }
}

/// A request as the server saw it, given to the request hook.
public struct ServedRequest: Sendable, Equatable {
    public var unit: Int
    public var function: UInt8
    public var address: Int
    /// Count for reads and multi-writes, 1 for single writes.
    public var count: Int
    /// Register writes (FC06, FC16, FC23): where the write starts and the words written, so a hook
    /// can refuse a value before it reaches the tables. Empty for reads and coil writes.
    public var writeAddress: Int = 0
    public var values: [UInt16] = []
}

/// What the server does with one request (fault injection for simulations).
public enum ServerAction: Sendable, Equatable {
    /// Answer normally from the register tables.
    case reply
    /// Answer with a Modbus exception.
    case exception(ModbusException)
    /// Do not answer (the client times out).
    case drop
    /// Answer after a delay (blocks this server's thread meanwhile).
    case delay(Duration)
    /// Answer with random bytes.
    case garbage
    /// Answer with a truncated frame.
    case short
    /// Close the client's connection.
    case disconnect
}

/// A write a client made.
public struct ServerWrite: Sendable, Equatable {
    public var unit: Int
    public var table: ModbusTable
    public var address: Int
    public var values: [UInt16]
}

struct Mapping: @unchecked Sendable {
    // Accessed only under ModbusTCPServer.tables' lock.
    let pointer: UnsafeMutablePointer<modbus_mapping_t>
    let layout: ServerUnitLayout
}

public final class ModbusTCPServer: Sendable {
    public let host: String
    private let requestedPort: Int
    private let tables: Mutex<[Int: Mapping]>
    private let hook: Mutex<Callback<ServedRequest, ServerAction>?>
    private let state = Mutex<(port: Int, wakeWrite: Int32, running: Bool)>((0, -1, false))
    private let stopped = DispatchSemaphore(value: 0)
    private let writeContinuation: AsyncStream<ServerWrite>.Continuation
    /// Every write any client makes, in order.
    public let writes: AsyncStream<ServerWrite>
    /// Requests answered (any action), for tests and metrics.
    private let served = Atomic<Int>(0)
    private let writesYieldedCount = Atomic<Int>(0)
    /// Writes yielded to `writes` so far.
    public var writesYielded: Int { writesYieldedCount.load(ordering: .sequentiallyConsistent) }
    /// Called on the serving thread with every write (see `setWriteObserver`).
    private let writeObserver = Mutex<Callback<ServerWrite, Void>?>(nil)

    /// - Parameters:
    ///   - port: 0 picks a free port; read `port` after `start()`.
    ///   - units: the unit ids served and their layouts.
    public init(host: String = "127.0.0.1", port: Int = 0, units: [Int: ServerUnitLayout]) {
        self.host = host
        self.requestedPort = port
        var maps: [Int: Mapping] = [:]
        for (unit, l) in units {
            let p = modbus_mapping_new_start_address(
                UInt32(l.coils.lowerBound), UInt32(l.coils.count),
                UInt32(l.discreteInputs.lowerBound), UInt32(l.discreteInputs.count),
                UInt32(l.holding.lowerBound), UInt32(l.holding.count),
                UInt32(l.input.lowerBound), UInt32(l.input.count))!
            maps[unit] = Mapping(pointer: p, layout: l)
        }
        tables = Mutex(maps)
        hook = Mutex(nil)
        (writes, writeContinuation) = AsyncStream.makeStream(of: ServerWrite.self, bufferingPolicy: .bufferingNewest(100_000))
    }

    deinit {
        stop()
        tables.withLock { maps in
            for m in maps.values { modbus_mapping_free(m.pointer) }
            maps = [:]
        }
    }

    /// The port the server listens on (after `start()`).
    public var port: Int { state.withLock { $0.port } }
    public var requestsServed: Int { served.load(ordering: .relaxed) }

    /// Decides what happens to each request; nil answers everything normally.
    public func setHook(_ h: (@Sendable (ServedRequest) -> ServerAction)?) {
        hook.withLock { $0 = h.map(Callback.init) }
    }

    /// Called with every write, on the serving thread, once it is in the tables and counted in `writesYielded`
    /// and before `writes` yields it: for an owner that applies writes where they happen, without a task.
    /// It must not block (the next request waits for it). nil: none.
    public func setWriteObserver(_ f: (@Sendable (ServerWrite) -> Void)?) {
        writeObserver.withLock { $0 = f.map(Callback.init) }
    }

    // MARK: Register tables

    /// Sets registers (or bits, 0/1) of `unit`. Addresses outside the layout are ignored.
    public func set(unit: Int, _ table: ModbusTable, address: Int, _ values: [UInt16]) {
        update { set in set(unit, table, address, values) }
    }

    /// Reads registers (or bits, 0/1) of `unit`; addresses outside the layout read 0.
    public func get(unit: Int, _ table: ModbusTable, address: Int, count: Int) -> [UInt16] {
        tables.withLock { maps in
            guard let m = maps[unit] else { return [UInt16](repeating: 0, count: count) }
            return Self.read(m, table, address: address, count: count)
        }
    }

    /// Runs `body` with exclusive access to all tables (a consistent multi-register update).
    public func update<R>(_ body: (_ set: (Int, ModbusTable, Int, [UInt16]) -> Void) -> R) -> R {
        tables.withLock { maps in
            body { unit, table, address, values in
                guard let m = maps[unit] else { return }
                let r = m.layout.range(table)
                for (i, v) in values.enumerated() where r.contains(address + i) {
                    let idx = address + i - r.lowerBound
                    switch table {
                    case .holding: m.pointer.pointee.tab_registers[idx] = v
                    case .input: m.pointer.pointee.tab_input_registers[idx] = v
                    case .coil: m.pointer.pointee.tab_bits[idx] = v != 0 ? 1 : 0
                    case .discrete: m.pointer.pointee.tab_input_bits[idx] = v != 0 ? 1 : 0
                    }
                }
            }
        }
    }

    private static func read(_ m: Mapping, _ table: ModbusTable, address: Int, count: Int) -> [UInt16] {
        let r = m.layout.range(table)
        return (0..<count).map { i in
            guard r.contains(address + i) else { return 0 }
            let idx = address + i - r.lowerBound
            switch table {
            case .holding: return m.pointer.pointee.tab_registers[idx]
            case .input: return m.pointer.pointee.tab_input_registers[idx]
            case .coil: return UInt16(m.pointer.pointee.tab_bits[idx])
            case .discrete: return UInt16(m.pointer.pointee.tab_input_bits[idx])
            }
        }
    }

    // MARK: Lifecycle

    /// Binds, listens and starts serving on a dedicated thread. Returns the port.
    @discardableResult
    public func start() throws(ModbusError) -> Int {
        let device = "server \(host):\(requestedPort)"
        guard let ctx = modbus_new_tcp_pi(host, String(requestedPort)) else {
            throw ModbusError(currentErrorKind(), device: device)
        }
        let listenFd = modbus_tcp_pi_listen(ctx, 128)
        if listenFd == -1 {
            let kind = currentErrorKind()
            modbus_free(ctx)
            throw ModbusError(kind, device: device)
        }
        var addr = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let boundPort: Int = withUnsafeMutablePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                guard getsockname(listenFd, sa, &len) == 0 else { return requestedPort }
                if sa.pointee.sa_family == sa_family_t(AF_INET6) {
                    return sa.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { Int(UInt16(bigEndian: $0.pointee.sin6_port)) }
                }
                return sa.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { Int(UInt16(bigEndian: $0.pointee.sin_port)) }
            }
        }
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else {
            let kind = currentErrorKind()
            close(listenFd); modbus_free(ctx)
            throw ModbusError(kind, device: device)
        }
        state.withLock { $0 = (boundPort, fds[1], true) }
        let box = ServerContextBox(ctx: ctx, listenFd: listenFd, wakeRead: fds[0])
        let thread = Thread { [self] in
            self.serve(box)
            self.stopped.signal()
        }
        thread.name = "modbus-server-\(boundPort)"
        thread.start()
        return boundPort
    }

    /// Stops serving and closes every connection. Idempotent.
    public func stop() {
        let (wake, running) = state.withLock { s -> (Int32, Bool) in
            let r = (s.wakeWrite, s.running)
            s.running = false
            return r
        }
        guard running else { return }
        var b: UInt8 = 1
        _ = write(wake, &b, 1)
        stopped.wait()
        close(wake)
        writeContinuation.finish()
    }

    // MARK: The serving thread

    private func serve(_ box: ServerContextBox) {
        let ctx = box.ctx
        defer {
            close(box.listenFd)
            close(box.wakeRead)
            modbus_free(ctx)
        }
        modbus_set_indication_timeout(ctx, 2, 0)
        modbus_set_byte_timeout(ctx, 0, 500_000)
        var clients: [Int32] = []
        defer { for c in clients { close(c) } }
        let headerLength = Int(modbus_get_header_length(ctx))
        var query = [UInt8](repeating: 0, count: 260)  // MODBUS_TCP_MAX_ADU_LENGTH
        while true {
            var pfds = [pollfd(fd: box.wakeRead, events: Int16(POLLIN), revents: 0),
                        pollfd(fd: box.listenFd, events: Int16(POLLIN), revents: 0)]
            pfds += clients.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            let n = poll(&pfds, nfds_t(pfds.count), -1)
            if n < 0 {
                if cmodbus_errno() == EINTR { continue }
                return
            }
            if pfds[0].revents != 0 { return }
            if pfds[1].revents & Int16(POLLIN) != 0 {
                var lfd = box.listenFd
                let c = modbus_tcp_pi_accept(ctx, &lfd)
                // modbus_receive selects on the socket: one at or above FD_SETSIZE would abort the process.
                if c >= libmodbusMaxDescriptor { close(c) } else if c >= 0 { clients.append(c) }
            }
            var closed: Set<Int32> = []
            for p in pfds.dropFirst(2) where p.revents != 0 {
                modbus_set_socket(ctx, p.fd)
                let rc = query.withUnsafeMutableBufferPointer { modbus_receive(ctx, $0.baseAddress) }
                if rc == -1 { closed.insert(p.fd); continue }
                if rc == 0 { continue }
                if !handle(ctx: ctx, fd: p.fd, query: &query, length: Int(rc), headerLength: headerLength) {
                    closed.insert(p.fd)
                }
            }
            if !closed.isEmpty {
                for c in closed { close(c) }
                clients.removeAll { closed.contains($0) }
            }
        }
    }

    /// Answers one request. Returns false when the connection must be closed.
    private func handle(ctx: OpaquePointer, fd: Int32, query: inout [UInt8], length: Int, headerLength: Int) -> Bool {
        served.add(1, ordering: .relaxed)
        let unit = Int(query[headerLength - 1])
        let fc = query[headerLength]
        func word(_ at: Int) -> Int { at + 1 < length ? Int(query[at]) << 8 | Int(query[at + 1]) : 0 }
        let address = word(headerLength + 1)
        let count: Int = (fc == 0x05 || fc == 0x06) ? 1 : word(headerLength + 3)
        var request = ServedRequest(unit: unit, function: fc, address: address, count: count)
        switch fc {
        case 0x06: request.writeAddress = address; request.values = [UInt16(word(headerLength + 3))]
        case 0x10: request.writeAddress = address; request.values = (0..<min(count, 123)).map { UInt16(word(headerLength + 6 + 2 * $0)) }
        case 0x17:
            request.writeAddress = word(headerLength + 5)
            request.values = (0..<min(word(headerLength + 7), 121)).map { UInt16(word(headerLength + 10 + 2 * $0)) }
        default: break
        }
        var action = hook.withLock { $0 }?(request) ?? .reply
        if case .delay(let d) = action {
            Thread.sleep(forTimeInterval: Double(d.milliseconds) / 1000)
            action = .reply
        }
        switch action {
        case .reply, .delay:
            break
        case .exception(let e):
            _ = query.withUnsafeBufferPointer { modbus_reply_exception(ctx, $0.baseAddress, UInt32(e.rawValue)) }
            return true
        case .drop:
            return true
        case .disconnect:
            return false
        case .garbage:
            var junk = (0..<12).map { _ in UInt8.random(in: 0...255) }
            // Keep the MBAP transaction id so the client parses further and sees bad data.
            junk[0] = query[0]; junk[1] = query[1]; junk[2] = 0; junk[3] = 0
            junk[4] = 0; junk[5] = 6
            _ = send(fd, &junk, junk.count, Int32(MSG_NOSIGNAL))
            return true
        case .short:
            var frame: [UInt8] = [query[0], query[1], 0, 0, 0, 3, query[6], fc]
            _ = send(fd, &frame, frame.count, Int32(MSG_NOSIGNAL))
            return true
        }
        let known: Bool = tables.withLock { maps in
            guard let m = maps[unit] else { return false }
            _ = query.withUnsafeBufferPointer { modbus_reply(ctx, $0.baseAddress, Int32(length), m.pointer) }
            return true
        }
        if !known {
            _ = query.withUnsafeBufferPointer {
                modbus_reply_exception(ctx, $0.baseAddress, UInt32(ModbusException.gatewayTargetFailedToRespond.rawValue))
            }
            return true
        }
        let table: ModbusTable?
        var written = (address: address, count: count)
        switch fc {
        case 0x05, 0x0F: table = .coil
        case 0x06, 0x10: table = .holding
        case 0x17: table = .holding; written = (word(headerLength + 5), word(headerLength + 7))  // FC23: the write part
        default: table = nil
        }
        if let table {
            let (address, count) = written
            let values = get(unit: unit, table, address: address, count: count)
            let w = ServerWrite(unit: unit, table: table, address: address, values: values)
            writesYieldedCount.add(1, ordering: .sequentiallyConsistent)
            writeObserver.withLock { $0 }?(w)
            writeContinuation.yield(w)
        }
        return true
    }
}

private struct ServerContextBox: @unchecked Sendable {
    // Handed to the serving thread, which alone uses it from then on.
    let ctx: OpaquePointer
    let listenFd: Int32
    let wakeRead: Int32
}
