// What the edge node publishes about a site (issue 17): site-level metrics on the node, and one Sparkplug
// device per dispatchable container and per polled meter. Built from a tick's report and the loop that
// made it, off the loop's task (EdgeNodeService). Pure apart from reading the loop's telemetry (under its
// own locks; no I/O). Metric names and datatypes are listed in docs/fleet.md.

import Broker
import Control
import Site
import Sparkplug

/// The metric names live in the Sparkplug target (FleetMetricName.swift), shared with the hub; the edge node's
/// report-by-exception deadbands for them are its own.
extension FleetMetricName {
    /// Deadbands by name where the default (1 % or 10 in the metric's unit) would be wrong:
    /// MW metrics move by 1 % or 10 kW (0.01 MW), prices by 1 % or 1 $.
    public static let deadbands: [String: Deadband] = [
        miningMW: Deadband(relative: 0.01, absolute: 0.01),
        inferenceMW: Deadband(relative: 0.01, absolute: 0.01),
        price: Deadband(relative: 0.01, absolute: 1),
        hashprice: Deadband(relative: 0.01, absolute: 1),
    ]
}

/// One tick, as the edge node reports it: node metrics and devices (in birth order), with the tick's time.
public struct FleetSample: Sendable, Equatable {
    /// Loop time of the tick, ms since the epoch (metric timestamps, report-by-exception intervals).
    public var at: UInt64
    public var node: [SparkplugMetric]
    public var devices: [(id: String, metrics: [SparkplugMetric])]

    public static func == (a: FleetSample, b: FleetSample) -> Bool {
        a.at == b.at && a.node == b.node && a.devices.map(\.id) == b.devices.map(\.id) && a.devices.map(\.metrics) == b.devices.map(\.metrics)
    }

    public var birth: BirthCertificate { BirthCertificate(node: node, devices: devices) }

    /// The devices the edge node reports: every polled container (mining, inference) and meter whose id can
    /// be a Sparkplug device id, in site-file order.
    public static func deviceIDs(of site: Site) -> [String] {
        site.devices.filter { ($0.isControllable || $0.deviceClass == .meter) && $0.profile != nil && Site.sparkplugIDProblem($0.id) == nil }
            .map(\.id)
    }

    public init(at: UInt64, node: [SparkplugMetric], devices: [(id: String, metrics: [SparkplugMetric])]) {
        self.at = at
        self.node = node
        self.devices = devices
    }

    /// The metrics of a tick. `config`: the configuration in force, if known. `offer`: whether to compute the
    /// site's shed offer (live data only: a buffered sample leaves it out, an old offer is worth nothing).
    public init(report: TickReport, loop: ControlLoop, config: ConfigStamp?, offer: Bool = true) {
        let at = UInt64(max(0, report.at * 1000).rounded())
        func double(_ name: String, _ v: Double?) -> SparkplugMetric {
            v.map { SparkplugMetric(name: name, timestamp: at, value: .double($0)) } ?? SparkplugMetric(name: name, timestamp: at, null: .double)
        }
        var node = [
            double(FleetMetricName.importKW, report.siteKW),
            double(FleetMetricName.capKW, report.limitKW),
            double(FleetMetricName.miningMW, report.miningKW / 1000),
            double(FleetMetricName.inferenceMW, report.inferenceKW / 1000),
            double(FleetMetricName.price, report.priceUsdPerMWh),
            double(FleetMetricName.hashprice, report.hashpriceUsdPerPHDay),
            SparkplugMetric(name: FleetMetricName.mode, timestamp: at, value: .string(report.mode.rawValue)),
        ]
        node.append(config.map { SparkplugMetric(name: FleetMetricName.configVersion, timestamp: at, value: .int64($0.version)) }
                    ?? SparkplugMetric(name: FleetMetricName.configVersion, timestamp: at, null: .int64))
        node.append(SparkplugMetric(name: FleetMetricName.activeEvents, timestamp: at, value: .int32(Int32(clamping: report.events.count))))
        node.append(config.map { SparkplugMetric(name: FleetMetricName.configSHA256, timestamp: at, value: .string($0.sha256)) }
                    ?? SparkplugMetric(name: FleetMetricName.configSHA256, timestamp: at, null: .string))
        if offer { node += Self.offerMetrics(report.shedOffer(maxSteps: FleetMetricName.offerMaxSteps), at: at) }

        var writeErrors: [String: String] = [:]
        for w in report.writes { if let e = w.error { writeErrors[w.device] = e.code } }
        var devices: [(id: String, metrics: [SparkplugMetric])] = []
        for id in Self.deviceIDs(of: loop.site) {
            guard let d = loop.site.device(id) else { continue }
            let tel = loop.poller.telemetry(id)
            var m = [double(FleetMetricName.powerKW, tel?.value("active_power_w").map { $0 / 1000 })]
            if d.isControllable {
                m.append(double(FleetMetricName.setpointKW, report.setpointsKW[id]))
            }
            m.append(SparkplugMetric(name: FleetMetricName.up, timestamp: at, value: .boolean(tel?.isReachable ?? false)))
            if d.isControllable {
                m.append(SparkplugMetric(name: FleetMetricName.following, timestamp: at,
                                         value: .boolean(loop.actuator.followState(id) == .following)))
            }
            // The last poll's failure, else this tick's write failure; "" when neither failed.
            let code = tel?.lastError?.code ?? writeErrors[id] ?? ""
            m.append(SparkplugMetric(name: FleetMetricName.lastErrorCode, timestamp: at, value: .string(code)))
            devices.append((id, m))
        }
        self.init(at: at, node: node, devices: devices)
    }

    /// The offer curve as node metrics (FleetMetricName.offerSteps …): every step slot is always present, so the
    /// birth declares them all and data changes them by report-by-exception.
    static func offerMetrics(_ steps: [ShedOfferStep], at: UInt64) -> [SparkplugMetric] {
        let used = min(steps.count, FleetMetricName.offerMaxSteps)
        var m = [SparkplugMetric(name: FleetMetricName.offerSteps, timestamp: at, value: .int32(Int32(used)))]
        for k in 1...FleetMetricName.offerMaxSteps {
            if k <= used {
                m.append(SparkplugMetric(name: FleetMetricName.offerStepKW(k), timestamp: at, value: .double(steps[k - 1].importKw)))
                m.append(SparkplugMetric(name: FleetMetricName.offerStepUSDPerHour(k), timestamp: at, value: .double(steps[k - 1].usdPerHour)))
            } else {
                m.append(SparkplugMetric(name: FleetMetricName.offerStepKW(k), timestamp: at, null: .double))
                m.append(SparkplugMetric(name: FleetMetricName.offerStepUSDPerHour(k), timestamp: at, null: .double))
            }
        }
        return m
    }
}

/// The configuration in force at a site, as the edge node reports it.
public struct ConfigStamp: Sendable, Hashable {
    public var version: Int64
    public var sha256: String

    public init(version: Int64, sha256: String) {
        self.version = version
        self.sha256 = sha256
    }
}
