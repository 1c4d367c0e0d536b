// The site file's `fleet:` section (issue 17): the MQTT broker and the Sparkplug B identity under which
// `serve` reports the site. Absent: the site is not an edge node. See docs/site-file.md and docs/fleet.md.

import Basics
import Yams

/// Where and as whom the site publishes: plain values, checked by the loader (ids as Sparkplug requires them).
public struct FleetConfig: Sendable, Equatable {
    public var brokerHost: String
    /// Default 1883 (8883 when `tls` is given).
    public var brokerPort: Int
    /// Sparkplug group id (default: the site's region).
    public var groupID: String
    /// Sparkplug edge node id (default: the site id).
    public var edgeNodeID: String
    /// When set, births wait for this host's STATE online.
    public var primaryHostID: String?
    public var tls: TLS?
    /// The MQTT client id (default: `switchyard-<edge_node_id>`).
    public var clientID: String
    /// Fleet commands (NCMD/DCMD): the identity a command claims (its `Command/Client ID` metric) → the API role it
    /// acts with (`viewer`, `operator`, `admin`). Empty: fleet commands are off (only `Node Control/Rebirth` is acted on).
    public var roles: [String: String]
    /// A command's `Command/Timestamp` must be within this many seconds of the loop's clock (default 300).
    public var commandWindowS: Double
    /// The store-and-forward buffer's bound in samples (one per tick); nil: the daemon's default (7 days at 1 s).
    public var bufferSamples: Int?

    /// The role names `roles` may map to: the API's (`Store.Role`; a test keeps the two lists equal).
    public static let roleNames = ["viewer", "operator", "admin"]
    public static let defaultCommandWindowS = 300.0
    /// `buffer_samples` may be 1…this (a year of 1 s ticks).
    public static let maxBufferSamples = 31_536_000

    public struct TLS: Sendable, Equatable {
        public var caFile: String?
        public var certFile: String?
        public var keyFile: String?

        public init(caFile: String? = nil, certFile: String? = nil, keyFile: String? = nil) {
            self.caFile = caFile
            self.certFile = certFile
            self.keyFile = keyFile
        }
    }

    public init(brokerHost: String, brokerPort: Int, groupID: String, edgeNodeID: String, primaryHostID: String? = nil,
                tls: TLS? = nil, clientID: String? = nil, roles: [String: String] = [:],
                commandWindowS: Double = FleetConfig.defaultCommandWindowS, bufferSamples: Int? = nil) {
        self.brokerHost = brokerHost
        self.brokerPort = brokerPort
        self.groupID = groupID
        self.edgeNodeID = edgeNodeID
        self.primaryHostID = primaryHostID
        self.tls = tls
        self.clientID = clientID ?? "switchyard-\(edgeNodeID)"
        self.roles = roles
        self.commandWindowS = commandWindowS
        self.bufferSamples = bufferSamples
    }
}

extension Site {
    /// Why `id` cannot be a Sparkplug id (group, edge node, host), or nil if it can: non-empty, no `/`, `+`, `#`
    /// or control characters (the same rule as `Sparkplug.validateSparkplugID`).
    public static func sparkplugIDProblem(_ id: String) -> String? {
        if id.isEmpty { return "is empty" }
        for ch in id.unicodeScalars {
            switch ch {
            case "/": return "contains '/'"
            case "+", "#": return "contains the MQTT wildcard '\(ch)'"
            default: if ch.value < 0x20 || ch.value == 0x7F { return "contains a control character" }
            }
        }
        return nil
    }

