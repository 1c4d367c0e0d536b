// The hub store's maintenance on a schedule: retention (drop the samples partitions of days older than the
// retention) and tomorrow's partition created ahead of midnight, once at start and then every period (an hour),
// on an injected clock. A failed pass is logged and tried again the next period; it never stops the hub.
// docs/fleet.md, "Partitioning and retention".

import Foundation
import Logging
import ServiceLifecycle

/// The retention the hub accepts, in days (`switchyard hub --retention-days`).
public enum HubRetention {
    public static let defaultDays = 30
    public static let allowedDays = 1...3650

    /// nil when `days` is allowed, else one clear line.
    public static func problem(days: Int) -> String? {
        allowedDays.contains(days) ? nil
            : "--retention-days must be \(allowedDays.lowerBound)…\(allowedDays.upperBound) (days of samples kept), not \(days)"
    }
}

/// What one maintenance pass did.
public struct StoreMaintenancePass: Sendable, Equatable {
    /// The wall time the pass worked from.
    public var at: Date
    /// The partitions retention dropped (empty when the pass failed before or during retention).
    public var dropped: [String]
    /// The failure, one line, when the pass failed (it is logged and tried again the next period).
    public var error: String?
}

/// Runs `StoreMaintenance` passes: at start, then every `period` on `clock`, until cancelled or a graceful shutdown.
public struct StoreMaintenanceService<C: Clock>: Service where C.Duration == Duration {
    let store: HubStore
    let retentionDays: Int
    let period: Duration
    let clock: C
    let now: @Sendable () -> Date
    let logger: Logger
    let observe: @Sendable (StoreMaintenancePass) -> Void

    /// - Parameters:
    ///   - retentionDays: whole UTC days of samples kept before today (`HubRetention.allowedDays`).
    ///   - now: the wall time a pass works from (which day is today); separate from `clock`, which only paces passes.
    ///   - observe: told of every pass (tests).
    public init(store: HubStore, retentionDays: Int = HubRetention.defaultDays, period: Duration = .seconds(3600), clock: C,
                now: @escaping @Sendable () -> Date = { Date() }, logger: Logger,
                observe: @escaping @Sendable (StoreMaintenancePass) -> Void = { _ in }) {
        precondition(HubRetention.problem(days: retentionDays) == nil, HubRetention.problem(days: retentionDays) ?? "")
        precondition(period > .zero, "the maintenance period must be positive")
        self.store = store
        self.retentionDays = retentionDays
        self.period = period
        self.clock = clock
        self.now = now
        self.logger = logger
        self.observe = observe
    }

    public func run() async throws {
        do {
            try await cancelWhenGracefulShutdown {
                while true {
                    let next = clock.now.advanced(by: period)
                    await pass()
                    try await clock.sleep(until: next, tolerance: nil)
                }
            }
        } catch is CancellationError {
            // Cancelled or shutting down: the pass in flight (if any) has finished or been cancelled with the task.
        }
    }

    /// One pass: tomorrow's (and today's) partition first, so that a retention failure cannot leave the next day
    /// without one, then retention. Never throws: a failure is logged and reported to `observe`.
    @discardableResult
    public func pass() async -> StoreMaintenancePass {
        let at = now()
        var result = StoreMaintenancePass(at: at, dropped: [], error: nil)
        do {
            try await store.prepareSamplePartitions(now: at, daysAhead: 1)
            result.dropped = try await store.retention(days: retentionDays, now: at)
            if !result.dropped.isEmpty {
                logger.notice("hub store: retention dropped old samples partitions",
                              metadata: ["store.dropped": "\(result.dropped.joined(separator: ","))", "store.retention_days": "\(retentionDays)"])
            }
        } catch {
            result.error = "\(error)"
            logger.error("hub store: maintenance failed; trying again next period",
                         metadata: ["error": "\(error)", "store.retry_in_s": "\(period.components.seconds)"])
        }
        observe(result)
        return result
    }
}
