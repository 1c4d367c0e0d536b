// An async Modbus client over libmodbus.
//
// Each connection ("lane") owns one `modbus_t` and one dedicated thread (`LaneThread`, a
// Swift `TaskExecutor`). Every blocking libmodbus call runs on that thread, never on
// Swift's cooperative pool, and the context never leaves it. A task that prefers the lane's
// executor (`preferredExecutor()`; the poller and the actuators use it for each device)
// runs its whole poll or write cycle on that thread and makes each request in place, with
// no hop; any other caller hops to the thread and back once per call. Requests to all unit
// ids behind one endpoint (an RTU line or a TCP gateway) share the endpoint's lanes, so they
// are serialised per lane; `maxInFlight` TCP lanes (the site file's `max_connections`) allow
// that many requests at once to one gateway (default 1).

import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Exponential backoff with jitter for reconnects.
public struct BackoffPolicy: Sendable, Equatable {
    public var initial: Duration
    public var maximum: Duration
    public var multiplier: Double
    /// Fraction of the delay randomised, 0…1 (0.2: ±20 %).
    public var jitter: Double

    public init(initial: Duration = .milliseconds(250), maximum: Duration = .seconds(30), multiplier: Double = 2, jitter: Double = 0.2) {
        self.initial = initial
        self.maximum = maximum
        self.multiplier = multiplier
        self.jitter = max(0, min(1, jitter))
    }

    /// No waiting between reconnect attempts (tests only).
    public static let immediate = BackoffPolicy(initial: .zero, maximum: .zero, jitter: 0)

    /// The delay before attempt `failures` (1 = after the first failure).
    /// `unit` is a random number in 0..<1.
    public func delay(afterFailures failures: Int, unit: Double) -> Duration {
        guard failures > 0 else { return .zero }
        let base = Double(initial.milliseconds) * pow(multiplier, Double(min(failures - 1, 30)))
        let capped = min(base, Double(maximum.milliseconds))
        let jittered = capped * (1 - jitter + 2 * jitter * unit)
        return .milliseconds(Int(max(0, min(jittered, Double(maximum.milliseconds)))))
    }

    private func pow(_ b: Double, _ e: Double) -> Double {
        var r = 1.0
        for _ in 0..<Int(e) { r *= b }
        return r
    }
}

public struct ModbusClientOptions: Sendable, Equatable {
    /// How long to wait for an answer (also the TCP connect timeout).
    public var responseTimeout: Duration
    /// Concurrent requests to one TCP gateway (separate connections). RTU is always 1.
    public var maxInFlight: Int
    /// Consecutive timeouts after which the connection is closed and re-opened.
    public var timeoutsBeforeReconnect: Int
    public var backoff: BackoffPolicy

    public init(responseTimeout: Duration = .seconds(1), maxInFlight: Int = 1, timeoutsBeforeReconnect: Int = 2, backoff: BackoffPolicy = .init()) {
        self.responseTimeout = responseTimeout
        self.maxInFlight = max(1, maxInFlight)
        self.timeoutsBeforeReconnect = max(1, timeoutsBeforeReconnect)
        self.backoff = backoff
    }
}

/// Counters a client keeps, for metrics and tests.
public struct ModbusClientStats: Sendable, Equatable {
    public var requests = 0
    public var failures = 0
    public var connects = 0
    public var reconnectsAfterFailure = 0
    public var timeouts = 0
    /// Requests that had to cross to the connection's thread and back (the caller was not on it).
    public var hops = 0
}

/// One connection: one `modbus_t`, one thread. All mutable state is touched
/// only on `thread`, which is what makes the unchecked Sendable conformance sound.
final class ConnectionLane: @unchecked Sendable {
    let thread: LaneThread
    let endpoint: ModbusEndpoint
    let name: String
    let options: ModbusClientOptions
    let pending = Atomic<Int>(0)

    let closed = Atomic<Bool>(false)

