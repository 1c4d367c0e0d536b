// The remote CLI's connection: server and token lookup (flags, then
// SWITCHYARD_SERVER / SWITCHYARD_TOKEN, then ~/.config/switchyard/config.yaml),
// one HTTP client (async-http-client, opened and shut down per request), and exit codes with meaning.

import ArgumentParser
import AsyncHTTPClient
import Basics
import Foundation
import NIOCore
import Signals

extension ExitCodes {
    /// Bad command line (EX_USAGE).
    static let usage: Int32 = 64
    /// The server failed (EX_SOFTWARE).
    static let server: Int32 = 70
    /// Someone else changed the config first (EX_TEMPFAIL): re-read and retry.
    static let conflict: Int32 = 75
    /// Missing, wrong, expired token or insufficient role (EX_NOPERM).
    static let auth: Int32 = 77
    /// The thing named does not exist.
    static let notFound: Int32 = 1
    /// A change was sent and no reply came: it may or may not have been applied (check, then retry).
    static let outcomeUnknown: Int32 = 76
}

struct RemoteOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("API base URL, e.g. https://site-7.example:8443 (else $SWITCHYARD_SERVER, else ~/.config/switchyard/config.yaml).", valueName: "URL"))
    var server: String?

    @Option(name: .long, help: ArgumentHelp("API token (else $SWITCHYARD_TOKEN, else the config file).", valueName: "TOKEN"))
    var token: String?

    @Flag(name: .long, help: "Print JSON instead of a table.")
    var json = false

    @Option(name: .customLong("timeout-s"), help: "Request timeout in seconds.")
    var timeoutS: Double = 15

    func validate() throws {
        if let server, URL(string: server)?.scheme.map({ ["http", "https"].contains($0) }) != true {
            throw ValidationError("--server '\(server)' is not an http(s) URL")
        }
        if !(0.1...600).contains(timeoutS) { throw ValidationError("--timeout-s must be 0.1…600") }
    }

    func client() throws -> RemoteClient {
        let env = ProcessInfo.processInfo.environment
        let file = CLIConfigFile.load()
        guard let s = server ?? env["SWITCHYARD_SERVER"] ?? file["server"], let url = URL(string: s.hasSuffix("/") ? String(s.dropLast()) : s),
              url.scheme == "http" || url.scheme == "https" else {
            printError("error: no server: give --server URL, set SWITCHYARD_SERVER, or put 'server:' in ~/.config/switchyard/config.yaml")
            throw ExitCode(ExitCodes.usage)
        }
        let t = token ?? env["SWITCHYARD_TOKEN"] ?? file["token"]
        return RemoteClient(base: url, token: t, timeoutS: timeoutS)
    }
}

/// ~/.config/switchyard/config.yaml: flat `key: value` lines (server, token).
enum CLIConfigFile {
    static func load() -> [String: String] {
        let home = ProcessInfo.processInfo.environment["HOME"] ?? NSHomeDirectory()
        let dir = ProcessInfo.processInfo.environment["XDG_CONFIG_HOME"] ?? home + "/.config"
        guard let text = try? String(contentsOfFile: dir + "/switchyard/config.yaml", encoding: .utf8) else { return [:] }
        var out: [String: String] = [:]
        for line in text.split(separator: "\n") {
            let l = line.trimmingCharacters(in: .whitespaces)
            guard !l.hasPrefix("#"), let colon = l.firstIndex(of: ":") else { continue }
            let k = l[..<colon].trimmingCharacters(in: .whitespaces)
            var v = l[l.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            if v.count >= 2, (v.hasPrefix("\"") && v.hasSuffix("\"")) || (v.hasPrefix("'") && v.hasSuffix("'")) { v = String(v.dropFirst().dropLast()) }
            out[k] = v
        }
        return out
    }
}

struct RemoteClient: Sendable {
    let base: URL
    let token: String?
    let timeoutS: Double

    struct Reply: Sendable {
        var status: Int
        var body: Data
        var headers: [String: String]
    }

    /// Sends a request; on a non-2xx status prints the server's one-line message and exits with its code.
    func call(_ method: String, _ path: String, body: (any Encodable & Sendable)? = nil, headers: [String: String] = [:]) async throws -> Reply {
        let r = try await send(method, path, body: body, headers: headers)
        guard (200..<300).contains(r.status) else { throw fail(r) }
        return r
    }

