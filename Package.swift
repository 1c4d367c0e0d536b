// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "Switchyard",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "switchyard", targets: ["switchyard"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        // traits: [] drops swift-configuration, which Hummingbird enables by default.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1", traits: []),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        // Sparkplug B payloads (the generated Sources/Sparkplug/Generated/sparkplug_b.pb.swift).
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        // Outbound HTTP (price feeds, the OpenADR VEN, the remote CLI); HummingbirdTesting already builds it.
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        // Only to name its error types (a failed TLS handshake means the request was never sent); AHC builds it anyway.
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        // The fleet hub's store (issue 18): PostgreSQL.
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
    ],
    targets: [
        // C system libraries (installed by `make deps`: libmodbus-dev, libi2c-dev, libmosquitto-dev).
        .systemLibrary(
            name: "CModbus",
            pkgConfig: "libmodbus",
            providers: [.apt(["libmodbus-dev"])]
        ),
        .systemLibrary(
            name: "CMosquitto",
            pkgConfig: "libmosquitto",
            providers: [.apt(["libmosquitto-dev"])]
        ),
        .systemLibrary(
            name: "CI2C",
            providers: [.apt(["libi2c-dev"])]
        ),

        // One of each shared helper, no project dependencies: the located YAML/JSON reader, the ISO 8601
        // grammar, the manual clock, the seeded RNG, Parity, errno text.
        .target(name: "Basics", dependencies: [.product(name: "Yams", package: "Yams")]),

        // Modbus over libmodbus: client, server, codecs, read planner.
        .target(
            name: "Modbus",
            dependencies: [
                "CModbus", "Basics",
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        // Sparkplug B over MQTT, shared by the edge node and the host: the libmosquitto client (own thread),
        // the generated payloads, topics, seq/bdSeq, births, deaths, commands, STATE, the edge-node session.
        .target(name: "Sparkplug", dependencies: ["CMosquitto", .product(name: "SwiftProtobuf", package: "swift-protobuf")]),
        // The site as a Sparkplug edge node (issue 17): report by exception, the site and device metrics of a
        // tick, and EdgeNodeService (fed by the loop's tick hook without ever blocking it); fleet commands through
        // the API's caps, roles, loop calls and audit log (API, Store).
        .target(name: "FleetEdge", dependencies: [
            "Sparkplug", "Control", "Broker", "Site", "Signals", "API", "Store",
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // The fleet's primary host (issue 18): the fleet model from births and data, PostgreSQL (postgres-nio), the
        // fleet API, rollouts and fleet DR allocation. Never Control: the hub does not run a site.
        .target(name: "Hub", dependencies: [
            "Sparkplug", "Site", "Signals", "Basics", "HTTPBasics", "Broker",
            .product(name: "PostgresNIO", package: "postgres-nio"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // Device profiles (YAML register maps), loader with file:line errors, SunSpec.
        .target(
            name: "HardwareProfiles",
            dependencies: ["Modbus", "Basics", .product(name: "Yams", package: "Yams")]
        ),
        // Site model: capacity tree, devices, contracts, economics.
        .target(
            name: "Site",
            dependencies: ["Broker", "Signals", "Basics", .product(name: "Yams", package: "Yams")]
        ),
        // Simulated site: device physics on virtual time, in memory or over the wire; faults.
        .target(
            name: "Simulation",
            dependencies: ["HardwareProfiles", "Modbus", "Site", "Basics", .product(name: "Yams", package: "Yams")]
        ),
        // Price feeds, DR events (OpenADR 3 VEN, manual), contract calendars.
        .target(name: "Signals", dependencies: [
            "Basics", .product(name: "Yams", package: "Yams"),
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
        ]),
        // I2C on the box: temperature sensors and the heartbeat relay (libi2c), and a fake bus.
        .target(name: "I2C", dependencies: ["CI2C", "Basics", .product(name: "NIOPosix", package: "swift-nio")]),
        // The safety governor: a pure function from proposals and telemetry to the setpoints that may be
        // written, and the ramp rule it shares with the broker. No I/O, no clock reads, no dependencies.
        .target(name: "Safety"),
        // Pure dispatch. No I/O, no clock reads; it plans within the safety core's ramp rule.
        .target(name: "Broker", dependencies: ["Safety"]),

        // The controller: poller, safety governor, actuators, control loop, fast path.
        .target(
            name: "Control",
            dependencies: [
                "Safety", "Broker", "Site", "Signals", "Modbus", "HardwareProfiles", "I2C", "Basics",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
            ]
        ),

        // SQLite (GRDB): config versions, audit log, event log, decision log, per-minute series, API tokens.
        .target(name: "Store", dependencies: ["Basics", .product(name: "GRDB", package: "GRDB.swift")]),
        // The HTTP error shape and the failed-authentication limiter, shared by the site API and the hub's API.
        .target(name: "HTTPBasics", dependencies: [
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "HummingbirdTLS", package: "hummingbird"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
        ]),
        // Hummingbird API: bearer tokens with roles, config lifecycle, /metrics (swift-prometheus); the tick recorder.
        .target(name: "API", dependencies: [
            "Basics", "HTTPBasics", "Control", "Store", "Site", "Signals",
            .product(name: "CoreMetrics", package: "swift-metrics"),
            .product(name: "Prometheus", package: "swift-prometheus"),
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "HummingbirdTLS", package: "hummingbird"),
            .product(name: "Yams", package: "Yams"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ]),

        // Backtests: the real control loop on virtual time over a historical trace, baselines, HTML report.
        .target(name: "Replay", dependencies: ["Basics", "Control", "Simulation", "Site", "Signals", "HardwareProfiles", "Broker"]),

        // The controller daemon `serve` runs: start-up, signals and live feeds (prices, OpenADR and its
        // curtailment reports), the Modbus client pool, and the ServiceGroup. Never Simulation or Replay.
        .target(name: "Daemon", dependencies: [
            "Basics", "Control", "FleetEdge", "Sparkplug", "Site", "Signals", "HardwareProfiles", "Modbus", "I2C", "Store", "API",
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ]),

        // A simulated fleet (`sim --fleet`, `make fleet-demo`): N real site daemons on the simulator's in-memory
        // buses against one broker. Not in Simulation, which must not depend on the daemon.
        .target(name: "FleetSim", dependencies: [
            "Basics", "Daemon", "FleetEdge", "Sparkplug", "Simulation", "Site", "HardwareProfiles", "Modbus", "Control",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ]),

        .executableTarget(
            name: "switchyard",
            dependencies: [
                "Basics", "Modbus", "HardwareProfiles", "Site", "Broker", "Simulation", "Control", "Signals", "I2C", "Store", "API", "Replay", "Daemon",
                "FleetSim", "Hub", "Sparkplug", "HTTPBasics",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),

        // Helpers for tests only: start independent peers (pymodbus, mbpoll, socat); re-exports Basics
        // (the seeded RNG, the manual clock) for tests and benchmarks.
        .target(name: "TestSupport", dependencies: ["Basics", "Broker"], path: "Sources/TestSupport"),

        // The Modbus polling benchmark's server and client, alone (small enough for valgrind: Benchmarks/modbus_callgrind.py).
        .executableTarget(name: "ModbusPollBench", dependencies: ["Modbus", "Basics"], path: "Benchmarks/Sources/ModbusPollBench"),

        // The benchmark harness's Swift side (Benchmarks/run.sh, `make bench`).
        .executableTarget(
            name: "SwitchyardBench",
            dependencies: ["Modbus", "Broker", "Site", "Simulation", "Control", "HardwareProfiles", "Replay", "TestSupport",
                           "FleetEdge", "Sparkplug", "API", "Store", "Hub", "FleetSim",
                           .product(name: "Logging", package: "swift-log"),
                           .product(name: "AsyncHTTPClient", package: "async-http-client"),
                           .product(name: "Hummingbird", package: "hummingbird"),
                           .product(name: "ServiceLifecycle", package: "swift-service-lifecycle")],
            path: "Benchmarks/Sources/SwitchyardBench"
        ),

        .testTarget(name: "BasicsTests", dependencies: ["Basics", "TestSupport", .product(name: "Yams", package: "Yams")]),
        .testTarget(name: "ModbusTests", dependencies: ["Modbus", "TestSupport"]),
        .testTarget(name: "HardwareProfilesTests", dependencies: ["HardwareProfiles", "Modbus", "TestSupport"]),
        .testTarget(name: "BrokerTests", dependencies: ["Broker", "Site", "Signals", "Basics", "TestSupport"]),
        .testTarget(name: "ControlTests", dependencies: [
            "Control", "Safety", "Simulation", "HardwareProfiles", "Modbus", "Site", "Signals", "I2C", "Basics", "TestSupport",
            .product(name: "Logging", package: "swift-log"),
        ]),
        .testTarget(name: "StoreTests", dependencies: ["Store"]),
        // Sparkplug unit tests, and interop against Debian's mosquitto and the pinned pysparkplug host.
        .testTarget(name: "SparkplugTests", dependencies: ["Sparkplug", "TestSupport"]),
        // The hub against Debian's mosquitto, our edge nodes and an independent one, and a throwaway PostgreSQL.
        .testTarget(name: "HubTests", dependencies: ["Hub", "Sparkplug", "FleetEdge", "FleetSim", "Control", "TestSupport", "HTTPBasics",
                                                     .product(name: "HummingbirdTesting", package: "hummingbird"),
                                                     .product(name: "PostgresNIO", package: "postgres-nio")]),
        .testTarget(name: "FleetEdgeTests", dependencies: ["FleetEdge", "Sparkplug", "TestSupport"]),
        // Router-mode auth matrix, config lifecycle, fuzzed bodies; live CLI-vs-daemon tests (need the built binary).
        .testTarget(name: "APITests", dependencies: [
            "API", "Store", "Control", "Site", "Signals", "Simulation", "HardwareProfiles", "Modbus", "TestSupport", "FleetEdge", "Sparkplug",
            .product(name: "HummingbirdTesting", package: "hummingbird"),
        ]),
        .testTarget(name: "ReplayTests", dependencies: ["Replay", "Control", "Simulation", "Site", "Signals", "HardwareProfiles", "TestSupport"]),
        .testTarget(name: "SignalsTests", dependencies: [
            "Signals", "Basics", "TestSupport",
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
        ]),
        .testTarget(name: "I2CTests", dependencies: ["I2C"]),
        .testTarget(name: "SimulationTests", dependencies: ["Simulation", "HardwareProfiles", "Modbus", "Site", "TestSupport"]),
        // The daemon in-process against a simulated site over loopback, and the curtailment ledger.
        .testTarget(name: "DaemonTests", dependencies: [
            "Daemon", "Control", "FleetEdge", "Sparkplug", "Simulation", "Site", "Signals", "Store", "HardwareProfiles", "Modbus", "TestSupport",
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ]),
        // Runs the built `switchyard` binary (make test builds it first).
        .testTarget(name: "CLITests", dependencies: ["TestSupport"]),
    ],
    swiftLanguageModes: [.v6]
)
