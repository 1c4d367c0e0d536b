import AsyncHTTPClient
import Foundation
import Testing
import TestSupport
@testable import Signals

/// Real loopback HTTP for the tests, over async-http-client's process-wide client (never shut down, by design).
let loopbackHTTP = HTTPClientTransport(client: .shared)

/// Decodes the stand-in's test-only JSON endpoints.
func standinJSON(_ port: Int, _ path: String) async throws -> Any {
    let r = try await loopbackHTTP.send(HTTPRequest(url: URL(string: "http://127.0.0.1:\(port)\(path)")!))
    return try JSONSerialization.jsonObject(with: r.body)
}

func venConfig(port: Int, auth: OAuthClientAuth = .basic, secret: String = "s3cret&stuff") -> VENConfig {
    VENConfig(vtnURL: URL(string: "http://127.0.0.1:\(port)/openadr3/3.0.1")!,
              tokenURL: URL(string: "http://127.0.0.1:\(port)/auth/token")!,
              clientID: "ven-switchyard", clientSecret: secret, clientAuth: auth, scope: "read_all write_reports",
              venName: "switchyard-site-1",
              mapping: OpenADRMapping(simpleLevelCapsKW: [3: 5000], defaultBaselineKW: 20000),
              tokenRenewMargin: 30)
}

@Suite("OpenADR 3 VEN against a local VTN stand-in", .serialized)
struct OpenADRVENTests {
    @Test(arguments: [OAuthClientAuth.basic, .body])
    func pollsAndMapsEvents(auth: OAuthClientAuth) async throws {
        let vtn = try await PeerProcess.python("vtn_standin.py")
        defer { vtn.stop() }
        let clock = ManualSignalClock(now: date("2025-08-14T19:00:00Z"))
        let ven = OpenADRVEN(config: venConfig(port: vtn.port, auth: auth), transport: loopbackHTTP, clock: clock)
        let snap = try await ven.poll()
        #expect(snap.programs.map(\.programName) == ["ERCOT-ERS", "RTP-TARIFF"])
        #expect(snap.events.count == 4)
        let ids = snap.drEvents.map(\.id)
        #expect(ids == ["evt-cap#0", "evt-cap#1", "evt-incentive#7", "evt-simple#0", "evt-simple#0", "evt-tariff#0"])
        // Consecutive intervals from the event's intervalPeriod.
        #expect(snap.drEvents[0].action == .importCap(kW: 12000))
        #expect(snap.drEvents[0].start == date("2025-08-14T20:00:00Z"))
        #expect(snap.drEvents[1].action == .importCap(kW: 15000))
        #expect(snap.drEvents[1].start == date("2025-08-14T21:00:00Z"))
        #expect(snap.drEvents[1].end == date("2025-08-14T22:00:00Z"))
        // PRICE in $/kWh in a non-tariff program is a paid reduction in $/MWh.
        #expect(snap.drEvents[2].action == .paidReduction(usdPerMWh: 500, baselineKW: 20000))
        #expect(snap.drEvents[2].start == date("2025-08-14T21:30:00Z"))
        #expect(snap.drEvents[2].end == date("2025-08-14T23:00:00Z"))
        #expect(snap.drEvents[2].reason == "ERS deployment / Emergency Response Service")
        // MW limit → kW; SIMPLE level 2 has no configured cap; alerts are ignored.
        #expect(snap.drEvents[3].action == .importCap(kW: 10000))
        #expect(snap.drEvents[3].end == date("2025-08-16T00:00:00Z"))
        #expect(snap.drEvents[4].action == .level(2))
        #expect(snap.drEvents[5].action == .price(usdPerMWh: 42))
        #expect(snap.drEvents[0].origin == .openADR(programID: "prog-ercot-dr", eventID: "evt-cap", intervalID: 0))
        let stats = try await standinJSON(vtn.port, "/_test/stats") as? [String: Any]
        #expect(stats?["auth_methods"] as? [String] == [auth.rawValue])
        // In force at 21:45: the tightest cap and the best-paying reduction.
        let active = snap.drEvents.filter { $0.isActive(at: date("2025-08-14T21:45:00Z")) }
        #expect(active.compactMap(\.capKW).min() == 15000)
        #expect(active.compactMap { if case .paidReduction(let usd, _) = $0.action { usd } else { nil } }.max() == 500)
    }

