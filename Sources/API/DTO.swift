// Request and response bodies (JSON, snake_case on the wire). Times are seconds since 1970.

import Store

public struct StatusDTO: Codable, Sendable {
    public var site: String
    public var at: Double?
    public var fastPath: String?
    public var siteKw: Double?
    public var limitKw: Double?
    public var miningKw: Double?
    public var inferenceKw: Double?
    public var priceUsdPerMwh: Double?
    public var mode: String?
    public var brokerFeasible: Bool?
    public var objectiveUsdPerH: Double?
    public var events: [String]
    public var interventions: [String]
    public var configVersion: Int?
    public var devicesUp: Int
    public var devicesTotal: Int
    /// Containers whose measured power does not follow the setpoint they accepted.
    public var notFollowing: [String]? = nil
    /// Node meters whose readings cannot be trusted, by id: "frozen" or "inconsistent" (counted as stale).
    public var suspectMeters: [String: String]? = nil
}

public struct DeviceDTO: Codable, Sendable {
    public var id: String
    public var deviceClass: String
    public var node: String?
    public var up: Bool
    public var powerKw: Double?
    public var setpointKw: Double?
    public var commandedKw: Double?
    public var override: OverrideDTO?
    public var lastSuccess: Double?
    public var lastError: String?
    public var consecutiveFailures: Int
    public var latencyMs: Double?
    public var reason: String?
    /// Containers: "following", "not-following" or "unknown" (nothing judged yet).
    public var actuation: String? = nil
    /// Node meters: "ok", "frozen" or "inconsistent".
    public var meter: String? = nil
}

public struct OverrideDTO: Codable, Sendable {
    public var kw: Double
    public var until: Double
}

public struct ExplainDTO: Codable, Sendable {
    public var at: Double?
    public var limitKw: Double?
    public var priceUsdPerMwh: Double?
    public var interventions: [String]
    public var devices: [Row]
    public struct Row: Codable, Sendable {
        public var id: String
        public var setpointKw: Double?
        public var reason: String
    }
}

public struct EventDTO: Codable, Sendable {
    public var id: String
    public var capKw: Double
    public var from: Double
    public var until: Double
    public var reason: String
    public var active: Bool
    /// The event's ETag (If-Match replaces it: see docs/api.md).
    public var etag: String?
}

public struct CreateEventRequest: Codable, Sendable {
    public var id: String?
    public var capKw: Double
    public var from: EventTime?
    public var until: EventTime
    public var reason: String
    public init(id: String?, capKw: Double, from: Double?, until: Double, reason: String) {
        self.init(id: id, capKw: capKw, from: from.map(EventTime.at), until: .at(until), reason: reason)
    }
    public init(id: String?, capKw: Double, from: EventTime?, until: EventTime, reason: String) {
        self.id = id; self.capKw = capKw; self.from = from; self.until = until; self.reason = reason
    }
}

/// A time in an event request: seconds since 1970 (a JSON number), or, as a string, "now" or
/// "+DURATION" ("+2h", "+30m", "+1h30m", "+90s", "+1d"), which the server resolves against its own
/// clock (the loop's time, which a daemon started with --start-at sets), not the client's.
public enum EventTime: Codable, Sendable, Equatable {
    case at(Double)
    case now
    case after(seconds: Double)

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let v = try? c.decode(Double.self) { self = .at(v); return }
        let s = try c.decode(String.self)
        guard let t = EventTime(text: s) else {
            throw DecodingError.dataCorruptedError(in: c, debugDescription: "'\(s)' is not a time: give seconds since 1970, \"now\" or \"+DURATION\" like \"+2h\"")
        }
        self = t
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .at(let v): try c.encode(v)
        case .now: try c.encode("now")
        case .after(let s): try c.encode("+\(s == s.rounded() ? String(Int(s)) : String(s))s")
        }
    }

    /// "now" or "+DURATION"; nil for anything else.
    public init?(text: String) {
        if text == "now" { self = .now; return }
        guard text.hasPrefix("+"), let d = EventTime.duration(String(text.dropFirst())) else { return nil }
        self = .after(seconds: d)
    }

    /// The absolute time, against `now` (the server's clock).
    public func resolve(now: Double) -> Double {
        switch self {
        case .at(let v): v
        case .now: now
        case .after(let s): now + s
        }
    }

    /// "2h", "30m", "90s", "1d", "1h30m" → seconds.
    static func duration(_ s: String) -> Double? {
        var total = 0.0, num = "", any = false
        for ch in s {
            if ch.isNumber || ch == "." { num.append(ch); continue }
            guard let n = Double(num) else { return nil }
            switch ch {
            case "s": total += n
            case "m": total += n * 60
            case "h": total += n * 3600
            case "d": total += n * 86_400
            default: return nil
            }
            num = ""
            any = true
        }
        guard num.isEmpty, any, total.isFinite else { return nil }
        return total
    }
}

