// The hub store's schema as named migrations (as the site store does with GRDB): applied in order, each in its own
// transaction together with its row in `hub_migrations`, so a restart applies only what is missing. Never edit one
// that has shipped: add a new one. docs/fleet.md ("Hub store") describes the tables.

import PostgresNIO

struct HubMigration: Sendable {
    let name: String
    let statements: [PostgresQuery]
}

enum HubSchema {
    /// Taken (transaction-scoped) by every migration and by partition creation, so two hubs starting at once, or two
    /// writers reaching a new day at once, do not race on DDL.
    static let migrationLock: Int64 = 0x5357_5944_4855_4201  // "SWYDHUB" 01
    static let partitionLock: Int64 = 0x5357_5944_4855_4202

    static let createMigrationsTable: PostgresQuery = """
        CREATE TABLE IF NOT EXISTS hub_migrations (
            name text PRIMARY KEY,
            applied_at timestamptz NOT NULL DEFAULT now()
        )
        """

    static let migrations: [HubMigration] = [
        HubMigration(name: "v1-sites-devices-births-deaths-events", statements: [
            """
            CREATE TABLE sites (
                id serial PRIMARY KEY,
                group_id text NOT NULL,
                edge_id text NOT NULL,
                region text NOT NULL,
                first_seen timestamptz NOT NULL,
                last_seen timestamptz NOT NULL,
                online boolean NOT NULL DEFAULT false,
                bd_seq bigint,
                UNIQUE (group_id, edge_id)
            )
            """,
            """
            CREATE TABLE devices (
                site_id integer NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
                device text NOT NULL,
                first_seen timestamptz NOT NULL,
                last_seen timestamptz NOT NULL,
                online boolean NOT NULL DEFAULT false,
                PRIMARY KEY (site_id, device)
            )
            """,
            """
            CREATE TABLE births (
                id bigserial PRIMARY KEY,
                site_id integer NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
                device text NOT NULL DEFAULT '',
                bd_seq bigint,
                at timestamptz NOT NULL,
                metrics jsonb NOT NULL
            )
            """,
            "CREATE INDEX births_site_at ON births (site_id, at)",
            """
            CREATE TABLE deaths (
                id bigserial PRIMARY KEY,
                site_id integer NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
                device text NOT NULL DEFAULT '',
                bd_seq bigint,
                at timestamptz NOT NULL
            )
            """,
            "CREATE INDEX deaths_site_at ON deaths (site_id, at)",
            """
            CREATE TABLE events (
                id bigserial PRIMARY KEY,
                site_id integer NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
                device text NOT NULL DEFAULT '',
                kind text NOT NULL CHECK (kind IN ('birth', 'death', 'sequence_gap')),
                at timestamptz NOT NULL,
                detail jsonb NOT NULL DEFAULT '{}'
            )
            """,
            "CREATE INDEX events_site_at ON events (site_id, at)",
        ]),
        HubMigration(name: "v2-commands-and-outcomes", statements: [
            """
            CREATE TABLE commands (
                id text PRIMARY KEY,
                site_id integer NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
                device text NOT NULL DEFAULT '',
                issued_at timestamptz NOT NULL,
                expires_at timestamptz NOT NULL,
                payload jsonb NOT NULL,
                status text NOT NULL DEFAULT 'issued'
                    CHECK (status IN ('issued', 'acknowledged', 'rejected', 'expired', 'failed')),
                outcome text,
                acked_at timestamptz,
                CHECK (expires_at > issued_at)
            )
            """,
            "CREATE INDEX commands_site_issued ON commands (site_id, issued_at)",
            """
            CREATE TABLE command_outcomes (
                id bigserial PRIMARY KEY,
                command_id text NOT NULL REFERENCES commands (id) ON DELETE CASCADE,
                at timestamptz NOT NULL,
                status text NOT NULL CHECK (status IN ('acknowledged', 'rejected', 'expired', 'failed')),
                outcome text NOT NULL DEFAULT ''
            )
            """,
            "CREATE INDEX command_outcomes_command ON command_outcomes (command_id, at)",
        ]),
        HubMigration(name: "v3-samples-by-day-and-latest", statements: [
            // One row per metric value. The primary key is also the merge key of the historical rule (StoreWrite).
            // No foreign key to sites: a per-row check would cost ingest; site ids come from `sites` only.
            """
            CREATE TABLE samples (
                site_id integer NOT NULL,
                device text NOT NULL,
                metric text NOT NULL,
                at timestamptz NOT NULL,
                value double precision,
                text_value text,
                datatype smallint NOT NULL,
                historical boolean NOT NULL,
                PRIMARY KEY (site_id, device, metric, at)
            ) PARTITION BY RANGE (at)
            """,
            """
            CREATE TABLE latest (
                site_id integer NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
                device text NOT NULL,
                metric text NOT NULL,
                at timestamptz NOT NULL,
                value double precision,
                text_value text,
                datatype smallint NOT NULL,
                historical boolean NOT NULL,
                PRIMARY KEY (site_id, device, metric)
            )
            """,
            // One partition per UTC day, named samples_YYYYMMDD. DDL takes no bind parameters, so the name and the
            // bounds are quoted by format() (%I, %L) here, from a date the caller passes as a parameter.
            """
            CREATE FUNCTION hub_sample_partition(day date) RETURNS text LANGUAGE plpgsql AS $$
            DECLARE
                part text := 'samples_' || to_char(day, 'YYYYMMDD');
            BEGIN
                IF to_regclass(format('public.%I', part)) IS NULL THEN
                    PERFORM pg_advisory_xact_lock(\(unescaped: String(partitionLock)));
                    IF to_regclass(format('public.%I', part)) IS NULL THEN
                        EXECUTE format('CREATE TABLE public.%I PARTITION OF public.samples FOR VALUES FROM (%L) TO (%L)',
                                       part, day::timestamp AT TIME ZONE 'UTC', (day + 1)::timestamp AT TIME ZONE 'UTC');
                    END IF;
                END IF;
                RETURN part;
            END
            $$
            """,
            // Retention: drops every day partition whose day is before `cut`; returns their names.
            """
            CREATE FUNCTION hub_drop_sample_partitions_before(cut date) RETURNS SETOF text LANGUAGE plpgsql AS $$
            DECLARE
                r record;
            BEGIN
                PERFORM pg_advisory_xact_lock(\(unescaped: String(partitionLock)));
                FOR r IN
                    SELECT c.relname
                    FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                    WHERE i.inhparent = 'public.samples'::regclass
                      AND c.relname ~ '^samples_[0-9]{8}$'
                      AND to_date(substr(c.relname, 9), 'YYYYMMDD') < cut
                    ORDER BY c.relname
                LOOP
                    EXECUTE format('DROP TABLE public.%I', r.relname);
                    RETURN NEXT r.relname;
                END LOOP;
            END
            $$
            """,
        ]),
        // The fleet API's bearer tokens: the site API's model (roles viewer < operator < admin, only the SHA-256 of a
        // secret stored, revocable), in the hub's database.
        HubMigration(name: "v4-api-tokens", statements: [
            """
            CREATE TABLE api_tokens (
                id text PRIMARY KEY,
                name text NOT NULL,
                role text NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
                secret_hash text NOT NULL UNIQUE,
                created_at timestamptz NOT NULL DEFAULT now(),
                revoked_at timestamptz
            )
            """,
        ]),
        // The fleet sheds and rollouts in progress (FleetOperations), so that a hub restarted after a crash carries
        // them on: each one's whole state as JSON, rewritten when it changes.
        HubMigration(name: "v5-fleet-operations", statements: [
            """
            CREATE TABLE fleet_operations (
                id text PRIMARY KEY,
                kind text NOT NULL CHECK (kind IN ('shed', 'rollout')),
                created_at timestamptz NOT NULL DEFAULT now(),
                updated_at timestamptz NOT NULL DEFAULT now(),
                finished boolean NOT NULL,
                state jsonb NOT NULL
            )
            """,
        ]),
    ]
}
