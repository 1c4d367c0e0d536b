// OpenADR 3.0.1 REST objects (the subset a VEN reads and writes), shaped by the
// specification's schemas: program, event, interval, intervalPeriod, valuesMap,
// eventPayloadDescriptor, report, reportPayloadDescriptor. Unknown keys are ignored.

import Foundation

/// `intervalPeriod`: start (dateTime), duration (default PT0S), randomizeStart.
public struct OADRIntervalPeriod: Codable, Sendable, Hashable {
    public var start: String
    public var duration: String?
    public var randomizeStart: String?

    public init(start: String, duration: String? = nil, randomizeStart: String? = nil) {
        self.start = start
        self.duration = duration
        self.randomizeStart = randomizeStart
    }
}

/// One entry of `valuesMap.values`: number, integer, string, boolean or point.
public enum OADRValue: Codable, Sendable, Hashable {
    case number(Double)
    case string(String)
    case bool(Bool)
    case point(x: Double, y: Double)

    private enum PointKeys: String, CodingKey { case x, y }

    public init(from decoder: any Decoder) throws {
        if let keyed = try? decoder.container(keyedBy: PointKeys.self) {
            self = .point(x: try keyed.decode(Double.self, forKey: .x), y: try keyed.decode(Double.self, forKey: .y))
            return
        }
        let c = try decoder.singleValueContainer()
        if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let d = try? c.decode(Double.self) { self = .number(d) }
        else if let s = try? c.decode(String.self) { self = .string(s) }
        else { throw DecodingError.dataCorruptedError(in: c, debugDescription: "a value must be a number, string, boolean or point") }
    }

    public func encode(to encoder: any Encoder) throws {
        switch self {
        case .number(let d):
            var c = encoder.singleValueContainer(); try c.encode(d)
        case .string(let s):
            var c = encoder.singleValueContainer(); try c.encode(s)
        case .bool(let b):
            var c = encoder.singleValueContainer(); try c.encode(b)
        case .point(let x, let y):
            var c = encoder.container(keyedBy: PointKeys.self)
            try c.encode(x, forKey: .x)
            try c.encode(y, forKey: .y)
        }
    }

    public var number: Double? { if case .number(let d) = self { d } else { nil } }
}

/// `valuesMap`: a payload type and its values.
public struct OADRValuesMap: Codable, Sendable, Hashable {
    public var type: String
    public var values: [OADRValue]
    public init(type: String, values: [OADRValue]) {
        self.type = type
        self.values = values
    }
}

/// `interval`: a client-chosen id, an optional period, and payloads.
public struct OADRInterval: Codable, Sendable, Hashable {
    public var id: Int
    public var intervalPeriod: OADRIntervalPeriod?
    public var payloads: [OADRValuesMap]
    public init(id: Int, intervalPeriod: OADRIntervalPeriod? = nil, payloads: [OADRValuesMap]) {
        self.id = id
        self.intervalPeriod = intervalPeriod
        self.payloads = payloads
    }
}

/// `eventPayloadDescriptor` / `reportPayloadDescriptor` (one shape for both; objectType tells them apart).
public struct OADRPayloadDescriptor: Codable, Sendable, Hashable {
    public var objectType: String?
    public var payloadType: String
    public var readingType: String?
    public var units: String?
    public var currency: String?
    public init(objectType: String? = nil, payloadType: String, readingType: String? = nil, units: String? = nil, currency: String? = nil) {
        self.objectType = objectType
        self.payloadType = payloadType
        self.readingType = readingType
        self.units = units
        self.currency = currency
    }
}

/// `program` (the fields a VEN uses).
public struct OADRProgram: Codable, Sendable, Hashable {
    public var id: String?
    public var objectType: String?
    public var programName: String
    public var programLongName: String?
    public var programType: String?
    public var intervalPeriod: OADRIntervalPeriod?
    public var payloadDescriptors: [OADRPayloadDescriptor]?
}

/// `event`: requires programID and intervals.
public struct OADREvent: Codable, Sendable, Hashable {
    public var id: String?
    public var objectType: String?
    public var programID: String
    public var eventName: String?
    public var priority: Int?
    public var payloadDescriptors: [OADRPayloadDescriptor]?
    public var intervalPeriod: OADRIntervalPeriod?
    public var intervals: [OADRInterval]

    public init(id: String?, programID: String, eventName: String? = nil, priority: Int? = nil, payloadDescriptors: [OADRPayloadDescriptor]? = nil,
                intervalPeriod: OADRIntervalPeriod? = nil, intervals: [OADRInterval]) {
        self.id = id
        self.objectType = "EVENT"
        self.programID = programID
        self.eventName = eventName
        self.priority = priority
        self.payloadDescriptors = payloadDescriptors
        self.intervalPeriod = intervalPeriod
        self.intervals = intervals
    }
}

/// `report.resources[]`.
public struct OADRReportResource: Codable, Sendable, Hashable {
    public var resourceName: String
    public var intervalPeriod: OADRIntervalPeriod?
    public var intervals: [OADRInterval]
}

/// `report`: requires programID, eventID, clientName and resources.
public struct OADRReport: Codable, Sendable, Hashable {
    public var id: String?
    public var objectType: String?
    public var programID: String
    public var eventID: String
    public var clientName: String
    public var reportName: String?
    public var payloadDescriptors: [OADRPayloadDescriptor]?
    public var resources: [OADRReportResource]
}

enum OADRJSON {
    /// Decodes `T`, turning a decoding error into one line naming the URL and key path.
    static func decode<T: Decodable>(_ type: T.Type, from data: Data, source: String) throws(SignalsError) -> T {
        do {
            return try JSONDecoder().decode(T.self, from: data)
        } catch let e as DecodingError {
            let (path, message): ([any CodingKey], String)
            switch e {
            case let .keyNotFound(key, ctx): (path, message) = (ctx.codingPath + [key], "missing key \"\(key.stringValue)\"")
            case let .typeMismatch(t, ctx): (path, message) = (ctx.codingPath, "expected \(t): \(ctx.debugDescription)")
            case let .valueNotFound(t, ctx): (path, message) = (ctx.codingPath, "expected \(t), found null")
            case let .dataCorrupted(ctx): (path, message) = (ctx.codingPath, ctx.debugDescription)
            @unknown default: (path, message) = ([], "\(e)")
            }
            throw SignalsError(.badValue, message, at: SignalSource(file: source, keyPath: keyPath(path)))
        } catch {
            throw SignalsError(.syntax, "not JSON: \(error)", at: SignalSource(file: source))
        }
    }

    static func keyPath(_ path: [any CodingKey]) -> String {
        var out = ""
        for k in path {
            if let i = k.intValue { out += "[\(i)]" } else { out += out.isEmpty ? k.stringValue : ".\(k.stringValue)" }
        }
        return out
    }

    static func encode<T: Encodable>(_ value: T) -> Data {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        // Encoding these plain structs cannot fail.
        return (try? enc.encode(value)) ?? Data()
    }
}
