// DurationText: the one duration parser of the CLI and the hub.

import Basics
import Testing

@Suite struct DurationTextTests {
    @Test func unitsAddUp() {
        #expect(DurationText.seconds("90s") == 90)
        #expect(DurationText.seconds("30m") == 1_800)
        #expect(DurationText.seconds("2h") == 7_200)
        #expect(DurationText.seconds("1d") == 86_400)
        #expect(DurationText.seconds("1h30m") == 5_400)
        #expect(DurationText.seconds("1.5h") == 5_400)
    }

    @Test func aBareNumberIsSecondsOnlyWhenAllowed() {
        #expect(DurationText.seconds("90") == nil)
        #expect(DurationText.seconds("90", bareSeconds: true) == 90)
        #expect(DurationText.seconds("1m30", bareSeconds: true) == 90)
    }

    @Test func badTextIsRefused() {
        for bad in ["", "h", "0s", "-5m", "5w", "1h-", "1..5h", "2 h", "٣h"] {
            #expect(DurationText.seconds(bad) == nil, "\(bad)")
            #expect(DurationText.seconds(bad, bareSeconds: true) == nil, "\(bad)")
        }
    }
}
