// Test support: start an independent peer (a pymodbus script, mbpoll, socat)
// as a child process and wait for it to say it is ready. Used only by tests.

import Foundation

public enum TestSupportError: Error, CustomStringConvertible {
    case peerFailed(String)
    public var description: String {
        switch self { case .peerFailed(let s): "peer failed: \(s)" }
    }
}

/// The package root (the directory holding Package.swift), found from this file's path.
public let packageRoot: URL = {
    var url = URL(fileURLWithPath: #filePath)
    while url.path != "/" {
        url.deleteLastPathComponent()
        if FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) { return url }
    }
    return URL(fileURLWithPath: FileManager.default.currentDirectoryPath)
}()

/// A child process that prints `READY <port>` (or any line starting with
/// `READY`) on stdout once it serves. It is killed by `stop()` or on deinit.
public final class PeerProcess: @unchecked Sendable {
    public let process: Process
    /// The words after READY on the ready line (e.g. the port).
    public let readyWords: [String]
    /// Everything the process printed (on the watched stream) up to and including the ready marker.
    public private(set) var outputUntilReady = ""
    private let stdoutPipe: Pipe
    private let stderrPipe: Pipe

    public var port: Int { readyWords.first.flatMap { Int($0) } ?? 0 }

    private init(process: Process, readyWords: [String], stdoutPipe: Pipe, stderrPipe: Pipe) {
        self.process = process
        self.readyWords = readyWords
        self.stdoutPipe = stdoutPipe
        self.stderrPipe = stderrPipe
    }

    /// Starts `executable` with `arguments` and blocks (off the cooperative
    /// pool) until it prints a line starting with `readyPrefix`, or exits.
    /// With `readyOnStderr`, the ready marker is looked for anywhere in a stderr line instead;
    /// a marker starting with `*` is looked for anywhere in the output.
    public static func start(_ executable: String, _ arguments: [String], readyPrefix: String = "READY",
                             readyOnStderr: Bool = false,
                             environment: [String: String]? = nil) async throws -> PeerProcess {
        try await withCheckedThrowingContinuation { (cont: CheckedContinuation<PeerProcess, Error>) in
            Thread.detachNewThread {
                do { cont.resume(returning: try startBlocking(executable, arguments, readyPrefix: readyPrefix, readyOnStderr: readyOnStderr, environment: environment)) }
                catch { cont.resume(throwing: error) }
            }
        }
    }

    /// Runs a python3 script from the package's Tests/peers directory.
    public static func python(_ script: String, _ arguments: [String] = []) async throws -> PeerProcess {
        let path = packageRoot.appendingPathComponent("Tests/peers").appendingPathComponent(script).path
        return try await start("/usr/bin/env", ["python3", "-u", path] + arguments)
    }

    static func startBlocking(_ executable: String, _ arguments: [String], readyPrefix: String,
                              readyOnStderr: Bool, environment: [String: String]?) throws -> PeerProcess {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = arguments
        if let environment { p.environment = environment }
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        p.standardInput = FileHandle.nullDevice
        try p.run()
        let handle = readyOnStderr ? err.fileHandleForReading : out.fileHandleForReading
        var buffer = Data()
        while true {
            let chunk = handle.availableData  // blocks until data or EOF
            if chunk.isEmpty {
                let errText = readyOnStderr ? String(decoding: buffer, as: UTF8.self)
                    : String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
                p.waitUntilExit()
                throw TestSupportError.peerFailed("\(executable) \(arguments.joined(separator: " ")) exited \(p.terminationStatus) before ready: \(errText.suffix(2000))")
            }
            buffer.append(chunk)
            let text = String(decoding: buffer, as: UTF8.self)
            if readyOnStderr || readyPrefix.hasPrefix("*"), text.contains(readyPrefix.hasPrefix("*") ? String(readyPrefix.dropFirst()) : readyPrefix) {
                let peer = PeerProcess(process: p, readyWords: [], stdoutPipe: out, stderrPipe: err)
                peer.outputUntilReady = text
                return peer
            }
            for line in text.split(separator: "\n") where !readyOnStderr && line.hasPrefix(readyPrefix) {
                let words = line.dropFirst(readyPrefix.count).split(separator: " ").map(String.init)
                return PeerProcess(process: p, readyWords: words, stdoutPipe: out, stderrPipe: err)
            }
        }
    }

    /// Stops the process (SIGTERM, then SIGKILL after 3 s) and reaps it.
    public func stop() {
        guard process.isRunning else { return }
        let pid = process.processIdentifier
        kill(pid, SIGTERM)
        let done = DispatchSemaphore(value: 0)
        // waitpid returns at once with ECHILD if Foundation reaped the child first.
        Thread.detachNewThread {
            var status: Int32 = 0
            while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
            done.signal()
        }
        if done.wait(timeout: .now() + .seconds(3)) == .timedOut {
            kill(pid, SIGKILL)
            done.wait()
        }
    }

    /// Sends a signal (e.g. SIGSTOP to freeze a server, SIGCONT to resume it).
    public func signal(_ sig: Int32) { kill(process.processIdentifier, sig) }

    /// Waits (off the cooperative pool) for the process to exit and returns what it printed on
    /// stdout after the ready line.
    public func remainingOutput() async -> String {
        let out = stdoutPipe.fileHandleForReading
        let p = process
        return await withCheckedContinuation { cont in
            Thread.detachNewThread {
                let data = out.readDataToEndOfFile()
                p.waitUntilExit()
                cont.resume(returning: String(decoding: data, as: UTF8.self))
            }
        }
    }

    /// Writes a line to the peer's stdin is not supported; peers are controlled by signals or files.
    deinit { stop() }
}

/// Runs a command to completion and returns (status, stdout, stderr). Blocking; call from tests only.
public func runCommand(_ executable: String, _ arguments: [String], environment: [String: String]? = nil) async throws -> (status: Int32, stdout: String, stderr: String) {
    try await withCheckedThrowingContinuation { cont in
        Thread.detachNewThread {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: executable)
            p.arguments = arguments
            if let environment { p.environment = environment }
            let out = Pipe(), err = Pipe()
            p.standardOutput = out
            p.standardError = err
            p.standardInput = FileHandle.nullDevice
            do { try p.run() } catch { cont.resume(throwing: error); return }
            // Drain both pipes concurrently to avoid a full-pipe deadlock.
            final class Box: @unchecked Sendable { var data = Data() }  // written before g.leave(), read after g.wait()
            let errBox = Box()
            let g = DispatchGroup()
            g.enter()
            Thread.detachNewThread { errBox.data = err.fileHandleForReading.readDataToEndOfFile(); g.leave() }
            let outData = out.fileHandleForReading.readDataToEndOfFile()
            g.wait()
            let errData = errBox.data
            p.waitUntilExit()
            cont.resume(returning: (p.terminationStatus, String(decoding: outData, as: UTF8.self), String(decoding: errData, as: UTF8.self)))
        }
    }
}

/// Path of the built `switchyard` executable next to the test bundle, for CLI tests.
public func switchyardExecutable() -> String {
    // Test bundles live in .build/<triple>/debug/; the executable is beside them.
    var url = Bundle.main.bundleURL
    for _ in 0..<4 {
        let candidate = url.appendingPathComponent("switchyard").path
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        url.deleteLastPathComponent()
    }
    return packageRoot.appendingPathComponent(".build/debug/switchyard").path
}
