// Thin, blocking wrappers over libmosquitto calls, and an MQTT client whose handle lives on
// one dedicated thread.
//
// `MosquittoHandle` owns one `struct mosquitto *`. It is not Sendable: it is created, used and
// destroyed on the client's own thread, which runs the network loop itself (poll on the
// socket and a wake pipe, then mosquitto_loop_read/write/misc), so libmosquitto never runs a
// thread of its own and never reconnects behind our back (a reconnect must carry a new will
// with the next bdSeq). Every C call has one helper that turns its return code (and errno for
// MOSQ_ERR_ERRNO) into a `MosquittoError` naming the call. Blocking calls (connect, DNS) run on
// that thread, never on the cooperative pool.

import CMosquitto
import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A libmosquitto call that failed: the call's name, its MOSQ_ERR_* code and, for
/// MOSQ_ERR_ERRNO, errno; `description` reads "mosquitto_connect: Connection refused".
public struct MosquittoError: Error, Sendable, Hashable, CustomStringConvertible {
    public let call: String
    public let code: Int32
    public let errno: Int32

    public init(call: String, code: Int32, errno: Int32 = 0) {
        self.call = call
        self.code = code
        self.errno = errno
    }

    public static let errnoCode = Int32(MOSQ_ERR_ERRNO.rawValue)
    public static let noConnection = Int32(MOSQ_ERR_NO_CONN.rawValue)
    public static let invalid = Int32(MOSQ_ERR_INVAL.rawValue)

    public var message: String {
        if code == Self.errnoCode { return String(cString: strerror(errno)) }
        return String(cString: mosquitto_strerror(code))
    }

    public var description: String { "\(call): \(message)" }
}

/// Turns a libmosquitto return code into a typed error naming the call.
@inline(__always)
func mosqCheck(_ call: String, _ rc: Int32) throws(MosquittoError) {
    guard rc != Int32(MOSQ_ERR_SUCCESS.rawValue) else { return }
    throw MosquittoError(call: call, code: rc, errno: rc == MosquittoError.errnoCode ? cmosquitto_errno() : 0)
}

private let libraryInitialised: Bool = {
    mosquitto_lib_init()
    return true
}()

/// The MQTT will: published by the broker when the client's connection ends without DISCONNECT.
public struct MQTTWill: Sendable, Hashable {
    public var topic: String
    public var payload: [UInt8]
    public var qos: Int
    public var retain: Bool

    public init(topic: String, payload: [UInt8], qos: Int = 1, retain: Bool = false) {
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
    }
}

/// TLS for the broker connection: a CA (file or directory) and optionally a client certificate and key.
public struct MQTTTLS: Sendable, Hashable {
    public var caFile: String?
    public var caPath: String?
    public var certFile: String?
    public var keyFile: String?
    /// Skip the server hostname check (testing only).
    public var insecure: Bool

    public init(caFile: String? = nil, caPath: String? = nil, certFile: String? = nil, keyFile: String? = nil, insecure: Bool = false) {
        self.caFile = caFile
        self.caPath = caPath
        self.certFile = certFile
        self.keyFile = keyFile
        self.insecure = insecure
    }
}

/// Where and how to connect.
public struct MQTTConfiguration: Sendable, Hashable {
    public var host: String
    public var port: Int
    public var clientID: String
    public var keepAlive: Int
    public var cleanSession: Bool
    public var username: String?
    public var password: String?
    public var tls: MQTTTLS?

    public init(host: String, port: Int, clientID: String, keepAlive: Int = 30, cleanSession: Bool = true,
                username: String? = nil, password: String? = nil, tls: MQTTTLS? = nil) {
        self.host = host
        self.port = port
        self.clientID = clientID
        self.keepAlive = keepAlive
        self.cleanSession = cleanSession
        self.username = username
        self.password = password
        self.tls = tls
    }
}

/// A message received on a subscription.
public struct MQTTMessage: Sendable, Hashable {
    public var topic: String
    public var payload: [UInt8]
    public var qos: Int
    public var retain: Bool

