// A simulated fleet's file (issue 18, `switchyard sim --fleet FILE`): how many sites in which regions, each one a
// copy of a template site file under its own id, with the region's price. Errors name file:line:column.
//
//   template: demo-site.yaml        # relative to this file
//   primary_host_id: hub            # optional: the edge nodes wait for this host's STATE before their births
//   roles: {switchyard-hub: admin}  # optional: MQTT client id → role, for fleet commands
//   broker: {host: 127.0.0.1, port: 1883}   # optional; `--broker` overrides
//   regions:
//     - {name: ERCOT, sites: 10, price_usd_per_mwh: 32}

import Basics
import Foundation
import Site

public struct FleetSpec: Sendable, Equatable {
    public struct Region: Sendable, Equatable {
        public var name: String
        public var sites: Int
        public var priceUsdPerMWh: Double
    }

    /// The template site file's path (resolved against the fleet file's directory) and its text.
    public var templatePath: String
    public var templateText: String
    public var primaryHostID: String?
    public var roles: [String: String]
    public var brokerHost: String?
    public var brokerPort: Int?
    public var regions: [Region]

    /// One simulated site: its id (the region's name in lower case and a number), its region, its price.
    public struct SiteEntry: Sendable, Equatable {
        public var id: String
        public var region: String
        public var priceUsdPerMWh: Double

        public init(id: String, region: String, priceUsdPerMWh: Double) {
            self.id = id
            self.region = region
            self.priceUsdPerMWh = priceUsdPerMWh
        }
    }

    public var sites: [SiteEntry] {
        regions.flatMap { r in
            (1...max(1, r.sites)).prefix(r.sites).map { i in
                SiteEntry(id: "\(r.name.lowercased())-\(i < 10 ? "0" : "")\(i)", region: r.name, priceUsdPerMWh: r.priceUsdPerMWh)
            }
        }
    }

