// API tokens: "sy_" + 64 hex characters of system randomness. Only the
// SHA-256 of the secret is stored; the secret is shown once, on creation.
import Basics


public struct IssuedToken: Sendable {
    /// The secret to give the client (shown once).
    public var secret: String
    public var record: TokenRecord
}

public enum Tokens {
    public static func hash(_ secret: String) -> String { TokenSecret.hash(secret) }

    /// A new token for `role` (`TokenSecret`: the system CSPRNG).
    public static func issue(name: String, role: Role, createdBy: String, at: Double, validForS: Double?) -> IssuedToken {
        let (secret, id) = TokenSecret.generate()
        let record = TokenRecord(id: id, name: name, role: role, secretHash: hash(secret),
                                 createdAt: at, createdBy: createdBy, expiresAt: validForS.map { at + $0 })
        return IssuedToken(secret: secret, record: record)
    }

    /// Creates and stores a token (with its audit row) in one transaction.
    public static func create(in store: Store, name: String, role: Role, createdBy: String, creatorRole: String,
                              at: Double, validForS: Double?, action: String, status: Int) throws -> IssuedToken {
        let t = issue(name: name, role: role, createdBy: createdBy, at: at, validForS: validForS)
        try store.insertToken(t.record, audit: AuditEntry(at: at, actor: createdBy, role: creatorRole, action: action,
                                                          status: status, detail: "name=\(name) role=\(role.rawValue)"
                                                              + (validForS.map { " expires_in_s=\(Int($0))" } ?? "")))
        return t
    }
}

/// Downsamples tick reports to one row per minute (the mean of each quantity).
public struct MinuteAccumulator: Sendable {
    var minute: Int64?
    var n = 0
    var mining = 0.0, inference = 0.0, cap = 0.0, price = 0.0
    var importSum = 0.0, importN = 0

    public init() {}

    /// Adds one tick; returns the previous minute's sample when the minute changes.
    public mutating func add(at t: Double, miningKW: Double, inferenceKW: Double, importKW: Double?, capKW: Double,
                             priceUsdPerMWh: Double) -> MinuteSample? {
        let m = Int64((t / 60).rounded(.down))
        var finished: MinuteSample?
        if let cur = minute, cur != m { finished = current; reset() }
        minute = m
        n += 1
        mining += miningKW; inference += inferenceKW; cap += capKW; price += priceUsdPerMWh
        if let importKW { importSum += importKW; importN += 1 }
        return finished
    }

    /// The minute in progress, so far (nil before the first tick).
    public var current: MinuteSample? {
        guard let minute, n > 0 else { return nil }
        let d = Double(n)
        return MinuteSample(minute: minute, miningKW: mining / d, inferenceKW: inference / d,
                            importKW: importN > 0 ? importSum / Double(importN) : nil, capKW: cap / d,
                            priceUsdPerMWh: price / d, samples: n)
    }

    mutating func reset() { n = 0; mining = 0; inference = 0; cap = 0; price = 0; importSum = 0; importN = 0 }
}
