// SunSpec model layouts, read from this project's own YAML description of the
// models (hardware-profiles/sunspec/model-<id>.yaml), which carries the facts
// of SunSpec Alliance's model definitions (Apache-2.0, see the NOTICE there).

import Basics
import Foundation
import Modbus

/// The SunSpec point types.
public enum SunSpecPointType: String, Sendable, CaseIterable {
    case uint16, int16, uint32, int32, uint64, int64
    case acc16, acc32, acc64
    case sunssf, enum16, enum32, bitfield16, bitfield32, count
    case float32, float64
    case string, pad, ipaddr, ipv6addr, eui48

    /// How the registers decode, or nil for types that are not numbers.
    public var registerType: RegisterType? {
        switch self {
        case .uint16, .enum16, .count, .acc16: .uint16
        case .int16, .sunssf: .int16
        case .bitfield16: .bitfield16
        case .uint32, .enum32, .acc32, .bitfield32, .ipaddr: .uint32
        case .int32: .int32
        case .uint64, .acc64: .uint64
        case .int64: .int64
        case .float32: .float32
        case .float64: .float64
        case .string, .pad, .ipv6addr, .eui48: nil
        }
    }

    /// Accumulators use 0 for "not accumulated".
    public var isAccumulator: Bool { self == .acc16 || self == .acc32 || self == .acc64 }
}

/// One point of a SunSpec model.
public struct SunSpecModelPoint: Sendable, Equatable {
    public var name: String
    /// Registers from the model's first register (its ID).
    public var offset: Int
    public var type: SunSpecPointType
    public var size: Int
    /// The name of the scale-factor point in the same model.
    public var sf: String?
    public var units: String?
    public var access: PointAccess
    public var mandatory: Bool
    public var label: String?
}

/// The layout of one SunSpec model.
public struct SunSpecModel: Sendable, Equatable {
    public var id: Int
    public var name: String
    public var label: String?
    /// L: registers after the ID and L registers.
    public var length: Int
    public var points: [SunSpecModelPoint]

    public func point(named name: String) -> SunSpecModelPoint? { points.first { $0.name == name } }
}

/// The SunSpec models this project knows.
public struct SunSpecModelLibrary: Sendable {
    public var models: [Int: SunSpecModel]

    public init(models: [Int: SunSpecModel] = [:]) { self.models = models }

    public subscript(id: Int) -> SunSpecModel? { models[id] }

    /// Loads every `model-*.yaml` in `directory`. Returns the models and any diagnostics.
    public static func load(directory: URL) -> (SunSpecModelLibrary, [Diagnostic]) {
        let fm = FileManager.default
        guard let names = try? fm.contentsOfDirectory(atPath: directory.path) else {
            return (SunSpecModelLibrary(), [])
        }
        var library = SunSpecModelLibrary()
        var diagnostics: [Diagnostic] = []
        for name in names.sorted() where name.hasPrefix("model-") && name.hasSuffix(".yaml") {
            let url = directory.appendingPathComponent(name)
            let (model, diags) = loadModel(url: url)
            diagnostics += diags
            if let model { library.models[model.id] = model }
        }
        return (library, diagnostics)
    }

    /// Loads one model file.
    public static func loadModel(url: URL) -> (SunSpecModel?, [Diagnostic]) {
        let file = url.path
        guard let text = try? String(contentsOf: url, encoding: .utf8) else {
            return (nil, [Diagnostic(.syntax, "cannot read the file", at: SourceLocation(file: file, line: 1, column: 1))])
        }
        return parseModel(text, file: file)
    }

    static func parseModel(_ text: String, file: String) -> (SunSpecModel?, [Diagnostic]) {
        let r = ProfileReader(file: file)
        guard let root = r.compose(text),
              let top = r.mapping(root, "a SunSpec model", allowed: ["id", "name", "label", "length", "points"],
                                  required: ["id", "name", "length", "points"])
        else { return (nil, r.diagnostics) }
        let id = top["id"].flatMap { r.int($0.value, "the model id") }
        let name = top["name"].flatMap { r.string($0.value, "the model name") }
        let label = top["label"].flatMap { r.string($0.value, "the model label") }
        let length = top["length"].flatMap { r.int($0.value, "the model length") }
        var points: [SunSpecModelPoint] = []
        let pointKeys: Set<String> = ["name", "offset", "type", "size", "sf", "units", "access", "mandatory", "static", "label"]
        for node in top["points"].flatMap({ r.sequence($0.value, "points") }) ?? [] {
            guard let m = r.mapping(node, "a model point", allowed: pointKeys, required: ["name", "offset", "type", "size"]) else { continue }
            guard let pname = m["name"].flatMap({ r.string($0.value, "the point name") }),
                  let offset = m["offset"].flatMap({ r.int($0.value, "the point offset") }),
                  let typeText = m["type"].flatMap({ r.string($0.value, "the point type") }),
                  let size = m["size"].flatMap({ r.int($0.value, "the point size") })
            else { continue }
            guard let type = SunSpecPointType(rawValue: typeText) else {
                r.error(.unknownType, "unknown SunSpec type '\(typeText)'", at: m["type"]!.value)
                continue
            }
            if let rt = type.registerType, rt.registerCount != size {
                r.error(.format, "a \(typeText) point occupies \(rt.registerCount) registers, but size is \(size)", at: m["size"]!.value)
            }
            var access = PointAccess.r
            if let a = m["access"].flatMap({ r.string($0.value, "access") }) {
                if let v = PointAccess(rawValue: a) { access = v } else { r.error(.format, "access must be r or rw, not '\(a)'", at: m["access"]!.value) }
            }
            points.append(SunSpecModelPoint(
                name: pname, offset: offset, type: type, size: size,
                sf: m["sf"].flatMap { r.string($0.value, "sf") },
                units: m["units"].flatMap { r.scalar($0.value, "units") },
                access: access,
                mandatory: m["mandatory"].flatMap { r.bool($0.value, "mandatory") } ?? false,
                label: m["label"].flatMap { r.scalar($0.value, "label") }))
        }
        // Offsets must be the running sum of sizes, and end at L + 2.
        var expected = 0
        for p in points {
            if p.offset != expected {
                r.error(.format, "point '\(p.name)' has offset \(p.offset), but the points before it end at \(expected)",
                        at: SourceLocation(file: file, line: 1, column: 1))
                break
            }
            expected += p.size
        }
        if let length, expected != 0, expected != length + 2 {
            r.error(.format, "the points cover \(expected) registers, but length \(length) means \(length + 2) with ID and L", at: top["length"]!.value)
        }
        for p in points { if let sf = p.sf, !points.contains(where: { $0.name == sf && $0.type == .sunssf }) {
            r.error(.reference, "point '\(p.name)' names scale factor '\(sf)', which is not a sunssf point of this model",
                    at: SourceLocation(file: file, line: 1, column: 1))
        } }
        guard let id, let name, let length, r.diagnostics.isEmpty else { return (nil, r.diagnostics) }
        return (SunSpecModel(id: id, name: name, label: label, length: length, points: points), r.diagnostics)
    }
}
