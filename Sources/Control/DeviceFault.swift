// Why a poll or a write failed, typed from the bus to the API. The description is the
// one-line message the API and logs print; `code` is the bounded label of
// switchyard_modbus_errors_total, read off the error's kind (never parsed from its text).

#if canImport(Glibc)
import Glibc
#endif
import Modbus

public enum DeviceFault: Error, Sendable, Equatable, CustomStringConvertible {
    /// The bus failed: timeout, Modbus exception, connection, malformed answer.
    case modbus(ModbusError)
    /// A point was read but did not decode.
    case point(String, reason: String)
    /// The setpoint read back differs from the words written.
    case readBack(device: String, read: [UInt16], written: [UInt16])
    /// Anything else a bus or an encoder threw, by its description.
    case other(String)

    public init(_ error: any Error) {
        if let e = error as? ModbusError { self = .modbus(e) }
        else if let f = error as? DeviceFault { self = f }
        else { self = .other("\(error)") }
    }

    public var description: String {
        switch self {
        case .modbus(let e): "\(e)"
        case .point(let name, let why): "\(name): \(why)"
        case .readBack(let device, let read, let written): "\(device): read-back \(read) differs from written \(written)"
        case .other(let text): text
        }
    }

    /// The `code` label: a standard exception code, `other_exception`, `timeout`, `connection` or `other`.
    public var code: String {
        guard case .modbus(let e) = self else { return "other" }
        return e.kind.code
    }

    /// Every value `code` takes, in the order /metrics lists them.
    public static let codes = ["1", "2", "3", "4", "5", "6", "8", "10", "11", "other_exception", "timeout", "connection", "other"]
}

extension ModbusError.Kind {
    /// The bounded metrics class of this failure.
    public var code: String {
        switch self {
        case .exception(let x): x == .negativeAcknowledge ? "other_exception" : String(x.rawValue)
        case .unknownException: "other_exception"
        case .timeout: "timeout"
        case .connectionRefused, .unreachable, .connectionLost: "connection"
        case .io(let errno, _):
            switch errno {
            case ETIMEDOUT: "timeout"
            case ECONNRESET, ECONNREFUSED, ECONNABORTED, EHOSTUNREACH, ENETUNREACH, EPIPE: "connection"
            default: "other"
            }
        case .invalidResponse, .crc, .backingOff, .invalidRequest, .closed: "other"
        }
    }
}
