// The controller's metrics, emitted where things happen: the poller counts every failed
// poll by its typed code and times every answered one, the actuator counts failed writes,
// and each pass counts the governor's interventions. The API renders them on /metrics.
// Labels are the fixed set (site, device, code). Without an injected factory they go to the
// process's bootstrapped one (API's `MetricsRegistry.bootstrap`); tests inject their own.

import CoreMetrics
import Synchronization

public final class ControlMetrics: Sendable {
    public static let pollLatency = "switchyard_poll_latency_seconds"
    public static let modbusErrors = "switchyard_modbus_errors_total"
    public static let writeErrors = "switchyard_write_errors_total"
    public static let interventions = "switchyard_governor_interventions_total"

    public let site: String
    let injected: (any MetricsFactory)?
    let polled: [String]
    let written: [String]

    /// The handlers, made on first use from the factory then in force, every known series at zero.
    ///
    /// The error series (13 codes for every polled and every written device: 26,000 on a site of 1,000 containers)
    /// are created at zero through the factory, which keeps them (a Prometheus registry does), but no handle to each
    /// is kept here: an error, rare, asks the factory for its series again. Keeping a `Counter` per series cost
    /// about 7.5 MB on that site (a `Counter` object, its dimensions array and a dictionary slot each), an eighth of
    /// the steady loop's memory (Benchmarks/README.md).
    struct Handles {
        var factory: any MetricsFactory
        var latency: [String: CoreMetrics.Timer] = [:]
        var interventions: Counter
    }
    let handles = Mutex<Handles?>(nil)
    let polledSet: Set<String>
    let writtenSet: Set<String>
    static let codeSet = Set(DeviceFault.codes)

    /// - Parameters:
    ///   - factory: nil for `MetricsSystem.factory` as it is at the first emission (so a loop built
    ///     before the daemon bootstraps still reports).
    ///   - polled, written: the devices the poller reads and the actuator writes.
    public init(site: String, factory: (any MetricsFactory)? = nil, polled: [String] = [], written: [String] = []) {
        self.site = site
        self.injected = factory
        self.polled = polled
        self.written = written
        polledSet = Set(polled)
        writtenSet = Set(written)
    }

    func withHandles<T>(_ body: (Handles) -> T) -> T {
        handles.withLock { h in
            if h == nil {
                let f = injected ?? MetricsSystem.factory
                for (label, devices) in [(Self.modbusErrors, polled), (Self.writeErrors, written)] {
                    for d in devices {
                        for c in DeviceFault.codes { _ = f.makeCounter(label: label, dimensions: errorDimensions(d, c)) }
                    }
                }
                h = Handles(factory: f,
                            latency: Dictionary(polled.map { d in
                                (d, CoreMetrics.Timer(label: Self.pollLatency, dimensions: [("site", site), ("device", d)], factory: f))
                            }, uniquingKeysWith: { a, _ in a }),
                            interventions: Counter(label: Self.interventions, dimensions: [("site", site)], factory: f))
            }
            return body(h!)
        }
    }

    private func errorDimensions(_ device: String, _ code: String) -> [(String, String)] {
        [("site", site), ("device", device), ("code", code)]
    }

    /// A poll that failed: one error, by its code (a device of the site and a known code only: bounded labels).
    func pollFailed(_ device: String, _ fault: DeviceFault) {
        guard polledSet.contains(device), Self.codeSet.contains(fault.code) else { return }
        withHandles { $0.factory }.makeCounter(label: Self.modbusErrors, dimensions: errorDimensions(device, fault.code)).increment(by: 1)
    }

    /// A poll that was answered, and how long it took.
    func pollAnswered(_ device: String, latencyS: Double) {
        withHandles { $0.latency[device] }?.recordSeconds(latencyS)
    }

    /// A setpoint write that failed (or did not read back).
    func writeFailed(_ device: String, _ fault: DeviceFault) {
        guard writtenSet.contains(device), Self.codeSet.contains(fault.code) else { return }
        withHandles { $0.factory }.makeCounter(label: Self.writeErrors, dimensions: errorDimensions(device, fault.code)).increment(by: 1)
    }

    /// The governor's interventions in one pass.
    func intervened(_ count: Int) {
        guard count > 0 else { return }
        withHandles { $0.interventions }.increment(by: count)
    }
}
