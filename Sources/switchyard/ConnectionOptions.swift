import Basics
import ArgumentParser
import Foundation
import Modbus

/// How to reach a device: shared by `modbus read/write` and `probe` through `@OptionGroup`.
struct ConnectionOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Modbus TCP device or gateway.", valueName: "HOST:PORT"))
    var tcp: String?

    @Option(name: .long, help: ArgumentHelp("Modbus RTU serial device, e.g. /dev/ttyUSB0.", valueName: "DEV"))
    var rtu: String?

    @Option(name: .long, help: "RTU baud rate.")
    var baud: Int = 9600

    @Option(name: .long, help: "RTU parity: N, E or O.")
    var parity: String = "N"

    @Option(name: .customLong("data-bits"), help: "RTU data bits.")
    var dataBits: Int = 8

    @Option(name: .customLong("stop-bits"), help: "RTU stop bits.")
    var stopBits: Int = 1

    @Flag(name: .customLong("rs485"), help: "Put the serial port in RS-485 mode.")
    var rs485 = false

    @Option(name: .customLong("timeout-ms"), help: "Response timeout in milliseconds.")
    var timeoutMs: Int = 1000

    func validate() throws {
        if (tcp == nil) == (rtu == nil) { throw ValidationError("give exactly one of --tcp HOST:PORT or --rtu DEV") }
        if let tcp, ModbusEndpoint.parseTCP(tcp) == nil {
            throw ValidationError("--tcp '\(tcp)' is not HOST:PORT with a port in 1…65535")
        }
        if Parity(rawValue: parity.uppercased()) == nil { throw ValidationError("--parity must be N, E or O, not '\(parity)'") }
        if ![1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400].contains(baud) {
            throw ValidationError("--baud \(baud) is not a standard rate (1200…230400)")
        }
        if !(5...8).contains(dataBits) { throw ValidationError("--data-bits must be 5…8") }
        if !(1...2).contains(stopBits) { throw ValidationError("--stop-bits must be 1 or 2") }
        if !(10...60_000).contains(timeoutMs) { throw ValidationError("--timeout-ms must be 10…60000") }
    }

    var endpoint: ModbusEndpoint {
        if let tcp, let e = ModbusEndpoint.parseTCP(tcp) { return e }
        return .rtu(RTUSettings(device: rtu ?? "", baud: baud, parity: Parity(rawValue: parity.uppercased()) ?? .none,
                                dataBits: dataBits, stopBits: stopBits, rs485: rs485))
    }

    func makeClient() -> ModbusClient {
        ModbusClient(endpoint: endpoint, options: ModbusClientOptions(responseTimeout: .milliseconds(timeoutMs)))
    }

    /// Runs `body` with a new client and closes the client when `body` is done, whether it returned or threw.
    func withClient<T>(_ body: (ModbusClient) async throws -> T) async throws -> T {
        let client = makeClient()
        do {
            let result = try await body(client)
            await client.close()
            return result
        } catch {
            await client.close()
            throw error
        }
    }
}

/// Parses a register address: decimal or 0x hex.
func parseAddress(_ text: String) -> Int? {
    let t = text.lowercased()
    if t.hasPrefix("0x") { return Int(t.dropFirst(2), radix: 16) }
    return Int(t)
}

/// Exit codes with meaning (sysexits-style where one fits).
enum ExitCodes {
    /// A device answered with an error, or did not answer.
    static let device: Int32 = 1
    /// Bad arguments or input file (EX_DATAERR).
    static let validation: Int32 = 65
    /// Host or serial port unreachable (EX_UNAVAILABLE).
    static let unreachable: Int32 = 69
}

/// Prints one line to stderr and exits with a meaningful code.
func fail(_ error: ModbusError) -> ExitCode {
    printError("error: \(error)")
    switch error.kind {
    case .connectionRefused, .unreachable: return ExitCode(ExitCodes.unreachable)
    case .invalidRequest: return ExitCode(ExitCodes.validation)
    default: return ExitCode(ExitCodes.device)
    }
}

/// Set by `main` when the command line has `--json`: error lines then go out as JSON objects.
nonisolated(unsafe) var errorsAsJSON = false

/// Prints one line to stderr. An error line ("error: …", or "FILE:LINE:COL: error: …") is printed as
/// `{"error": "…"}` when the command runs with `--json`; other lines (notices, warnings) stay text.
func printError(_ line: String) {
    if errorsAsJSON, let json = errorJSON(line) {
        writeErrorLine(json)
    } else {
        writeErrorLine(line)
    }
}

/// `--json`'s error object: the message, and for an error in a file (`FILE:LINE:COL: …`)
/// where it is. `error` keeps the whole line in that case, as before the position fields existed.
struct JSONErrorLine: Encodable, Equatable {
    var error: String
    var file: String?
    var line: Int?
    var column: Int?

    /// The object for an error line ("error: …" or "FILE:LINE:COL: error: …"), nil for any other line.
    init?(_ text: String) {
        if text.hasPrefix("error: ") {
            error = String(text.dropFirst("error: ".count))
        } else if text.contains(": error: ") {
            error = text
        } else {
            return nil
        }
        // The first line's "FILE:LINE:COL: " prefix, when there is one (FILE may hold colons).
        let first = String(error.prefix { $0 != "\n" })
        if let m = try? #/^(.+?):(\d+):(\d+): /#.firstMatch(in: first), let l = Int(m.2), let c = Int(m.3) {
            file = String(m.1)
            line = l
            column = c
        }
    }
}

/// `{"error": message}` (with `file`, `line`, `column` when known) for an error line, nil for any other line.
func errorJSON(_ line: String) -> String? {
    guard let object = JSONErrorLine(line) else { return nil }
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    return (try? encoder.encode(object)).map { String(decoding: $0, as: UTF8.self) }
}

