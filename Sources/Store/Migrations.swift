// Named migrations. Never edit one that has shipped: add a new one.

import GRDB

enum Migrations {
    static var migrator: DatabaseMigrator {
        var m = DatabaseMigrator()
        m.registerMigration("v1-config-audit-events-decisions-series-tokens") { db in
            try db.create(table: "config_version") { t in
                t.primaryKey("version", .integer)
                t.column("yaml", .text).notNull()
                t.column("sha256", .text).notNull()
                t.column("author", .text).notNull()
                t.column("createdAt", .double).notNull()
                t.column("comment", .text).notNull()
                t.column("rollbackOf", .integer)
            }
            try db.create(table: "audit_log") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("at", .double).notNull().indexed()
                t.column("actor", .text).notNull()
                t.column("role", .text).notNull()
                t.column("action", .text).notNull()
                t.column("target", .text).notNull()
                t.column("status", .integer).notNull()
                t.column("detail", .text).notNull()
            }
            try db.create(table: "event_log") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("at", .double).notNull().indexed()
                t.column("kind", .text).notNull()
                t.column("subject", .text).notNull()
                t.column("message", .text).notNull()
            }
            try db.create(table: "decision_log") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("at", .double).notNull().indexed()
                t.column("fastPath", .text)
                t.column("mode", .text).notNull()
                t.column("siteKW", .double)
                t.column("limitKW", .double).notNull()
                t.column("priceUsdPerMWh", .double).notNull()
                t.column("setpointsJSON", .text).notNull()
                t.column("reasonsJSON", .text).notNull()
                t.column("interventionsJSON", .text).notNull()
            }
            try db.create(table: "minute_sample") { t in
                t.primaryKey("minute", .integer)
                t.column("miningKW", .double).notNull()
                t.column("inferenceKW", .double).notNull()
                t.column("importKW", .double)
                t.column("capKW", .double).notNull()
                t.column("priceUsdPerMWh", .double).notNull()
                t.column("samples", .integer).notNull()
            }
            try db.create(table: "api_token") { t in
                t.primaryKey("id", .text)
                t.column("name", .text).notNull()
                t.column("role", .text).notNull()
                t.column("secretHash", .text).notNull().unique()
                t.column("createdAt", .double).notNull()
                t.column("createdBy", .text).notNull()
                t.column("expiresAt", .double)
                t.column("revokedAt", .double)
            }
        }
        // Issue 17: the fleet uplink's store-and-forward buffer (FleetBuffer.swift).
        m.registerMigration("v2-fleet-buffer") { db in
            try db.create(table: "fleet_buffer") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("at", .double).notNull()
                t.column("kind", .text).notNull()
                t.column("payload", .blob).notNull()
            }
        }
        return m
    }
}
