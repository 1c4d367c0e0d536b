// An independent check of the hub store: after writing through HubStore, Debian's psql (a subprocess against the
// throwaway server) returns the same rows and values as the store's query functions.

import Foundation
import Hub
import Sparkplug
import Testing
import TestSupport

@Suite struct StorePsqlTests {
    typealias F = StoreFixture

    @Test func psqlSeesWhatTheQueryFunctionsReturn() async throws {
        try await F.withFreshStore { server, store in
            let t = F.t0
            var random = SeededRandom(seed: 18)
            try await store.write([
                F.nodeBirth(F.siteA, bdSeq: 1, at: t),
                F.deviceBirth(F.siteA, "asic-1", at: t, kW: 3000),
                F.nodeBirth(F.siteB, bdSeq: 7, at: t + 5),
            ])
            for step in 1...30 {
                let at = t + UInt64(step) * 10_000
                try await store.write([.samples([
                    F.sample(F.siteA, nil, "Site/Import kW", at: at, .double((random.unit() * 5000).rounded() / 8)),
                    F.sample(F.siteA, "asic-1", "Power kW", at: at, .double(random.unit() * 3500)),
                    F.sample(F.siteB, nil, "Site/Import kW", at: at, .double(-random.unit() * 100)),
                    F.sample(F.siteB, nil, "Site/Mode", at: at, .string(step % 2 == 0 ? "auto" : "curtail")),
                ])])
            }
            try await store.write([.death(site: F.siteB, device: nil, bdSeq: 7, at: t + 400_000)])

            // sites
            let sites = try await store.sites()
            let psqlSites = try await server.psql("""
                SELECT group_id, edge_id, region, (extract(epoch FROM last_seen) * 1000)::bigint, online, bd_seq
                FROM sites ORDER BY group_id, edge_id
                """).psqlRows
            #expect(psqlSites.count == 2)
            #expect(psqlSites == sites.map {
                [$0.key.group, $0.key.edge, $0.region, "\($0.lastSeen)", $0.online ? "t" : "f", $0.bdSeq.map { "\($0)" } ?? ""]
            })
            #expect(psqlSites.map { $0[4] } == ["f", "t"])  // CAISO/site-b died, ERCOT/site-a is online

            // latest values, per site
            for site in [F.siteA, F.siteB] {
                let latest = try await store.latestValues(site: site)
                let psqlLatest = try await server.psql("""
                    SELECT l.device, l.metric, (extract(epoch FROM l.at) * 1000)::bigint, l.value, l.text_value, l.historical
                    FROM latest l JOIN sites s ON s.id = l.site_id
                    WHERE s.group_id = '\(site.group)' AND s.edge_id = '\(site.edge)'
                    ORDER BY l.device, l.metric
                    """).psqlRows
                #expect(psqlLatest.count == latest.count)
                #expect(latest.count >= 6)
                for (row, value) in zip(psqlLatest, latest) {
                    #expect(row[0] == (value.device ?? ""))
                    #expect(row[1] == value.metric)
                    #expect(row[2] == "\(value.at)")
                    // psql prints float8 in its shortest exact form: parsed back it is the same double.
                    #expect((row[3].isEmpty ? nil : Double(row[3])) == value.number)
                    #expect((row[4].isEmpty ? nil : row[4]) == value.text)
                    #expect(row[5] == (value.historical ? "t" : "f"))
                }
            }

            // history of one metric
            let history = try await store.history(site: F.siteA, device: "asic-1", metric: "Power kW", since: t, until: t + F.day)
            let psqlHistory = try await server.psql("""
                SELECT (extract(epoch FROM x.at) * 1000)::bigint, x.value FROM samples x JOIN sites s ON s.id = x.site_id
                WHERE s.edge_id = 'site-a' AND x.device = 'asic-1' AND x.metric = 'Power kW' ORDER BY x.at
                """).psqlRows
            #expect(history.count == 31)  // the birth's value and 30 samples
            #expect(psqlHistory.map { UInt64($0[0]) } == history.map(\.at))
            #expect(psqlHistory.map { Double($0[1]) } == history.map(\.number))
        }
    }
}
