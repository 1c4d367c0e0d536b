// Loads a device profile from YAML and validates it. Every problem becomes a
// diagnostic with file:line:column; loading never stops at the first one, so
// `switchyard profile lint` can print them all.

import Basics
import Foundation
import Modbus
import Yams

public enum ProfileLoader {
    static let topKeys: Set<String> = ["id", "kind", "vendor", "model", "description", "source", "firmware_notes",
                                       "transport", "sunspec", "points"]
    static let topRequired = ["id", "kind", "vendor", "model", "source", "firmware_notes", "transport", "points"]
    static let pointKeys: Set<String> = ["name", "table", "address", "type", "order", "scale", "scale_register", "unit",
                                         "access", "min", "max", "enum", "poll", "not_implemented", "sunspec", "description"]

    /// Loads and validates the profile at `path`. The profile is nil when there is any error.
    public static func load(path: String, sunSpecDirectory: URL? = nil) -> (DeviceProfile?, [Diagnostic]) {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            return (nil, [Diagnostic(.syntax, "cannot read the file: \(error.localizedDescription)",
                                     at: SourceLocation(file: path, line: 1, column: 1))])
        }
        return parse(text, file: path, sunSpecDirectory: sunSpecDirectory)
    }

    /// Loads a profile, throwing all its diagnostics if it has errors.
    public static func loadValid(path: String, sunSpecDirectory: URL? = nil) throws(ProfileErrors) -> DeviceProfile {
        let (profile, diagnostics) = load(path: path, sunSpecDirectory: sunSpecDirectory)
        guard let profile else { throw ProfileErrors(diagnostics) }
        return profile
    }

    /// Parses and validates profile text. `file` names the source in diagnostics and anchors
    /// relative paths (firmware notes; the SunSpec model directory defaults to `<dir>/sunspec`,
    /// then `<dir>/../sunspec`).
    public static func parse(_ text: String, file: String, sunSpecDirectory: URL? = nil) -> (DeviceProfile?, [Diagnostic]) {
        let r = ProfileReader(file: file)
        var state = ParseState(reader: r, file: file, sunSpecDirectory: sunSpecDirectory)
        let profile = state.run(text)
        let diagnostics = r.diagnostics.sorted { ($0.location.line, $0.location.column) < ($1.location.line, $1.location.column) }
        return (diagnostics.contains { $0.severity == .error } ? nil : profile, diagnostics)
    }
}

/// A point while it is being checked, with the nodes its diagnostics point at.
private struct DraftPoint {
    var definition: PointDefinition
    var nameNode: Node
    var addressNode: Node?
    var accessNode: Node?
    var scaleRegisterNode: Node?
    var sunSpecNode: Node?
    var typeNode: Node?
    var registerLocated: Bool
}

private struct ParseState {
    let r: ProfileReader
    let file: String
    let sunSpecDirectory: URL?
    /// Names of every point written, valid or not (a point with an error is still "defined").
    var seenPointNames: Set<String> = []

    init(reader: ProfileReader, file: String, sunSpecDirectory: URL?) {
        self.r = reader
        self.file = file
        self.sunSpecDirectory = sunSpecDirectory
    }

