// I2C on Linux through libi2c (`/dev/i2c-N`, the I2C_SLAVE ioctl, SMBus calls).
// Every call blocks, so all of them run on one dedicated thread (a
// one-thread NIOThreadPool), never on Swift's cooperative pool. The file
// descriptor and the currently selected address are touched only there.

import Basics
import CI2C
import NIOPosix

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// An I2C bus device such as `/dev/i2c-1`.
public final class LinuxI2CBus: I2CBus, @unchecked Sendable {
    // Sendable: `fd` and `selected` are only read or written on `pool`'s single thread.
    public let name: String
    private let pool: NIOThreadPool
    private var fd: Int32 = -1
    private var selected: Int32 = -1

    /// Opens the bus device (on the bus thread). Throws `.openFailed` naming the path and errno.
    public static func open(_ path: String) async throws(I2CError) -> LinuxI2CBus {
        let bus = LinuxI2CBus(path: path)
        try await bus.onThread(address: nil, register: nil, operation: "open") { () throws(I2CError) in
            let fd = Glibc.open(path, O_RDWR | O_CLOEXEC)
            let e = ci2c_errno()
            guard fd >= 0 else {
                throw I2CError(.openFailed, bus: path, operation: "open", errno: e, detail: errnoText(e))
            }
            bus.fd = fd
        }
        return bus
    }

    /// Opens `/dev/i2c-<number>`.
    public static func open(number: Int) async throws(I2CError) -> LinuxI2CBus {
        try await open("/dev/i2c-\(number)")
    }

    private init(path: String) {
        name = path
        pool = NIOThreadPool(numberOfThreads: 1)
        pool.start()
    }

    deinit {
        // Runs after every operation has finished (each holds a strong reference).
        if fd >= 0 { _ = Glibc.close(fd) }
        pool.shutdownGracefully { _ in }
    }

    /// Closes the descriptor; later calls throw `.closed`.
    public func close() async {
        try? await onThread(address: nil, register: nil, operation: "close") { () throws(I2CError) in
            if self.fd >= 0 { _ = Glibc.close(self.fd) }
            self.fd = -1
            self.selected = -1
        }
    }

    // MARK: Thread hop

    private func onThread<T: Sendable>(address: UInt8?, register: UInt8?, operation: String,
                                       _ body: @escaping @Sendable () throws(I2CError) -> T) async throws(I2CError) -> T {
        let result: Result<T, I2CError>
        do {
            result = try await pool.runIfActive { () -> Result<T, I2CError> in
                do throws(I2CError) { return .success(try body()) } catch { return .failure(error) }
            }
        } catch {
            throw I2CError(.closed, bus: name, address: address, register: register, operation: operation, detail: "the bus thread has stopped")
        }
        return try result.get()
    }

    /// Runs one SMBus call for `address` on the bus thread: selects the address
    /// (I2C_SLAVE) when it changed, calls `call`, and reads errno immediately.
    private func transfer(_ address: UInt8, _ register: UInt8?, _ operation: String,
                          _ call: @escaping @Sendable (Int32) -> Int32) async throws(I2CError) -> Int32 {
        try validate(address: address, register: register, operation: operation)
        return try await onThread(address: address, register: register, operation: operation) { () throws(I2CError) -> Int32 in
            guard self.fd >= 0 else {
                throw I2CError(.closed, bus: self.name, address: address, register: register, operation: operation, detail: "the bus is closed")
            }
            if self.selected != Int32(address) {
                let rc = ci2c_set_slave(self.fd, Int32(address))
                let e = ci2c_errno()
                guard rc >= 0 else {
                    throw I2CError(.io, bus: self.name, address: address, register: register,
                                   operation: "select address (I2C_SLAVE)", errno: e,
                                   detail: e == EBUSY ? "the address is claimed by a kernel driver" : errnoText(e))
                }
                self.selected = Int32(address)
            }
            let rc = call(self.fd)
            let e = ci2c_errno()
            guard rc >= 0 else {
                // libi2c returns -errno and leaves errno set; prefer errno, fall back to -rc.
                let code = e != 0 ? e : -rc
                throw I2CError(Self.kind(code), bus: self.name, address: address, register: register,
                               operation: operation, errno: code, detail: errnoText(code))
            }
            return rc
        }
    }

    static func kind(_ e: Int32) -> I2CError.Kind {
        switch e {
        case ENXIO, EREMOTEIO, EIO: .noAcknowledge
        default: .io
        }
    }

    // MARK: I2CBus

    public func readByte(address: UInt8) async throws(I2CError) -> UInt8 {
        UInt8(truncatingIfNeeded: try await transfer(address, nil, "read byte") { i2c_smbus_read_byte($0) })
    }

    public func writeByte(address: UInt8, _ value: UInt8) async throws(I2CError) {
        _ = try await transfer(address, nil, "write byte") { i2c_smbus_write_byte($0, value) }
    }

    public func readByteData(address: UInt8, register: UInt8) async throws(I2CError) -> UInt8 {
        UInt8(truncatingIfNeeded: try await transfer(address, register, "read byte data") { i2c_smbus_read_byte_data($0, register) })
    }

    public func writeByteData(address: UInt8, register: UInt8, _ value: UInt8) async throws(I2CError) {
        _ = try await transfer(address, register, "write byte data") { i2c_smbus_write_byte_data($0, register, value) }
    }

    public func readWordData(address: UInt8, register: UInt8) async throws(I2CError) -> UInt16 {
        UInt16(truncatingIfNeeded: try await transfer(address, register, "read word data") { i2c_smbus_read_word_data($0, register) })
    }

    public func writeWordData(address: UInt8, register: UInt8, _ value: UInt16) async throws(I2CError) {
        _ = try await transfer(address, register, "write word data") { i2c_smbus_write_word_data($0, register, value) }
    }

    public func readBlockData(address: UInt8, register: UInt8, count: Int) async throws(I2CError) -> [UInt8] {
        try validate(address: address, register: register, count: count, operation: "read block data")
        let box = BlockBox(count: count)
        let n = try await transfer(address, register, "read block data") { fd in
            box.bytes.withUnsafeMutableBufferPointer { i2c_smbus_read_i2c_block_data(fd, register, UInt8(count), $0.baseAddress) }
        }
        return Array(box.bytes.prefix(Int(n)))
    }

    public func writeBlockData(address: UInt8, register: UInt8, _ bytes: [UInt8]) async throws(I2CError) {
        try validate(address: address, register: register, count: bytes.count, operation: "write block data")
        _ = try await transfer(address, register, "write block data") { fd in
            bytes.withUnsafeBufferPointer { i2c_smbus_write_i2c_block_data(fd, register, UInt8(bytes.count), $0.baseAddress) }
        }
    }
}

/// A buffer filled on the bus thread and read after the hop returns.
private final class BlockBox: @unchecked Sendable {
    var bytes: [UInt8]
    init(count: Int) { bytes = [UInt8](repeating: 0, count: count) }
}

