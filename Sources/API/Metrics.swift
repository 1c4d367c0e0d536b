// /metrics through swift-metrics and swift-prometheus: one PrometheusCollectorRegistry per
// process (bootstrapped once by the daemon, `MetricsRegistry.bootstrap`), or one per test
// (injected, never bootstrapped). Counters and histograms are emitted where things happen
// (the poller, the actuator, each pass, auth, the tick hook); the gauges are the control
// loop's state, set at each scrape. Names and labels are a fixed set (docs/api.md).

import Control
import CoreMetrics
import Prometheus
import Synchronization

public final class MetricsRegistry: Sendable {
    public static let latencyBuckets: [Double] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5]
    public static let tickBuckets: [Double] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1]

    public let site: String
    /// Where every metric lives; /metrics renders it.
    public let prometheus: PrometheusCollectorRegistry
    /// The swift-metrics factory over `prometheus`, with this project's histogram buckets.
    public let factory: PrometheusMetricsFactory
    /// The gauges set at the last scrape, by name and labels (one absent now is unregistered).
    let gauges = Mutex<[GaugeKey: Prometheus.Gauge]>([:])

    struct GaugeKey: Hashable {
        var name: String
        var labels: [String]
    }

    /// A registry of its own, not the process's: for tests, and for the daemon through `bootstrap`.
    public init(site: String) {
        self.site = site
        prometheus = PrometheusCollectorRegistry()
        var f = PrometheusMetricsFactory(registry: prometheus)
        func durations(_ s: [Double]) -> [Duration] { s.map { .nanoseconds(Int64(($0 * 1e9).rounded())) } }
        f.durationHistogramBuckets = [ControlMetrics.pollLatency: durations(Self.latencyBuckets),
                                      Self.tickDuration: durations(Self.tickBuckets)]
        factory = f
        _ = Counter(label: Self.ticks, dimensions: [("site", site)], factory: f)
        _ = Counter(label: Self.authFailures, dimensions: [("site", site)], factory: f)
    }

    static let bootstrapped = Mutex<MetricsRegistry?>(nil)

    /// The daemon's registry: bootstraps swift-metrics with it once per process (a second call
    /// returns the first registry), so everything emitted through `MetricsSystem` lands on /metrics.
    public static func bootstrap(site: String) -> MetricsRegistry {
        bootstrapped.withLock { current in
            if let current { return current }
            let registry = MetricsRegistry(site: site)
            MetricsSystem.bootstrap(registry.factory)
            current = registry
            return registry
        }
    }

    static let ticks = "switchyard_ticks_total"
    static let tickDuration = "switchyard_tick_duration_seconds"
    static let authFailures = "switchyard_auth_failures_total"

    /// The tick hook: one tick, its duration. (Errors, latencies and interventions are counted where they happen.)
    public func observe(_ report: TickReport, tickDuration: Duration, loop: ControlLoop) {
        Counter(label: Self.ticks, dimensions: [("site", site)], factory: factory).increment()
        let c = tickDuration.components
        CoreMetrics.Timer(label: Self.tickDuration, dimensions: [("site", site)], factory: factory)
            .recordNanoseconds(c.seconds * 1_000_000_000 + c.attoseconds / 1_000_000_000)
    }

    /// One failed API authentication.
    public func authFailed() {
        Counter(label: Self.authFailures, dimensions: [("site", site)], factory: factory).increment()
    }

    /// The exposition text for the current loop.
    public func render(loop: ControlLoop) -> String {
        gauges.withLock { current in
            var next: [GaugeKey: Prometheus.Gauge] = [:]
            for row in gaugeRows(loop: loop) {
                let key = GaugeKey(name: row.name, labels: row.labels.map { "\($0)=\($1)" })
                let gauge = current[key] ?? prometheus.makeGauge(
                    descriptor: MetricNameDescriptor(metricName: row.name, unitName: "", helpText: row.help), labels: row.labels)
                gauge.set(to: row.value)
                next[key] = gauge
            }
            for (key, gauge) in current where next[key] == nil { prometheus.unregisterGauge(gauge) }
            current = next
            return prometheus.emitToString()
        }
    }

    struct GaugeRow {
        var name: String
        var help: String
        var labels: [(String, String)]
        var value: Double
    }

    /// The loop's state as gauge samples; a sample missing here (a stale site meter) is absent from /metrics.
    func gaugeRows(loop: ControlLoop) -> [GaugeRow] {
        let r = loop.lastReport
        let base = [("site", site)]
        var rows: [GaugeRow] = []
        func add(_ name: String, _ help: String, _ labels: [(String, String)], _ value: Double?) {
            if let value { rows.append(GaugeRow(name: name, help: help, labels: base + labels, value: value)) }
        }
        add("switchyard_site_import_kw", "Measured site import (kW); absent when the site meter is stale.", [], r?.siteKW)
        add("switchyard_site_cap_kw", "Site import cap in force, including DR caps (kW).", [], r?.limitKW)
        add("switchyard_class_kw", "Measured power per load class (kW).", [("class", "mining")], r?.miningKW)
        add("switchyard_class_kw", "Measured power per load class (kW).", [("class", "inference")], r?.inferenceKW)
        add("switchyard_price_usd_per_mwh", "Energy price in force.", [], r?.priceUsdPerMWh)
        for id in loop.plant.devices.map(\.id) {
            let tel = loop.poller.telemetry(id)
            add("switchyard_device_power_kw", "Measured device power (kW).", [("device", id)], tel?.values["active_power_w"].map { $0 / 1000 })
            add("switchyard_device_setpoint_kw", "Setpoint allowed by the governor (kW).", [("device", id)], r?.setpointsKW[id])
            add("switchyard_device_up", "1 when the device answered its last poll.", [("device", id)], (tel?.isReachable ?? false) ? 1 : 0)
        }
        for t in loop.actuator.targets {
            add("switchyard_device_not_following", "1 when a container's measured power does not follow the setpoint it accepted.",
                [("device", t.id)], loop.actuator.followState(t.id) == .notFollowing ? 1 : 0)
        }
        for meter in loop.site.nodes.compactMap(\.meter) {
            let st = loop.meterWatch.status(meter)
            for state in [MeterStatus.ok, .frozen, .inconsistent] {
                add("switchyard_meter_state",
                    "1 for a node meter's health: ok, frozen (unchanged while its node moved) or inconsistent (disagrees with its children); frozen and inconsistent count as stale.",
                    [("device", meter), ("state", state.rawValue)], st == state ? 1 : 0)
            }
        }
        for m in ["normal", "shedding", "over-cap", "comm-loss", "starting"] {
            add("switchyard_governor_mode", "1 for the governor's current mode.", [("mode", m)], r?.mode.rawValue == m ? 1 : 0)
        }
        return rows
    }
}
