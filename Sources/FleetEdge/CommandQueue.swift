// Fleet commands wait here between the runner (which decodes and schema-checks them) and the command worker
// (which applies them one at a time, FleetCommands.swift). Bounded: a flood of commands cannot grow memory without
// limit, nor hold up the runner's other events (births, connection loss) behind it. Past `capacity` waiting
// commands, the newest is dropped: counted, and logged by the worker with the first dropped ids (docs/fleet.md).

import Sparkplug
import Synchronization

/// The fleet command queue's settings (docs/fleet.md, "Commands"), and what to tell an observer.
public struct CommandQueueOptions: Sendable {
    public static let defaultCapacity = 1024
    public static let defaultPerTick = 16

    /// Commands waiting at most; past it the newest are dropped (and logged).
    public var capacity: Int
    /// Commands that change the loop (accepted ones) per tick at most; the next waits for the next tick.
    public var perTick: Int
    public var observe: @Sendable (FleetCommandQueueEvent) -> Void

    public init(capacity: Int = Self.defaultCapacity, perTick: Int = Self.defaultPerTick,
                observe: @escaping @Sendable (FleetCommandQueueEvent) -> Void = { _ in }) {
        precondition(capacity > 0 && perTick > 0, "the fleet command queue's capacity and budget must be positive")
        self.capacity = capacity
        self.perTick = perTick
        self.observe = observe
    }
}

/// What the command queue and worker did, for tests and logs.
public enum FleetCommandQueueEvent: Sendable, Hashable {
    /// Commands dropped because `capacity` were waiting (since the last such event), with the first few ids.
    case dropped(Int, ids: [String])
    /// A command was handled (answered): its id, whether accepted, and the tick count it was applied in (accepted ones).
    case handled(id: String, accepted: Bool, tick: Int?)
    /// A fast path asked for by a command ran (`true`) or was left to the next tick (`false`), in this tick count.
    case fastPath(ran: Bool, tick: Int)
    /// The worker has used this tick count's budget: its next command waits for the next tick.
    case waitingForTick(Int)
}

/// A bounded FIFO of runner events (commands and refused commands) with one consumer.
final class CommandQueue: Sendable {
    let capacity: Int
    private struct State {
        var items: [EdgeNodeEvent] = []
        var head = 0
        var waiter: CheckedContinuation<EdgeNodeEvent?, Never>?
        var dropped = 0
        var droppedIDs: [String] = []
        var closed = false
    }
    private let state = Mutex(State())

    init(capacity: Int) { self.capacity = capacity }

    /// Appends unless full (then the event is dropped and counted); never waits.
    @discardableResult
    func push(_ event: EdgeNodeEvent) -> Bool {
        let (accepted, waiter) = state.withLock { s -> (Bool, CheckedContinuation<EdgeNodeEvent?, Never>?) in
            if s.closed { return (false, nil) }
            if let w = s.waiter {
                s.waiter = nil
                return (true, w)
            }
            guard s.items.count - s.head < capacity else {
                s.dropped += 1
                if s.droppedIDs.count < 5 { s.droppedIDs.append(Self.commandID(event) ?? "?") }
                return (false, nil)
            }
            s.items.append(event)
            return (true, nil)
        }
        waiter?.resume(returning: event)
        return accepted
    }

    /// The next event (waiting for one); nil once closed.
    func next() async -> EdgeNodeEvent? {
        await withCheckedContinuation { (c: CheckedContinuation<EdgeNodeEvent?, Never>) in
            let now = state.withLock { s -> (Bool, EdgeNodeEvent?) in
                if s.head < s.items.count {
                    let e = s.items[s.head]
                    s.head += 1
                    if s.head == s.items.count { s.items.removeAll(keepingCapacity: true); s.head = 0 }
                    return (true, e)
                }
                if s.closed { return (true, nil) }
                s.waiter = c
                return (false, nil)
            }
            if now.0 { c.resume(returning: now.1) }
        }
    }

    /// Drops counted since the last call, with the first few ids.
    func takeDropped() -> (count: Int, ids: [String]) {
        state.withLock { s in
            defer { s.dropped = 0; s.droppedIDs = [] }
            return (s.dropped, s.droppedIDs)
        }
    }

    var count: Int { state.withLock { $0.items.count - $0.head } }

    /// Ends the worker: waiting commands are dropped (shutdown).
    func close() {
        let w = state.withLock { s -> CheckedContinuation<EdgeNodeEvent?, Never>? in
            s.closed = true
            s.items = []
            s.head = 0
            defer { s.waiter = nil }
            return s.waiter
        }
        w?.resume(returning: nil)
    }

    /// The `Command/ID` a command carries, for the drop log.
    static func commandID(_ event: EdgeNodeEvent) -> String? {
        switch event {
        case .command(_, let commands):
            for c in commands where c.name == FleetCommandName.id { if case .string(let s) = c.value { return s } }
            return nil
        case .rejected(_, _, let echo):
            if case .string(let s)? = echo[FleetCommandName.id] { return s }
            return nil
        default:
            return nil
        }
    }
}
