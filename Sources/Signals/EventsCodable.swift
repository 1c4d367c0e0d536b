// The stored form of a DR event (the control loop's state file keeps the operator's events in it).
//
// One flat JSON object: `id`, `reason`, `from` and `until` (seconds since 1970; `until` absent when the
// event runs until cancelled), exactly one action key (`capKW` | `usdPerMWh` [+ `baselineKW`] |
// `priceUSDPerMWh` | `level`), `priority` when known and `origin` only for an OpenADR event.
// An operator's import cap is therefore `{id, capKW, from, until, reason}`: the shape the loop's state
// files have always had, so a state file written before DREvent replaced the loop's own event type reads.
import Foundation

extension DREvent: Codable {
    enum CodingKeys: String, CodingKey {
        case id, reason, from, until, priority, origin
        case capKW, usdPerMWh, baselineKW, priceUSDPerMWh, level
    }

    struct OpenADROrigin: Codable {
        var programID: String
        var eventID: String
        var intervalID: Int
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let actions: [Action?] = [
            try c.decodeIfPresent(Double.self, forKey: .capKW).map { .importCap(kW: $0) },
            try c.decodeIfPresent(Double.self, forKey: .usdPerMWh).map {
                .paidReduction(usdPerMWh: $0, baselineKW: try c.decodeIfPresent(Double.self, forKey: .baselineKW))
            },
            try c.decodeIfPresent(Double.self, forKey: .priceUSDPerMWh).map { .price(usdPerMWh: $0) },
            try c.decodeIfPresent(Int.self, forKey: .level).map { .level($0) },
        ]
        let given = actions.compactMap { $0 }
        guard given.count == 1 else {
            throw DecodingError.dataCorrupted(.init(
                codingPath: c.codingPath,
                debugDescription: "a DR event needs exactly one of capKW, usdPerMWh, priceUSDPerMWh, level (found \(given.count))"))
        }
        let origin: Origin = try c.decodeIfPresent(OpenADROrigin.self, forKey: .origin)
            .map { .openADR(programID: $0.programID, eventID: $0.eventID, intervalID: $0.intervalID) } ?? .manual
        self.init(id: try c.decode(String.self, forKey: .id), origin: origin, action: given[0],
                  start: Date(timeIntervalSince1970: try c.decode(Double.self, forKey: .from)),
                  end: try c.decodeIfPresent(Double.self, forKey: .until).map { Date(timeIntervalSince1970: $0) },
                  reason: try c.decode(String.self, forKey: .reason),
                  priority: try c.decodeIfPresent(Int.self, forKey: .priority))
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        switch action {
        case .importCap(let kw): try c.encode(kw, forKey: .capKW)
        case .paidReduction(let usd, let baseline):
            try c.encode(usd, forKey: .usdPerMWh)
            try c.encodeIfPresent(baseline, forKey: .baselineKW)
        case .price(let usd): try c.encode(usd, forKey: .priceUSDPerMWh)
        case .level(let level): try c.encode(level, forKey: .level)
        }
        try c.encode(start.timeIntervalSince1970, forKey: .from)
        try c.encodeIfPresent(end?.timeIntervalSince1970, forKey: .until)
        try c.encode(reason, forKey: .reason)
        try c.encodeIfPresent(priority, forKey: .priority)
        if case .openADR(let program, let event, let interval) = origin {
            try c.encode(OpenADROrigin(programID: program, eventID: event, intervalID: interval), forKey: .origin)
        }
    }
}