    public init(topic: String, payload: [UInt8], qos: Int, retain: Bool) {
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
    }
}

/// What the client's thread reports, in order.
public enum MQTTEvent: Sendable, Hashable {
    /// The broker accepted the connection (CONNACK 0).
    case connected
    /// The broker refused the connection (CONNACK code and libmosquitto's reason).
    case connectionRefused(code: Int32, reason: String)
    /// The connection ended; `unexpected` is false only after our own DISCONNECT.
    case disconnected(unexpected: Bool, reason: String)
    case message(MQTTMessage)
}

/// One step for the client's thread; `MQTTClient.submit` runs a list of them in order.
public enum MQTTOperation: Sendable, Hashable {
    case connect(will: MQTTWill?)
    case subscribe(String, qos: Int)
    case publish(topic: String, payload: [UInt8], qos: Int, retain: Bool)
    case disconnect
}

/// One `struct mosquitto *`, one helper per C call. Not Sendable: used only on the owning thread.
final class MosquittoHandle {
    let raw: OpaquePointer

    init(clientID: String, cleanSession: Bool, userdata: UnsafeMutableRawPointer?) throws(MosquittoError) {
        _ = libraryInitialised
        guard let m = mosquitto_new(clientID, cleanSession, userdata) else {
            throw MosquittoError(call: "mosquitto_new", code: MosquittoError.errnoCode, errno: cmosquitto_errno())
        }
        raw = m
    }

    deinit { mosquitto_destroy(raw) }

    func willSet(_ will: MQTTWill) throws(MosquittoError) {
        let rc = will.payload.withUnsafeBytes { buf in
            mosquitto_will_set(raw, will.topic, Int32(buf.count), buf.baseAddress, Int32(will.qos), will.retain)
        }
        try mosqCheck("mosquitto_will_set", rc)
    }

    func willClear() throws(MosquittoError) {
        try mosqCheck("mosquitto_will_clear", mosquitto_will_clear(raw))
    }

    func usernamePasswordSet(_ username: String?, _ password: String?) throws(MosquittoError) {
        try mosqCheck("mosquitto_username_pw_set", mosquitto_username_pw_set(raw, username, password))
    }

    func tlsSet(_ tls: MQTTTLS) throws(MosquittoError) {
        try mosqCheck("mosquitto_tls_set", mosquitto_tls_set(raw, tls.caFile, tls.caPath, tls.certFile, tls.keyFile, nil))
        if tls.insecure {
            try mosqCheck("mosquitto_tls_insecure_set", mosquitto_tls_insecure_set(raw, true))
        }
    }

    /// Blocking: resolves the host and opens the TCP (and TLS) connection, then sends CONNECT.
    func connect(host: String, port: Int, keepAlive: Int) throws(MosquittoError) {
        try mosqCheck("mosquitto_connect", mosquitto_connect(raw, host, Int32(port), Int32(keepAlive)))
    }

    /// A clean DISCONNECT: the broker drops the will.
    func disconnect() throws(MosquittoError) {
        try mosqCheck("mosquitto_disconnect", mosquitto_disconnect(raw))
    }

    func publish(topic: String, payload: [UInt8], qos: Int, retain: Bool) throws(MosquittoError) -> Int32 {
        var mid: Int32 = 0
        let rc = payload.withUnsafeBytes { buf in
            mosquitto_publish(raw, &mid, topic, Int32(buf.count), buf.baseAddress, Int32(qos), retain)
        }
        try mosqCheck("mosquitto_publish", rc)
        return mid
    }

    func subscribe(_ pattern: String, qos: Int) throws(MosquittoError) -> Int32 {
        var mid: Int32 = 0
        try mosqCheck("mosquitto_subscribe", mosquitto_subscribe(raw, &mid, pattern, Int32(qos)))
        return mid
    }

    /// The callbacks' context this handle was created with (the owning thread's).
    fileprivate var context: CallbackContext? {
        mosquitto_userdata(raw).map { Unmanaged<CallbackContext>.fromOpaque($0).takeUnretainedValue() }
    }