    mutating func run(_ text: String) -> DeviceProfile? {
        guard let root = r.compose(text),
              let top = r.mapping(root, "the profile", allowed: ProfileLoader.topKeys, required: ProfileLoader.topRequired)
        else { return nil }

        let id = top["id"].flatMap { e -> String? in
            guard let s = r.string(e.value, "id") else { return nil }
            if !Self.isID(s) {
                r.error(.format, "id '\(s)' must be lower-case letters, digits and dashes, starting with a letter", at: e.value)
            }
            return s
        }
        var kind: DeviceKind?
        if let e = top["kind"], let s = r.string(e.value, "kind") {
            kind = DeviceKind(rawValue: s)
            if kind == nil {
                r.error(.format, "unknown kind '\(s)'; known kinds are: \(DeviceKind.allCases.map(\.rawValue).joined(separator: ", "))", at: e.value)
            }
        }
        let vendor = top["vendor"].flatMap { r.string($0.value, "vendor") }
        let model = top["model"].flatMap { r.string($0.value, "model") }
        _ = top["description"].flatMap { r.scalar($0.value, "description") }
        let source = top["source"].flatMap { parseSource($0.value) }
        let notes = top["firmware_notes"].flatMap { parseFirmwareNotes($0.value) }
        let transport = top["transport"].flatMap { parseTransport($0.value) }
        let sunSpec = top["sunspec"].flatMap { parseSunSpecSettings($0.value) }

        var drafts: [DraftPoint] = []
        if let e = top["points"], let nodes = r.sequence(e.value, "points") {
            if nodes.isEmpty { r.error(.format, "points must list at least one point", at: e.value) }
            for node in nodes {
                if let d = parsePoint(node, kind: kind, defaultOrder: transport?.wordOrder) { drafts.append(d) }
            }
        }

        // Whole-profile rules.
        checkDuplicateNames(drafts)
        let library = resolveSunSpec(&drafts, anyNode: top["points"]?.value)
        checkScaleRegisters(drafts)
        checkOverlaps(drafts)
        if let transport { checkForbidden(drafts, transport: transport) }
        if let kind, let pointsEntry = top["points"] {
            for required in CanonicalPoints.required(for: kind) where !seenPointNames.contains(required) {
                r.error(.missingCanonicalPoint,
                        "a profile of kind \(kind.rawValue) must define the canonical point '\(required)', and this one does not",
                        at: pointsEntry.keyNode)
            }
        }

        guard let id, let kind, let vendor, let model, let source, let notes, let transport else { return nil }
        return DeviceProfile(id: id, kind: kind, vendor: vendor, model: model, source: source, firmwareNotes: notes,
                             transport: transport, sunSpec: sunSpec, points: drafts.map(\.definition), file: file,
                             sunSpecModels: library)
    }

    static func isID(_ s: String) -> Bool {
        guard let f = s.unicodeScalars.first, ("a"..."z").contains(f) else { return false }
        return s.unicodeScalars.allSatisfy { ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "-" }
    }

    // MARK: Sections

    func parseSource(_ node: Node) -> ProfileSource? {
        guard let m = r.mapping(node, "source", allowed: ["document", "version", "url", "section"], required: ["document"]),
              let doc = m["document"].flatMap({ r.string($0.value, "source.document") })
        else { return nil }
        return ProfileSource(document: doc,
                             version: m["version"].flatMap { r.string($0.value, "source.version") },
                             url: m["url"].flatMap { r.string($0.value, "source.url") },
                             section: m["section"].flatMap { r.string($0.value, "source.section") })
    }

    func parseFirmwareNotes(_ node: Node) -> String? {
        guard let path = r.string(node, "firmware_notes") else { return nil }
        guard path.contains("firmware-notes/"), path.hasSuffix(".md") else {
            r.error(.reference, "firmware_notes must link to a Markdown file in firmware-notes/, not '\(path)'", at: node)
            return nil
        }
        let base = URL(fileURLWithPath: file).deletingLastPathComponent()
        let target = path.hasPrefix("/") ? URL(fileURLWithPath: path) : base.appendingPathComponent(path)
        if !FileManager.default.fileExists(atPath: target.standardizedFileURL.path) {
            r.error(.reference, "firmware note '\(path)' does not exist (looked for \(target.standardizedFileURL.path))", at: node)
        }
        return path
    }

