// The fleet operations' journal in the hub's store (table `fleet_operations`, migration v5): each shed and rollout
// in progress, its whole state as JSON, rewritten whenever it changes, so that `switchyard hub` restarted after a
// crash carries on with them (FleetOperations.restore).

import Foundation
import PostgresNIO

/// Where the fleet operations keep their state across a hub restart.
public protocol FleetOperationsJournal: Sendable {
    /// Records (insert or replace) one operation's state.
    func saveOperation(id: String, kind: String, finished: Bool, state: Data) async throws
    /// The operations to carry on with: every one not finished, and those finished within `recentS` seconds (for
    /// the API's lists), oldest first.
    func operations(finishedWithin recentS: Double) async throws -> [(id: String, kind: String, state: Data)]
}

extension HubStore: FleetOperationsJournal {
    public func saveOperation(id: String, kind: String, finished: Bool, state: Data) async throws {
        let json = String(decoding: state, as: UTF8.self)
        do {
            try await client.query("""
                INSERT INTO fleet_operations (id, kind, finished, state) VALUES (\(id), \(kind), \(finished), \(json)::jsonb)
                ON CONFLICT (id) DO UPDATE SET kind = EXCLUDED.kind, finished = EXCLUDED.finished, state = EXCLUDED.state, updated_at = now()
                """, logger: logger)
        } catch {
            throw HubStoreError.wrap(error, "save fleet operation \(id)")
        }
    }

    public func operations(finishedWithin recentS: Double) async throws -> [(id: String, kind: String, state: Data)] {
        do {
            let rows = try await client.query("""
                SELECT id, kind, state::text FROM fleet_operations
                WHERE NOT finished OR updated_at > now() - make_interval(secs => \(recentS))
                ORDER BY created_at, id
                """, logger: logger)
            var out: [(id: String, kind: String, state: Data)] = []
            for try await (id, kind, state) in rows.decode((String, String, String).self) { out.append((id, kind, Data(state.utf8))) }
            return out
        } catch {
            throw HubStoreError.wrap(error, "read the fleet operations")
        }
    }
}
