// An OpenADR 3 VEN client: OAuth2 client credentials, GET /programs and
// /events, POST /reports. Token reuse until expiry is measured on the
// injected clock; a 401 drops the token and retries once.

import Basics
import Foundation

/// How the VEN authenticates at the token endpoint (RFC 6749 §2.3.1).
public enum OAuthClientAuth: String, Sendable, Hashable, Codable {
    /// `Authorization: Basic base64(id:secret)`.
    case basic
    /// `client_id` and `client_secret` in the form body.
    case body
}

public struct VENConfig: Sendable, Hashable {
    /// The VTN base URL, e.g. `https://vtn.example/openadr3/3.0.1` (paths are appended).
    public var vtnURL: URL
    /// The OAuth2 token endpoint.
    public var tokenURL: URL
    public var clientID: String
    public var clientSecret: String
    public var clientAuth: OAuthClientAuth
    public var scope: String?
    /// `clientName` in reports (the VEN's name at the VTN).
    public var venName: String
    /// Only events of these programs (by programName); nil means all.
    public var programNames: Set<String>?
    public var mapping: OpenADRMapping
    /// A token is renewed this long before it expires.
    public var tokenRenewMargin: TimeInterval

    public init(vtnURL: URL, tokenURL: URL, clientID: String, clientSecret: String, clientAuth: OAuthClientAuth = .basic,
                scope: String? = nil, venName: String, programNames: Set<String>? = nil, mapping: OpenADRMapping = OpenADRMapping(),
                tokenRenewMargin: TimeInterval = 30) {
        self.vtnURL = vtnURL
        self.tokenURL = tokenURL
        self.clientID = clientID
        self.clientSecret = clientSecret
        self.clientAuth = clientAuth
        self.scope = scope
        self.venName = venName
        self.programNames = programNames
        self.mapping = mapping
        self.tokenRenewMargin = tokenRenewMargin
    }
}

/// One reporting interval of a curtailment report.
public struct CurtailmentInterval: Sendable, Hashable, Codable {
    public var id: Int
    public var start: Date
    public var duration: TimeInterval
    public var baselineKW: Double
    /// Measured mean site demand over the interval.
    public var measuredKW: Double

    public init(id: Int, start: Date, duration: TimeInterval, baselineKW: Double, measuredKW: Double) {
        self.id = id
        self.start = start
        self.duration = duration
        self.baselineKW = baselineKW
        self.measuredKW = measuredKW
    }

    /// Load curtailed below the baseline (kW; negative when above it).
    public var curtailedKW: Double { baselineKW - measuredKW }
}

/// What the VEN last read from the VTN.
public struct VENSnapshot: Sendable, Hashable {
    public var programs: [OADRProgram]
    public var events: [OADREvent]
    /// The events mapped to Switchyard's vocabulary.
    public var drEvents: [DREvent]
    public var fetchedAt: Date
}