    var socket: Int32 { mosquitto_socket(raw) }
    var wantsWrite: Bool { mosquitto_want_write(raw) }

    func loopRead() throws(MosquittoError) {
        try mosqCheck("mosquitto_loop_read", mosquitto_loop_read(raw, 1))
    }

    func loopWrite() throws(MosquittoError) {
        try mosqCheck("mosquitto_loop_write", mosquitto_loop_write(raw, 1))
    }

    func loopMisc() throws(MosquittoError) {
        try mosqCheck("mosquitto_loop_misc", mosquitto_loop_misc(raw))
    }
}

/// Acknowledgements still awaited by one `submitAcknowledged` (owning thread only).
private final class AckCounter {
    var value: Int
    init(_ value: Int) { self.value = value }
}

/// The callbacks' context: lives as long as the owning thread, touched only on it.
private final class CallbackContext {
    let continuation: AsyncStream<MQTTEvent>.Continuation
    var connected = false
    /// A connect was sent and no CONNACK has come yet: a connection that ends now (a TLS handshake the broker
    /// or we refused, a socket closed before CONNACK) is a failed attempt, and must be reported as one, or the
    /// owner would wait for an answer that never comes.
    var attempting = false
    /// Acknowledged submissions (`submitAcknowledged`): message id -> what to call once the broker has it.
    var awaiting: [Int32: (MosquittoError?) -> Void] = [:]
    /// While an acknowledged publish call runs: ids whose on_publish fired inside it (libmosquitto may write a
    /// QoS 0 message, and call on_publish, before mosquitto_publish returns its id).
    var capturing = false
    var confirmedEarly: Set<Int32> = []
    init(_ continuation: AsyncStream<MQTTEvent>.Continuation) { self.continuation = continuation }

    func confirmed(_ mid: Int32) {
        if let done = awaiting.removeValue(forKey: mid) { done(nil) } else if capturing { confirmedEarly.insert(mid) }
    }

    /// Fails every acknowledged submission still waiting (the connection, or the client, ended first).
    func failAwaiting(_ reason: String) {
        let waiting = awaiting
        awaiting.removeAll()
        for done in waiting.values { done(MosquittoError(call: "awaiting acknowledgement (\(reason))", code: MosquittoError.noConnection)) }
    }

    func lost(unexpected: Bool, reason: String) {
        failAwaiting(reason)
        guard connected || attempting else { return }
        let failedAttempt = !connected
        connected = false
        attempting = false
        continuation.yield(.disconnected(unexpected: unexpected || failedAttempt, reason: reason))
    }
}

/// An MQTT client over libmosquitto. The handle lives on one dedicated thread that runs the
/// network loop; the async methods hand a job to that thread and await its result, so nothing
/// blocks the cooperative pool. Connection state and messages arrive on `events`.
///
/// The client never reconnects by itself: after `.disconnected`, the owner calls `connect(will:)`
/// again (Sparkplug needs a new will, with the next bdSeq, on every session).
public final class MQTTClient: Sendable {
    public let configuration: MQTTConfiguration
    public let events: AsyncStream<MQTTEvent>

    private let shared: ClientShared

    public init(_ configuration: MQTTConfiguration) {
        self.configuration = configuration
        let (stream, continuation) = AsyncStream<MQTTEvent>.makeStream()
        events = stream
        let shared = ClientShared()
        self.shared = shared
        // The thread holds the shared job queue, not the client, so dropping the client stops it.
        let thread = Thread { shared.ownerThread(configuration, continuation) }
        thread.name = "mqtt \(configuration.clientID)"
        thread.start()
    }

    deinit { shared.stop() }

    /// Connects (blocking DNS/TCP/TLS on the client's thread) with `will`; `.connected` follows on
    /// `events` when the broker's CONNACK arrives.
    public func connect(will: MQTTWill?) async throws(MosquittoError) {
        let config = configuration
        try await perform { (h: MosquittoHandle) throws(MosquittoError) in try Self.connect(h, config, will) }
    }