    // Thread-confined state: touched only on `thread`, one job at a time, so no two accesses can overlap and the
    // dynamic exclusivity check (swift_beginAccess, about 110 instructions a request) is left out.
    @exclusivity(unchecked) private var context: ModbusContext?
    @exclusivity(unchecked) private var failures = 0
    /// When the backoff ends, as time since `backoffEpoch`: a `Duration?` (a fixed-size type) so that the check on
    /// every request costs no metadata lookup, which `ContinuousClock.Instant?` (a resilient type) did.
    @exclusivity(unchecked) private var retryAt: Duration?
    private static let backoffEpoch = ContinuousClock.now
    private static var sinceEpoch: Duration { ContinuousClock.now - backoffEpoch }
    @exclusivity(unchecked) private var consecutiveTimeouts = 0
    @exclusivity(unchecked) private var needsFlush = false
    @exclusivity(unchecked) private var everConnected = false

    // Counters: written on `thread` only, read from anywhere. One relaxed atomic add each, no lock.
    private let requestCount = Atomic<Int>(0)
    private let failureCount = Atomic<Int>(0)
    private let connectCount = Atomic<Int>(0)
    private let reconnectCount = Atomic<Int>(0)
    private let timeoutCount = Atomic<Int>(0)
    private let hopCount = Atomic<Int>(0)

    init(endpoint: ModbusEndpoint, name: String, options: ModbusClientOptions) {
        self.endpoint = endpoint
        self.name = name
        self.options = options
        self.thread = LaneThread(name: name)
    }

    deinit {
        thread.stop()
    }

    /// Stops the thread once its queued work is done; later requests fail with `.closed`.
    func close() async {
        closed.store(true, ordering: .sequentiallyConsistent)
        await thread.shutdown()
    }

    var stats: ModbusClientStats {
        var s = ModbusClientStats()
        s.requests = requestCount.load(ordering: .relaxed)
        s.failures = failureCount.load(ordering: .relaxed)
        s.connects = connectCount.load(ordering: .relaxed)
        s.reconnectsAfterFailure = reconnectCount.load(ordering: .relaxed)
        s.timeouts = timeoutCount.load(ordering: .relaxed)
        s.hops = hopCount.load(ordering: .relaxed)
        return s
    }

    /// Runs `op` in place; only on this lane's thread (`thread.isCurrent`), where a task preferring the
    /// lane's executor runs. The closure does not escape, so nothing is allocated for it.
    /// Never inlined into the async callers: there, every temporary whose size the compiler does not know
    /// (`ContinuousClock.Instant?`, the generic `Result`) was allocated from the task's allocator, 13 allocations
    /// a read; in this synchronous frame they live on the thread's stack (callgrind, Benchmarks/README.md).
    @inline(never)
    func inPlace<T>(unit: Int, function: FunctionCode?, address: Int, count: Int,
                    _ op: (ModbusContext) throws(ModbusError) -> T) throws(ModbusError) -> T {
        if closed.load(ordering: .relaxed) {
            throw ModbusError(.closed, device: name, unit: unit, function: function, address: address, count: count)
        }
        return try perform(unit: unit, function: function, address: address, count: count, op)
    }

    /// Runs `op` on this lane's thread with a connected context, from another thread: one hop there and back.
    func run<T: Sendable>(unit: Int, function: FunctionCode?, address: Int, count: Int,
                          _ op: @escaping @Sendable (ModbusContext) throws(ModbusError) -> T) async throws(ModbusError) -> T {
        if closed.load(ordering: .relaxed) {
            throw ModbusError(.closed, device: name, unit: unit, function: function, address: address, count: count)
        }
        pending.add(1, ordering: .relaxed)
        defer { pending.subtract(1, ordering: .relaxed) }
        hopCount.wrappingAdd(1, ordering: .relaxed)
        let result: Result<T, ModbusError> = await withUnsafeContinuation { c in
            let queued = thread.submit {
                c.resume(returning: Result { () throws(ModbusError) in
                    try self.perform(unit: unit, function: function, address: address, count: count, op)
                })
            }
            if !queued {
                c.resume(returning: .failure(ModbusError(.closed, device: self.name, unit: unit, function: function, address: address, count: count)))
            }
        }
        return try result.get()
    }

