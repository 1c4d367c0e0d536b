// DREvent's stored form: every action and origin round-trips; a malformed one is refused.
import Foundation
import Signals
import Testing

@Suite struct EventCodingTests {
    let t0 = Date(timeIntervalSince1970: 1_760_000_000)

    @Test(arguments: [
        DREvent.Action.importCap(kW: 2200), .paidReduction(usdPerMWh: 300, baselineKW: 12_000),
        .paidReduction(usdPerMWh: 250, baselineKW: nil), .price(usdPerMWh: 1200.5), .level(3),
    ])
    func everyActionRoundTrips(_ action: DREvent.Action) throws {
        for origin in [DREvent.Origin.manual, .openADR(programID: "ercot-ers", eventID: "ev-7", intervalID: 2)] {
            for end in [t0.addingTimeInterval(3600), nil] {
                let e = DREvent(id: "e1", origin: origin, action: action, start: t0, end: end, reason: "r", priority: origin == .manual ? nil : 1)
                let back = try JSONDecoder().decode(DREvent.self, from: JSONEncoder().encode(e))
                #expect(back == e)
            }
        }
    }

    @Test func anEventWithNoActionOrTwoActionsIsRefused() {
        for text in [#"{"id":"e","from":0,"reason":"r"}"#, #"{"id":"e","capKW":1,"level":2,"from":0,"reason":"r"}"#] {
            #expect(throws: DecodingError.self) { try JSONDecoder().decode(DREvent.self, from: Data(text.utf8)) }
        }
    }
}
