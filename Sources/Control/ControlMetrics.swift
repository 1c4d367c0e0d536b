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
    struct Handles {
        var errors: [String: [String: Counter]] = [:]
        var writeErrors: [String: [String: Counter]] = [:]
        var latency: [String: CoreMetrics.Timer] = [:]
        var interventions: Counter
    }
    let handles = Mutex<Handles?>(nil)

    /// - Parameters:
    ///   - factory: nil for `MetricsSystem.factory` as it is at the first emission (so a loop built
    ///     before the daemon bootstraps still reports).
    ///   - polled, written: the devices the poller reads and the actuator writes.
    public init(site: String, factory: (any MetricsFactory)? = nil, polled: [String] = [], written: [String] = []) {
        self.site = site
        self.injected = factory
        self.polled = polled
        self.written = written
    }

    func withHandles<T>(_ body: (Handles) -> T) -> T {
        handles.withLock { h in
            if h == nil {
                let f = injected ?? MetricsSystem.factory
                func counters(_ label: String, _ devices: [String]) -> [String: [String: Counter]] {
                    Dictionary(devices.map { d in
                        (d, Dictionary(DeviceFault.codes.map { c in
                            (c, Counter(label: label, dimensions: [("site", site), ("device", d), ("code", c)], factory: f))
                        }, uniquingKeysWith: { a, _ in a }))
                    }, uniquingKeysWith: { a, _ in a })
                }
                h = Handles(errors: counters(Self.modbusErrors, polled), writeErrors: counters(Self.writeErrors, written),
                            latency: Dictionary(polled.map { d in
                                (d, CoreMetrics.Timer(label: Self.pollLatency, dimensions: [("site", site), ("device", d)], factory: f))
                            }, uniquingKeysWith: { a, _ in a }),
                            interventions: Counter(label: Self.interventions, dimensions: [("site", site)], factory: f))
            }
            return body(h!)
        }
    }

    /// A poll that failed: one error, by its code.
    func pollFailed(_ device: String, _ fault: DeviceFault) {
        withHandles { $0.errors[device]?[fault.code] }?.increment()
    }

    /// A poll that was answered, and how long it took.
    func pollAnswered(_ device: String, latencyS: Double) {
        withHandles { $0.latency[device] }?.recordSeconds(latencyS)
    }

    /// A setpoint write that failed (or did not read back).
    func writeFailed(_ device: String, _ fault: DeviceFault) {
        withHandles { $0.writeErrors[device]?[fault.code] }?.increment()
    }

    /// The governor's interventions in one pass.
    func intervened(_ count: Int) {
        guard count > 0 else { return }
        withHandles { $0.interventions }.increment(by: count)
    }
}