    /// Runs on the lane thread. Throws instead of returning a `Result`: a generic `Result` of a large error
    /// built and taken apart on every request cost copies for nothing on the in-place path.
    private func perform<T>(unit: Int, function: FunctionCode?, address: Int, count: Int,
                            _ op: (ModbusContext) throws(ModbusError) -> T) throws(ModbusError) -> T {
        requestCount.wrappingAdd(1, ordering: .relaxed)
        if retryAt != nil, let e = backingOff(unit: unit, function: function, address: address, count: count) { throw e }
        do {
            let ctx = try connectedContext()
            if needsFlush { ctx.flush(); needsFlush = false }
            let value = try op(ctx)
            if failures != 0 { failures = 0 }
            if consecutiveTimeouts != 0 { consecutiveTimeouts = 0 }
            if retryAt != nil { retryAt = nil }
            return value
        } catch {
            var e = error
            if e.function == nil { e.function = function; e.address = address; e.count = count; e.unit = unit }
            record(e)
            throw e
        }
    }

    /// The error for a request made while the link is backing off, or nil once the backoff is over. Out of line:
    /// the clock's instant is a resilient type, and reading it here made every request look up its metadata and
    /// reserve stack for it, backoff or not.
    @inline(never)
    private func backingOff(unit: Int, function: FunctionCode?, address: Int, count: Int) -> ModbusError? {
        guard let retryAt else { return nil }
        let now = Self.sinceEpoch
        guard now < retryAt else { return nil }
        failureCount.wrappingAdd(1, ordering: .relaxed)
        return ModbusError(.backingOff(retryInMilliseconds: (retryAt - now).milliseconds),
                           device: name, unit: unit, function: function, address: address, count: count)
    }

    private func connectedContext() throws(ModbusError) -> ModbusContext {
        if let context, context.isConnected { return context }
        let ctx: ModbusContext
        if let context { ctx = context } else {
            ctx = try ModbusContext(endpoint: endpoint, name: name, responseTimeout: options.responseTimeout)
            context = ctx
        }
        try ctx.connect()
        connectCount.wrappingAdd(1, ordering: .relaxed)
        if everConnected { reconnectCount.wrappingAdd(1, ordering: .relaxed) }
        everConnected = true
        return ctx
    }

    private func record(_ e: ModbusError) {
        failureCount.wrappingAdd(1, ordering: .relaxed)
        if e.kind == .timeout { timeoutCount.wrappingAdd(1, ordering: .relaxed) }
        switch e.kind {
        case .timeout:
            consecutiveTimeouts += 1
            if consecutiveTimeouts >= options.timeoutsBeforeReconnect {
                dropConnection()
            } else {
                needsFlush = true
            }
        case .exception, .unknownException, .invalidRequest, .backingOff, .closed:
            break
        default:
            if e.breaksConnection { dropConnection() }
        }
    }

    private func dropConnection() {
        context?.close()
        consecutiveTimeouts = 0
        needsFlush = false
        failures += 1
        let delay = options.backoff.delay(afterFailures: failures, unit: Double.random(in: 0..<1))
        retryAt = delay > .zero ? Self.sinceEpoch + delay : nil
    }
}

/// An async Modbus client for one endpoint (a TCP device or gateway, or an RTU line).
/// Connects lazily on the first request and reconnects itself with backoff.
public final class ModbusClient: Sendable {
    public let endpoint: ModbusEndpoint
    public let name: String
    public let options: ModbusClientOptions
    private let lanes: [ConnectionLane]
    /// Round-robin over the lanes for `preferredExecutor()`.
    private let nextLane = Atomic<Int>(0)
    /// Units that answered ILLEGAL FUNCTION to FC23.
    let noFC23 = Mutex<Set<Int>>([])

    public init(endpoint: ModbusEndpoint, options: ModbusClientOptions = .init(), name: String? = nil) {
        self.endpoint = endpoint
        self.name = name ?? endpoint.description
        var options = options
        if case .rtu = endpoint { options.maxInFlight = 1 }
        self.options = options
        let n = options.maxInFlight
        let label = self.name
        self.lanes = (0..<n).map { _ in ConnectionLane(endpoint: endpoint, name: label, options: options) }
    }

    /// Summed counters over all lanes.
    public var stats: ModbusClientStats {
        lanes.reduce(into: ModbusClientStats()) { acc, lane in
            let s = lane.stats
            acc.requests += s.requests
            acc.failures += s.failures
            acc.connects += s.connects
            acc.reconnectsAfterFailure += s.reconnectsAfterFailure
            acc.timeouts += s.timeouts
            acc.hops += s.hops
        }
    }

