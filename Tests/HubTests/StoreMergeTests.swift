// The historical merge rule: a historical sample never overwrites a live one at the same instant, whichever arrives
// first, in separate batches or in one; and `latest` keeps the newest value, a historical sample never replacing a
// newer (or equally new live) one. Checked through the store and independently with psql.

import Foundation
import Hub
import Sparkplug
import Testing
import TestSupport

@Suite struct StoreMergeTests {
    typealias F = StoreFixture

    /// (live first?, one batch?)
    @Test(arguments: [(true, false), (false, false), (true, true), (false, true)])
    func historicalNeverOverwritesLive(liveFirst: Bool, oneBatch: Bool) async throws {
        try await F.withFreshStore { server, store in
            let t = F.t0
            let live = F.sample(F.siteA, nil, "Site/Import kW", at: t, .double(1000), historical: false)
            let backfill = F.sample(F.siteA, nil, "Site/Import kW", at: t, .double(555), historical: true)
            let order = liveFirst ? [live, backfill] : [backfill, live]
            if oneBatch {
                try await store.write([.samples(order)])
            } else {
                for s in order { try await store.write([.samples([s])]) }
            }
            let history = try await store.history(site: F.siteA, device: nil, metric: "Site/Import kW", since: t, until: t + 1)
            #expect(history.count == 1)
            #expect(history.first?.value == .double(1000))
            #expect(history.first?.historical == false)
            let latest = try await store.latestValues(site: F.siteA)
            #expect(latest.map(\.value) == [.double(1000)])
            #expect(latest.map(\.historical) == [false])
            let psql = try await server.psql("SELECT value, historical FROM samples").psqlRows
            #expect(psql == [["1000", "f"]])
            let psqlLatest = try await server.psql("SELECT value, historical FROM latest").psqlRows
            #expect(psqlLatest == [["1000", "f"]])
        }
    }

    @Test func backfillIsMergedInTimeOrderWithoutTouchingNewerLiveValues() async throws {
        try await F.withFreshStore { server, store in
            let t = F.t0, m = F.minute
            // Live at t+10m; then the site's buffered samples from t+1m…t+12m arrive flagged historical (one of them
            // at the live instant, with another value), in two batches, out of order.
            try await store.write([.samples([F.sample(F.siteA, nil, "Site/Import kW", at: t + 10 * m, .double(900))])])
            try await store.write([.samples((7...12).reversed().map {
                F.sample(F.siteA, nil, "Site/Import kW", at: t + UInt64($0) * m, .double(Double($0)), historical: true)
            })])
            try await store.write([.samples((1...6).map {
                F.sample(F.siteA, nil, "Site/Import kW", at: t + UInt64($0) * m, .double(Double($0)), historical: true)
            })])
            let history = try await store.history(site: F.siteA, device: nil, metric: "Site/Import kW", since: t, until: t + 60 * m)
            #expect(history.map(\.at) == (1...12).map { t + UInt64($0) * m })
            #expect(history.map(\.value) == (1...12).map { .double($0 == 10 ? 900 : Double($0)) })
            #expect(history.map(\.historical) == (1...12).map { $0 != 10 })
            // latest: the historical 12m sample is newer than the live 10m one, so it is the current value.
            var latest = try await store.latestValues(site: F.siteA)
            #expect(latest.map(\.at) == [t + 12 * m])
            #expect(latest.map(\.historical) == [true])
            // A live value at 11m is older than latest (12m): latest stays; the historical sample at 11m is replaced.
            try await store.write([.samples([F.sample(F.siteA, nil, "Site/Import kW", at: t + 11 * m, .double(1100))])])
            latest = try await store.latestValues(site: F.siteA)
            #expect(latest.map(\.at) == [t + 12 * m])
            // A live value at 12m replaces the historical one there, in samples and in latest.
            try await store.write([.samples([F.sample(F.siteA, nil, "Site/Import kW", at: t + 12 * m, .double(1200))])])
            latest = try await store.latestValues(site: F.siteA)
            #expect(latest.map(\.value) == [.double(1200)])
            #expect(latest.map(\.historical) == [false])
            // Older historical samples never move latest back.
            try await store.write([.samples([F.sample(F.siteA, nil, "Site/Import kW", at: t, .double(1), historical: true)])])
            latest = try await store.latestValues(site: F.siteA)
            #expect(latest.map(\.at) == [t + 12 * m])
            let psql = try await server.psql("""
                SELECT (extract(epoch FROM at) * 1000)::bigint, value, historical FROM samples ORDER BY at
                """).psqlRows
            #expect(psql.count == 13)
            #expect(psql.last == ["\(t + 12 * m)", "1200", "f"])
            #expect(psql.first(where: { $0[0] == "\(t + 11 * m)" }) == ["\(t + 11 * m)", "1100", "f"])
        }
    }
}
