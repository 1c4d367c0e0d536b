/// Modbus function codes used by Switchyard.
public enum FunctionCode: UInt8, Sendable, CustomStringConvertible {
    case readCoils = 0x01
    case readDiscreteInputs = 0x02
    case readHoldingRegisters = 0x03
    case readInputRegisters = 0x04
    case writeSingleCoil = 0x05
    case writeSingleRegister = 0x06
    case writeMultipleCoils = 0x0F
    case writeMultipleRegisters = 0x10
    case writeAndReadRegisters = 0x17

    public static func read(_ table: ModbusTable) -> FunctionCode {
        switch table {
        case .coil: .readCoils
        case .discrete: .readDiscreteInputs
        case .holding: .readHoldingRegisters
        case .input: .readInputRegisters
        }
    }

    public var description: String {
        let name: String = switch self {
        case .readCoils: "read coils"
        case .readDiscreteInputs: "read discrete inputs"
        case .readHoldingRegisters: "read holding registers"
        case .readInputRegisters: "read input registers"
        case .writeSingleCoil: "write single coil"
        case .writeSingleRegister: "write single register"
        case .writeMultipleCoils: "write multiple coils"
        case .writeMultipleRegisters: "write multiple registers"
        case .writeAndReadRegisters: "read/write multiple registers"
        }
        return "FC\(String(format2: rawValue)) \(name)"
    }
}

extension String {
    init(format2 v: UInt8) { self = v < 10 ? "0\(v)" : "\(v)" }
}

/// The standard Modbus exception codes, with their names from the
/// Modbus Application Protocol Specification V1.1b3.
public enum ModbusException: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    case illegalFunction = 0x01
    case illegalDataAddress = 0x02
    case illegalDataValue = 0x03
    case serverDeviceFailure = 0x04
    case acknowledge = 0x05
    case serverDeviceBusy = 0x06
    case negativeAcknowledge = 0x07
    case memoryParityError = 0x08
    case gatewayPathUnavailable = 0x0A
    case gatewayTargetFailedToRespond = 0x0B

    public var name: String {
        switch self {
        case .illegalFunction: "ILLEGAL FUNCTION"
        case .illegalDataAddress: "ILLEGAL DATA ADDRESS"
        case .illegalDataValue: "ILLEGAL DATA VALUE"
        case .serverDeviceFailure: "SERVER DEVICE FAILURE"
        case .acknowledge: "ACKNOWLEDGE"
        case .serverDeviceBusy: "SERVER DEVICE BUSY"
        case .negativeAcknowledge: "NEGATIVE ACKNOWLEDGE"
        case .memoryParityError: "MEMORY PARITY ERROR"
        case .gatewayPathUnavailable: "GATEWAY PATH UNAVAILABLE"
        case .gatewayTargetFailedToRespond: "GATEWAY TARGET DEVICE FAILED TO RESPOND"
        }
    }

    public var description: String { "exception \(rawValue) (\(name))" }
}

/// A failed Modbus operation. Prints as one line naming the device, the
/// function, the address range and what went wrong.
public struct ModbusError: Error, Sendable, CustomStringConvertible, Equatable {
    public enum Kind: Sendable, Equatable {
        /// No (complete) answer within the response timeout.
        case timeout
        /// The device answered with a Modbus exception.
        case exception(ModbusException)
        /// An exception code outside the standard set.
        case unknownException(UInt8)
        /// The TCP connection was refused.
        case connectionRefused
        /// The host or serial device could not be reached or opened.
        case unreachable(String)
        /// The link broke (EPIPE, ECONNRESET, EBADF …); the client reconnects.
        case connectionLost(String)
        /// The answer was malformed, short, or did not match the request.
        case invalidResponse(String)
        /// RTU frame with a bad CRC.
        case crc
        /// The client is backing off after failures; retried after the delay.
        case backingOff(retryInMilliseconds: Int)
        /// The request itself is invalid (count 0, > 125 registers, address out of range).
        case invalidRequest(String)
        /// The client was shut down.
        case closed
        /// Any other OS error.
        case io(errno: Int32, String)
    }

    public var kind: Kind
    public var device: String
    public var function: FunctionCode?
    public var address: Int
    public var count: Int
    public var unit: Int

    public init(_ kind: Kind, device: String, unit: Int = 0, function: FunctionCode? = nil, address: Int = 0, count: Int = 0) {
        self.kind = kind
        self.device = device
        self.unit = unit
        self.function = function
        self.address = address
        self.count = count
    }

    public var description: String {
        var where_ = "\(device) unit \(unit)"
        if let function {
            where_ += " \(function) @\(address)"
            if count > 1 { where_ += "+\(count)" }
        }
        let what: String = switch kind {
        case .timeout: "timeout"
        case .exception(let e): "Modbus \(e)"
        case .unknownException(let c): "Modbus exception \(c) (unknown code)"
        case .connectionRefused: "connection refused"
        case .unreachable(let s): "unreachable: \(s)"
        case .connectionLost(let s): "connection lost: \(s)"
        case .invalidResponse(let s): "invalid response: \(s)"
        case .crc: "CRC error"
        case .backingOff(let ms): "not retried yet: backing off for \(ms) ms after failures"
        case .invalidRequest(let s): "invalid request: \(s)"
        case .closed: "client closed"
        case .io(let e, let s): "I/O error \(e): \(s)"
        }
        return "\(where_): \(what)"
    }

    /// Errors after which the connection is dropped and re-established.
    public var breaksConnection: Bool {
        switch kind {
        case .connectionLost, .connectionRefused, .unreachable, .crc, .invalidResponse, .io: true
        default: false
        }
    }
}
