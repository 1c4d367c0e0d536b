// The edge node's store-and-forward buffer (docs/fleet.md) in the site's SQLite store: the `fleet_buffer`
// table (Store/FleetBuffer.swift), one row per buffered tick, its payload the Sparkplug-encoded node metrics.

import FleetEdge
import Foundation
import Store

struct StoreFleetBuffer: FleetBufferStorage {
    let store: Store

    func append(_ samples: [BufferedSample], capacity: Int, now: Double) async throws -> Int {
        let rows = samples.map {
            FleetBufferRecord(at: Double($0.at) / 1000, kind: $0.kind == .event ? .event : .sample, payload: Data($0.payload))
        }
        return try await store.bufferForFleet(rows, capacity: capacity, now: now)
    }

    func oldest(limit: Int) async throws -> [(id: Int64, sample: BufferedSample)] {
        try await store.fleetBufferOldest(limit: limit).compactMap { r in
            guard let id = r.id else { return nil }
            let at = UInt64(max(0, r.at * 1000).rounded())
            let kind: BufferedSample.Kind = r.kind == .event ? .event : .sample
            // A row that does not decode (it cannot come from this code) is passed on without metrics: the
            // backfill deletes it rather than stall on it.
            let sample = (try? BufferedSample(at: at, kind: kind, payload: Array(r.payload))) ?? BufferedSample(at: at, kind: kind, metrics: [])
            return (id, sample)
        }
    }

    func remove(through id: Int64) async throws { try await store.removeFleetBuffer(through: id) }

    func count() async throws -> Int { try await store.fleetBufferCount() }
}
