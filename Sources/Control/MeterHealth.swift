// Meter health: a meter that answers every poll can still be lying. Two checks,
// on the telemetry the poller already has:
//   - frozen: a node meter whose power value does not change at all (not even in
//     its last digits) for `frozenPolls` polls in a row while the other meters and
//     devices under the same node move;
//   - inconsistent: a node meter that disagrees with the sum of its children's
//     meters and devices plus the modelled auxiliary load beyond a tolerance, for
//     `disagreePolls` polls in a row.
// Either counts as stale (worst case) for the governor. Each change of verdict
// yields one sentence, so the event log gets one line per change, not one per tick.
//
// `MeterHealth` is pure (readings and times are given); `MeterWatch` holds one for
// the loop and feeds it from the poller.

import Broker
import Safety
import Site
import Synchronization

public enum MeterStatus: String, Sendable, Equatable {
    case ok
    /// The value has not changed at all while everything under its node moved.
    case frozen
    /// The value disagrees with its children plus modelled auxiliary load.
    case inconsistent
}

public struct MeterHealthSettings: Sendable, Equatable {
    /// Identical readings in a row (while the node's other readings move) before a meter is frozen.
    public var frozenPolls: Int
    /// How much the other readings under the node must move in total over those polls (kW).
    public var minPeerMoveKW: Double
    /// Disagreement tolerance: the larger of `toleranceMinKW` and `toleranceFraction` × the larger side, plus
    /// what the meter and the readings under it moved since the previous poll (they are read at different instants).
    public var toleranceFraction: Double
    public var toleranceMinKW: Double
    public var disagreePolls: Int

    public init(frozenPolls: Int = 10, minPeerMoveKW: Double = 1, toleranceFraction: Double = 0.05, toleranceMinKW: Double = 50,
                disagreePolls: Int = 3) {
        self.frozenPolls = max(2, frozenPolls)
        self.minPeerMoveKW = minPeerMoveKW
        self.toleranceFraction = toleranceFraction
        self.toleranceMinKW = toleranceMinKW
        self.disagreePolls = max(1, disagreePolls)
    }
}

/// The frozen and consistency checks over a capacity tree (pure).
public struct MeterHealth: Sendable {
    public struct Node: Sendable, Equatable {
        public var id: String
        public var parent: Int?
        /// The node's meter, if it has one.
        public var meter: String?
        public init(id: String, parent: Int?, meter: String?) { self.id = id; self.parent = parent; self.meter = meter }
    }
    /// A metered load directly on a node (a container's own power reading).
    public struct Load: Sendable, Equatable {
        public var id: String
        public var node: Int
        public init(id: String, node: Int) { self.id = id; self.node = node }
    }
    /// Modelled auxiliary load on a node: fixed kW plus a fraction of the IT load under that node.
    public struct Auxiliary: Sendable, Equatable {
        public var node: Int
        public var fixedKW: Double
        public var fractionOfIT: Double
        public init(node: Int, fixedKW: Double, fractionOfIT: Double) { self.node = node; self.fixedKW = fixedKW; self.fractionOfIT = fractionOfIT }
    }

    struct Track: Sendable {
        var last: Double?
        var unchanged = 0
        var peerMoveKW = 0.0
        var disagreeing = 0
        var status: MeterStatus = .ok
    }

    public let nodes: [Node]
    public let loads: [Load]
    public let auxiliary: [Auxiliary]
    public let settings: MeterHealthSettings
    /// Per node: itself and every node below it.
    let subtree: [[Int]]
    var tracks: [String: Track] = [:]
    var lastReading: [String: Double] = [:]
    /// When each id was last read (MeterWatch: only a new read is a new poll).
    var readAt: [String: Double] = [:]

    public init(nodes: [Node], loads: [Load], auxiliary: [Auxiliary], settings: MeterHealthSettings = .init()) {
        self.nodes = nodes
        self.loads = loads
        self.auxiliary = auxiliary
        self.settings = settings
        var sub = nodes.indices.map { [$0] }
        for n in nodes.indices {
            var cur = nodes[n].parent
            var hops = 0
            while let c = cur, hops <= nodes.count { sub[c].append(n); cur = nodes[c].parent; hops += 1 }
        }
        subtree = sub
    }

    public func status(_ meter: String) -> MeterStatus { tracks[meter]?.status ?? .ok }

    /// Meters that are frozen or inconsistent now.
    public var suspect: Set<String> { Set(tracks.filter { $0.value.status != .ok }.keys) }

