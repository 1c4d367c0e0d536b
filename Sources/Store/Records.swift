// One record type per table. Times are seconds since 1970 (UTC).

import Basics
import GRDB

// `Role` (viewer < operator < admin) is Basics': the fleet hub's API uses the same roles without this store.
extension Role: DatabaseValueConvertible {}

/// One stored version of the full site file.
public struct ConfigVersion: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "config_version"
    public var version: Int
    public var yaml: String
    /// SHA-256 (hex) of the YAML text.
    public var sha256: String
    public var author: String
    public var createdAt: Double
    public var comment: String
    /// The version this one restored, for rollbacks.
    public var rollbackOf: Int?

    public init(version: Int, yaml: String, author: String, createdAt: Double, comment: String, rollbackOf: Int? = nil) {
        self.version = version
        self.yaml = yaml
        self.sha256 = SHA256.hex(yaml)
        self.author = author
        self.createdAt = createdAt
        self.comment = comment
        self.rollbackOf = rollbackOf
    }
}

/// Every mutating API call (and offline token commands): who, what, when, result.
public struct AuditEntry: Codable, Sendable, Equatable, FetchableRecord, MutablePersistableRecord {
    public static let databaseTableName = "audit_log"
    public var id: Int64?
    public var at: Double
    /// Token name and id ("alice (tok_1a2b…)"), or "local:<user>" for commands on the box.
    public var actor: String
    public var role: String
    /// "POST /v1/events", "token create", …
    public var action: String
    public var target: String
    /// HTTP status, or 0 for local commands that succeeded.
    public var status: Int
    public var detail: String

    public init(at: Double, actor: String, role: String, action: String, target: String = "", status: Int, detail: String = "") {
        self.at = at
        self.actor = actor
        self.role = role
        self.action = action
        self.target = target
        self.status = status
        self.detail = detail
    }

    public mutating func didInsert(_ inserted: InsertionSuccess) { id = inserted.rowID }
}

/// DR events, faults, governor interventions, mode changes, config applies.
public struct EventEntry: Codable, Sendable, Equatable, FetchableRecord, MutablePersistableRecord {
    public static let databaseTableName = "event_log"
    public enum Kind: String, Codable, Sendable, DatabaseValueConvertible { case dr, fault, governor, mode, override, config, fleet }
    public var id: Int64?
    public var at: Double
    public var kind: Kind
    public var subject: String
    public var message: String

    public init(at: Double, kind: Kind, subject: String = "", message: String) {
        self.at = at
        self.kind = kind
        self.subject = subject
        self.message = message
    }

    public mutating func didInsert(_ inserted: InsertionSuccess) { id = inserted.rowID }
}

/// One tick's decision: setpoints and reasons (JSON objects keyed by device id).
public struct DecisionEntry: Codable, Sendable, Equatable, FetchableRecord, MutablePersistableRecord {
    public static let databaseTableName = "decision_log"
    public var id: Int64?
    public var at: Double
    public var fastPath: String?
    public var mode: String
    public var siteKW: Double?
    public var limitKW: Double
    public var priceUsdPerMWh: Double
    public var setpointsJSON: String
    public var reasonsJSON: String
    public var interventionsJSON: String

    public init(at: Double, fastPath: String?, mode: String, siteKW: Double?, limitKW: Double, priceUsdPerMWh: Double,
                setpointsJSON: String, reasonsJSON: String, interventionsJSON: String) {
        self.at = at
        self.fastPath = fastPath
        self.mode = mode
        self.siteKW = siteKW
        self.limitKW = limitKW
        self.priceUsdPerMWh = priceUsdPerMWh
        self.setpointsJSON = setpointsJSON
        self.reasonsJSON = reasonsJSON
        self.interventionsJSON = interventionsJSON
    }

    public mutating func didInsert(_ inserted: InsertionSuccess) { id = inserted.rowID }
}

/// One minute of per-class power, import, cap and price (means over the minute's ticks).
public struct MinuteSample: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "minute_sample"
    /// Minutes since 1970.
    public var minute: Int64
    public var miningKW: Double
    public var inferenceKW: Double
    public var importKW: Double?
    public var capKW: Double
    public var priceUsdPerMWh: Double
    public var samples: Int

    public init(minute: Int64, miningKW: Double, inferenceKW: Double, importKW: Double?, capKW: Double, priceUsdPerMWh: Double, samples: Int) {
        self.minute = minute
        self.miningKW = miningKW
        self.inferenceKW = inferenceKW
        self.importKW = importKW
        self.capKW = capKW
        self.priceUsdPerMWh = priceUsdPerMWh
        self.samples = samples
    }
}

/// An API token. Only the SHA-256 of the secret is stored.
public struct TokenRecord: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "api_token"
    /// Public id ("tok_" + 8 hex), safe to show and log.
    public var id: String
    public var name: String
    public var role: Role
    public var secretHash: String
    public var createdAt: Double
    public var createdBy: String
    public var expiresAt: Double?
    public var revokedAt: Double?

    public init(id: String, name: String, role: Role, secretHash: String, createdAt: Double, createdBy: String,
                expiresAt: Double?, revokedAt: Double? = nil) {
        self.id = id
        self.name = name
        self.role = role
        self.secretHash = secretHash
        self.createdAt = createdAt
        self.createdBy = createdBy
        self.expiresAt = expiresAt
        self.revokedAt = revokedAt
    }

    public func isValid(at now: Double) -> Bool { revokedAt == nil && (expiresAt.map { now < $0 } ?? true) }
}