    private static func connect(_ h: MosquittoHandle, _ config: MQTTConfiguration, _ will: MQTTWill?) throws(MosquittoError) {
        if let will { try h.willSet(will) } else { try h.willClear() }
        if config.username != nil || config.password != nil { try h.usernamePasswordSet(config.username, config.password) }
        if let tls = config.tls { try h.tlsSet(tls) }
        try h.connect(host: config.host, port: config.port, keepAlive: config.keepAlive)
        if let userdata = mosquitto_userdata(h.raw) {
            Unmanaged<CallbackContext>.fromOpaque(userdata).takeUnretainedValue().attempting = true
        }
    }

    /// Queues `operations` for the client's thread, which runs them in order; `completion` gets one
    /// result per operation (nil: done). Synchronous, so operations submitted one after another
    /// (e.g. from one actor) reach the broker in submission order.
    public func submit(_ operations: [MQTTOperation], completion: @escaping @Sendable ([MosquittoError?]) -> Void) {
        let config = configuration
        shared.submit { handle in
            guard let handle else {
                completion(operations.map { _ in MosquittoError(call: "mosquitto_new", code: MosquittoError.invalid) })
                return
            }
            var results: [MosquittoError?] = []
            for op in operations {
                do throws(MosquittoError) {
                    switch op {
                    case .connect(let will): try Self.connect(handle, config, will)
                    case let .subscribe(pattern, qos): _ = try handle.subscribe(pattern, qos: qos)
                    case let .publish(topic, payload, qos, retain): _ = try handle.publish(topic: topic, payload: payload, qos: qos, retain: retain)
                    case .disconnect: try handle.disconnect()
                    }
                    results.append(nil)
                } catch {
                    results.append(error)
                }
            }
            completion(results)
        }
    }

    /// Like `submit`, but `completion` is called once the broker has everything: every publish of QoS 0 written
    /// whole to the TCP socket (libmosquitto's on_publish), of QoS 1 acknowledged (PUBACK), and every
    /// subscribe acknowledged (SUBACK). A broker handles one connection's packets in order, so a SUBACK after
    /// QoS 0 publishes means it has read them. `completion` gets an error if an operation fails or the
    /// connection (or the client) ends first. Synchronous, in submission order with `submit`.
    public func submitAcknowledged(_ operations: [MQTTOperation], completion: @escaping @Sendable (MosquittoError?) -> Void) {
        let config = configuration
        shared.submit { handle in
            guard let handle, let context = handle.context else {
                completion(MosquittoError(call: "mosquitto_new", code: MosquittoError.invalid))
                return
            }
            var mids: Set<Int32> = []
            var failure: MosquittoError?
            for op in operations where failure == nil {
                do throws(MosquittoError) {
                    switch op {
                    case .connect(let will): try Self.connect(handle, config, will)
                    case let .subscribe(pattern, qos): mids.insert(try handle.subscribe(pattern, qos: qos))
                    case let .publish(topic, payload, qos, retain):
                        context.capturing = true
                        defer { context.capturing = false }
                        let mid = try handle.publish(topic: topic, payload: payload, qos: qos, retain: retain)
                        if context.confirmedEarly.remove(mid) == nil { mids.insert(mid) }
                        context.confirmedEarly.removeAll()
                    case .disconnect: try handle.disconnect()
                    }
                } catch {
                    failure = error
                }
            }
            if let failure {
                for mid in mids { context.awaiting[mid] = nil }
                completion(failure)
                return
            }
            if mids.isEmpty { completion(nil); return }
            // One completion for the whole list: the last id confirmed calls it.
            let remaining = AckCounter(mids.count)
            for mid in mids {
                context.awaiting[mid] = { error in
                    guard remaining.value > 0 else { return }
                    if let error { remaining.value = 0; completion(error); return }
                    remaining.value -= 1
                    if remaining.value == 0 { completion(nil) }
                }
            }
        }
    }