    /// One poll's new readings (kW) by meter or load id; a missing id was not read this poll.
    /// Returns a sentence per change of verdict.
    public mutating func observe(_ readings: [String: Double]) -> [String] {
        // Movement of every reading since the previous poll.
        var moved: [String: Double] = [:]
        for (id, v) in readings { if let old = lastReading[id] { moved[id] = abs(v - old) } }
        var notes: [String] = []
        for (n, node) in nodes.enumerated() {
            guard let meter = node.meter else { continue }
            var tr = tracks[meter] ?? Track()
            defer { tracks[meter] = tr }
            guard let v = readings[meter] else { continue }
            // Frozen: bit-identical value while the rest of the node moves.
            let peers = subtree[n].compactMap { nodes[$0].meter }.filter { $0 != meter } + loads.filter { subtree[n].contains($0.node) }.map(\.id)
            let peerMove = peers.reduce(0.0) { $0 + (moved[$1] ?? 0) }
            if let last = tr.last, last == v {
                tr.unchanged += 1
                tr.peerMoveKW += peerMove
            } else {
                tr.unchanged = 0
                tr.peerMoveKW = 0
            }
            tr.last = v
            let frozen = tr.unchanged + 1 >= settings.frozenPolls && tr.peerMoveKW >= settings.minPeerMoveKW
            // Consistency with what is under the node.
            var disagree: (expected: Double, tol: Double)?
            if !frozen, let expected = expectedKW(n, readings) {
                // Devices are polled on their own schedules, up to a poll apart: a disagreement within what the
                // meter and the readings under it moved since the previous poll is timing (a ramp), not a fault.
                let skew = (moved[meter] ?? 0) + peerMove
                let tol = max(settings.toleranceMinKW, settings.toleranceFraction * max(abs(v), abs(expected))) + skew
                if abs(v - expected) > tol { disagree = (expected, tol) }
            }
            tr.disagreeing = disagree == nil ? 0 : tr.disagreeing + 1
            let new: MeterStatus = frozen ? .frozen : tr.disagreeing >= settings.disagreePolls ? .inconsistent : .ok
            if new == tr.status { continue }
            switch new {
            case .frozen:
                notes.append("\(meter) frozen: \(fmtKW(v)) unchanged for \(tr.unchanged + 1) polls while readings under \(node.id) moved \(fmtKW(tr.peerMoveKW)); counted as stale")
            case .inconsistent:
                let d = disagree!
                notes.append("\(meter) inconsistent: \(fmtKW(v)) against \(fmtKW(d.expected)) from the meters and devices under \(node.id) plus modelled auxiliary load (tolerance \(fmtKW(d.tol))) for \(tr.disagreeing) polls; counted as stale")
            case .ok:
                notes.append("\(meter) \(tr.status.rawValue) no more: reads \(fmtKW(v))")
            }
            tr.status = new
        }
        for (id, v) in readings { lastReading[id] = v }
        return notes
    }

    /// What node `n`'s meter should read: its child nodes (their meters, or for an unmetered child what
    /// is under it), the loads on it and its modelled auxiliary load; nil when a needed reading is missing
    /// or suspect.
    func expectedKW(_ n: Int, _ readings: [String: Double], top: Bool = true) -> Double? {
        if !top, let m = nodes[n].meter {
            guard tracks[m]?.status ?? .ok == .ok, let v = readings[m] else { return nil }
            return v
        }
        var sum = 0.0
        for c in nodes.indices where nodes[c].parent == n && c != n {
            guard let v = expectedKW(c, readings, top: false) else { return nil }
            sum += v
        }
        for l in loads where l.node == n {
            guard let v = readings[l.id] else { return nil }
            sum += v
        }
        let aux = auxiliary.filter { $0.node == n }
        if !aux.isEmpty {
            var it = 0.0
            for l in loads where subtree[n].contains(l.node) {
                guard let v = readings[l.id] else { return nil }
                it += v
            }
            for a in aux { sum += a.fixedKW + a.fractionOfIT * it }
        }
        return sum
    }
}

/// The loop's meter health, fed from the poller's telemetry once per pass.
public final class MeterWatch: Sendable {
    let health: Mutex<MeterHealth>
    let readFrom: [String]

    public init(site: Site, plant: Plant, settings: MeterHealthSettings = .init()) {
        let nodes = plant.nodes.map { n in
            MeterHealth.Node(id: n.id, parent: n.parentID.flatMap { plant.nodeIndex($0) }, meter: site.node(n.id)?.meter)
        }
        let loads = plant.devices.compactMap { d in plant.nodeIndex(d.nodeID).map { MeterHealth.Load(id: d.id, node: $0) } }
        let aux = site.devices.compactMap { d -> MeterHealth.Auxiliary? in
            guard d.deviceClass == .auxiliary, let nid = d.nodeID, let n = plant.nodeIndex(nid) else { return nil }
            return MeterHealth.Auxiliary(node: n, fixedKW: d.fixedKw ?? 0, fractionOfIT: d.fractionOfIT ?? 0)
        }
        let h = MeterHealth(nodes: nodes, loads: loads, auxiliary: aux, settings: settings)
        health = Mutex(h)
        readFrom = nodes.compactMap(\.meter) + loads.map(\.id)
    }

    /// Feeds the readings fresh within `staleAfterS` and returns the suspect meters and the sentences
    /// for changes of verdict. A pass with no new poll (the fast path) changes nothing.
    public func observe(now: Double, poller: Poller, staleAfterS: Double) -> (suspect: Set<String>, notes: [String]) {
        var fresh: [(String, Double, Double)] = []
        poller.withTelemetry { tel in
            for id in readFrom {
                let age = tel.age(id, "active_power_w", now: now)
                guard age <= staleAfterS, let w = tel.value(id, "active_power_w") else { continue }
                fresh.append((id, w / 1000, now - age))
            }
        }
        return health.withLock { h -> (suspect: Set<String>, notes: [String]) in
            // Only a new read counts: the same telemetry seen again (the fast path, a backed-off device) is not "unchanged again".
            var readings: [String: Double] = [:]
            for (id, kw, at) in fresh where at > h.readAt[id] ?? -.infinity {
                readings[id] = kw
                h.readAt[id] = at
            }
            guard !readings.isEmpty else { return (h.suspect, []) }
            let notes = h.observe(readings)
            return (h.suspect, notes)
        }
    }

    public func status(_ meter: String) -> MeterStatus { health.withLock { $0.status(meter) } }
    public var suspect: Set<String> { health.withLock { $0.suspect } }
}
