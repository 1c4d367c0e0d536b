import Basics
import Foundation
import Signals
import Yams

extension Site {
    /// Read and check a site file. Every error names file:line:column and says what is wrong.
    public static func load(path: String) throws(LocatedError) -> Site {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw LocatedError(file: path, line: 1, column: 1, message: "cannot read the site file (\(reason(error)))")
        }
        return try parse(yaml: text, file: path)
    }

    public static func parse(yaml: String, file: String = "<site>") throws(LocatedError) -> Site {
        let r = Reader(file: file)
        let root = try r.compose(yaml)
        let top = try r.fields(root, "the site file", allowed: ["site", "tree", "devices", "economics", "contracts", "fleet", "gateways"])

        let sf = try r.fields(
            try top.require("site"), "'site'",
            allowed: ["id", "region", "import_limit_kw", "safety_margin_kw", "tick_s", "restore_rate_kw_per_tick", "stale_after_s",
                      "inference_reserve_kw"])
        let siteIDNode = try sf.require("id")
        let siteID = try r.string(siteIDNode, "the site id")
        let importLimit = try r.nonNegative(try sf.require("import_limit_kw"), "import_limit_kw")
        let margin = try sf["safety_margin_kw"].map { n throws(LocatedError) in try r.nonNegative(n, "safety_margin_kw") } ?? 0
        if margin >= importLimit, let n = sf["safety_margin_kw"] {
            throw r.fail(n, "safety_margin_kw (\(margin)) must be smaller than import_limit_kw (\(importLimit))")
        }
        let tick = try sf["tick_s"].map { n throws(LocatedError) in try r.nonNegative(n, "tick_s") } ?? 10
        if tick <= 0, let n = sf["tick_s"] { throw r.fail(n, "tick_s must be longer than 0 s") }
        let restore = try sf["restore_rate_kw_per_tick"].map { n throws(LocatedError) in
            try r.nonNegative(n, "restore_rate_kw_per_tick")
        }
        let staleAfter = try sf["stale_after_s"].map { n throws(LocatedError) in try r.nonNegative(n, "stale_after_s") } ?? 30

        // Tree.
        var nodes: [SiteNode] = []
        var nodeMarks: [String: Node] = [:]
        var meterRefs: [(String, Node)] = []
        func walk(_ n: Node, parent: String?) throws(LocatedError) {
            let f = try r.fields(n, "a tree node", allowed: ["id", "cap_kw", "meter", "children"])
            let idNode = try f.require("id")
            let id = try r.string(idNode, "a node id")
            if nodeMarks[id] != nil { throw r.fail(idNode, "node id '\(id)' is used twice in the tree") }
            nodeMarks[id] = idNode
            let cap = try r.nonNegative(try f.require("cap_kw"), "cap_kw of node '\(id)'")
            let meter = try f["meter"].map { m throws(LocatedError) in try r.string(m, "meter of node '\(id)'") }
            if let m = meter, let mn = f["meter"] { meterRefs.append((m, mn)) }
            nodes.append(SiteNode(id: id, parentID: parent, capKw: cap, meter: meter))
            if let ch = f["children"] {
                for c in try r.sequence(ch, "children of node '\(id)'") { try walk(c, parent: id) }
            }
        }
        try walk(try top.require("tree"), parent: nil)

        // Devices.
        var devices: [SiteDevice] = []
        var deviceMarks: [String: Node] = [:]
        var ports: [String: String] = [:]
        for dn in try r.sequence(try top.require("devices"), "'devices'") {
            let d = try parseDevice(dn, r)
            if deviceMarks[d.id] != nil { throw r.fail(dn, "device id '\(d.id)' is used twice") }
            if nodeMarks[d.id] != nil { throw r.fail(dn, "'\(d.id)' is already the id of a tree node") }
            deviceMarks[d.id] = dn
            if let node = d.nodeID, nodeMarks[node] == nil {
                throw r.fail(dn, "device '\(d.id)' names node '\(node)', which is not in the tree")
            }
            if case .tcp(let h, let p, let u)? = d.address {
                let key = "\(h):\(p)/\(u)"
                if let other = ports[key] {
                    throw r.fail(dn, "device '\(d.id)' has the same address \(h):\(p) unit \(u) as '\(other)'")
                }
                ports[key] = d.id
            }
            devices.append(d)
        }
        for (m, mn) in meterRefs {
            guard let d = devices.first(where: { $0.id == m }) else {
                throw r.fail(mn, "meter '\(m)' is not a device in 'devices'")
            }
            guard d.deviceClass == .meter else {
                throw r.fail(mn, "meter '\(m)' is a \(d.deviceClass.rawValue) device; a node's meter must have class meter")
            }
        }

        let economics = try top["economics"].map { n throws(LocatedError) in try parseEconomics(n, r) } ?? Economics()
        var contracts: [Contract] = []
        if let cn = top["contracts"] {
            for c in try r.sequence(cn, "'contracts'") {
                let k = try parseContract(c, r)
                // Point at the device name itself in the contract's list.
                var nameNodes: [Node] = []
                if case .mapping(let m) = c, let list = m["devices"], case .sequence(let seq) = list { nameNodes = Array(seq) }
                for (j, dev) in k.deviceIDs.enumerated() {
                    let at = j < nameNodes.count ? nameNodes[j] : c
                    guard let d = devices.first(where: { $0.id == dev }) else {
                        throw r.fail(at, "contract '\(k.id)' names device '\(dev)', which is not in 'devices'")
                    }
                    guard d.isControllable else {
                        throw r.fail(at, "contract '\(k.id)' names '\(dev)', a \(d.deviceClass.rawValue) device; contracts apply to mining or inference devices")
                    }
                }
                contracts.append(k)
            }
        }
        var site = Site(
            id: siteID, importLimitKw: importLimit, safetyMarginKw: margin, tickSeconds: tick, restoreRateKwPerTick: restore,
            staleAfterS: staleAfter, nodes: nodes, devices: devices, economics: economics, contracts: contracts, file: file)
        site.inferenceReserveKw = try sf["inference_reserve_kw"].map { n throws(LocatedError) in try r.nonNegative(n, "inference_reserve_kw") }
        site.region = try sf["region"].map { n throws(LocatedError) in try r.string(n, "the site region") }
        site.gateways = try top["gateways"].map { n throws(LocatedError) in try parseGateways(n, r, devices: devices) } ?? []
        site.fleet = try top["fleet"].map { n throws(LocatedError) in
            try parseFleet(n, r, siteID: siteID, siteIDNode: siteIDNode, region: sf["region"].map { ($0, site.region ?? "") })
        }
        return site
    }

    static func parseDevice(_ dn: Node, _ r: Reader) throws(LocatedError) -> SiteDevice {
        let f = try r.fields(
            dn, "a device",
            allowed: [
                "id", "class", "profile", "address", "node", "limits", "efficiency_j_per_th", "gpus", "kw_per_gpu",
                "value_usd_per_mwh", "fraction_of_it", "fixed_kw",
            ])
        let idNode = try f.require("id")
        let id = try r.string(idNode, "a device id")
        let clsNode = try f.require("class")
        let clsText = try r.string(clsNode, "class of device '\(id)'")
        guard let cls = SiteDeviceClass(rawValue: clsText) else {
            throw r.fail(
                clsNode,
                "device '\(id)' has class '\(clsText)'; expected one of: \(SiteDeviceClass.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        var d = SiteDevice(id: id, deviceClass: cls)
        d.profile = try f["profile"].map { n throws(LocatedError) in try r.string(n, "profile of device '\(id)'") }
        d.address = try f["address"].map { n throws(LocatedError) in try parseAddress(n, r, id) }
        d.nodeID = try f["node"].map { n throws(LocatedError) in try r.string(n, "node of device '\(id)'") }
        func num(_ key: String) throws(LocatedError) -> Double? {
            try f[key].map { n throws(LocatedError) in try r.nonNegative(n, "\(key) of device '\(id)'") }
        }
        d.efficiencyJPerTH = try num("efficiency_j_per_th")
        d.kwPerGpu = try num("kw_per_gpu")
        d.valueUsdPerMWh = try f["value_usd_per_mwh"].map { n throws(LocatedError) in
            try r.number(n, "value_usd_per_mwh of device '\(id)'")
        }
        d.fractionOfIT = try num("fraction_of_it")
        d.fixedKw = try num("fixed_kw")
        d.gpus = try f["gpus"].map { n throws(LocatedError) in try r.integer(n, "gpus of device '\(id)'") }
        func forbid(_ keys: [String], _ why: String) throws(LocatedError) {
            for k in keys where f.has(k) { throw r.fail(f.entries[k]!.keyNode, "'\(k)' does not apply to device '\(id)': \(why)") }
        }
        switch cls {
        case .mining, .inference:
            guard d.nodeID != nil else { throw r.fail(dn, "\(cls.rawValue) device '\(id)' needs 'node' (where it draws power)") }
            let ln = try f.require("limits")
            d.limits = try parseLimits(ln, r, id)
            try forbid(["fraction_of_it", "fixed_kw"], "only auxiliary devices have them")
            if cls == .mining {
                try forbid(["gpus", "kw_per_gpu"], "it is a mining device")
                if d.efficiencyJPerTH == nil && d.valueUsdPerMWh == nil {
                    throw r.fail(dn, "mining device '\(id)' needs efficiency_j_per_th (or value_usd_per_mwh) to value its power")
                }
                if let e = d.efficiencyJPerTH, e <= 0, let n = f["efficiency_j_per_th"] {
                    throw r.fail(n, "efficiency_j_per_th of device '\(id)' must be more than 0")
                }
            } else {
                try forbid(["efficiency_j_per_th"], "it is an inference device")
                if let k = d.kwPerGpu, k <= 0, let n = f["kw_per_gpu"] {
                    throw r.fail(n, "kw_per_gpu of device '\(id)' must be more than 0")
                }
                if let g = d.gpus, let k = d.kwPerGpu, let lim = d.limits, Double(g) * k + 1e-9 < lim.maxKw {
                    throw r.fail(
                        ln, "device '\(id)': max_kw \(lim.maxKw) is more than gpus × kw_per_gpu = \(Double(g) * k)")
                }
            }
        case .auxiliary:
            guard d.nodeID != nil else { throw r.fail(dn, "auxiliary device '\(id)' needs 'node'") }
            try forbid(["limits", "efficiency_j_per_th", "gpus", "kw_per_gpu", "value_usd_per_mwh"], "it is auxiliary (not dispatched)")
            if d.fractionOfIT != nil && d.fixedKw != nil {
                throw r.fail(dn, "auxiliary device '\(id)' has both fraction_of_it and fixed_kw; give one")
            }
        case .meter:
            try forbid(
                ["node", "limits", "efficiency_j_per_th", "gpus", "kw_per_gpu", "value_usd_per_mwh", "fraction_of_it", "fixed_kw"],
                "it is a meter (tree nodes name their meter)")
        }
        return d
    }

    static func parseLimits(_ n: Node, _ r: Reader, _ id: String) throws(LocatedError) -> DeviceLimits {
        let f = try r.fields(
            n, "limits of device '\(id)'", allowed: ["max_kw", "min_stable_kw", "ramp_kw_per_s", "min_on_s", "min_off_s"])
        func num(_ k: String, _ dflt: Double?) throws(LocatedError) -> Double {
            if let v = f[k] { return try r.nonNegative(v, "\(k) of device '\(id)'") }
            guard let d = dflt else { throw r.fail(n, "limits of device '\(id)' are missing '\(k)'") }
            return d
        }
        let l = DeviceLimits(
            maxKw: try num("max_kw", nil), minStableKw: try num("min_stable_kw", 0), rampKwPerS: try num("ramp_kw_per_s", 0),
            minOnS: try num("min_on_s", 0), minOffS: try num("min_off_s", 0))
        if l.minStableKw > l.maxKw {
            throw r.fail(f["min_stable_kw"] ?? n, "min_stable_kw (\(l.minStableKw)) of device '\(id)' is more than max_kw (\(l.maxKw))")
        }
        return l
    }

    static func parseAddress(_ n: Node, _ r: Reader, _ id: String) throws(LocatedError) -> DeviceAddress {
        let f = try r.fields(n, "address of device '\(id)'", allowed: ["tcp", "rtu", "unit"])
        let unit = try f["unit"].map { u throws(LocatedError) in try r.integer(u, "unit of device '\(id)'") } ?? 1
        guard (0...247).contains(unit) else { throw r.fail(f["unit"], "unit of device '\(id)' must be 0–247, found \(unit)") }
        switch (f["tcp"], f["rtu"]) {
        case (let t?, nil):
            let s = try r.string(t, "tcp address of device '\(id)'")
            guard let colon = s.lastIndex(of: ":"), let port = Int(s[s.index(after: colon)...]), (1...65535).contains(port),
                colon > s.startIndex
            else {
                throw r.fail(t, "tcp address of device '\(id)' should look like host:port (e.g. 127.0.0.1:15020), found '\(s)'")
            }
            return .tcp(host: String(s[..<colon]), port: port, unit: unit)
        case (nil, let rt?):
            let g = try r.fields(rt, "rtu settings of device '\(id)'", allowed: ["device", "baud", "parity", "data_bits", "stop_bits"])
            let dev = try r.string(try g.require("device"), "rtu device of '\(id)'")
            let baud = try r.integer(try g.require("baud"), "baud of device '\(id)'")
            let pn = g["parity"]
            let ptext = try pn.map { p throws(LocatedError) in try r.string(p, "parity of device '\(id)'") } ?? "N"
            guard let parity = Parity(rawValue: ptext.uppercased()) else {
                throw r.fail(pn, "parity of device '\(id)' must be N, E or O, found '\(ptext)'")
            }
            let db = try g["data_bits"].map { v throws(LocatedError) in try r.integer(v, "data_bits of device '\(id)'") } ?? 8
            let sb = try g["stop_bits"].map { v throws(LocatedError) in try r.integer(v, "stop_bits of device '\(id)'") } ?? 1
            guard (5...8).contains(db) else { throw r.fail(g["data_bits"], "data_bits of device '\(id)' must be 5–8") }
            guard sb == 1 || sb == 2 else { throw r.fail(g["stop_bits"], "stop_bits of device '\(id)' must be 1 or 2") }
            return .rtu(device: dev, baud: baud, parity: parity, dataBits: db, stopBits: sb, unit: unit)
        case (nil, nil):
            throw r.fail(n, "address of device '\(id)' needs either 'tcp: host:port' or 'rtu: {...}'")
        default:
            throw r.fail(n, "address of device '\(id)' has both 'tcp' and 'rtu'; give one")
        }
    }

    /// `gateways: [{tcp: "host:port", max_connections: N}]`: each must be the tcp address of a device, once.
    static func parseGateways(_ n: Node, _ r: Reader, devices: [SiteDevice]) throws(LocatedError) -> [ModbusGatewaySpec] {
        var out: [ModbusGatewaySpec] = []
        for g in try r.sequence(n, "'gateways'") {
            let f = try r.fields(g, "a gateway", allowed: ["tcp", "max_connections"])
            let t = try f.require("tcp")
            let s = try r.string(t, "tcp address of a gateway")
            guard let colon = s.lastIndex(of: ":"), let port = Int(s[s.index(after: colon)...]), (1...65535).contains(port),
                colon > s.startIndex
            else {
                throw r.fail(t, "tcp address of a gateway should look like host:port (e.g. 10.0.0.5:502), found '\(s)'")
            }
            let host = String(s[..<colon])
            if out.contains(where: { $0.host == host && $0.port == port }) {
                throw r.fail(t, "gateway \(s) is listed twice in 'gateways'")
            }
            let used = devices.contains { d in
                if case .tcp(let h, let p, _)? = d.address { return h == host && p == port }
                return false
            }
            guard used else { throw r.fail(t, "gateway \(s) is not the tcp address of any device") }
            var connections = 1
            if let m = f["max_connections"] {
                connections = try r.integer(m, "max_connections of gateway \(s)")
                guard (1...16).contains(connections) else {
                    throw r.fail(m, "max_connections of gateway \(s) must be 1–16, found \(connections)")
                }
            }
            out.append(ModbusGatewaySpec(host: host, port: port, maxConnections: connections))
        }
        return out
    }

    static func parseEconomics(_ n: Node, _ r: Reader) throws(LocatedError) -> Economics {
        let f = try r.fields(
            n, "'economics'", allowed: ["hashprice_usd_per_ph_day", "mining_value_usd_per_mwh", "strike", "inference_spot",
                                        "fallback_price_usd_per_mwh"])
        var e = Economics()
        if let v = f["fallback_price_usd_per_mwh"] {
            let p = try r.number(v, "fallback_price_usd_per_mwh")
            // Wholesale prices run from about -$1000 (negative offers) to the ERCOT cap of $5000/MWh.
            guard p >= -1000, p <= 10_000 else {
                throw r.fail(v, "fallback_price_usd_per_mwh must be -1000…10000 $/MWh, got \(p)")
            }
            e.fallbackPriceUsdPerMWh = p
        }
        e.hashpriceUsdPerPHDay = try f["hashprice_usd_per_ph_day"].map { v throws(LocatedError) in
            try r.nonNegative(v, "hashprice_usd_per_ph_day")
        }
        e.miningValueUsdPerMWh = try f["mining_value_usd_per_mwh"].map { v throws(LocatedError) in
            try r.number(v, "mining_value_usd_per_mwh")
        }
        if let s = f["strike"] {
            let g = try r.fields(s, "'strike'", allowed: ["price_usd_per_mwh", "hysteresis_usd_per_mwh", "min_off_s"])
            e.strike = StrikeConfig(
                priceUsdPerMWh: try r.number(try g.require("price_usd_per_mwh"), "strike price_usd_per_mwh"),
                hysteresisUsdPerMWh: try g["hysteresis_usd_per_mwh"].map { v throws(LocatedError) in
                    try r.nonNegative(v, "hysteresis_usd_per_mwh")
                } ?? 0,
                minOffS: try g["min_off_s"].map { v throws(LocatedError) in try r.nonNegative(v, "strike min_off_s") } ?? 0)
        }
        if let s = f["inference_spot"] {
            (e.inferenceSpotUsdPerMWh, e.inferenceSpotUsdPerGpuHour) = try parseSpot(s, r)
        }
        return e
    }

    static func parseSpot(_ n: Node, _ r: Reader) throws(LocatedError) -> (Double?, Double?) {
        let g = try r.fields(n, "'inference_spot'", allowed: ["usd_per_mwh", "usd_per_gpu_hour"])
        let mwh = try g["usd_per_mwh"].map { v throws(LocatedError) in try r.number(v, "inference_spot usd_per_mwh") }
        let gh = try g["usd_per_gpu_hour"].map { v throws(LocatedError) in try r.number(v, "inference_spot usd_per_gpu_hour") }
        if mwh == nil && gh == nil { throw r.fail(n, "'inference_spot' needs usd_per_mwh or usd_per_gpu_hour") }
        return (mwh, gh)
    }

    static func parseContract(_ n: Node, _ r: Reader) throws(LocatedError) -> Contract {
        let f = try r.fields(
            n, "a contract",
            allowed: ["id", "devices", "committed_kw", "rate_usd_per_mwh", "penalty_usd_per_mwh", "window", "daily"])
        let id = try r.string(try f.require("id"), "a contract id")
        let devNode = try f.require("devices")
        var devs: [String] = []
        for d in try r.sequence(devNode, "devices of contract '\(id)'") { devs.append(try r.string(d, "a device id")) }
        if devs.isEmpty { throw r.fail(devNode, "contract '\(id)' names no devices") }
        var windows: [DateInterval] = []
        var weekly: [WeeklyWindow] = []
        var zone = TimeZone(identifier: "UTC")!
        switch (f["window"], f["daily"]) {
        case (let w?, nil):
            let g = try r.fields(w, "window of contract '\(id)'", allowed: ["start", "end"])
            let s = try r.time(try g.require("start"), "window start")
            let e = try r.time(try g.require("end"), "window end")
            if e <= s { throw r.fail(w, "window of contract '\(id)' ends before it starts") }
            windows = [DateInterval(start: Date(timeIntervalSince1970: s), end: Date(timeIntervalSince1970: e))]
        case (nil, let d?):
            // Every day, in UTC unless the window names its time zone (then DST aware, as a contract calendar).
            let g = try r.fields(d, "daily window of contract '\(id)'", allowed: ["from", "to", "time_zone"])
            if let zn = g["time_zone"] {
                let name = try r.string(zn, "time_zone")
                guard let tz = TimeZone(identifier: name) else {
                    throw r.fail(zn, "unknown time zone '\(name)' (use an IANA name such as America/Chicago)")
                }
                zone = tz
            }
            weekly = Contract.daily(fromS: Int(try clock(try g.require("from"), r)), toS: Int(try clock(try g.require("to"), r)))
        case (nil, nil):
            throw r.fail(n, "contract '\(id)' needs 'window: {start, end}' or 'daily: {from, to}'")
        default:
            throw r.fail(n, "contract '\(id)' has both 'window' and 'daily'; give one")
        }
        return Contract(
            id: id, deviceIDs: devs, committedKW: try r.nonNegative(try f.require("committed_kw"), "committed_kw"),
            rateUSDPerMWh: try r.number(try f.require("rate_usd_per_mwh"), "rate_usd_per_mwh"),
            penaltyUSDPerMWhShort: try r.nonNegative(try f.require("penalty_usd_per_mwh"), "penalty_usd_per_mwh"),
            weekly: weekly, windows: windows, timeZone: zone)
    }

    /// "HH:MM" as seconds after midnight (UTC, or the daily window's time_zone).
    static func clock(_ n: Node, _ r: Reader) throws(LocatedError) -> Double {
        let s = try r.string(n, "a time of day")
        let parts = s.split(separator: ":")
        guard parts.count == 2, let h = Int(parts[0]), let m = Int(parts[1]), (0...24).contains(h), (0..<60).contains(m),
            h * 60 + m <= 1440
        else {
            throw r.fail(n, "a time of day should look like 14:00 (UTC), found '\(s)'")
        }
        return Double(h * 3600 + m * 60)
    }
}

func reason(_ error: Error) -> String {
    let ns = error as NSError
    if let u = ns.userInfo[NSUnderlyingErrorKey] as? NSError, u.domain == NSPOSIXErrorDomain,
        let code = POSIXErrorCode(rawValue: Int32(u.code))
    {
        return errnoText(code.rawValue)
    }
    if ns.domain == NSCocoaErrorDomain && ns.code == NSFileReadNoSuchFileError { return "no such file" }
    return ns.localizedDescription
}