    /// The lane whose thread the caller is on, if any.
    private func currentLane() -> ConnectionLane? {
        if lanes.count == 1 { return lanes[0].thread.isCurrent ? lanes[0] : nil }
        for l in lanes where l.thread.isCurrent { return l }
        return nil
    }

    /// For a caller on no lane's thread: the lane with the fewest requests waiting.
    private func lane() -> ConnectionLane {
        if lanes.count == 1 { return lanes[0] }
        var best = lanes[0]
        var bestLoad = best.pending.load(ordering: .relaxed)
        for l in lanes.dropFirst() {
            let load = l.pending.load(ordering: .relaxed)
            if load < bestLoad { best = l; bestLoad = load }
        }
        return best
    }

    /// True when called on one of this client's connection threads.
    public var isOnConnectionThread: Bool { lanes.contains { $0.thread.isCurrent } }

    /// The number of connections (lanes) to the endpoint.
    public var connections: Int { lanes.count }

    /// The executor of one of this client's connection threads, taken in turn: a task that
    /// prefers it (`TaskGroup.addTask(executorPreference:)`) runs on that connection's thread
    /// and its requests go out from there in place, with no hop per request. Spreading a
    /// gateway's devices over these spreads them over its connections.
    public func preferredExecutor() -> any TaskExecutor {
        if lanes.count == 1 { return lanes[0].thread }
        let k = nextLane.add(1, ordering: .relaxed).newValue
        return lanes[(k % lanes.count + lanes.count) % lanes.count].thread
    }

    /// Reads `count` registers (or bits, as 0/1 words) from `table`.
    /// `nonisolated(nonsending)`: it runs on the caller's executor (the connection's thread, for a task that prefers it)
    /// instead of switching to the generic executor first; 5,510 → 4,980 instructions a read (callgrind, Benchmarks/README.md).
    public nonisolated(nonsending) func read(_ table: ModbusTable, unit: Int, address: Int, count: Int) async throws(ModbusError) -> [UInt16] {
        if let here = currentLane() {
            return try here.inPlace(unit: unit, function: .read(table), address: address, count: count) { ctx throws(ModbusError) in
                try ctx.read(table, unit: unit, address: address, count: count)
            }
        }
        return try await lane().run(unit: unit, function: .read(table), address: address, count: count) { ctx throws(ModbusError) in
            try ctx.read(table, unit: unit, address: address, count: count)
        }
    }

    /// Reads `words.count` registers (or bits, as 0/1 words) from `table` into `words`, which keeps its storage:
    /// on the connection's thread a read this way allocates nothing. For a caller that reads the same range again
    /// and again (a poll loop); `read(_:unit:address:count:)` returns a new array each time, about 700 instructions
    /// more per request (callgrind, Benchmarks/README.md).
    ///
    /// Inlinable, with the in-place read a synchronous call: an `await` of a non-inlined async function allocates
    /// its frame from the task's allocator (about 140 instructions), and a mutable access to `words` across that
    /// call was checked at run time (about 60).
    @inlinable
    public nonisolated(nonsending) func read(_ table: ModbusTable, unit: Int, address: Int, into words: inout [UInt16]) async throws(ModbusError) {
        if try readOnConnectionThread(table, unit: unit, address: address, into: &words) { return }
        words = try await read(table, unit: unit, address: address, count: words.count)
    }

    /// `read(_:unit:address:into:)` when the caller is on one of this client's connection threads; false (nothing
    /// read) when it is not.
    @usableFromInline
    func readOnConnectionThread(_ table: ModbusTable, unit: Int, address: Int, into words: inout [UInt16]) throws(ModbusError) -> Bool {
        guard let here = currentLane() else { return false }
        let count = words.count
        try words.withUnsafeMutableBufferPointer { buf throws(ModbusError) in
            // A copy of the (inout) buffer pointer: capturing the inout parameter itself made every call check
            // the access at run time (swift_beginAccess).
            let into = buf
            try here.inPlace(unit: unit, function: .read(table), address: address, count: count) { ctx throws(ModbusError) in
                try ctx.read(table, unit: unit, address: address, into: into)
            }
        }
        return true
    }

    public func readBits(_ table: ModbusTable, unit: Int, address: Int, count: Int) async throws(ModbusError) -> [Bool] {
        try await read(table, unit: unit, address: address, count: count).map { $0 != 0 }
    }