    static func parseFleet(_ n: Node, _ r: Reader, siteID: String, siteIDNode: Node, region: (node: Node, value: String)? = nil) throws(LocatedError) -> FleetConfig {
        let f = try r.fields(n, "'fleet'", allowed: ["broker", "group_id", "edge_node_id", "primary_host_id", "tls", "client_id",
                                                      "roles", "command_window_s", "buffer_samples"])
        let b = try r.fields(try f.require("broker"), "'fleet' broker", allowed: ["host", "port"])
        let hostNode = try b.require("host")
        let host = try r.string(hostNode, "fleet broker host")
        if host.isEmpty { throw r.fail(hostNode, "fleet broker host should not be empty") }
        var tls: FleetConfig.TLS?
        if let t = f["tls"] {
            let g = try r.fields(t, "'fleet' tls", allowed: ["ca_file", "cert_file", "key_file"])
            func path(_ key: String) throws(LocatedError) -> String? {
                guard let v = g[key] else { return nil }
                let s = try r.string(v, "fleet tls \(key)")
                if s.isEmpty { throw r.fail(v, "fleet tls \(key) should not be empty") }
                return s
            }
            let c = FleetConfig.TLS(caFile: try path("ca_file"), certFile: try path("cert_file"), keyFile: try path("key_file"))
            if (c.certFile == nil) != (c.keyFile == nil) {
                throw r.fail(t, "'fleet' tls needs both cert_file and key_file, or neither")
            }
            if c.caFile == nil && c.certFile == nil { throw r.fail(t, "'fleet' tls needs ca_file, or cert_file and key_file") }
            tls = c
        }
        var port = tls == nil ? 1883 : 8883
        if let p = b["port"] {
            port = try r.integer(p, "fleet broker port")
            guard (1...65535).contains(port) else { throw r.fail(p, "fleet broker port must be 1…65535, got \(port)") }
        }
        func id(_ key: String, _ what: String) throws(LocatedError) -> String? {
            guard let v = f[key] else { return nil }
            let s = try r.string(v, "fleet \(key)")
            if let problem = sparkplugIDProblem(s) { throw r.fail(v, "fleet \(key) '\(s)' cannot be a Sparkplug \(what): it \(problem)") }
            return s
        }
        // The group id defaults to the site's region.
        let group: String
        if let g = try id("group_id", "group id") {
            group = g
        } else if let region {
            if let problem = sparkplugIDProblem(region.value) {
                throw r.fail(region.node, "the site region '\(region.value)' cannot be the fleet's Sparkplug group id: it \(problem); give fleet group_id")
            }
            group = region.value
        } else {
            throw r.fail(n, "'fleet' is missing 'group_id'")
        }
        let edge: String
        if let e = try id("edge_node_id", "edge node id") {
            edge = e
        } else {
            if let problem = sparkplugIDProblem(siteID) {
                throw r.fail(siteIDNode, "the site id '\(siteID)' cannot be the Sparkplug edge node id (it \(problem)); give fleet edge_node_id")
            }
            edge = siteID
        }
        let primary = try id("primary_host_id", "host id")
        var clientID: String?
        if let c = f["client_id"] {
            let s = try r.string(c, "fleet client_id")
            if s.isEmpty { throw r.fail(c, "fleet client_id should not be empty") }
            clientID = s
        }
        var roles: [String: String] = [:]
        if let rn = f["roles"] {
            guard case .mapping(let m) = rn else { throw r.fail(rn, "'fleet' roles should be a mapping of client id to role") }
            for (k, v) in m {
                let client = try r.string(k, "fleet roles client id")
                if client.isEmpty || client.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) {
                    throw r.fail(k, "fleet roles client id '\(client)' must be non-empty, without control characters")
                }
                let role = try r.string(v, "fleet roles role")
                guard FleetConfig.roleNames.contains(role) else {
                    throw r.fail(v, "fleet roles: '\(client)' has role '\(role)'; expected one of: \(FleetConfig.roleNames.joined(separator: ", "))")
                }
                roles[client] = role
            }
        }
        var window = FleetConfig.defaultCommandWindowS
        if let w = f["command_window_s"] {
            window = try r.number(w, "fleet command_window_s")
            guard window.isFinite, window >= 1, window <= 86_400 else {
                throw r.fail(w, "fleet command_window_s must be 1…86400 seconds, got \(window)")
            }
        }
        var bufferSamples: Int?
        if let b = f["buffer_samples"] {
            let v = try r.integer(b, "fleet buffer_samples")
            guard v >= 1, v <= FleetConfig.maxBufferSamples else {
                throw r.fail(b, "fleet buffer_samples must be 1…\(FleetConfig.maxBufferSamples) samples (one per tick), got \(v)")
            }
            bufferSamples = v
        }
        return FleetConfig(brokerHost: host, brokerPort: port, groupID: group, edgeNodeID: edge, primaryHostID: primary,
                           tls: tls, clientID: clientID, roles: roles, commandWindowS: window, bufferSamples: bufferSamples)
    }
}