    func parseTransport(_ node: Node) -> TransportDefaults? {
        let keys: Set<String> = ["protocols", "unit_id", "tcp_port", "rtu", "max_registers_per_read", "max_gap_registers",
                                 "min_request_gap_ms", "word_order", "forbidden", "write_read_fc23"]
        guard let m = r.mapping(node, "transport", allowed: keys, required: ["protocols"]) else { return nil }
        var t = TransportDefaults()
        var ok = true
        if let e = m["protocols"], let list = r.sequence(e.value, "transport.protocols") {
            var protocols: [TransportProtocol] = []
            for n in list {
                guard let s = r.string(n, "a protocol") else { ok = false; continue }
                if let p = TransportProtocol(rawValue: s) { protocols.append(p) } else {
                    r.error(.format, "unknown protocol '\(s)'; use tcp or rtu", at: n); ok = false
                }
            }
            if list.isEmpty { r.error(.format, "transport.protocols must name tcp, rtu or both", at: e.value); ok = false }
            t.protocols = protocols
        } else { ok = false }
        if let e = m["unit_id"] {
            if let v = r.int(e.value, "transport.unit_id") {
                if (0...255).contains(v) { t.unitID = v } else {
                    r.error(.format, "transport.unit_id must be 0…255, not \(v)", at: e.value); ok = false
                }
            } else { ok = false }
        }
        if let e = m["tcp_port"] {
            if let v = r.int(e.value, "transport.tcp_port"), (1...65535).contains(v) { t.tcpPort = v } else {
                r.error(.format, "transport.tcp_port must be a port number 1…65535", at: e.value); ok = false
            }
        }
        if let e = m["rtu"] {
            if let line = parseRTU(e.value) { t.rtu = line } else { ok = false }
        } else if t.protocols.contains(.rtu) {
            r.error(.format, "transport lists rtu but has no rtu line settings (baud, parity, data_bits, stop_bits)", at: m["protocols"]!.value)
            ok = false
        }
        if let e = m["max_registers_per_read"] {
            if let v = r.int(e.value, "transport.max_registers_per_read"), (1...125).contains(v) { t.maxRegistersPerRead = v } else {
                r.error(.format, "transport.max_registers_per_read must be 1…125 (the Modbus limit)", at: e.value); ok = false
            }
        }
        if let e = m["max_gap_registers"] {
            if let v = r.int(e.value, "transport.max_gap_registers"), (0...125).contains(v) { t.maxGapRegisters = v } else {
                r.error(.format, "transport.max_gap_registers must be 0…125", at: e.value); ok = false
            }
        }
        if let e = m["min_request_gap_ms"] {
            if let v = r.int(e.value, "transport.min_request_gap_ms"), (0...60_000).contains(v) { t.minRequestGap = .milliseconds(v) } else {
                r.error(.format, "transport.min_request_gap_ms must be 0…60000", at: e.value); ok = false
            }
        }
        if let e = m["word_order"] {
            if let o = parseOrder(e.value) { t.wordOrder = o } else { ok = false }
        }
        if let e = m["write_read_fc23"] {
            if let v = r.bool(e.value, "transport.write_read_fc23") { t.writeReadFC23 = v } else { ok = false }
        }
        if let e = m["forbidden"], let list = r.sequence(e.value, "transport.forbidden") {
            for n in list {
                guard let fm = r.mapping(n, "a forbidden range", allowed: ["table", "start", "end"], required: ["table", "start", "end"]),
                      let table = fm["table"].flatMap({ parseTable($0.value) }),
                      let start = fm["start"].flatMap({ r.int($0.value, "start") }),
                      let end = fm["end"].flatMap({ r.int($0.value, "end") })
                else { ok = false; continue }
                guard (0...65535).contains(start), (0...65535).contains(end) else {
                    r.error(.addressOutOfRange, "a forbidden range must lie within 0…65535", at: n); ok = false; continue
                }
                guard start <= end else {
                    r.error(.format, "a forbidden range must have start ≤ end (got \(start)…\(end))", at: n); ok = false; continue
                }
                t.forbidden[table, default: []].append(start...end)
            }
        }
        return ok ? t : nil
    }

