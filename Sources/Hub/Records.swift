// What the hub writes down: the seam between the primary host (HostApplication, which decodes the fleet bus)
// and the store (PostgreSQL). The host turns every Sparkplug message it accepts into `HubRecord`s and hands them
// to a `FleetRecordSink` on its own task, never from libmosquitto's thread; the store keeps them.

import Sparkplug

/// One edge node: its Sparkplug group id (by default the site's region) and edge node id (the site id).
public struct SiteKey: Sendable, Hashable, Codable, Comparable, CustomStringConvertible {
    public var group: String
    public var edge: String

    public init(group: String, edge: String) {
        self.group = group
        self.edge = edge
    }

    public var description: String { "\(group)/\(edge)" }

    public static func < (a: SiteKey, b: SiteKey) -> Bool { (a.group, a.edge) < (b.group, b.edge) }
}

/// One metric value at one time, from an edge node (`device == nil`) or one of its devices.
public struct MetricSample: Sendable, Hashable {
    public var site: SiteKey
    public var device: String?
    public var name: String
    /// The metric's timestamp, ms since the epoch (the payload's when the metric has none).
    public var at: UInt64
    /// nil: a null value (is_null).
    public var value: MetricValue?
    /// Sent with `is_historical = true` (store-and-forward backfill): merged in time order, never overwriting a
    /// live value.
    public var historical: Bool

    public init(site: SiteKey, device: String?, name: String, at: UInt64, value: MetricValue?, historical: Bool) {
        self.site = site
        self.device = device
        self.name = name
        self.at = at
        self.value = value
        self.historical = historical
    }
}

/// A birth (NBIRTH when `device == nil`, else DBIRTH): every metric the node or device declares.
public struct BirthRecord: Sendable, Hashable {
    public var site: SiteKey
    public var device: String?
    /// The node's bdSeq of the session this birth belongs to.
    public var bdSeq: UInt64?
    public var at: UInt64
    public var metrics: [SparkplugMetric]

    public init(site: SiteKey, device: String?, bdSeq: UInt64?, at: UInt64, metrics: [SparkplugMetric]) {
        self.site = site
        self.device = device
        self.bdSeq = bdSeq
        self.at = at
        self.metrics = metrics
    }
}

/// Everything the host writes down.
public enum HubRecord: Sendable, Hashable {
    case birth(BirthRecord)
    /// NDEATH (`device == nil`, with the session's bdSeq) or DDEATH.
    case death(site: SiteKey, device: String?, bdSeq: UInt64?, at: UInt64)
    case samples([MetricSample])
    /// A `seq` that did not follow: the host asked the node for a rebirth.
    case sequenceGap(site: SiteKey, expected: UInt8, received: UInt8, at: UInt64)
    /// A command the hub publishes (HostCommands.swift): queued (and spooled) before it goes out, so that it is
    /// recorded without the store on the command's path. Written once: a replay of the same record changes nothing.
    case command(HubCommand)
    /// What became of a command: the site's answer, or a failed publish. The first outcome decides the command's
    /// status; a replay of the same record (same command, time, status and text) is not kept twice.
    case commandOutcome(commandID: String, status: HubCommandStatus, outcome: String, at: UInt64)
}

/// Where the host's records go (the PostgreSQL store, or memory in tests). Called on the host's own task, in the
/// order the messages arrived.
public protocol FleetRecordSink: Sendable {
    func write(_ records: [HubRecord]) async throws
}