    /// Reads every request of a plan in one trip to the connection's thread.
    /// Each request succeeds or fails on its own. The words of all requests share one buffer (each request's words
    /// are a slice of it): one allocation per plan instead of one per request.
    public nonisolated(nonsending) func read(plan: [ReadRequest], unit: Int) async -> [Result<ArraySlice<UInt16>, ModbusError>] {
        guard let first = plan.first else { return [] }
        do throws(ModbusError) {
            if let here = currentLane() {
                return try here.inPlace(unit: unit, function: .read(first.table), address: first.address, count: first.count) { ctx throws(ModbusError) in
                    try Self.read(plan: plan, unit: unit, on: ctx)
                }
            }
            return try await lane().run(unit: unit, function: .read(first.table), address: first.address, count: first.count) { ctx throws(ModbusError) in
                try Self.read(plan: plan, unit: unit, on: ctx)
            }
        } catch {
            return plan.map { r in
                var e = error
                e.function = .read(r.table); e.address = r.address; e.count = r.count
                return .failure(e)
            }
        }
    }

    /// A request's place in a plan's shared buffer: its count, or 0 for a count its table's reads do not allow (that
    /// request fails validation and reads nothing).
    private static func slot(_ r: ReadRequest) -> Int { (1...ModbusContext.readLimit(r.table)).contains(r.count) ? r.count : 0 }

    /// On the lane's thread: every request of the plan, each on its own; a broken link fails the rest at once.
    private static func read(plan: [ReadRequest], unit: Int, on ctx: ModbusContext) throws(ModbusError) -> [Result<ArraySlice<UInt16>, ModbusError>] {
        var total = 0
        for r in plan { total += slot(r) }
        var words = [UInt16](repeating: 0, count: total)
        // The failures, by request index (empty, so no allocation, when every request succeeds), and where the link
        // was lost (that request and every later one fail with its error).
        var failures: [(Int, ModbusError)] = []
        var lost: (from: Int, error: ModbusError)?
        try words.withUnsafeMutableBufferPointer { all throws(ModbusError) in
            let base = all
            var at = 0
            for (i, r) in plan.enumerated() {
                let n = slot(r)
                do throws(ModbusError) {
                    if n == 0 {
                        _ = try ctx.read(r.table, unit: unit, address: r.address, count: r.count)  // throws: invalid count
                    } else {
                        try ctx.read(r.table, unit: unit, address: r.address, into: UnsafeMutableBufferPointer(rebasing: base[at..<(at + n)]))
                    }
                } catch {
                    if error.breaksConnection || error.kind == .timeout {
                        if i == 0 { throw error }
                        lost = (i, error)
                        return
                    }
                    failures.append((i, error))
                }
                at += n
            }
        }
        var out: [Result<ArraySlice<UInt16>, ModbusError>] = []
        out.reserveCapacity(plan.count)
        var at = 0
        var nextFailure = 0
        for (i, r) in plan.enumerated() {
            let n = slot(r)
            if let lost, i >= lost.from {
                out.append(.failure(lost.error))
            } else if nextFailure < failures.count && failures[nextFailure].0 == i {
                out.append(.failure(failures[nextFailure].1))
                nextFailure += 1
            } else {
                out.append(.success(words[at..<(at + n)]))
            }
            at += n
        }
        return out
    }

    public func writeRegisters(unit: Int, address: Int, values: [UInt16]) async throws(ModbusError) {
        let fc: FunctionCode = values.count == 1 ? .writeSingleRegister : .writeMultipleRegisters
        if let here = currentLane() {
            return try here.inPlace(unit: unit, function: fc, address: address, count: values.count) { ctx throws(ModbusError) in
                try ctx.writeRegisters(unit: unit, address: address, values: values)
            }
        }
        try await lane().run(unit: unit, function: fc, address: address, count: values.count) { ctx throws(ModbusError) in
            try ctx.writeRegisters(unit: unit, address: address, values: values)
        }
    }