    func parseRTU(_ node: Node) -> RTULineDefaults? {
        guard let m = r.mapping(node, "transport.rtu", allowed: ["baud", "parity", "data_bits", "stop_bits"],
                                required: ["baud", "parity", "data_bits", "stop_bits"]),
              let baud = m["baud"].flatMap({ r.int($0.value, "baud") }),
              let parityText = m["parity"].flatMap({ r.string($0.value, "parity") }),
              let dataBits = m["data_bits"].flatMap({ r.int($0.value, "data_bits") }),
              let stopBits = m["stop_bits"].flatMap({ r.int($0.value, "stop_bits") })
        else { return nil }
        var ok = true
        let standard = [1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200]
        if !standard.contains(baud) {
            r.error(.format, "baud must be one of \(standard.map(String.init).joined(separator: ", ")), not \(baud)", at: m["baud"]!.value); ok = false
        }
        let parity = LineParity(rawValue: parityText)
        if parity == nil { r.error(.format, "parity must be none, even or odd, not '\(parityText)'", at: m["parity"]!.value); ok = false }
        if !(7...8).contains(dataBits) { r.error(.format, "data_bits must be 7 or 8", at: m["data_bits"]!.value); ok = false }
        if !(1...2).contains(stopBits) { r.error(.format, "stop_bits must be 1 or 2", at: m["stop_bits"]!.value); ok = false }
        guard ok, let parity else { return nil }
        return RTULineDefaults(baud: baud, parity: parity, dataBits: dataBits, stopBits: stopBits)
    }

    func parseSunSpecSettings(_ node: Node) -> SunSpecSettings? {
        guard let m = r.mapping(node, "sunspec", allowed: ["bases"]) else { return nil }
        var bases = SunSpecSettings.defaultBases
        if let e = m["bases"], let list = r.sequence(e.value, "sunspec.bases") {
            bases = list.compactMap { n in
                guard let v = r.int(n, "a SunSpec base address") else { return nil }
                guard (0...65533).contains(v) else { r.error(.addressOutOfRange, "a SunSpec base must be 0…65533", at: n); return nil }
                return v
            }
        }
        return SunSpecSettings(bases: bases)
    }

    func parseTable(_ node: Node) -> ModbusTable? {
        guard let s = r.string(node, "table") else { return nil }
        if let t = ModbusTable(rawValue: s) { return t }
        r.error(.format, "unknown table '\(s)'; use holding, input, coil or discrete", at: node)
        return nil
    }

    func parseOrder(_ node: Node) -> WordOrder? {
        guard let s = r.string(node, "word order") else { return nil }
        if let o = WordOrder(rawValue: s) { return o }
        r.error(.format, "unknown word order '\(s)'; use ABCD, CDAB, BADC or DCBA", at: node)
        return nil
    }

    // MARK: Points