    public static func load(path: String) throws(LocatedError) -> FleetSpec {
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw LocatedError(file: path, line: 1, column: 1, message: "cannot read the fleet file (\(error.localizedDescription))")
        }
        return try parse(yaml: text, file: path, directory: URL(fileURLWithPath: path).deletingLastPathComponent().path)
    }

    public static func parse(yaml: String, file: String, directory: String) throws(LocatedError) -> FleetSpec {
        let r = LocatedReader<LocatedError>(file: file, wording: .siteFile) { _, message, at in LocatedError(at: at, message) }
        func first<T>(_ read: () -> T?) throws(LocatedError) -> T {
            let before = r.diagnostics.count
            let v = read()
            if r.diagnostics.count > before { throw r.diagnostics[before] }
            guard let v else { throw LocatedError(at: .start(of: file), "unreadable value") }
            return v
        }
        let root = try first { r.compose(yaml) }
        let top = try first { r.mapping(root, "the fleet file", keys: ["template", "primary_host_id", "roles", "broker", "regions"],
                                        required: ["template", "regions"]) }
        let templateNode = top["template"]!.value
        let template = try first { r.scalar(templateNode, "template", nonEmpty: true) }
        let templatePath = template.hasPrefix("/") ? template : URL(fileURLWithPath: directory).appendingPathComponent(template).path
        let templateText: String
        do { templateText = try String(contentsOfFile: templatePath, encoding: .utf8) } catch {
            throw LocatedError(at: r.location(templateNode), "cannot read the template site file \(templatePath)")
        }
        // The template must be a valid site file without a fleet section (the simulation writes its own).
        let site = try Site.parse(yaml: templateText, file: templatePath)
        if site.fleet != nil {
            throw LocatedError(at: r.location(templateNode), "template \(template) has a fleet: section; the simulated fleet writes its own")
        }
        guard renamed(templateText, id: "x", region: "R") != nil else {
            throw LocatedError(at: r.location(templateNode), "template \(template): no '  id:' line under 'site:' to give each site its own id")
        }
        var spec = FleetSpec(templatePath: templatePath, templateText: templateText, primaryHostID: nil, roles: [:],
                             brokerHost: nil, brokerPort: nil, regions: [])
        if let e = top["primary_host_id"] {
            spec.primaryHostID = try first { r.scalar(e.value, "primary_host_id", nonEmpty: true) }
        }
        if let e = top["roles"] {
            guard case .mapping(let m) = e.value else { throw LocatedError(at: r.location(e.value), "roles should be a mapping of MQTT client id to role") }
            for (k, v) in m {
                let key = try first { r.scalar(k, "a roles key", nonEmpty: true) }
                let role = try first { r.scalar(v, "the role of \(key)", nonEmpty: true) }
                guard ["viewer", "operator", "admin"].contains(role) else {
                    throw LocatedError(at: r.location(v), "the role of \(key) should be viewer, operator or admin, found '\(role)'")
                }
                spec.roles[key] = role
            }
        }
        if let e = top["broker"] {
            let b = try first { r.mapping(e.value, "broker", keys: ["host", "port"], required: ["host", "port"]) }
            spec.brokerHost = try first { r.scalar(b["host"]!.value, "broker host", nonEmpty: true) }
            let port = try first { r.integer(b["port"]!.value, "broker port") }
            guard (1...65535).contains(port) else { throw LocatedError(at: r.location(b["port"]!.value), "broker port should be 1–65535, found \(port)") }
            spec.brokerPort = port
        }
        let list = try first { r.sequence(top["regions"]!.value, "regions") }
        guard !list.isEmpty else { throw LocatedError(at: r.location(top["regions"]!.value), "regions should list at least one region") }
        var names: Set<String> = []
        for node in list {
            let m = try first { r.mapping(node, "a region", keys: ["name", "sites", "price_usd_per_mwh"], required: ["name", "sites"]) }
            let name = try first { r.scalar(m["name"]!.value, "the region name", nonEmpty: true) }
            if let problem = Site.sparkplugIDProblem(name) {
                throw LocatedError(at: r.location(m["name"]!.value), "region '\(name)' cannot be a Sparkplug group id: it \(problem)")
            }
            guard names.insert(name).inserted else { throw LocatedError(at: r.location(m["name"]!.value), "region '\(name)' is listed twice") }
            let count = try first { r.integer(m["sites"]!.value, "sites") }
            guard (1...99).contains(count) else { throw LocatedError(at: r.location(m["sites"]!.value), "sites should be 1–99, found \(count)") }
            let price = try m["price_usd_per_mwh"].map { e throws(LocatedError) in try first { r.number(e.value, "price_usd_per_mwh") } } ?? 40
            spec.regions.append(Region(name: name, sites: count, priceUsdPerMWh: price))
        }
        return spec
    }

    /// The template's text with the site's `id:` replaced and a `region:` added under `site:`; nil when the
    /// template has no `  id:` line in its `site:` mapping.
    static func renamed(_ text: String, id: String, region: String) -> String? {
        var lines = text.components(separatedBy: "\n")
        guard let siteLine = lines.firstIndex(where: { $0.hasPrefix("site:") }) else { return nil }
        // The site mapping: the indented lines after `site:`.
        var end = siteLine + 1
        while end < lines.count, lines[end].hasPrefix(" ") || lines[end].isEmpty { end += 1 }
        func isKey(_ line: String, _ key: String) -> Bool { line.hasPrefix("  \(key):") && !line.hasPrefix("   ") }
        guard let idLine = (siteLine + 1..<end).first(where: { isKey(lines[$0], "id") }) else { return nil }
        // A region already in the template is replaced by the fleet's.
        if let regionLine = (siteLine + 1..<end).first(where: { isKey(lines[$0], "region") }) { lines[regionLine] = "  region: \(region)" }
        else { lines.insert("  region: \(region)", at: idLine + 1) }
        lines[idLine] = "  id: \(id)"
        return lines.joined(separator: "\n")
    }

    /// The site file of `entry`: the template renamed, with a `fleet:` section for the broker.
    public func siteFile(_ entry: SiteEntry, brokerHost: String, brokerPort: Int) -> String {
        var text = Self.renamed(templateText, id: entry.id, region: entry.region)!
        if !text.hasSuffix("\n") { text += "\n" }
        text += "\nfleet:\n  broker: {host: \(brokerHost), port: \(brokerPort)}\n"
        if let h = primaryHostID { text += "  primary_host_id: \(h)\n" }
        if !roles.isEmpty {
            text += "  roles:\n"
            for (k, v) in roles.sorted(by: { $0.key < $1.key }) { text += "    \(k): \(v)\n" }
        }
        return text
    }
}
