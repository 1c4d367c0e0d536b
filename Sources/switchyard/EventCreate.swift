// `switchyard event create`.

import API
import ArgumentParser
import Foundation

extension Switchyard.Event {
    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Cap the site import over a window (applies at once if it has started).")
        @OptionGroup var remote: RemoteOptions
        @Option(name: .customLong("cap-kw"), help: "Site import cap, kW.") var capKW: Double
        @Option(help: ArgumentHelp("Start: now, +30m, or ISO 8601 UTC.", valueName: "TIME")) var from: String = "now"
        @Option(help: ArgumentHelp("End: +2h, or ISO 8601 UTC.", valueName: "TIME")) var until: String
        @Option(help: "Why (shown in reasons and the event log).") var reason: String
        @Option(help: "Event id (default: generated).") var id: String?
        @Option(name: .customLong("if-match"), help: ArgumentHelp("Replace the event with this id only if its ETag is still this one (see `event list --json`); without it an id in use is refused (exit 75).", valueName: "ETAG"))
        var ifMatch: String?

        func validate() throws {
            if !(capKW.isFinite && capKW >= 0) { throw ValidationError("--cap-kw must be a number ≥ 0") }
            if EventTime(text: from) == nil && parseISOTime(from) == nil { throw ValidationError("--from '\(from)' is not now, +DURATION or ISO 8601 UTC") }
            if EventTime(text: until) == nil && parseISOTime(until) == nil { throw ValidationError("--until '\(until)' is not +DURATION or ISO 8601 UTC") }
            if reason.trimmingCharacters(in: .whitespaces).isEmpty { throw ValidationError("--reason must not be empty") }
        }

        func run() async throws {
            let c = try remote.client()
            // "now" and "+2h" go to the server as they are: it resolves them on its own clock (a daemon
            // started with --start-at runs on virtual time, not this machine's).
            func time(_ s: String) -> EventTime { EventTime(text: s) ?? .at(parseISOTime(s)!) }
            let body = CreateEventRequest(id: id, capKw: capKW, from: from == "now" ? nil : time(from), until: time(until), reason: reason)
            var headers: [String: String] = [:]
            if let ifMatch { headers["If-Match"] = ifMatch.hasPrefix("\"") || ifMatch == "*" ? ifMatch : "\"\(ifMatch)\"" }
            let r = try await c.call("POST", "/v1/events", body: body, headers: headers)
            if remote.json { printJSON(r.body); return }
            let e = try c.decode(EventDTO.self, r)
            print("event \(e.id) \(r.status == 200 ? "replaced" : "created"): cap \(kw(e.capKw)) kW from \(isoTime(e.from)) until \(isoTime(e.until))\(e.active ? " (in force now)" : "")")
        }
    }
}