    mutating func parsePoint(_ node: Node, kind: DeviceKind?, defaultOrder: WordOrder?) -> DraftPoint? {
        guard let m = r.mapping(node, "a point", allowed: ProfileLoader.pointKeys, required: ["name"]),
              let nameEntry = m["name"], let name = r.string(nameEntry.value, "the point name")
        else { return nil }
        seenPointNames.insert(name)
        var ok = true
        let nameNode = nameEntry.value

        // Name: canonical for this kind, or vendor-specific x_…
        var contract: CanonicalPoint?
        if let kind {
            contract = CanonicalPoints.contract(for: name, kind: kind)
            if contract == nil && !CanonicalPoints.isVendorSpecific(name) {
                let elsewhere = DeviceKind.allCases.filter { CanonicalPoints.contract(for: name, kind: $0) != nil }
                if !elsewhere.isEmpty {
                    r.error(.unknownPointName, "'\(name)' is a canonical point of \(elsewhere.map(\.rawValue).joined(separator: ", ")), not of \(kind.rawValue); name a vendor-specific point x_\(name)", at: nameNode)
                } else {
                    r.error(.unknownPointName, "unknown point name '\(name)'; use a canonical name for kind \(kind.rawValue) or a vendor-specific name starting with x_", at: nameNode)
                }
                ok = false
            }
        }

        // Location: fixed register or SunSpec model point.
        var location: PointLocation?
        var type: RegisterType?
        let registerLocated = m["table"] != nil || m["address"] != nil
        if let s = m["sunspec"] {
            if registerLocated {
                r.error(.format, "point '\(name)' has both sunspec and table/address; a SunSpec point's address comes from discovery", at: s.keyNode)
                ok = false
            }
            if let t = m["type"] {
                r.error(.format, "point '\(name)' is a SunSpec point; its type comes from the model, so remove 'type'", at: t.keyNode)
                ok = false
            }
            if let sm = r.mapping(s.value, "sunspec", allowed: ["model", "point"], required: ["model", "point"]),
               let model = sm["model"].flatMap({ r.int($0.value, "sunspec.model") }),
               let point = sm["point"].flatMap({ r.string($0.value, "sunspec.point") }) {
                location = .sunSpec(model: model, point: point)
                type = .uint16  // replaced when the model is resolved
            } else { ok = false }
        } else {
            for key in ["table", "address", "type"] where m[key] == nil {
                r.error(.format, "point '\(name)' is missing the required key '\(key)'", at: node)
                ok = false
            }
            let table = m["table"].flatMap { parseTable($0.value) }
            if let e = m["type"], let s = r.string(e.value, "type") {
                type = RegisterType(rawValue: s)
                if type == nil {
                    r.error(.unknownType, "unknown type '\(s)'; known types are: \(RegisterType.allCases.map(\.rawValue).joined(separator: ", "))", at: e.value)
                    ok = false
                }
            }
            if let e = m["address"], let address = r.int(e.value, "address") {
                let count = type?.registerCount ?? 1
                if !(0...65535).contains(address) {
                    r.error(.addressOutOfRange, "address \(address) is out of range; Modbus addresses are 0…65535 (0x0000…0xFFFF)", at: e.value)
                    ok = false
                } else if address + count - 1 > 65535 {
                    r.error(.addressOutOfRange, "a \(type!.rawValue) at address \(address) needs \(count) registers and runs past 65535", at: e.value)
                    ok = false
                } else if let table {
                    location = .register(table: table, address: address)
                }
            } else if m["address"] != nil { ok = false }
            if let table, let type {
                if table.isBitTable && type != .bool {
                    r.error(.format, "point '\(name)' is in the \(table.rawValue) table, which holds bits; its type must be bool", at: m["type"]!.value)
                    ok = false
                } else if !table.isBitTable && type == .bool {
                    r.error(.format, "point '\(name)' is a bool in the \(table.rawValue) registers; use uint16 with an enum, or a coil/discrete table", at: m["type"]!.value)
                    ok = false
                }
            }
        }

        let order = m["order"].flatMap { parseOrder($0.value) }
        if m["order"] != nil && order == nil { ok = false }
        var scale: Double?
        if let e = m["scale"] {
            scale = r.double(e.value, "scale")
            if scale == nil { ok = false } else if scale == 0 { r.error(.format, "scale must not be 0", at: e.value); ok = false }
        }
        let scaleRegister = m["scale_register"].flatMap { r.string($0.value, "scale_register") }
        let unit = m["unit"].flatMap { r.scalar($0.value, "unit") }

        var access = PointAccess.r
        if let e = m["access"], let s = r.string(e.value, "access") {
            if let a = PointAccess(rawValue: s) { access = a } else {
                r.error(.format, "access must be r or rw, not '\(s)'", at: e.value); ok = false
            }
        }
        if access == .rw, case .register(let table, _) = location, !table.isWritable {
            r.error(.format, "point '\(name)' is rw, but \(table.rawValue) \(table.isBitTable ? "inputs" : "registers") cannot be written", at: m["access"]!.value)
            ok = false
        }

        let minValue = m["min"].flatMap { r.double($0.value, "min") }
        let maxValue = m["max"].flatMap { r.double($0.value, "max") }
        if (m["min"] != nil && minValue == nil) || (m["max"] != nil && maxValue == nil) { ok = false }
        if let lo = minValue, let hi = maxValue, lo > hi {
            r.error(.format, "min \(lo) is greater than max \(hi)", at: m["min"]!.value); ok = false
        }

        var labels: [Int: String] = [:]
        if let e = m["enum"] {
            if case .mapping(let em) = e.value {
                for (k, v) in em {
                    guard let code = r.int(k, "an enum code"), let label = r.string(v, "an enum label") else { ok = false; continue }
                    if labels[code] != nil { r.error(.format, "enum code \(code) appears twice", at: k); ok = false }
                    labels[code] = label
                }
                if labels.isEmpty { r.error(.format, "enum must map at least one code to a label", at: e.value); ok = false }
            } else {
                r.error(.format, "enum must be a mapping of codes to labels, e.g. {0: stopped, 1: running}", at: e.value); ok = false
            }
        }
        if let type, !labels.isEmpty, [.float32, .float64].contains(type) {
            r.error(.format, "an enum needs an integer type, not \(type.rawValue)", at: m["enum"]!.keyNode); ok = false
        }

        var poll = PollClass.normal
        if let e = m["poll"], let s = r.string(e.value, "poll") {
            if let p = PollClass(rawValue: s) { poll = p } else {
                r.error(.format, "poll must be fast, normal or slow, not '\(s)'", at: e.value); ok = false
            }
        }
        var notImplemented = false
        if case .sunSpec = location { notImplemented = true }
        if let e = m["not_implemented"] {
            if let b = r.bool(e.value, "not_implemented") { notImplemented = b } else { ok = false }
        }
        let description = m["description"].flatMap { r.scalar($0.value, "description") }

        // The writable-limits rule: a value the controller may write needs bounds it can check.
        if access == .rw, type != .bool, labels.isEmpty, minValue == nil || maxValue == nil {
            let missing = [minValue == nil ? "min" : nil, maxValue == nil ? "max" : nil].compactMap { $0 }.joined(separator: " and ")
            r.error(.writableWithoutLimits, "writable point '\(name)' has no \(missing); give the range the controller may write", at: m["access"]!.value)
            ok = false
        }

        // Canonical contracts.
        if let contract {
            if contract.mustBeWritable && access != .rw {
                r.error(.canonicalContract, "'\(name)' is written by the controller, so it must be access: rw", at: m["access"]?.value ?? nameNode)
                ok = false
            }
            if let unit, unit != contract.unit {
                r.error(.canonicalContract, "'\(name)' is in \(contract.unit.isEmpty ? "no unit" : contract.unit), not '\(unit)'; scale the value to \(contract.unit.isEmpty ? "a plain number" : contract.unit)", at: m["unit"]!.value)
                ok = false
            }
            let missingLabels = contract.requiredLabels.filter { !labels.values.contains($0) }
            if !missingLabels.isEmpty {
                r.error(.canonicalContract, "'\(name)' must map state codes to the labels \(contract.requiredLabels.joined(separator: ", ")); missing: \(missingLabels.joined(separator: ", "))", at: m["enum"]?.keyNode ?? nameNode)
                ok = false
            }
        }

        guard ok, let location, let type else { return nil }
        let def = PointDefinition(name: name, location: location, type: type, order: order, scale: scale,
                                  scaleRegister: scaleRegister, unit: unit ?? contract?.unit, access: access,
                                  min: minValue, max: maxValue, enumLabels: labels, poll: poll,
                                  notImplementedIsMissing: notImplemented, description: description,
                                  definedAt: r.location(nameNode))
        return DraftPoint(definition: def, nameNode: nameNode, addressNode: m["address"]?.value, accessNode: m["access"]?.value,
                          scaleRegisterNode: m["scale_register"]?.value, sunSpecNode: m["sunspec"]?.value,
                          typeNode: m["type"]?.value, registerLocated: registerLocated)
    }