    @Test func tokenIsReusedUntilItExpiresOnTheInjectedClock() async throws {
        let vtn = try await PeerProcess.python("vtn_standin.py", ["--expires-in", "300"])
        defer { vtn.stop() }
        let clock = ManualSignalClock(now: date("2025-08-14T19:00:00Z"))
        let ven = OpenADRVEN(config: venConfig(port: vtn.port), transport: loopbackHTTP, clock: clock)
        let t1 = try await ven.accessToken()
        _ = try await ven.poll()
        _ = try await ven.poll()
        #expect(try await ven.accessToken() == t1)
        #expect(await ven.tokenRequests == 1)
        clock.advance(by: 269)  // 300 s lifetime − 30 s margin: still valid
        #expect(try await ven.accessToken() == t1)
        clock.advance(by: 1)
        let t2 = try await ven.accessToken()
        #expect(t2 != t1)
        #expect(await ven.tokenRequests == 2)
        let stats = try await standinJSON(vtn.port, "/_test/stats") as? [String: Any]
        #expect(stats?["token_requests"] as? Int == 2)
    }

    @Test func a401RenewsTheTokenOnceAndRetries() async throws {
        let vtn = try await PeerProcess.python("vtn_standin.py")
        defer { vtn.stop() }
        let ven = OpenADRVEN(config: venConfig(port: vtn.port), transport: loopbackHTTP, clock: ManualSignalClock(now: date("2025-08-14T19:00:00Z")))
        _ = try await ven.programs()
        _ = try await loopbackHTTP.send(HTTPRequest(method: "POST", url: URL(string: "http://127.0.0.1:\(vtn.port)/_test/revoke")!))
        let programs = try await ven.programs()
        #expect(programs.count == 2)
        #expect(await ven.tokenRequests == 2)
    }

    @Test func wrongCredentialsAreAnAuthError() async throws {
        let vtn = try await PeerProcess.python("vtn_standin.py")
        defer { vtn.stop() }
        let ven = OpenADRVEN(config: venConfig(port: vtn.port, secret: "nope"), transport: loopbackHTTP, clock: ManualSignalClock(now: Date(timeIntervalSince1970: 0)))
        do {
            _ = try await ven.poll()
            Issue.record("expected the token request to fail")
        } catch {
            #expect(error.kind == .auth)
            #expect(error.message.contains("invalid_client"))
            #expect(error.description.hasPrefix("http://127.0.0.1:\(vtn.port)/auth/token: error: "))
        }
    }

    @Test func reportsCurtailedLoadBack() async throws {
        let vtn = try await PeerProcess.python("vtn_standin.py")
        defer { vtn.stop() }
        let ven = OpenADRVEN(config: venConfig(port: vtn.port), transport: loopbackHTTP, clock: ManualSignalClock(now: date("2025-08-14T23:00:00Z")))
        let intervals = [
            CurtailmentInterval(id: 0, start: date("2025-08-14T21:30:00Z"), duration: 3600, baselineKW: 20000, measuredKW: 14000),
            CurtailmentInterval(id: 1, start: date("2025-08-14T22:30:00Z"), duration: 1800, baselineKW: 20000, measuredKW: 16000),
        ]
        #expect(intervals.map(\.curtailedKW) == [6000, 4000])
        let stored = try await ven.reportCurtailment(programID: "prog-ercot-dr", eventID: "evt-incentive", intervals: intervals)
        #expect(stored.id == "report-1")
        let reports = try #require(try await standinJSON(vtn.port, "/_test/reports") as? [[String: Any]])
        #expect(reports.count == 1)
        let r = reports[0]
        #expect(r["programID"] as? String == "prog-ercot-dr")
        #expect(r["eventID"] as? String == "evt-incentive")
        #expect(r["clientName"] as? String == "switchyard-site-1")
        let resources = try #require(r["resources"] as? [[String: Any]])
        #expect(resources.first?["resourceName"] as? String == "AGGREGATED_REPORT")
        let ivs = try #require(resources.first?["intervals"] as? [[String: Any]])
        #expect(ivs.count == 2)
        let period = ivs[1]["intervalPeriod"] as? [String: Any]
        #expect(period?["start"] as? String == "2025-08-14T22:30:00Z")
        #expect(period?["duration"] as? String == "PT30M")
        let payloads = try #require(ivs[1]["payloads"] as? [[String: Any]])
        let values = Dictionary(uniqueKeysWithValues: payloads.map { ($0["type"] as! String, ($0["values"] as! [Double])[0]) })
        #expect(values == ["BASELINE": 20000, "DEMAND": 16000, "DELTA_USAGE": -2000])
    }
}