    public func writeCoils(unit: Int, address: Int, values: [Bool]) async throws(ModbusError) {
        let fc: FunctionCode = values.count == 1 ? .writeSingleCoil : .writeMultipleCoils
        if let here = currentLane() {
            return try here.inPlace(unit: unit, function: fc, address: address, count: values.count) { ctx throws(ModbusError) in
                try ctx.writeCoils(unit: unit, address: address, values: values)
            }
        }
        try await lane().run(unit: unit, function: fc, address: address, count: values.count) { ctx throws(ModbusError) in
            try ctx.writeCoils(unit: unit, address: address, values: values)
        }
    }

    /// Writes holding registers and reads them back, in one trip to the connection's thread.
    /// With `combined`, as one FC23 transaction (half the round trips); a unit that answers
    /// ILLEGAL FUNCTION to FC23 is remembered and gets FC16 + FC03 from then on.
    public func writeAndReadBack(unit: Int, address: Int, values: [UInt16], combined: Bool = false) async throws(ModbusError) -> [UInt16] {
        let fc23 = combined && !noFC23.withLock { $0.contains(unit) }
        let fc: FunctionCode = fc23 ? .writeAndReadRegisters : values.count == 1 ? .writeSingleRegister : .writeMultipleRegisters
        if let here = currentLane() {
            return try here.inPlace(unit: unit, function: fc, address: address, count: values.count) { ctx throws(ModbusError) in
                try writeAndReadBack(unit: unit, address: address, values: values, fc23: fc23, on: ctx)
            }
        }
        return try await lane().run(unit: unit, function: fc, address: address, count: values.count) { ctx throws(ModbusError) in
            try self.writeAndReadBack(unit: unit, address: address, values: values, fc23: fc23, on: ctx)
        }
    }

    /// On the lane's thread: FC23 (falling back to FC16 + FC03 on ILLEGAL FUNCTION), or FC16 + FC03.
    private func writeAndReadBack(unit: Int, address: Int, values: [UInt16], fc23: Bool, on ctx: ModbusContext) throws(ModbusError) -> [UInt16] {
        if fc23 {
            do throws(ModbusError) {
                return try ctx.writeAndReadRegisters(unit: unit, address: address, values: values)
            } catch {
                guard error.kind == .exception(.illegalFunction) else { throw error }
                noFC23.withLock { _ = $0.insert(unit) }
            }
        }
        try ctx.writeRegisters(unit: unit, address: address, values: values)
        return try ctx.read(.holding, unit: unit, address: address, count: values.count)
    }

    /// Whether FC23 is still tried for `unit` (false once it answered ILLEGAL FUNCTION).
    public func triesFC23(unit: Int) -> Bool { !noFC23.withLock { $0.contains(unit) } }

    /// A `RegisterBus` view of one unit id behind this endpoint.
    public func bus(unit: Int, deviceName: String? = nil) -> ModbusUnitBus {
        ModbusUnitBus(client: self, unit: unit, deviceName: deviceName ?? "\(name) unit \(unit)")
    }

    /// Stops the connection threads. Requests after this fail with `.closed`.
    public func close() async {
        for l in lanes { await l.close() }
    }
}

/// One unit id behind a `ModbusClient`.
public struct ModbusUnitBus: RegisterBus {
    public let client: ModbusClient
    public let unit: Int
    public let deviceName: String

    public func read(_ table: ModbusTable, address: Int, count: Int) async throws -> [UInt16] {
        do { return try await client.read(table, unit: unit, address: address, count: count) }
        catch { throw named(error) }
    }

    public func writeRegisters(address: Int, values: [UInt16]) async throws {
        do { try await client.writeRegisters(unit: unit, address: address, values: values) }
        catch { throw named(error) }
    }

    public func writeCoils(address: Int, values: [Bool]) async throws {
        do { try await client.writeCoils(unit: unit, address: address, values: values) }
        catch { throw named(error) }
    }

    public func writeAndReadBack(address: Int, values: [UInt16], combined: Bool) async throws -> [UInt16] {
        do { return try await client.writeAndReadBack(unit: unit, address: address, values: values, combined: combined) }
        catch { throw named(error) }
    }

    /// One of the client's connection threads (in turn), for this device's tasks.
    public func preferredExecutor() -> (any TaskExecutor)? { client.preferredExecutor() }

    public func execute(_ plan: [ReadRequest], spans: [ReadSpan]) async -> [SpanResult?] {
        let results = await client.read(plan: plan, unit: unit)
        return spanResults(plan, spans: spans, results.map { $0.mapError(named) })
    }

