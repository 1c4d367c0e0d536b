// The heartbeat relay on the box: toggled while the control loop is healthy.
// External hardware drops the containers to safe mode when the toggling stops,
// so a hung or dead controller fails safe even if its process cannot.

import I2C
import Logging
import ServiceLifecycle

public struct HeartbeatService<C: Clock>: Service where C.Duration == Duration {
    public let hardware: I2CHardware
    /// The loop in force now (a config apply swaps it; the relay must keep beating across the swap).
    public let loop: @Sendable () -> ControlLoop
    public let time: LoopTime<C>
    public let period: Duration
    /// The loop counts as healthy while its last tick is at most this old.
    public let maxTickAgeS: Double
    public let logger: Logger

    public init(hardware: I2CHardware, loop: @escaping @Sendable () -> ControlLoop, time: LoopTime<C>, period: Duration = .milliseconds(500),
                maxTickAgeS: Double, logger: Logger) {
        self.hardware = hardware
        self.loop = loop
        self.time = time
        self.period = period
        self.maxTickAgeS = maxTickAgeS
        self.logger = logger
    }

    /// One beat: toggle while healthy, hold the safe level otherwise. Returns true if it toggled.
    @discardableResult
    public func step(now: Double) async -> Bool {
        guard let relay = hardware.heartbeat else { return false }
        let healthy = loop().lastReport.map { now - $0.at <= maxTickAgeS } ?? false
        do {
            if healthy { try await relay.beat() } else { try await relay.drop() }
        } catch {
            logger.error("heartbeat relay", metadata: ["error": "\(error)"])
            return false
        }
        return healthy
    }

    public func run() async throws {
        if let relay = hardware.heartbeat {
            do { try await relay.start() } catch { logger.error("heartbeat relay start", metadata: ["error": "\(error)"]) }
        }
        await cancelWhenGracefulShutdown {
            var beats = 0
            while !Task.isCancelled {
                await step(now: time.now)
                beats += 1
                if beats % 120 == 1, let sensor = hardware.temperature {
                    do {
                        let c = try await sensor.readCelsius()
                        logger.info("cabinet temperature", metadata: ["temperature.c": "\(c)"])
                    } catch {
                        logger.warning("cabinet temperature sensor", metadata: ["error": "\(error)"])
                    }
                }
                do { try await time.clock.sleep(for: period) } catch { break }
            }
        }
        if let relay = hardware.heartbeat { try? await relay.drop() }
    }
}