    func send(_ method: String, _ path: String, body: (any Encodable & Sendable)? = nil, headers: [String: String] = [:]) async throws -> Reply {
        guard let url = URL(string: base.absoluteString + path) else {
            printError("error: bad URL \(base.absoluteString + path)")
            throw ExitCode(ExitCodes.usage)
        }
        var req = HTTPClientRequest(url: url.absoluteString)
        req.method = .init(rawValue: method)
        if let token { req.headers.replaceOrAdd(name: "Authorization", value: "Bearer \(token)") }
        for (k, v) in headers { req.headers.replaceOrAdd(name: k, value: v) }
        if let body {
            let e = JSONEncoder()
            e.keyEncodingStrategy = .convertToSnakeCase
            req.body = .bytes(ByteBuffer(bytes: try e.encode(body)))
            req.headers.replaceOrAdd(name: "Content-Type", value: "application/json")
        }
        do {
            // `timeoutS` bounds connecting and each wait for data (as URLRequest's timeoutInterval did).
            return try await withHTTPClient(timeout: timeoutS) { client in
                let response = try await client.execute(req, deadline: .distantFuture)
                let data = try await response.body.collect(upTo: 64 << 20)
                var h: [String: String] = [:]
                for (k, v) in response.headers { h[k.lowercased()] = v }
                return Reply(status: Int(response.status.code), body: Data(data.readableBytesView), headers: h)
            }
        } catch {
            let failure = HTTPFailure(error)
            // A change that may have reached the server is not "unreachable": say the outcome is unknown.
            if method != "GET", method != "HEAD", !failure.neverSent {
                let check = path.hasPrefix("/v1/config") ? "`config history`" : path.hasPrefix("/v1/events") ? "`event list`"
                    : path.hasPrefix("/v1/fleet/events") ? "`fleet event status`" : path.hasPrefix("/v1/fleet/rollouts") ? "`fleet config status`"
                    : path.hasPrefix("/v1/tokens") ? "`token list`" : "`audit`"
                printError("error: outcome unknown: check \(check) — \(method) \(path) was sent to \(base.absoluteString) but no reply came (\(failure.text))")
                throw ExitCode(ExitCodes.outcomeUnknown)
            }
            printError("error: cannot reach \(base.absoluteString): \(failure.text)")
            throw ExitCode(ExitCodes.unreachable)
        }
    }

    /// Prints the error line and returns the exit code for a non-2xx reply.
    func fail(_ r: Reply) -> ExitCode {
        struct E: Decodable { struct M: Decodable { var message: String }; var error: M }
        let message = (try? JSONDecoder().decode(E.self, from: r.body))?.error.message
            ?? String(decoding: r.body.prefix(300), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        printError("error: \(message.isEmpty ? "HTTP \(r.status)" : message) (HTTP \(r.status))")
        switch r.status {
        case 401, 403: return ExitCode(ExitCodes.auth)
        case 429: return ExitCode(ExitCodes.auth)
        case 400, 422: return ExitCode(ExitCodes.validation)
        case 409, 412, 428: return ExitCode(ExitCodes.conflict)
        case 404: return ExitCode(ExitCodes.notFound)
        default: return ExitCode(ExitCodes.server)
        }
    }

    func decode<T: Decodable>(_ type: T.Type, _ r: Reply) throws -> T {
        let d = JSONDecoder()
        d.keyDecodingStrategy = .convertFromSnakeCase
        do { return try d.decode(T.self, from: r.body) } catch {
            printError("error: unexpected reply from the server: \(error)")
            throw ExitCode(ExitCodes.server)
        }
    }
}

/// Prints a value as JSON for --json (Codable: every string escaped; keys sorted, as `printJSON(_: Data)`).
func printJSON(_ value: some Encodable) {
    let e = JSONEncoder()
    e.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    if let data = try? e.encode(value) { print(String(decoding: data, as: UTF8.self)) }
}

/// Prints raw JSON (pretty) for --json.
func printJSON(_ data: Data) {
    if let obj = try? JSONSerialization.jsonObject(with: data),
       let pretty = try? JSONSerialization.data(withJSONObject: obj, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]) {
        print(String(decoding: pretty, as: UTF8.self))
    } else {
        print(String(decoding: data, as: UTF8.self))
    }
}

/// Text from the server made safe for a terminal: control characters (C0, DEL, C1) as `\xNN`,
/// `\r`, `\n`, `\t`, so stored text can never move the cursor, clear the screen or forge a table row.
func terminalSafe(_ s: String) -> String {
    var out = ""
    for u in s.unicodeScalars {
        switch u {
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        case "\\": out += "\\\\"
        default:
            if u.value < 0x20 || (0x7F...0x9F).contains(u.value) || u.properties.generalCategory == .format
                && ![0x200D].contains(u.value) {
                out += u.value <= 0xFF ? String(format: "\\x%02x", u.value) : String(format: "\\u{%04X}", u.value)
            } else {
                out.unicodeScalars.append(u)
            }
        }
    }
    return out
}

/// A plain text table: columns padded to their widest cell; every cell escaped with `terminalSafe`.
func printTable(_ header: [String], _ rows: [[String]]) {
    let all = ([header] + rows).map { $0.map(terminalSafe) }
    let widths = header.indices.map { i in all.map { $0.indices.contains(i) ? $0[i].count : 0 }.max() ?? 0 }
    for row in all {
        print(row.enumerated().map { i, c in i == row.count - 1 ? c : c.padding(toLength: widths[i], withPad: " ", startingAt: 0) }
            .joined(separator: "  "))
    }
}

func kw(_ v: Double?) -> String { v.map { String(format: "%.1f", $0) } ?? "-" }

/// "now", "+2h", "+30m", "+90s", or ISO 8601 UTC → seconds since 1970.
func parseTimeArg(_ s: String, now: Double = Date().timeIntervalSince1970) -> Double? {
    if s == "now" { return now }
    if s.hasPrefix("+"), let d = parseDurationArg(String(s.dropFirst())) { return now + d }
    return parseISOTime(s)
}

/// "2h", "30m", "90s", "1d", "1h30m" → seconds (a trailing bare number counts as seconds).
func parseDurationArg(_ s: String) -> Double? { DurationText.seconds(s, bareSeconds: true) }

/// Percent-encodes one path segment or query value (RFC 3986 unreserved characters pass).
func pathSegment(_ s: String) -> String {
    var allowed = CharacterSet.alphanumerics
    allowed.insert(charactersIn: "-._~")
    return s.addingPercentEncoding(withAllowedCharacters: allowed) ?? s
}