    /// Publishes; returns libmosquitto's message id. Fails with MOSQ_ERR_NO_CONN when not connected.
    @discardableResult
    public func publish(topic: String, payload: [UInt8], qos: Int = 0, retain: Bool = false) async throws(MosquittoError) -> Int32 {
        try await perform { (h: MosquittoHandle) throws(MosquittoError) in
            try h.publish(topic: topic, payload: payload, qos: qos, retain: retain)
        }
    }

    public func subscribe(_ pattern: String, qos: Int = 1) async throws(MosquittoError) {
        _ = try await perform { (h: MosquittoHandle) throws(MosquittoError) in try h.subscribe(pattern, qos: qos) }
    }

    /// A clean MQTT DISCONNECT (the broker discards the will).
    public func disconnect() async throws(MosquittoError) {
        try await perform { (h: MosquittoHandle) throws(MosquittoError) in try h.disconnect() }
    }

    /// Ends the TCP connection without DISCONNECT, as a crash or a cut cable would: the broker
    /// publishes the will. For tests and for giving up on a wedged session.
    public func dropConnection() async throws(MosquittoError) {
        try await perform { (h: MosquittoHandle) throws(MosquittoError) in
            let fd = h.socket
            guard fd >= 0 else { throw MosquittoError(call: "mosquitto_socket", code: MosquittoError.noConnection) }
            if Glibc.shutdown(fd, Int32(SHUT_RDWR)) != 0 {
                throw MosquittoError(call: "shutdown", code: MosquittoError.errnoCode, errno: cmosquitto_errno())
            }
        }
    }

    private func perform<T: Sendable>(_ body: @escaping @Sendable (MosquittoHandle) throws(MosquittoError) -> T) async throws(MosquittoError) -> T {
        let shared = shared
        let result: Result<T, MosquittoError> = await withCheckedContinuation { cont in
            shared.submit { handle in
                guard let handle else {
                    cont.resume(returning: .failure(MosquittoError(call: "mosquitto_new", code: MosquittoError.invalid)))
                    return
                }
                do throws(MosquittoError) { cont.resume(returning: .success(try body(handle))) }
                catch { cont.resume(returning: .failure(error)) }
            }
        }
        return try result.get()
    }

    /// Stops the thread and destroys the handle (no DISCONNECT is sent); `events` finishes.
    public func close() { shared.stop() }
}

/// The job queue and wake pipe shared by the client and its thread.
private final class ClientShared: Sendable {
    typealias Job = @Sendable (MosquittoHandle?) -> Void
    private let jobs = Mutex<(queue: [Job], stopping: Bool)>(([], false))
    private let wakeRead: Int32
    private let wakeWrite: Int32

    init() {
        var fds: [Int32] = [-1, -1]
        if pipe(&fds) == 0 {
            _ = fcntl(fds[0], F_SETFL, O_NONBLOCK)
            _ = fcntl(fds[1], F_SETFL, O_NONBLOCK)
        }
        wakeRead = fds[0]
        wakeWrite = fds[1]
    }

    deinit {
        Glibc.close(wakeRead)
        Glibc.close(wakeWrite)
    }

    /// Queues `job` for the owning thread; after stop, runs it at once with no handle (it fails).
    func submit(_ job: @escaping Job) {
        let accepted = jobs.withLock { state -> Bool in
            guard !state.stopping else { return false }
            state.queue.append(job)
            return true
        }
        if accepted { wake() } else { job(nil) }
    }

    func stop() {
        jobs.withLock { $0.stopping = true }
        wake()
    }

    private func wake() {
        var one: UInt8 = 1
        _ = Glibc.write(wakeWrite, &one, 1)
    }

