// SunSpec discovery over any RegisterBus: find the "SunS" marker, then walk
// the chain of models (ID, L, body) until the 0xFFFF end marker.

import Modbus

/// One model found on a device.
public struct SunSpecModelInstance: Sendable, Equatable {
    public var id: Int
    /// Address of the model's ID register.
    public var address: Int
    /// L: registers after ID and L.
    public var length: Int

    public init(id: Int, address: Int, length: Int) {
        self.id = id
        self.address = address
        self.length = length
    }
}

/// The models a device exposes.
public struct SunSpecDiscoveryResult: Sendable, Equatable {
    /// Where "SunS" was found.
    public var base: Int
    public var models: [SunSpecModelInstance]
    /// False when the walk stopped without seeing ID 0xFFFF; `note` says why.
    public var endMarkerFound: Bool
    public var note: String?

    public init(base: Int, models: [SunSpecModelInstance], endMarkerFound: Bool, note: String? = nil) {
        self.base = base
        self.models = models
        self.endMarkerFound = endMarkerFound
        self.note = note
    }

    public func first(_ id: Int) -> SunSpecModelInstance? { models.first { $0.id == id } }
}

public enum SunSpecDiscoveryError: Error, Sendable, Equatable, CustomStringConvertible {
    /// No base held "SunS"; one entry per base tried, saying what was there.
    case markerNotFound(device: String, attempts: [String])
    /// The model chain is broken before any model was read.
    case malformed(device: String, String)

    public var description: String {
        switch self {
        case let .markerNotFound(device, attempts):
            "\(device): no SunSpec marker \"SunS\" (0x5375 0x6E53) found: \(attempts.joined(separator: "; "))"
        case let .malformed(device, s):
            "\(device): SunSpec model chain is malformed: \(s)"
        }
    }
}

public enum SunSpecDiscovery {
    /// "SunS" as two big-endian registers.
    public static let marker: [UInt16] = [0x5375, 0x6E53]
    public static let endID = 0xFFFF

    /// Finds the marker at the first of `bases` that holds it and walks the models.
    public static func discover(bus: some RegisterBus, bases: [Int] = SunSpecSettings.defaultBases,
                                maxModels: Int = 128) async throws(SunSpecDiscoveryError) -> SunSpecDiscoveryResult {
        var attempts: [String] = []
        var found: Int?
        for base in bases {
            do {
                let words = try await bus.read(.holding, address: base, count: 2)
                if words == marker { found = base; break }
                attempts.append("base \(base) holds \(hex(words))")
            } catch {
                attempts.append("base \(base): \(shortError(error))")
            }
        }
        guard let base = found else { throw .markerNotFound(device: bus.deviceName, attempts: attempts) }

        var models: [SunSpecModelInstance] = []
        var address = base + 2
        while true {
            guard models.count < maxModels else {
                return SunSpecDiscoveryResult(base: base, models: models, endMarkerFound: false,
                                              note: "stopped after \(maxModels) models without an end marker")
            }
            guard address + 1 <= 65535 else {
                return SunSpecDiscoveryResult(base: base, models: models, endMarkerFound: false,
                                              note: "the model chain runs past register 65535 without an end marker")
            }
            let header: [UInt16]
            do {
                header = try await bus.read(.holding, address: address, count: 2)
            } catch {
                if models.isEmpty { throw .malformed(device: bus.deviceName, "cannot read the first model header at \(address): \(shortError(error))") }
                return SunSpecDiscoveryResult(base: base, models: models, endMarkerFound: false,
                                              note: "no end marker: reading the header at \(address) failed: \(shortError(error))")
            }
            let id = Int(header[0]), length = Int(header[1])
            if id == endID {
                return SunSpecDiscoveryResult(base: base, models: models, endMarkerFound: true, note: nil)
            }
            if models.isEmpty && id != 1 {
                throw .malformed(device: bus.deviceName, "the first model at \(address) is \(id), but SunSpec requires the common model (1) first")
            }
            guard address + 2 + length <= 65536 else {
                return SunSpecDiscoveryResult(base: base, models: models, endMarkerFound: false,
                                              note: "model \(id) at \(address) claims length \(length), which runs past register 65535")
            }
            models.append(SunSpecModelInstance(id: id, address: address, length: length))
            address += length + 2
        }
    }

    static func hex(_ words: [UInt16]) -> String {
        words.map { "0x" + String($0, radix: 16, uppercase: true).leftPadded(4) }.joined(separator: " ")
    }

    static func shortError(_ error: any Error) -> String {
        if let e = error as? ModbusError {
            switch e.kind {
            case .exception(let x): return "Modbus \(x)"
            default: return e.description
            }
        }
        return "\(error)"
    }
}

extension String {
    func leftPadded(_ width: Int, with pad: Character = "0") -> String {
        count >= width ? self : String(repeating: pad, count: width - count) + self
    }
}
