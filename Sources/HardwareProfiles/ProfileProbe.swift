// Reads every point of a profile once through the read planner, over any
// RegisterBus (the wire, or the in-memory simulator).

import Modbus

/// The result of reading one point.
public struct PointReading: Sendable, Equatable {
    public var point: ResolvedPoint
    /// The words read for the point (empty when the read failed).
    public var raw: [UInt16]
    public var outcome: PointOutcome

    public var name: String { point.name }
}

/// The result of reading a profile once.
public struct ProbeResult: Sendable {
    public var readings: [PointReading]
    public var discovery: SunSpecDiscoveryResult?
    /// How many Modbus requests the plan used.
    public var requestCount: Int

    public var failures: [PointReading] {
        readings.filter { if case .failed = $0.outcome { true } else { false } }
    }

    public func reading(_ name: String) -> PointReading? { readings.first { $0.name == name } }
}

public enum ProbeError: Error, Sendable, CustomStringConvertible {
    case discovery(SunSpecDiscoveryError)
    case resolve(ResolveError)
    case plan(ReadPlanError)

    public var description: String {
        switch self {
        case .discovery(let e): e.description
        case .resolve(let e): e.description
        case .plan(let e): "cannot plan the reads: \(e)"
        }
    }
}

public enum ProfileProbe {
    /// Reads every point of `profile` (or only those of `pollClasses`) once.
    /// A failed request fails only the points it serves. Requests are spaced by
    /// the profile's minimum request gap, measured on `clock`.
    public static func read(profile: DeviceProfile, bus: some RegisterBus,
                            pollClasses: Set<PollClass>? = nil,
                            clock: any Clock<Duration> = ContinuousClock()) async throws(ProbeError) -> ProbeResult {
        var discovery: SunSpecDiscoveryResult?
        if profile.needsDiscovery {
            do {
                discovery = try await SunSpecDiscovery.discover(bus: bus, bases: profile.sunSpec?.bases ?? SunSpecSettings.defaultBases)
            } catch {
                throw .discovery(error)
            }
        }
        var points: [ResolvedPoint]
        do { points = try profile.resolvedPoints(discovery: discovery) } catch { throw .resolve(error) }
        if let pollClasses { points = points.filter { pollClasses.contains($0.definition.poll) } }

        let plan: PointReadPlan
        do { plan = try PointReadPlan(points: points, limits: profile.transport.readLimits) } catch { throw .plan(error) }

        let words = await execute(plan.requests, spans: plan.spans, bus: bus, gap: profile.transport.minRequestGap, clock: clock)

        var readings: [PointReading] = []
        for (i, p) in plan.points.enumerated() {
            if let why = p.unavailable {
                readings.append(PointReading(point: p, raw: [], outcome: .failed(why)))
                continue
            }
            guard let si = plan.pointSpan[i], let result = words[si] else {
                readings.append(PointReading(point: p, raw: [], outcome: .failed("not read")))
                continue
            }
            switch result {
            case .failure(let failure):
                readings.append(PointReading(point: p, raw: [], outcome: .failed(failure.message)))
            case .success(let w):
                var sfWord: UInt16?
                if let sfi = plan.scaleSpan[i] {
                    switch words[sfi] {
                    case .success(let sw)?: sfWord = sw.first
                    case .failure(let failure)?:
                        readings.append(PointReading(point: p, raw: w, outcome: .failed("scale factor: \(failure.message)")))
                        continue
                    case nil: break
                    }
                }
                readings.append(PointReading(point: p, raw: w, outcome: PointDecoder.decode(p, words: w, scaleFactor: sfWord)))
            }
        }
        return ProbeResult(readings: readings, discovery: discovery, requestCount: plan.requests.count)
    }

    /// Runs the requests in order, at least `gap` apart, and splits the answers per span.
    static func execute(_ requests: [ReadRequest], spans: [ReadSpan], bus: some RegisterBus, gap: Duration,
                        clock: any Clock<Duration>) async -> [Int: Result<[UInt16], ProbeFailure>] {
        var out: [Int: Result<[UInt16], ProbeFailure>] = [:]
        for (n, request) in requests.enumerated() {
            if n > 0, gap > .zero {
                do { try await clock.sleep(for: gap, tolerance: nil) } catch {
                    for i in request.spans { out[i] = .failure(ProbeFailure("cancelled")) }
                    continue
                }
            }
            do {
                let words = try await bus.read(request.table, address: request.address, count: request.count)
                guard words.count == request.count else {
                    for i in request.spans { out[i] = .failure(ProbeFailure("\(bus.deviceName): asked for \(request.count) registers at \(request.address), got \(words.count)")) }
                    continue
                }
                for i in request.spans {
                    let s = spans[i]
                    let lo = s.address - request.address
                    out[i] = .success(Array(words[lo..<(lo + s.count)]))
                }
            } catch {
                for i in request.spans { out[i] = .failure(ProbeFailure("\(error)")) }
            }
        }
        return out
    }
}

/// A failed read, as one line of text.
public struct ProbeFailure: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    init(_ message: String) { self.message = message }
    public var description: String { message }
}
