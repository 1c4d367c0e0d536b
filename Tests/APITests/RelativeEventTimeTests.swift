@testable import API
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing
import TestSupport

/// `event create --from now --until +2h` against a daemon on virtual time (--start-at): the relative
/// times travel as "now" / "+2h" and the server resolves them on its own clock.
@Suite("DR events with relative times")
struct RelativeEventTimeTests {
    @Test func nowAndPlusTwoHoursResolveOnTheDaemonsClock() async throws {
        let h = try Harness.make()
        await h.tick()
        // The daemon's clock is far from this machine's (t0 is in 2026-07; a --start-at daemon).
        #expect(abs(h.clock.now - Date().timeIntervalSince1970) > 3600)
        try await h.app().test(.router) { client in
            let body = json(#"{"id":"ers-rel","cap_kw":1500,"from":"now","until":"+2h","reason":"ERCOT ERS deployment"}"#)
            let e = try await client.execute(uri: "/v1/events", method: .post, headers: bearer(h.tokens[.operator]), body: body) { r in
                #expect(r.status == .created, "\(String(buffer: r.body))")
                return try decode(EventDTO.self, r.body)
            }
            #expect(e.from == h.clock.now)
            #expect(e.until == h.clock.now + 7200)
            #expect(e.active)
            // Starting later, relative too.
            let later = json(#"{"id":"ers-later","cap_kw":2000,"from":"+30m","until":"+1h30m","reason":"x"}"#)
            let l = try await client.execute(uri: "/v1/events", method: .post, headers: bearer(h.tokens[.operator]), body: later) { r in
                #expect(r.status == .created, "\(String(buffer: r.body))")
                return try decode(EventDTO.self, r.body)
            }
            #expect(l.from == h.clock.now + 1800 && l.until == h.clock.now + 5400 && !l.active)
            // A time that is neither a number nor now / +DURATION is refused, saying which field.
            let bad = json(#"{"cap_kw":2000,"until":"+2x","reason":"x"}"#)
            let (status, text) = try await client.execute(uri: "/v1/events", method: .post, headers: bearer(h.tokens[.operator]), body: bad) { r in
                (r.status, String(buffer: r.body))
            }
            #expect(status == .badRequest || status == .unprocessableContent)
            #expect(text.contains("until") && text.contains("+2x"), "\(text)")
        }
    }

    @Test func theWireFormOfARelativeTimeRoundTrips() throws {
        for t in [EventTime.now, .after(seconds: 7200), .after(seconds: 5400), .at(1_784_116_800)] {
            let data = try JSONEncoder().encode(CreateEventRequest(id: nil, capKw: 1, from: t, until: t, reason: "r"))
            let back = try JSONDecoder().decode(CreateEventRequest.self, from: data)
            #expect(back.from == t && back.until == t, "\(String(decoding: data, as: UTF8.self))")
        }
        #expect(EventTime(text: "+2h") == .after(seconds: 7200))
        #expect(EventTime(text: "+1h30m") == .after(seconds: 5400))
        #expect(EventTime(text: "2h") == nil && EventTime(text: "+") == nil && EventTime(text: "+2x") == nil)
    }
}
