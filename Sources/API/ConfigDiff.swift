// The semantic difference between two site files: both are parsed to YAML trees
// and flattened to dotted paths (lists of mappings with an `id` are keyed by id),
// so formatting, comments, key order and number spelling do not count.

import Foundation
import Yams

public struct ConfigChange: Codable, Sendable, Equatable {
    public enum Kind: String, Codable, Sendable { case added, removed, changed }
    public var path: String
    public var kind: Kind
    public var old: String?
    public var new: String?

    /// "~ devices[asic-1].limits.max_kw: 1000 → 900"
    public var line: String {
        switch kind {
        case .added: "+ \(path): \(new ?? "")"
        case .removed: "- \(path): \(old ?? "")"
        case .changed: "~ \(path): \(old ?? "") → \(new ?? "")"
        }
    }
}

public enum ConfigDiff {
    public static func diff(old: String, new: String) throws -> [ConfigChange] {
        let a = try flatten(old), b = try flatten(new)
        var out: [ConfigChange] = []
        for k in Set(a.keys).union(b.keys).sorted() {
            switch (a[k], b[k]) {
            case let (x?, y?) where x != y: out.append(ConfigChange(path: k, kind: .changed, old: x, new: y))
            case let (x?, nil): out.append(ConfigChange(path: k, kind: .removed, old: x, new: nil))
            case let (nil, y?): out.append(ConfigChange(path: k, kind: .added, old: nil, new: y))
            default: break
            }
        }
        return out
    }

    static func flatten(_ yaml: String) throws -> [String: String] {
        var out: [String: String] = [:]
        guard let node = try Yams.compose(yaml: yaml) else { return out }
        walk(node, "", &out)
        return out
    }

    static func walk(_ node: Node, _ path: String, _ out: inout [String: String]) {
        switch node {
        case .scalar(let s):
            out[path.isEmpty ? "." : path] = normalize(s.string)
        case .mapping(let m):
            if m.isEmpty { out[path] = "{}" }
            for (k, v) in m { walk(v, path.isEmpty ? k.string ?? "?" : "\(path).\(k.string ?? "?")", &out) }
        case .sequence(let seq):
            if seq.isEmpty { out[path] = "[]" }
            let ids = seq.map { $0.mapping?["id"]?.string }
            let keyed = !ids.contains(nil) && Set(ids.compactMap { $0 }).count == ids.count
            for (i, v) in seq.enumerated() {
                if keyed, let id = ids[i] {
                    for (k, child) in v.mapping! where k.string != "id" {
                        walk(child, "\(path)[\(id)].\(k.string ?? "?")", &out)
                    }
                } else {
                    walk(v, "\(path)[\(i)]", &out)
                }
            }
        case .alias:
            break
        }
    }

    static func normalize(_ s: String) -> String {
        if let d = Double(s), d.isFinite, s.first.map({ $0.isNumber || $0 == "-" || $0 == "+" || $0 == "." }) == true {
            return d == d.rounded() && abs(d) < 1e15 ? String(Int64(d)) : "\(d)"
        }
        return s
    }
}