    // MARK: Whole-profile checks

    func checkDuplicateNames(_ drafts: [DraftPoint]) {
        var seen: [String: SourceLocation] = [:]
        for d in drafts {
            if let first = seen[d.definition.name] {
                r.error(.format, "point '\(d.definition.name)' is defined twice; the first is at line \(first.line)", at: d.nameNode)
            } else { seen[d.definition.name] = d.definition.definedAt }
        }
    }

    func checkScaleRegisters(_ drafts: [DraftPoint]) {
        for d in drafts {
            guard let sr = d.definition.scaleRegister, let node = d.scaleRegisterNode else { continue }
            guard let target = drafts.first(where: { $0.definition.name == sr }) else {
                r.error(.reference, "scale_register '\(sr)' is not a point of this profile", at: node)
                continue
            }
            if target.definition.type != .int16 {
                r.error(.reference, "scale_register '\(sr)' must be an int16 point (a power-of-ten exponent), not \(target.definition.type.rawValue)", at: node)
            }
            if case .sunSpec = d.definition.location {
                r.error(.format, "a SunSpec point takes its scale factor from the model; remove scale_register", at: node)
            }
        }
    }

    func checkOverlaps(_ drafts: [DraftPoint]) {
        var byTable: [ModbusTable: [(range: Range<Int>, draft: DraftPoint)]] = [:]
        for d in drafts {
            guard case .register(let table, let address) = d.definition.location else { continue }
            byTable[table, default: []].append((address..<(address + d.definition.type.registerCount), d))
        }
        for (table, entries) in byTable {
            // Report each overlap once, at the point that comes later in the file.
            let ordered = entries.sorted { ($0.draft.definition.definedAt.line) < ($1.draft.definition.definedAt.line) }
            for (i, later) in ordered.enumerated() {
                for earlier in ordered[..<i] where earlier.range.overlaps(later.range) {
                    let a = later.draft.definition, b = earlier.draft.definition
                    r.error(.overlap,
                            "point '\(a.name)' (\(table.rawValue) \(Self.span(later.range))) overlaps point '\(b.name)' (\(table.rawValue) \(Self.span(earlier.range))) defined at line \(b.definedAt.line)",
                            at: later.draft.addressNode ?? later.draft.nameNode)
                    break
                }
            }
        }
    }

