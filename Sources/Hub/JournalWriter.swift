// The fleet operations' journal writes, off the operations' poll (FleetOperations.persist): the poll hands over the
// state of each operation that changed and goes on; this actor writes them to the journal (the hub's store) in the
// order they were handed over, the newest state of each only. So a poll that sends a shed's caps never waits on
// PostgreSQL, down, restarting or slow (the chaos soak measured 70 s of its 170 s of real time in the operations'
// polls while each awaited its journal writes).
//
// A write that fails stops the round and keeps its state (and those behind it); the next hand-over, at the next
// poll, starts another round. `flush` runs one round to its end: tests, and the hub's graceful shutdown.

import Foundation

actor JournalWriter {
    struct Write: Sendable, Equatable {
        var id: String
        var kind: String
        var finished: Bool
        var data: Data
    }

    let journal: any FleetOperationsJournal
    /// Waiting to be written, the newest state of each, in the order first handed over.
    private var pending: [String: Write] = [:]
    private var order: [String] = []
    private var round: Task<Void, Never>?
    /// The last write's failure (nil once one succeeds).
    private(set) var problem: String?

    init(journal: any FleetOperationsJournal) {
        self.journal = journal
    }

    /// Takes `writes` (each replaces what waits for its operation) and starts a round if none is running and
    /// anything waits (a failed write waiting from an earlier round too).
    func submit(_ writes: [Write]) {
        for w in writes {
            if pending[w.id] == nil { order.append(w.id) }
            pending[w.id] = w
        }
        startRound()
    }

    /// Runs a round (if anything waits) and waits for the running one to end.
    func flush() async {
        startRound()
        await round?.value
    }

    var waiting: Int { pending.count }

    private func startRound() {
        guard round == nil, !order.isEmpty else { return }
        round = Task { await self.write() }
    }

    private func write() async {
        defer { round = nil }
        while let id = order.first, let w = pending[id] {
            do {
                try await journal.saveOperation(id: w.id, kind: w.kind, finished: w.finished, state: w.data)
                problem = nil
            } catch {
                problem = "\(error)"
                return
            }
            // A newer state handed over meanwhile stays, to be written next.
            if pending[id] == w {
                pending[id] = nil
                order.removeFirst()
            }
        }
    }
}