    func ownerThread(_ configuration: MQTTConfiguration, _ continuation: AsyncStream<MQTTEvent>.Continuation) {
        let context = CallbackContext(continuation)
        let userdata = Unmanaged.passRetained(context).toOpaque()
        defer { Unmanaged<CallbackContext>.fromOpaque(userdata).release() }
        var handle: MosquittoHandle? = try? MosquittoHandle(clientID: configuration.clientID, cleanSession: configuration.cleanSession, userdata: userdata)
        if let handle { Self.installCallbacks(handle) }
        var drain = [UInt8](repeating: 0, count: 64)
        while true {
            let (batch, stopping) = jobs.withLock { state in
                let batch = state.queue
                state.queue.removeAll()
                return (batch, state.stopping)
            }
            for job in batch { job(handle) }
            if stopping { break }
            guard let h = handle else {
                var pfd = pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0)
                _ = poll(&pfd, 1, -1)
                _ = Glibc.read(wakeRead, &drain, drain.count)
                continue
            }
            let sock = h.socket
            var fds = [pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0)]
            if sock >= 0 {
                fds.append(pollfd(fd: sock, events: Int16(POLLIN) | (h.wantsWrite ? Int16(POLLOUT) : 0), revents: 0))
            }
            // Wake at least every second for keepalive (mosquitto_loop_misc).
            _ = poll(&fds, nfds_t(fds.count), 1000)
            if fds[0].revents != 0 { _ = Glibc.read(wakeRead, &drain, drain.count) }
            guard sock >= 0 else { continue }
            do throws(MosquittoError) {
                if fds[1].revents & Int16(POLLIN | POLLHUP | POLLERR) != 0 { try h.loopRead() }
                if h.socket >= 0, fds[1].revents & Int16(POLLOUT) != 0 { try h.loopWrite() }
                if h.socket >= 0 { try h.loopMisc() }
            } catch {
                // libmosquitto closes the socket and calls on_disconnect; this covers the case where it did not.
                context.lost(unexpected: true, reason: error.description)
            }
        }
        // Destroying the handle closes the socket without DISCONNECT (the broker sends the will).
        handle = nil
        context.failAwaiting("client closed")
        // Jobs queued after the last batch but before stop was seen fail without a handle.
        let rest = jobs.withLock { state in let r = state.queue; state.queue.removeAll(); return r }
        for job in rest { job(nil) }
        continuation.finish()
    }
    private static func installCallbacks(_ handle: MosquittoHandle) {
        mosquitto_connect_callback_set(handle.raw) { _, userdata, rc in
            guard let userdata else { return }
            let context = Unmanaged<CallbackContext>.fromOpaque(userdata).takeUnretainedValue()
            context.attempting = false
            if rc == 0 {
                context.connected = true
                context.continuation.yield(.connected)
            } else {
                context.continuation.yield(.connectionRefused(code: rc, reason: String(cString: mosquitto_connack_string(rc))))
            }
        }
        mosquitto_disconnect_callback_set(handle.raw) { _, userdata, rc in
            guard let userdata else { return }
            let context = Unmanaged<CallbackContext>.fromOpaque(userdata).takeUnretainedValue()
            context.lost(unexpected: rc != 0, reason: rc == 0 ? "disconnected" : String(cString: mosquitto_strerror(rc)))
        }
        mosquitto_publish_callback_set(handle.raw) { _, userdata, mid in
            guard let userdata else { return }
            Unmanaged<CallbackContext>.fromOpaque(userdata).takeUnretainedValue().confirmed(mid)
        }
        mosquitto_subscribe_callback_set(handle.raw) { _, userdata, mid, _, _ in
            guard let userdata else { return }
            Unmanaged<CallbackContext>.fromOpaque(userdata).takeUnretainedValue().confirmed(mid)
        }
        mosquitto_message_callback_set(handle.raw) { _, userdata, message in
            guard let userdata, let m = message?.pointee else { return }
            let context = Unmanaged<CallbackContext>.fromOpaque(userdata).takeUnretainedValue()
            let topic = m.topic.map { String(cString: $0) } ?? ""
            var payload: [UInt8] = []
            if let p = m.payload, m.payloadlen > 0 {
                payload = Array(UnsafeRawBufferPointer(start: p, count: Int(m.payloadlen)))
            }
            context.continuation.yield(.message(MQTTMessage(topic: topic, payload: payload, qos: Int(m.qos), retain: m.retain)))
        }
    }
}