    static func span(_ r: Range<Int>) -> String {
        r.count == 1 ? "\(r.lowerBound)" : "\(r.lowerBound)…\(r.upperBound - 1)"
    }

    func checkForbidden(_ drafts: [DraftPoint], transport: TransportDefaults) {
        for d in drafts {
            guard case .register(let table, let address) = d.definition.location else { continue }
            let range = address..<(address + d.definition.type.registerCount)
            if let f = transport.forbidden[table]?.first(where: { $0.overlaps(range) }) {
                r.error(.forbiddenRange, "point '\(d.definition.name)' (\(table.rawValue) \(Self.span(range))) lies in the forbidden range \(f.lowerBound)…\(f.upperBound)",
                        at: d.addressNode ?? d.nameNode)
            }
        }
    }

    /// Fills in types of SunSpec points from the model library; returns the library used.
    func resolveSunSpec(_ drafts: inout [DraftPoint], anyNode: Node?) -> SunSpecModelLibrary {
        guard drafts.contains(where: { $0.sunSpecNode != nil }) else { return SunSpecModelLibrary() }
        let base = URL(fileURLWithPath: file).deletingLastPathComponent()
        let candidates = [sunSpecDirectory, base.appendingPathComponent("sunspec"),
                          base.deletingLastPathComponent().appendingPathComponent("sunspec")].compactMap { $0 }
        var library = SunSpecModelLibrary()
        for dir in candidates {
            let (lib, diags) = SunSpecModelLibrary.load(directory: dir)
            if !lib.models.isEmpty || !diags.isEmpty {
                library = lib
                for d in diags { r.error(d.rule, d.message, at: d.location) }
                break
            }
        }
        for i in drafts.indices {
            guard case .sunSpec(let modelID, let pointName) = drafts[i].definition.location, let node = drafts[i].sunSpecNode else { continue }
            guard let model = library[modelID] else {
                let known = library.models.keys.sorted().map(String.init).joined(separator: ", ")
                r.error(.reference, "SunSpec model \(modelID) is not described in hardware-profiles/sunspec (known: \(known.isEmpty ? "none" : known))", at: node)
                continue
            }
            guard let p = model.point(named: pointName) else {
                r.error(.reference, "SunSpec model \(modelID) has no point '\(pointName)'", at: node)
                continue
            }
            guard let rt = p.type.registerType else {
                r.error(.format, "SunSpec point \(modelID).\(pointName) is a \(p.type.rawValue), which has no numeric value", at: node)
                continue
            }
            drafts[i].definition.type = rt
            if drafts[i].definition.access == .rw && p.access != .rw {
                r.error(.format, "SunSpec point \(modelID).\(pointName) is read-only in the model", at: drafts[i].accessNode ?? node)
            }
        }
        return library
    }
}
