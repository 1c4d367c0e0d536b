// A staged configuration rollout (issue 18, `fleet config apply FILE --sites … | --region R`). Pure: the hub feeds
// it what it hears from the sites and the time, and carries out the commands it returns.
//
// The rules (docs/fleet.md, "Rollouts"): the first site is the canary and goes alone; the rest go in batches of
// `batchSize`. A site has passed when it has accepted the apply command and then reported a tick with the new
// configuration (its `Site/Config SHA256`) and no governor alarm (mode over-cap or comm-loss). A batch starts
// only when every site of the one before has passed. The rollout stops at the first failure, sending nothing
// more: a site that refuses the command, reports an alarm under the new configuration, goes offline, or has not
// passed `timeoutS` after its command was sent.

/// A site's part in a rollout.
public enum RolloutSiteState: Sendable, Hashable, Codable {
    case waiting
    /// The apply command was sent at this time (seconds).
    case sent(at: Double)
    /// It accepted the command; its tick under the new configuration is awaited.
    case accepted(at: Double)
    case passed(at: Double)
    case failed(String)
}

public enum RolloutPhase: Sendable, Hashable, Codable {
    case running
    case done
    case stopped(site: SiteKey, reason: String)
}

/// What the hub has heard that matters to a rollout.
public enum RolloutObservation: Sendable, Hashable {
    /// The site's answer to the apply command (its `Command/Last Accepted` and `Command/Last Result`).
    case answered(SiteKey, commandID: String, accepted: Bool, result: String)
    /// A tick report: the configuration in force and the governor's mode.
    case reported(SiteKey, configSHA256: String?, mode: String)
    case offline(SiteKey)
}

/// What the rollout asks the hub to do.
public enum RolloutAction: Sendable, Hashable {
    /// Send the apply command (NCMD) to these sites, with this command id each.
    case apply([(site: SiteKey, commandID: String)])

    public static func == (a: RolloutAction, b: RolloutAction) -> Bool {
        switch (a, b) {
        case let (.apply(x), .apply(y)): x.map(\.site) == y.map(\.site) && x.map(\.commandID) == y.map(\.commandID)
        }
    }

    public func hash(into h: inout Hasher) {
        switch self { case .apply(let x): for e in x { h.combine(e.site); h.combine(e.commandID) } }
    }
}

public struct Rollout: Sendable, Codable {
    public let id: String
    public let sha256: String
    /// The canary first, then the rest in order.
    public let sites: [SiteKey]
    public let batchSize: Int
    public let timeoutS: Double
    public private(set) var states: [SiteKey: RolloutSiteState]
    public private(set) var phase: RolloutPhase = .running
    /// Batches sent so far (the canary is batch 0).
    public private(set) var batchesSent = 0
    /// The apply command's id sent to each site.
    public private(set) var commandIDs: [SiteKey: String] = [:]

    /// Governor modes that fail a site under its new configuration.
    public static let alarmModes: Set<String> = ["over-cap", "comm-loss"]

    public init(id: String, sha256: String, sites: [SiteKey], batchSize: Int = 5, timeoutS: Double = 120) {
        precondition(!sites.isEmpty, "a rollout needs at least one site")
        precondition(batchSize > 0 && timeoutS > 0)
        self.id = id
        self.sha256 = sha256
        var seen: Set<SiteKey> = []
        self.sites = sites.filter { seen.insert($0).inserted }
        self.batchSize = batchSize
        self.timeoutS = timeoutS
        states = Dictionary(uniqueKeysWithValues: self.sites.map { ($0, .waiting) })
    }

    /// The sites of batch `k`: the canary alone, then `batchSize` at a time.
    public func batch(_ k: Int) -> [SiteKey] {
        if k == 0 { return [sites[0]] }
        let from = 1 + (k - 1) * batchSize
        guard from < sites.count else { return [] }
        return Array(sites[from..<min(sites.count, from + batchSize)])
    }

    public var batchCount: Int { 1 + (sites.count - 1 + batchSize - 1) / batchSize }

    /// The canary's command.
    public mutating func start(now: Double) -> [RolloutAction] {
        precondition(batchesSent == 0, "a rollout starts once")
        return send(batch: 0, now: now)
    }

    public mutating func observe(_ o: RolloutObservation, now: Double) -> [RolloutAction] {
        guard phase == .running else { return [] }
        switch o {
        case let .answered(site, commandID, accepted, result):
            guard commandIDs[site] == commandID, case .sent = states[site] else { return [] }
            if accepted { states[site] = .accepted(at: now) } else { fail(site, "refused the configuration: \(result)") }
        case let .reported(site, sha, mode):
            guard case .accepted = states[site], sha == sha256 else { return [] }
            if Self.alarmModes.contains(mode) { fail(site, "governor \(mode) under the new configuration") }
            else { states[site] = .passed(at: now) }
        case .offline(let site):
            switch states[site] {
            case .sent, .accepted: fail(site, "went offline during the rollout")
            default: return []
            }
        }
        return advance(now: now)
    }

    /// Times out sites that have not passed `timeoutS` after their command.
    public mutating func tick(now: Double) -> [RolloutAction] {
        guard phase == .running else { return [] }
        for site in batch(batchesSent - 1) {
            if case .sent(let at) = states[site], now - at >= timeoutS { fail(site, "no answer \(Int(timeoutS)) s after the command"); break }
            if case .accepted = states[site], let sentAt = sentAt[site], now - sentAt >= timeoutS {
                fail(site, "no tick under the new configuration \(Int(timeoutS)) s after the command"); break
            }
        }
        return advance(now: now)
    }

    private var sentAt: [SiteKey: Double] = [:]

    private mutating func fail(_ site: SiteKey, _ why: String) {
        states[site] = .failed(why)
        phase = .stopped(site: site, reason: why)
    }

    private mutating func advance(now: Double) -> [RolloutAction] {
        guard phase == .running else { return [] }
        let current = batch(batchesSent - 1)
        guard current.allSatisfy({ if case .passed = states[$0] { true } else { false } }) else { return [] }
        if batchesSent >= batchCount {
            phase = .done
            return []
        }
        return send(batch: batchesSent, now: now)
    }

    private mutating func send(batch k: Int, now: Double) -> [RolloutAction] {
        let sites = batch(k)
        batchesSent = k + 1
        var out: [(site: SiteKey, commandID: String)] = []
        for s in sites {
            let cid = "\(id)-\(s.edge)"
            commandIDs[s] = cid
            states[s] = .sent(at: now)
            sentAt[s] = now
            out.append((s, cid))
        }
        return [.apply(out)]
    }

    /// In words that are true of the state.
    public var summary: [String] {
        var lines: [String] = []
        switch phase {
        case .running: lines.append("rollout \(id) of \(sha256.prefix(12)): running, batch \(batchesSent) of \(batchCount)")
        case .done: lines.append("rollout \(id) of \(sha256.prefix(12)): done, \(sites.count) sites passed")
        case let .stopped(site, reason): lines.append("rollout \(id) of \(sha256.prefix(12)): stopped at \(site): \(reason)")
        }
        for (i, s) in sites.enumerated() {
            let role = i == 0 ? " (canary)" : ""
            switch states[s] ?? .waiting {
            case .waiting: lines.append("\(s)\(role): waiting")
            case .sent: lines.append("\(s)\(role): command sent")
            case .accepted: lines.append("\(s)\(role): accepted, awaiting a tick under the new configuration")
            case .passed: lines.append("\(s)\(role): passed")
            case .failed(let why): lines.append("\(s)\(role): failed: \(why)")
            }
        }
        return lines
    }
}