public struct ModeRequest: Codable, Sendable {
    public var mode: String
    public var setpointKw: Double?
    public var forS: Double?
    public init(mode: String, setpointKw: Double?, forS: Double?) { self.mode = mode; self.setpointKw = setpointKw; self.forS = forS }
}

public struct ModeDTO: Codable, Sendable {
    public var device: String
    public var mode: String
    public var setpointKw: Double?
    public var until: Double?
}

public struct ConfigDTO: Codable, Sendable {
    public var version: Int
    public var sha256: String
    public var author: String
    public var createdAt: Double
    public var comment: String
    public var rollbackOf: Int?
    public var yaml: String?

    init(_ v: ConfigVersion, yaml: Bool) {
        version = v.version
        sha256 = v.sha256
        author = v.author
        createdAt = v.createdAt
        comment = v.comment
        rollbackOf = v.rollbackOf
        self.yaml = yaml ? v.yaml : nil
    }
}

public struct ConfigFileRequest: Codable, Sendable {
    public var yaml: String
    public var file: String?
    public init(yaml: String, file: String?) { self.yaml = yaml; self.file = file }
}

public struct ApplyConfigRequest: Codable, Sendable {
    public var yaml: String
    public var file: String?
    public var comment: String
    public var dryRun: Bool?
    public init(yaml: String, file: String?, comment: String, dryRun: Bool?) {
        self.yaml = yaml; self.file = file; self.comment = comment; self.dryRun = dryRun
    }
}

public struct RollbackRequest: Codable, Sendable {
    public var version: Int
    public var comment: String?
    public init(version: Int, comment: String?) { self.version = version; self.comment = comment }
}

public struct ApplyResultDTO: Codable, Sendable {
    public var version: Int
    public var sha256: String
    public var dryRun: Bool
    public var applied: Bool
    public var changes: [ConfigChange]
}

public struct ValidateResultDTO: Codable, Sendable {
    public var valid: Bool
    public var devices: Int
    public var site: String
}

public struct DiffResultDTO: Codable, Sendable {
    public var runningVersion: Int
    public var changes: [ConfigChange]
}

public struct CreateTokenRequest: Codable, Sendable {
    public var name: String
    public var role: String
    public var expiresInS: Double?
    public init(name: String, role: String, expiresInS: Double?) { self.name = name; self.role = role; self.expiresInS = expiresInS }
}

public struct TokenDTO: Codable, Sendable {
    public var id: String
    public var name: String
    public var role: String
    public var createdAt: Double
    public var createdBy: String
    public var expiresAt: Double?
    public var revokedAt: Double?
    /// Only on creation.
    public var token: String?

    init(_ t: TokenRecord, secret: String? = nil) {
        id = t.id
        name = t.name
        role = t.role.rawValue
        createdAt = t.createdAt
        createdBy = t.createdBy
        expiresAt = t.expiresAt
        revokedAt = t.revokedAt
        token = secret
    }
}

public struct AuditDTO: Codable, Sendable {
    public var at: Double
    public var actor: String
    public var role: String
    public var action: String
    public var target: String
    public var status: Int
    public var detail: String
}

public struct EventLogDTO: Codable, Sendable {
    public var at: Double
    public var kind: String
    public var subject: String
    public var message: String
}

public struct OKDTO: Codable, Sendable {
    public var ok: Bool
    public var message: String
}
