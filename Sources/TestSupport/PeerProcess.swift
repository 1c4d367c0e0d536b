// Test support: start an independent peer (a pymodbus script, mbpoll, socat)
// as a child process, wait for it to say it is ready, and keep reading what it
// prints until it exits. Used only by tests.

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

/// What a child printed, read from both pipes for the child's whole life (so a chatty child never
/// blocks on a full pipe). Before the ready marker everything is kept; after it, the last
/// `keepBytes` of each stream. Guarded by `condition`.
final class PeerOutput: @unchecked Sendable {
    static let keepBytes = 256 * 1024
    let condition = NSCondition()
    /// stdout, stderr.
    var data = [Data(), Data()]
    var totalBytes = [0, 0]
    var closed = [false, false]
    var trimming = false

    /// Reads `handle` on its own thread until EOF.
    func drain(_ handle: FileHandle, stream: Int) {
        Thread.detachNewThread { [self] in
            while true {
                let chunk = handle.availableData  // blocks until data or EOF
                condition.lock()
                if chunk.isEmpty {
                    closed[stream] = true
                } else {
                    data[stream].append(chunk)
                    totalBytes[stream] += chunk.count
                    if trimming, data[stream].count > 2 * Self.keepBytes {
                        data[stream] = Data(data[stream].suffix(Self.keepBytes))
                    }
                }
                condition.broadcast()
                condition.unlock()
                if chunk.isEmpty { return }
            }
        }
    }

    func text(_ stream: Int) -> String {
        condition.lock()
        defer { condition.unlock() }
        return String(decoding: data[stream].suffix(Self.keepBytes), as: UTF8.self)
    }
}

/// A child process that prints `READY <port>` (or any line starting with
/// `READY`) on stdout once it serves. Both of its output streams are read for its whole life.
/// It is killed by `stop()` or on deinit.
public final class PeerProcess: @unchecked Sendable {
    public let process: Process
    /// The words after READY on the ready line (e.g. the port).
    public let readyWords: [String]
    /// Everything the process printed (on the watched stream) up to and including the ready marker.
    public let outputUntilReady: String
    private let output: PeerOutput

    public var port: Int { readyWords.first.flatMap { Int($0) } ?? 0 }

    /// What the child has printed on stdout so far (the last 256 KiB), for failure messages.
    public var standardOutput: String { output.text(0) }
    /// What the child has printed on stderr so far (the last 256 KiB).
    public var standardError: String { output.text(1) }
    /// Bytes read from (stdout, stderr) so far.
    public var bytesRead: (stdout: Int, stderr: Int) {
        output.condition.lock()
        defer { output.condition.unlock() }
        return (output.totalBytes[0], output.totalBytes[1])
    }

    private init(process: Process, readyWords: [String], outputUntilReady: String, output: PeerOutput) {
        self.process = process
        self.readyWords = readyWords
        self.outputUntilReady = outputUntilReady
        self.output = output
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
        let output = PeerOutput()
        output.drain(out.fileHandleForReading, stream: 0)
        output.drain(err.fileHandleForReading, stream: 1)
        let watched = readyOnStderr ? 1 : 0
        let anywhere = readyOnStderr || readyPrefix.hasPrefix("*")
        let marker = readyPrefix.hasPrefix("*") ? String(readyPrefix.dropFirst()) : readyPrefix
        output.condition.lock()
        defer { output.condition.unlock() }
        while true {
            let text = String(decoding: output.data[watched], as: UTF8.self)
            if anywhere, text.contains(marker) {
                output.trimming = true
                return PeerProcess(process: p, readyWords: [], outputUntilReady: text, output: output)
            }
            for line in text.split(separator: "\n") where !anywhere && line.hasPrefix(readyPrefix) {
                let words = line.dropFirst(readyPrefix.count).split(separator: " ").map(String.init)
                output.trimming = true
                return PeerProcess(process: p, readyWords: words, outputUntilReady: text, output: output)
            }
            if output.closed[0] && output.closed[1] {
                let errText = String(decoding: output.data[1], as: UTF8.self)
                p.waitUntilExit()
                throw TestSupportError.peerFailed("\(executable) \(arguments.joined(separator: " ")) exited \(p.terminationStatus) before ready: \(errText.suffix(2000))")
            }
            output.condition.wait()
        }
    }

    /// Waits (off the cooperative pool) until the process has exited and both of its streams are
    /// read to the end; returns its exit status.
    public func waitForExit() async -> Int32 {
        await withCheckedContinuation { (cont: CheckedContinuation<Int32, Never>) in
            Thread.detachNewThread { [self] in
                process.waitUntilExit()
                output.condition.lock()
                while !(output.closed[0] && output.closed[1]) { output.condition.wait() }
                output.condition.unlock()
                cont.resume(returning: process.terminationStatus)
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

/// The last line of a peer's output parsed as a JSON object (the verdict the Sparkplug host prints on exit),
/// with the line itself for messages.
public func lastJSONLine(_ output: String) throws -> (line: String, object: [String: Any]) {
    guard let line = output.split(separator: "\n").last.map(String.init) else {
        throw TestSupportError.peerFailed("the peer printed nothing")
    }
    guard let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
        throw TestSupportError.peerFailed("the peer's last line is not a JSON object: \(line.prefix(500))")
    }
    return (line, object)
}
