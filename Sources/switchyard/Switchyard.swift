import ArgumentParser
import Foundation

@main
struct Switchyard: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "switchyard",
        abstract: "Power-budget controller for mixed bitcoin-mining and AI-inference sites.",
        version: SwitchyardVersion.string,
        subcommands: [
            ModbusCommand.self,
            Profile.self,
            Probe.self,
            Dispatch.self,
            Sim.self,
            Serve.self,
            HubCommand.self,
            Replay.self,
            Status.self,
            Devices.self,
            Explain.self,
            Event.self,
            Mode.self,
            Config.self,
            Token.self,
            Audit.self,
        ]
    )

    /// Runs the command; every failure ends in one `error: …` line on stderr (`{"error": …}` with `--json`).
    static func main() async {
        let arguments = Array(CommandLine.arguments.dropFirst())
        errorsAsJSON = arguments.contains("--json")
        var command: any ParsableCommand
        do {
            command = try parseAsRoot(arguments)
        } catch {
            // "--address -1" reads -1 as an option, so the parser says "Missing value": pass the
            // negative number as the option's value (--address=-1) and let the command say what is wrong with it.
            guard let fixed = joinNegativeValues(arguments, after: error), fixed != arguments else { reportAndExit(error) }
            do { command = try parseAsRoot(fixed) } catch { reportAndExit(error) }
        }
        do {
            if var c = command as? any AsyncParsableCommand { try await c.run() } else { try command.run() }
        } catch {
            reportAndExit(error)
        }
    }

    /// `--opt -N` → `--opt=-N` for the option a "Missing value" error names.
    static func joinNegativeValues(_ args: [String], after error: any Error) -> [String]? {
        var message = Self.message(for: error)
        if message.hasPrefix("Error: ") { message = String(message.dropFirst(7)) }
        guard message.hasPrefix("Missing value for '") else { return nil }
        var out: [String] = []
        var k = 0
        while k < args.count {
            let a = args[k]
            if a.hasPrefix("--"), !a.contains("="), k + 1 < args.count, args[k + 1].count > 1, args[k + 1].hasPrefix("-"),
               Double(args[k + 1]) != nil || args[k + 1].dropFirst().first?.isNumber == true,
               message.hasPrefix("Missing value for '\(a) ") || message.hasPrefix("Missing value for '\(a)'") {
                out.append("\(a)=\(args[k + 1])")
                k += 2
            } else {
                out.append(a)
                k += 1
            }
        }
        return out
    }

    /// Prints the error as one line (help and --version print as usual) and exits with its code.
    static func reportAndExit(_ error: any Error) -> Never {
        let code = exitCode(for: error)
        if error is ExitCode || code == .success {
            exit(withError: error)  // already reported by the command, or --help / --version
        }
        let message = Self.message(for: error).trimmingCharacters(in: .whitespacesAndNewlines)
        var text = message.isEmpty ? "\(error)" : message
        if text.hasPrefix("Error: ") { text = String(text.dropFirst(7)) }
        text = text.replacingOccurrences(of: "\n", with: "; ")
        printError("error: \(text)")
        exit(withError: ExitCode(code.rawValue))
    }
}

enum SwitchyardVersion {
    static let string = "0.1.0"
}