    private func named(_ e: ModbusError) -> ModbusError {
        var e = e
        e.device = deviceName
        return e
    }
}

// The thread of one connection lane, as a Swift `TaskExecutor`.
//
// A task that prefers this executor (`TaskGroup.addTask(executorPreference:)`,
// `withTaskExecutorPreference`) runs its nonisolated code here, so a device's whole
// poll or write cycle runs on its connection's thread and each libmodbus call is made
// in place: no hop from the caller's task to the connection's thread and back per
// request. Work is one job at a time, in order, so everything run here is serialised
// (one gateway's requests never overlap on one connection). This is a dedicated OS
// thread, never one of Swift's cooperative pool, so blocking calls are allowed here.


final class LaneThread: TaskExecutor, @unchecked Sendable {
    private enum Work {
        case job(UnownedJob)
        case call(@Sendable () -> Void)
    }

    // Guarded by `mutex`.
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let cond: UnsafeMutablePointer<pthread_cond_t>
    private var queue: [Work] = []
    private var stopping = false
    private var stopped = false
    private var waiters: [CheckedContinuation<Void, Never>] = []

    // Written once, by pthread_create in init, before any job can run; read by `isCurrent` on every request.
    @exclusivity(unchecked) private var thread = pthread_t()
    let name: String

    init(name: String) {
        self.name = name
        mutex = .allocate(capacity: 1)
        cond = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(cond, nil)
        // The thread keeps the executor alive until it is stopped.
        let me = Unmanaged.passRetained(self).toOpaque()
        let rc = pthread_create(&thread, nil, { arg in
            let lane = Unmanaged<LaneThread>.fromOpaque(arg!).takeRetainedValue()
            lane.loop()
            return nil
        }, me)
        precondition(rc == 0, "pthread_create failed for Modbus connection \(name): \(rc)")
        pthread_detach(thread)
    }

    deinit {
        pthread_cond_destroy(cond)
        pthread_mutex_destroy(mutex)
        cond.deallocate()
        mutex.deallocate()
    }

    /// True when called on this lane's thread.
    var isCurrent: Bool { pthread_equal(pthread_self(), thread) != 0 }

    func enqueue(_ job: consuming ExecutorJob) {
        let unowned = UnownedJob(job)
        pthread_mutex_lock(mutex)
        if stopped {
            // Stopped (the client was closed): the task still has to run; it finds the lane closed.
            pthread_mutex_unlock(mutex)
            globalConcurrentExecutor.enqueue(ExecutorJob(unowned))
            return
        }
        queue.append(.job(unowned))
        pthread_cond_signal(cond)
        pthread_mutex_unlock(mutex)
    }

    /// Runs `body` on the thread; false if the thread is stopping or stopped (nothing was queued).
    func submit(_ body: @escaping @Sendable () -> Void) -> Bool {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        if stopping || stopped { return false }
        queue.append(.call(body))
        pthread_cond_signal(cond)
        return true
    }

    /// Lets the queued work finish, then ends the thread. Returns once it has ended.
    func shutdown() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            pthread_mutex_lock(mutex)
            if stopped {
                pthread_mutex_unlock(mutex)
                c.resume()
                return
            }
            waiters.append(c)
            stopping = true
            pthread_cond_signal(cond)
            pthread_mutex_unlock(mutex)
        }
    }

    /// Ends the thread once the queued work is done, without waiting.
    func stop() {
        pthread_mutex_lock(mutex)
        stopping = true
        pthread_cond_signal(cond)
        pthread_mutex_unlock(mutex)
    }

    private func loop() {
        var batch: [Work] = []
        let me = asUnownedTaskExecutor()
        while true {
            pthread_mutex_lock(mutex)
            while queue.isEmpty && !stopping { pthread_cond_wait(cond, mutex) }
            if queue.isEmpty {
                stopped = true
                let w = waiters
                waiters = []
                pthread_mutex_unlock(mutex)
                for c in w { c.resume() }
                return
            }
            swap(&batch, &queue)
            pthread_mutex_unlock(mutex)
            for work in batch {
                switch work {
                case .job(let j): j.runSynchronously(on: me)
                case .call(let f): f()
                }
            }
            batch.removeAll(keepingCapacity: true)
        }
    }
}
