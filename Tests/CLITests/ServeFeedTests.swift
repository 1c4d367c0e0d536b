import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Testing
import TestSupport

// `serve` with live feeds: the HTTP JSON price feed (`--prices-url`) and OpenADR
// curtailment reports posted back to the VTN stand-in.

/// A child process whose stdout and stderr go to files (never a full pipe), read at any time.
/// Signalled directly (not through `timeout`: a SIGTERM that the test process has blocked
/// would stay blocked in `timeout` and never reach the daemon).
final class LoggedProcess: @unchecked Sendable {
    let process = Process()
    let outURL: URL
    let errURL: URL

    init(_ executable: String, _ arguments: [String], logsIn dir: URL, name: String) throws {
        outURL = dir.appendingPathComponent("\(name).out")
        errURL = dir.appendingPathComponent("\(name).err")
        _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardOutput = try FileHandle(forWritingTo: outURL)
        process.standardError = try FileHandle(forWritingTo: errURL)
        process.standardInput = FileHandle.nullDevice
        try process.run()
    }

    var stdout: String { (try? String(contentsOf: outURL, encoding: .utf8)) ?? "" }
    var stderr: String { (try? String(contentsOf: errURL, encoding: .utf8)) ?? "" }
    var isRunning: Bool { process.isRunning }