@Suite("OpenADR event mapping")
struct OpenADRMappingTests {
    func decode(_ json: String) throws -> [OADREvent] {
        try OADRJSON.decode([OADREvent].self, from: Data(json.utf8), source: "vtn/events")
    }

    @Test func decodingErrorsNameTheKeyPath() {
        let e = signalsError { _ = try self.decode(#"[{"programID": "p", "intervals": [{"id": 0, "payloads": [{"type": "PRICE"}]}]}]"#) }
        #expect(e?.source.keyPath == "[0].intervals[0].payloads[0].values")
        #expect(e?.description == "vtn/events: error: at [0].intervals[0].payloads[0].values: missing key \"values\"")
    }

    @Test(arguments: [
        (#"[{"programID": "p", "intervals": [{"id": 0, "payloads": [{"type": "IMPORT_CAPACITY_LIMIT", "values": [5]}]}]}]"#,
         "[0].intervals[0]", "has no intervalPeriod"),
        (#"[{"programID": "p", "intervalPeriod": {"start": "2025-08-14T20:00:00Z", "duration": "1H"}, "intervals": []}]"#,
         "[0].intervalPeriod.duration", "not an ISO 8601 duration"),
        (#"[{"programID": "p", "intervalPeriod": {"start": "2025-08-14T20:00:00Z", "duration": "PT1H"}, "intervals": [{"id": 3, "payloads": [{"type": "IMPORT_CAPACITY_LIMIT", "values": [5, 6]}]}]}]"#,
         "[0].intervals[0].payloads[0]", "exactly one number"),
        (#"[{"programID": "p", "payloadDescriptors": [{"payloadType": "IMPORT_CAPACITY_LIMIT", "units": "HP"}], "intervalPeriod": {"start": "2025-08-14T20:00:00Z"}, "intervals": [{"id": 3, "payloads": [{"type": "IMPORT_CAPACITY_LIMIT", "values": [5]}]}]}]"#,
         "[0].intervals[0].payloads[0]", "units \"HP\""),
        (#"[{"programID": "p", "intervalPeriod": {"start": "2025-08-14T20:00:00Z"}, "intervals": [{"id": 0, "payloads": [{"type": "SIMPLE", "values": [7]}]}]}]"#,
         "[0].intervals[0].payloads[0]", "SIMPLE level"),
        (#"[{"programID": "p", "intervalPeriod": {"start": "2025-08-14T20:00:00Z"}, "intervals": [{"id": 0, "payloads": []}, {"id": 1, "payloads": []}]}]"#,
         "[0].intervals[0]", "open-ended"),
    ] as [(String, String, String)])
    func mappingErrorsNameTheKeyPath(json: String, keyPath: String, fragment: String) throws {
        let events = try decode(json)
        let e = signalsError { _ = try OpenADRMapper.map(events: events, programs: [], source: "vtn/events") }
        #expect(e?.source.keyPath == keyPath, "\(String(describing: e))")
        #expect(e?.message.contains(fragment) == true, "\(String(describing: e))")
    }

    @Test func zeroDurationIsOpenEndedAndLevelsMapToCaps() throws {
        let events = try decode(#"[{"id": "e", "programID": "p", "intervalPeriod": {"start": "2025-08-14T20:00:00Z", "duration": "PT0S"}, "intervals": [{"id": 0, "payloads": [{"type": "SIMPLE", "values": [3]}, {"type": "SIMPLE", "values": [0]}]}]}]"#)
        let mapped = try OpenADRMapper.map(events: events, programs: [], mapping: OpenADRMapping(simpleLevelCapsKW: [3: 4000]))
        #expect(mapped.count == 1)
        #expect(mapped[0].action == .importCap(kW: 4000))
        #expect(mapped[0].end == nil)
    }

    @Test func valuesDecodeEveryShape() throws {
        let m = try OADRJSON.decode(OADRValuesMap.self, from: Data(#"{"type": "X", "values": [1, 2.5, "a", true, {"x": 1, "y": 2}]}"#.utf8), source: "s")
        #expect(m.values == [.number(1), .number(2.5), .string("a"), .bool(true), .point(x: 1, y: 2)])
        let again = try OADRJSON.decode(OADRValuesMap.self, from: OADRJSON.encode(m), source: "s")
        #expect(again == m)
    }
}

@Suite("Polled HTTP price feed", .serialized)
struct FeedPollerTests {
    /// Drives the poll loop with a manual clock: each advance causes exactly one
    /// real HTTP request, and the test awaits its result (no sleeping).
    @Test func pollsOnTheInjectedClock() async throws {
        let vtn = try await PeerProcess.python("vtn_standin.py")
        defer { vtn.stop() }
        let clock = ManualSignalClock(now: date("2025-08-14T00:00:00-05:00"))
        let feed = HTTPSeriesFeed(url: URL(string: "http://127.0.0.1:\(vtn.port)/prices")!, transport: loopbackHTTP)
        let poller = FeedPoller(feed: feed, interval: 300, clock: clock)
        let (stream, continuation) = AsyncStream.makeStream(of: Result<TimeSeries, SignalsError>.self)
        let task = Task { await poller.run { continuation.yield($0) } }
        var results = stream.makeAsyncIterator()
        let first = try #require(await results.next()).get()
        #expect(first.value(at: date("2025-08-14T00:30:00-05:00")) == 21)  // request 1, hour 0
        await clock.waitForSleepers(1)
        clock.advance(by: 299)
        #expect(clock.sleepers() == 1)  // not yet due: no second request
        clock.advance(by: 1)
        let second = try #require(await results.next()).get()
        #expect(second.value(at: date("2025-08-14T02:30:00-05:00")) == 24)  // request 2, hour 2
        await clock.waitForSleepers(1)
        task.cancel()
        await task.value
        let stats = try await standinJSON(vtn.port, "/_test/stats") as? [String: Any]
        #expect(stats?["price_requests"] as? Int == 2)
    }

    @Test func aBadBodyIsALocatedErrorAndThePollerRetriesSooner() async throws {
        let vtn = try await PeerProcess.python("vtn_standin.py")
        defer { vtn.stop() }
        let clock = ManualSignalClock(now: date("2025-08-14T00:00:00Z"))
        // /openadr3/3.0.1/events without a token answers 401: a feed failure.
        let feed = HTTPSeriesFeed(url: URL(string: "http://127.0.0.1:\(vtn.port)/openadr3/3.0.1/events")!, transport: loopbackHTTP)
        let poller = FeedPoller(feed: feed, interval: 3600, retryInterval: 60, clock: clock)
        let (stream, continuation) = AsyncStream.makeStream(of: Result<TimeSeries, SignalsError>.self)
        let task = Task { await poller.run { continuation.yield($0) } }
        var results = stream.makeAsyncIterator()
        guard case .failure(let e) = try #require(await results.next()) else { Issue.record("expected a failure"); return }
        #expect(e.kind == .auth)
        #expect(e.message.contains("HTTP 401"))
        await clock.waitForSleepers(1)
        clock.advance(by: 60)
        guard case .failure = try #require(await results.next()) else { Issue.record("expected a second failure"); return }
        task.cancel()
        await task.value
    }

    @Test func httpBodiesAreParsedWithLineNumbers() {
        let e = signalsError {
            _ = try SeriesLoader.parse("{\"interval\": \"PT1H\",\n \"points\": [\n {\"timestamp\": \"yesterday\", \"value\": 1}]}", name: "http://feed/prices")
        }
        #expect(e?.description == "http://feed/prices:3: error: at points[0].timestamp: timestamp \"yesterday\" is not an ISO 8601 time with an offset (e.g. 2025-08-14T15:00:00-05:00)")
    }
}