public actor OpenADRVEN {
    public let config: VENConfig
    private let transport: any HTTPTransport
    private let clock: any SignalClock
    private var token: (value: String, expires: Date)?
    /// Number of token requests made (for metrics and tests).
    public private(set) var tokenRequests = 0

    public init(config: VENConfig, transport: any HTTPTransport, clock: any SignalClock = SystemSignalClock()) {
        self.config = config
        self.transport = transport
        self.clock = clock
    }

    // MARK: OAuth2

    /// A bearer token, reused until `tokenRenewMargin` before it expires.
    public func accessToken() async throws(SignalsError) -> String {
        if let token, clock.now() < token.expires { return token.value }
        var form: [(String, String)] = [("grant_type", "client_credentials")]
        if let scope = config.scope { form.append(("scope", scope)) }
        var headers = ["Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"]
        switch config.clientAuth {
        case .basic:
            let pair = "\(Self.formEncode(config.clientID)):\(Self.formEncode(config.clientSecret))"
            headers["Authorization"] = "Basic " + Data(pair.utf8).base64EncodedString()
        case .body:
            form.append(("client_id", config.clientID))
            form.append(("client_secret", config.clientSecret))
        }
        let body = form.map { "\(Self.formEncode($0.0))=\(Self.formEncode($0.1))" }.joined(separator: "&")
        let request = HTTPRequest(method: "POST", url: config.tokenURL, headers: headers, body: Data(body.utf8))
        let requestedAt = clock.now()
        tokenRequests += 1
        let response = try await transport.send(request)
        if response.status == 400 || response.status == 401 {
            let err = (try? JSONDecoder().decode([String: String].self, from: response.body)) ?? [:]
            throw SignalsError(.auth, "the token endpoint refused the client credentials (HTTP \(response.status)\(err["error"].map { ": \($0)" } ?? "")\(err["error_description"].map { " — \($0)" } ?? ""))",
                               at: SignalSource(file: config.tokenURL.absoluteString))
        }
        try response.requireSuccess(request)
        struct TokenResponse: Decodable {
            var access_token: String
            var token_type: String
            var expires_in: Double?
        }
        let t = try OADRJSON.decode(TokenResponse.self, from: response.body, source: config.tokenURL.absoluteString)
        guard t.token_type.caseInsensitiveCompare("bearer") == .orderedSame else {
            throw SignalsError(.auth, "token_type is \"\(t.token_type)\", expected Bearer", at: SignalSource(file: config.tokenURL.absoluteString, keyPath: "token_type"))
        }
        let lifetime = t.expires_in ?? 3600
        let margin = min(config.tokenRenewMargin, lifetime / 2)
        token = (t.access_token, requestedAt.addingTimeInterval(lifetime - margin))
        return t.access_token
    }

    /// Forgets the cached token (the next call asks for a new one).
    public func invalidateToken() { token = nil }

    static func formEncode(_ s: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return s.addingPercentEncoding(withAllowedCharacters: allowed)?.replacingOccurrences(of: "%20", with: "+") ?? s
    }

    // MARK: Resources

    /// Sends an authorised request; on 401 renews the token once and retries.
    private func authorised(_ method: String, _ path: String, query: [URLQueryItem] = [], body: Data? = nil) async throws(SignalsError) -> (HTTPRequest, HTTPResponse) {
        let base = config.vtnURL.appendingPathComponent(path)
        guard var comps = URLComponents(url: base, resolvingAgainstBaseURL: false) else {
            throw SignalsError(.badValue, "the VTN URL \(base.absoluteString) cannot be parsed into components", at: SignalSource(file: base.absoluteString))
        }
        if !query.isEmpty { comps.queryItems = query }
        guard let url = comps.url else {
            throw SignalsError(.badValue, "cannot build a request URL from \(base.absoluteString) and \(query.map { "\($0.name)=\($0.value ?? "")" }.joined(separator: "&"))",
                               at: SignalSource(file: base.absoluteString))
        }
        for attempt in 0..<2 {
            let tok = try await accessToken()
            var headers = ["Authorization": "Bearer \(tok)", "Accept": "application/json"]
            if body != nil { headers["Content-Type"] = "application/json" }
            let request = HTTPRequest(method: method, url: url, headers: headers, body: body)
            let response = try await transport.send(request)
            if response.status == 401 && attempt == 0 {
                token = nil
                continue
            }
            try response.requireSuccess(request)
            return (request, response)
        }
        throw SignalsError(.auth, "the VTN refused a freshly issued token (HTTP 401 twice)", at: SignalSource(file: url.absoluteString))
    }

    /// `GET /programs`, following `skip`/`limit` pages of 50.
    public func programs() async throws(SignalsError) -> [OADRProgram] {
        try await paged("programs", OADRProgram.self)
    }

    /// `GET /events` (optionally for one program), following pages of 50.
    public func events(programID: String? = nil) async throws(SignalsError) -> [OADREvent] {
        try await paged("events", OADREvent.self, extra: programID.map { [URLQueryItem(name: "programID", value: $0)] } ?? [])
    }

    /// At most this many pages of 50 are read per listing (10,000 objects): a VTN that ignores `skip`
    /// or never ends its listing gets an error, not a VEN looping forever.
    public static let maxPages = 200

    private func paged<T: Decodable & Sendable>(_ path: String, _ type: T.Type, extra: [URLQueryItem] = []) async throws(SignalsError) -> [T] {
        var all: [T] = []
        let limit = 50
        for _ in 0..<Self.maxPages {
            let (request, response) = try await authorised("GET", path, query: extra + [URLQueryItem(name: "skip", value: "\(all.count)"), URLQueryItem(name: "limit", value: "\(limit)")])
            let page = try OADRJSON.decode([T].self, from: response.body, source: request.url.absoluteString)
            all += page
            if page.count < limit { return all }
        }
        let url = config.vtnURL.appendingPathComponent(path).absoluteString
        throw SignalsError(.http, "the VTN's /\(path) listing did not end after \(Self.maxPages) pages of \(limit) (\(all.count) objects): refusing to read more (does the VTN ignore skip?)",
                           at: SignalSource(file: url))
    }

    /// Reads programs and events and maps them. Errors name the `/events` URL and key path.
    public func poll() async throws(SignalsError) -> VENSnapshot {
        let programs = try await programs()
        var events = try await events()
        if let names = config.programNames {
            let ids = Set(programs.filter { names.contains($0.programName) }.compactMap(\.id))
            events = events.filter { ids.contains($0.programID) }
        }
        let source = config.vtnURL.appendingPathComponent("events").absoluteString
        let mapped = try OpenADRMapper.map(events: events, programs: programs, mapping: config.mapping, source: source)
        return VENSnapshot(programs: programs, events: events, drEvents: mapped, fetchedAt: clock.now())
    }

    /// Builds the report object for a curtailment: per interval BASELINE and DEMAND (kW)
    /// and DELTA_USAGE (kWh, measured − baseline: negative when load was curtailed).
    public func curtailmentReport(programID: String, eventID: String, intervals: [CurtailmentInterval],
                                  resourceName: String = "AGGREGATED_REPORT", reportName: String? = nil) -> OADRReport {
        let oadrIntervals = intervals.map { i in
            OADRInterval(id: i.id, intervalPeriod: OADRIntervalPeriod(start: ISO8601.format(i.start), duration: ISODuration.seconds(Int(i.duration.rounded())).description),
                         payloads: [
                            OADRValuesMap(type: "BASELINE", values: [.number(i.baselineKW)]),
                            OADRValuesMap(type: "DEMAND", values: [.number(i.measuredKW)]),
                            OADRValuesMap(type: "DELTA_USAGE", values: [.number((i.measuredKW - i.baselineKW) * i.duration / 3600)]),
                         ])
        }
        return OADRReport(
            id: nil, objectType: "REPORT", programID: programID, eventID: eventID, clientName: config.venName,
            reportName: reportName ?? "curtailment \(eventID)",
            payloadDescriptors: [
                OADRPayloadDescriptor(objectType: "REPORT_PAYLOAD_DESCRIPTOR", payloadType: "BASELINE", readingType: "ESTIMATED", units: "KW"),
                OADRPayloadDescriptor(objectType: "REPORT_PAYLOAD_DESCRIPTOR", payloadType: "DEMAND", readingType: "AVERAGE", units: "KW"),
                OADRPayloadDescriptor(objectType: "REPORT_PAYLOAD_DESCRIPTOR", payloadType: "DELTA_USAGE", readingType: "SUMMED", units: "KWH"),
            ],
            resources: [OADRReportResource(resourceName: resourceName, intervalPeriod: nil, intervals: oadrIntervals)])
    }

    /// `POST /reports`; returns the VTN's copy (with its id).
    @discardableResult
    public func send(report: OADRReport) async throws(SignalsError) -> OADRReport {
        let (request, response) = try await authorised("POST", "reports", body: OADRJSON.encode(report))
        return try OADRJSON.decode(OADRReport.self, from: response.body, source: request.url.absoluteString)
    }

    /// Convenience: build and send a curtailment report.
    @discardableResult
    public func reportCurtailment(programID: String, eventID: String, intervals: [CurtailmentInterval]) async throws(SignalsError) -> OADRReport {
        try await send(report: curtailmentReport(programID: programID, eventID: eventID, intervals: intervals))
    }
}