    /// SIGTERM (serve shuts down gracefully), then SIGKILL if it has not exited within 10 s.
    func stop() {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGTERM)
        let deadline = Date().addingTimeInterval(10)
        while process.isRunning && Date() < deadline { usleep(50_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    deinit { stop() }
}

struct TimedOut: Error, CustomStringConvertible {
    var description: String
}

/// Checks `condition` every 200 ms until it holds; fails the test after `within`.
func waitUntil(_ what: String, within: Duration = .seconds(60), _ condition: () async throws -> Bool) async throws {
    let deadline = ContinuousClock.now + within
    while try await !condition() {
        if ContinuousClock.now >= deadline {
            Issue.record("timed out after \(within) waiting for \(what)")
            throw TimedOut(description: what)
        }
        try await Task.sleep(for: .milliseconds(200))
    }
}

/// GET (or POST `body`) a loopback JSON endpoint of a stand-in.
func httpJSON(_ url: String, post body: String? = nil) async throws -> Any {
    var request = URLRequest(url: URL(string: url)!)
    request.timeoutInterval = 10
    if let body {
        request.httpMethod = "POST"
        request.httpBody = Data(body.utf8)
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
    }
    let (data, _) = try await URLSession.shared.data(for: request)
    return try JSONSerialization.jsonObject(with: data)
}

/// The complete lines of `text` after character offset `from`.
func lines(of text: String, after from: Int) -> [Substring] {
    text.dropFirst(from).split(separator: "\n")
}

/// Offset just past the last complete line (so later reads never start mid-line).
func endOfLastLine(_ text: String) -> Int {
    guard let i = text.lastIndex(of: "\n") else { return 0 }
    return text.distance(from: text.startIndex, to: i) + 1
}

/// A report the VTN stand-in stored (one interval, as serve posts them).
struct StoredReport {
    var name: String
    var eventID: String
    var programID: String
    var clientName: String
    var intervalID: Int
    var start: String
    var duration: String
    var baselineKW: Double
    var demandKW: Double
    var deltaKWh: Double

    static func all(vtnPort: Int) async throws -> [StoredReport] {
        let list = try await httpJSON("http://127.0.0.1:\(vtnPort)/_test/reports") as? [[String: Any]] ?? []
        return list.compactMap { r in
            guard let resource = (r["resources"] as? [[String: Any]])?.first,
                  let interval = (resource["intervals"] as? [[String: Any]])?.first,
                  let period = interval["intervalPeriod"] as? [String: Any],
                  let payloads = interval["payloads"] as? [[String: Any]] else { return nil }
            func value(_ type: String) -> Double? {
                (payloads.first { $0["type"] as? String == type }?["values"] as? [Any])?.first.flatMap { ($0 as? NSNumber)?.doubleValue }
            }
            guard let b = value("BASELINE"), let d = value("DEMAND"), let du = value("DELTA_USAGE") else { return nil }
            return StoredReport(name: r["reportName"] as? String ?? "", eventID: r["eventID"] as? String ?? "",
                                programID: r["programID"] as? String ?? "", clientName: r["clientName"] as? String ?? "",
                                intervalID: interval["id"] as? Int ?? -1, start: period["start"] as? String ?? "",
                                duration: period["duration"] as? String ?? "", baselineKW: b, demandKW: d, deltaKWh: du)
        }
    }
}

/// `serve --prices-url` against a python http.server price endpoint. No device answers (every
/// address is a closed loopback port), so the loop runs in comm-loss mode and only prices move;
/// the price the loop uses is in each tick's log line.
@Suite("serve with an HTTP price feed")
struct ServePriceFeedTests {
    let exe = switchyardExecutable()

    /// The demo site with every device behind closed port 1 (unit ids 20…57 keep addresses distinct).
    static func closedSite(in dir: URL) throws -> String {
        let text = try String(contentsOf: packageRoot.appendingPathComponent("examples/demo-site.yaml"), encoding: .utf8)
        let re = try NSRegularExpression(pattern: #"tcp: "127\.0\.0\.1:150(\d\d)", unit: 1"#)
        let range = NSRange(text.startIndex..., in: text)
        #expect(re.numberOfMatches(in: text, range: range) == 38)
        let closed = re.stringByReplacingMatches(in: text, range: range, withTemplate: #"tcp: "127.0.0.1:1", unit: $1"#)
        let path = dir.appendingPathComponent("site.yaml").path
        try closed.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test func feedPricesReachTheLoopAndAFailingEndpointKeepsTheLastGoodOnes() async throws {
        let feed = try await PeerProcess.python("price_standin.py", ["--price", "777.25"])
        defer { feed.stop() }
        let dir = try scratchDir("sy-prices")
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = "http://127.0.0.1:\(feed.port)/prices"
        let serve = try LoggedProcess(exe, ["serve", "--site", try Self.closedSite(in: dir), "--state-dir", dir.appendingPathComponent("state").path,
                                            "--profiles-dir", packageRoot.appendingPathComponent("hardware-profiles").path,
                                            "--listen", "127.0.0.1:0", "--watchdog-s", "0",
                                            "--prices-url", url, "--prices-poll-s", "1", "--start-at", "2025-08-14T12:00:00Z"],
                                      logsIn: dir, name: "serve")
        defer { serve.stop() }

        // No other price source: the loop starts with no price (mining held, and the tick line says so), then uses the feed's $777.25.
        try await waitUntil("a tick priced by the feed") { serve.stdout.contains("price $777 ") }
        #expect(serve.stdout.split(separator: "\n").first { $0.contains(" site ") }?.contains("price none (no price yet: mining held at its current level)") == true,
                "\(serve.stdout.prefix(400))")
        #expect(serve.stderr.contains("price feed: first prices"), "\(serve.stderr)")

        // The endpoint fails (HTTP 500): one warning per failed poll, the last good prices stay in use.
        _ = try await httpJSON("http://127.0.0.1:\(feed.port)/_test/mode", post: #"{"mode": "error"}"#)
        try await waitUntil("the failed poll's warning") { serve.stderr.contains("HTTP 500") }
        var mark = endOfLastLine(serve.stdout)
        try await waitUntil("two ticks after the failure") { lines(of: serve.stdout, after: mark).count >= 2 }
        let ticksAfter500 = lines(of: serve.stdout, after: mark).filter { $0.contains(" site ") }
        #expect(!ticksAfter500.isEmpty && ticksAfter500.allSatisfy { $0.contains("price $777 ") }, "\(ticksAfter500)")
        let failure = try #require(serve.stderr.split(separator: "\n").first { $0.contains("HTTP 500") })
        #expect(failure.contains("price feed poll failed; keeping the last good prices"), "\(failure)")
        #expect(failure.contains("prices.age_s=") && failure.contains("prices.url=\(url)"), "\(failure)")

        // A bad payload: a one-line error naming the URL and the key path; prices still kept.
        _ = try await httpJSON("http://127.0.0.1:\(feed.port)/_test/mode", post: #"{"mode": "garbage"}"#)
        try await waitUntil("the bad payload's error") { serve.stderr.contains(#""abc" is not a number"#) }
        let bad = try #require(serve.stderr.split(separator: "\n").first { $0.contains(#""abc" is not a number"#) })
        #expect(bad.contains("error=\(url):1: error: at points[0].price_usd_per_mwh"), "\(bad)")
        #expect(bad.contains("keeping the last good prices"), "\(bad)")
        mark = endOfLastLine(serve.stdout)
        try await waitUntil("two ticks after the bad payload") { lines(of: serve.stdout, after: mark).count >= 2 }
        let ticksAfterGarbage = lines(of: serve.stdout, after: mark).filter { $0.contains(" site ") }
        #expect(!ticksAfterGarbage.isEmpty && ticksAfterGarbage.allSatisfy { $0.contains("price $777 ") }, "\(ticksAfterGarbage)")

        // The endpoint recovers with a new price: serve (still running) picks it up.
        _ = try await httpJSON("http://127.0.0.1:\(feed.port)/_test/mode", post: #"{"mode": "ok", "price": 555}"#)
        try await waitUntil("a tick at the new price") { serve.stdout.contains("price $555 ") }
        #expect(serve.isRunning)
        #expect(serve.stderr.contains("price feed recovered"), "\(serve.stderr)")
        let stats = try #require(try await httpJSON("http://127.0.0.1:\(feed.port)/_test/stats") as? [String: Any])
        #expect((stats["requests"] as? Int ?? 0) >= 4, "\(stats)")
    }

    /// `--hashprice FILE` is in force from the start; `--hashprice-url` takes over where it has points,
    /// and a new value from the feed reaches the loop (shown in each tick's line).
    @Test func hashpriceFileThenFeed() async throws {
        let feed = try await PeerProcess.python("price_standin.py", ["--price", "30"])
        defer { feed.stop() }
        let dir = try scratchDir("sy-hash")
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("hashprice.csv")
        try "timestamp,hashprice_usd_per_ph_day\n2025-08-14T00:00:00Z,41.25\n2025-08-14T06:00:00Z,41.25\n".write(to: file, atomically: true, encoding: .utf8)
        _ = try await httpJSON("http://127.0.0.1:\(feed.port)/_test/mode", post: #"{"mode": "error"}"#)
        let serve = try LoggedProcess(exe, ["serve", "--site", try Self.closedSite(in: dir), "--state-dir", dir.appendingPathComponent("state").path,
                                            "--profiles-dir", packageRoot.appendingPathComponent("hardware-profiles").path,
                                            "--listen", "127.0.0.1:0", "--watchdog-s", "0", "--hashprice", file.path,
                                            "--hashprice-url", "http://127.0.0.1:\(feed.port)/hashprice", "--hashprice-poll-s", "1",
                                            "--start-at", "2025-08-14T12:00:00Z"],
                                      logsIn: dir, name: "serve")
        defer { serve.stop() }
        // The feed fails at first: the file's hashprice is used, and the failure is one warning line.
        try await waitUntil("a tick at the file's hashprice") { serve.stdout.contains("hashprice $41.25 ") }
        try await waitUntil("the feed's failure") { serve.stderr.contains("hashprice feed poll failed; no values from it yet") }
        // The feed comes up: its value replaces the file's.
        _ = try await httpJSON("http://127.0.0.1:\(feed.port)/_test/mode", post: #"{"mode": "ok", "hashprice": 48.5}"#)
        try await waitUntil("a tick at the feed's hashprice") { serve.stdout.contains("hashprice $48.50 ") }
        #expect(serve.stderr.contains("hashprice feed recovered"), "\(serve.stderr)")
        _ = try await httpJSON("http://127.0.0.1:\(feed.port)/_test/mode", post: #"{"hashprice": 39}"#)
        try await waitUntil("a tick at the feed's new hashprice") { serve.stdout.contains("hashprice $39.00 ") }
        #expect(serve.isRunning)
    }

    @Test(arguments: [
        (["--hashprice-url", "file:///tmp/x"], "--hashprice-url"),
        (["--prices-url", "not a url"], "--prices-url"),
        (["--prices-url", "ftp://127.0.0.1/prices"], "--prices-url"),
        (["--prices-url", "http://127.0.0.1:9/prices", "--prices-poll-s", "0.5"], "--prices-poll-s"),
    ])
    func badPriceFeedOptionsAreUsageErrors(args: [String], mentions: String) async throws {
        let r = try await runCommand(exe, ["serve", "--site", packageRoot.appendingPathComponent("examples/demo-site.yaml").path,
                                           "--state-dir", FileManager.default.temporaryDirectory.appendingPathComponent("sy-never-\(UUID().uuidString)").path] + args)
        #expect(r.status == 64, "\(r.stdout) \(r.stderr)")
        #expect(r.stderr.contains(mentions), "\(r.stderr)")
    }
}

extension ServeOpenADRTests {
    /// An event announced ahead (18:00:08Z, 10 s, cap 20 MW) while the VTN refuses reports: the progress
    /// and final reports are refused and kept; once the VTN takes reports again, the final one arrives,
    /// measured against the mean import of the ticks before the event.
    @Test func finalReportIsKeptWhileTheVTNRefusesItAndSentLater() async throws {
        let vtn = try await PeerProcess.python("vtn_standin.py", ["--client-id", "ven-1", "--client-secret", "pw"])
        defer { vtn.stop() }
        let base = "http://127.0.0.1:\(vtn.port)"
        _ = try await httpJSON(base + "/_test/events", post: """
            {"id": "evt-short", "objectType": "EVENT", "programID": "prog-ercot-dr", "eventName": "short cap",
             "payloadDescriptors": [{"objectType": "EVENT_PAYLOAD_DESCRIPTOR", "payloadType": "IMPORT_CAPACITY_LIMIT", "units": "KW"}],
             "intervalPeriod": {"start": "2025-08-14T18:00:08Z", "duration": "PT10S"},
             "intervals": [{"id": 0, "payloads": [{"type": "IMPORT_CAPACITY_LIMIT", "values": [20000]}]}]}
            """)
        _ = try await httpJSON(base + "/_test/fail_reports", post: #"{"fail": true}"#)
        let (site, sim) = try await loadedDemoSim()
        defer { sim.stop() }
        let dir = try scratchDir("sy-adr")
        defer { try? FileManager.default.removeItem(at: dir) }
        let config = dir.appendingPathComponent("openadr.json").path
        try """
        {"vtn_url": "\(base)/openadr3/3.0.1", "token_url": "\(base)/auth/token",
         "client_id": "ven-1", "client_secret": "pw", "programs": ["ERCOT-ERS"], "poll_s": 1, "report_s": 2, "baseline_window_s": 600}
        """.write(toFile: config, atomically: true, encoding: .utf8)
        let serveArgs = ["serve", "--site", site, "--openadr", config, "--listen", "127.0.0.1:0",
                         "--start-at", "2025-08-14T18:00:00Z", "--state-dir", dir.appendingPathComponent("state").path]
        let first = try LoggedProcess(exe, serveArgs, logsIn: dir, name: "serve-1")
        defer { first.stop() }

        func refused() async throws -> [String] {
            (try await httpJSON(base + "/_test/stats") as? [String: Any])?["refused_reports"] as? [String] ?? []
        }
        try await waitUntil("the VTN to refuse the final report") { try await refused().contains("curtailment evt-short#0 final") }
        #expect(try await refused().contains("curtailment evt-short#0 so far"))
        #expect(try await StoredReport.all(vtnPort: vtn.port).filter { $0.eventID == "evt-short" }.isEmpty)
        #expect(first.stderr.contains("OpenADR curtailment report not sent; kept and retried on the next poll"), "\(first.stderr.suffix(2000))")
        #expect(first.isRunning)

        // Stopped with the final report still unsent: it is in the state dir, and the restarted
        // daemon sends it (once: the interval is remembered as settled and not measured again).
        first.stop()
        let journal = try String(contentsOf: dir.appendingPathComponent("state/openadr-reports.json"), encoding: .utf8)
        #expect(journal.contains("evt-short"), "\(journal)")
        _ = try await httpJSON(base + "/_test/fail_reports", post: #"{"fail": false}"#)
        let serve = try LoggedProcess(exe, serveArgs, logsIn: dir, name: "serve-2")
        defer { serve.stop() }
        try await waitUntil("the final report at the VTN") {
            try await StoredReport.all(vtnPort: vtn.port).contains { $0.name == "curtailment evt-short#0 final" }
        }
        let finals = try await StoredReport.all(vtnPort: vtn.port).filter { $0.name == "curtailment evt-short#0 final" }
        #expect(finals.count == 1)
        try await waitUntil("the journal to drop the sent report") {
            let j = (try? String(contentsOf: dir.appendingPathComponent("state/openadr-reports.json"), encoding: .utf8)) ?? ""
            return j.contains(#""pending":[]"#) && j.contains("evt-short")
        }
        let r = try #require(finals.first)
        #expect(r.eventID == "evt-short" && r.programID == "prog-ercot-dr" && r.clientName == "switchyard" && r.intervalID == 0)
        #expect(r.start == "2025-08-14T18:00:08Z" && r.duration == "PT10S", "\(r)")
        // The demo site draws about 35 MW before the event; under the 20 MW cap it ramps down.
        #expect((25_000...40_000).contains(r.baselineKW), "\(r)")
        #expect(r.demandKW > 0 && r.demandKW < r.baselineKW - 1000, "\(r)")
        #expect(abs(r.deltaKWh - (r.demandKW - r.baselineKW) * 10 / 3600) < 0.01, "\(r)")
        // The log line follows the journal write: wait for it rather than race it.
        let isSent = { (line: Substring) in
            line.contains("OpenADR curtailment report sent") && line.contains("event.id=evt-short ") && line.contains("report.final=true")
        }
        try await waitUntil("the final report's log line") { serve.stderr.split(separator: "\n").contains(where: isSent) }
        let sent = try #require(serve.stderr.split(separator: "\n").first(where: isSent))
        #expect(sent.contains("report.baseline=mean measured import over"), "\(sent)")
    }
}
