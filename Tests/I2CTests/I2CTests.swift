import Foundation
import Testing
@testable import I2C

#if canImport(Glibc)
import Glibc
#endif

@Suite("Temperature codecs and drivers")
struct TemperatureTests {
    /// Datasheet examples: TMP102 table 5 (12-bit), LM75 9-bit and LM75B 11-bit.
    @Test(arguments: [
        (UInt16(0x7FF0), 12, 127.9375), (0x6400, 12, 100.0), (0x1900, 12, 25.0), (0x0040, 12, 0.25), (0x0000, 12, 0.0),
        (0xFFC0, 12, -0.25), (0xE700, 12, -25.0), (0xC900, 12, -55.0),
        (0x7D00, 9, 125.0), (0x1980, 9, 25.5), (0xFF80, 9, -0.5), (0xC900, 9, -55.0),
        (0x7F00, 11, 127.0), (0x0020, 11, 0.125), (0xFFE0, 11, -0.125), (0xC920, 11, -54.875),
    ] as [(UInt16, Int, Double)])
    func decodesDatasheetValues(register: UInt16, bits: Int, celsius: Double) {
        #expect(TemperatureCodec.celsius(register: register, bits: bits) == celsius)
        #expect(TemperatureCodec.register(celsius: celsius, bits: bits) == register & ~UInt16((1 << (16 - bits)) - 1))
    }

    @Test func tmp102ExtendedModeHas13Bits() {
        // 150 °C in extended mode is 0x4B0 << 3 with bit 0 set (EM flag).
        #expect(TemperatureCodec.celsius(register: 0x4B01, bits: 13, extendedMode: true) == 150.0)
    }

    @Test func smbusWordsAreByteSwapped() async throws {
        // The chip sends 0x19 then 0x00 (25 °C); SMBus puts the first byte in the low half.
        let bus = FakeI2CBus(devices: [0x48: .tmp102(celsius: 25)])
        let word = try await bus.readWordData(address: 0x48, register: 0x00)
        #expect(word == 0x0019)
        #expect(bus.transfers.last?.bytes == [0x19, 0x00])
        #expect(try await TMP102(bus: bus).readCelsius() == 25.0)
    }

    @Test(arguments: [-40.0, -0.0625, 0.0, 21.5, 38.8125, 85.0])
    func tmp102ReadsTheSimulatedTemperature(celsius: Double) async throws {
        let bus = FakeI2CBus(devices: [0x49: .tmp102(celsius: 0)])
        bus.setTemperature(celsius, at: 0x49)
        let t = try await TMP102(bus: bus, address: 0x49).readCelsius()
        #expect(t == celsius)
    }

    @Test func lm75ResolutionTruncates() async throws {
        let bus = FakeI2CBus(devices: [0x48: .lm75(celsius: 31.8), 0x4F: .lm75(celsius: 31.8, bits: 11)])
        #expect(try await LM75(bus: bus, address: 0x48).readCelsius() == 31.5)
        #expect(try await LM75(bus: bus, address: 0x4F, bits: 11).readCelsius() == 31.75)
        bus.setTemperature(-12.3, at: 0x48)
        #expect(try await LM75(bus: bus, address: 0x48).readCelsius() == -12.0)
    }

    @Test func absentSensorIsANackNamingBusAddressAndRegister() async {
        let bus = FakeI2CBus(name: "/dev/i2c-fake", devices: [:])
        do {
            _ = try await TMP102(bus: bus, address: 0x4A).readCelsius()
            Issue.record("expected a NACK")
        } catch {
            #expect(error.kind == .noAcknowledge)
            #expect(error.errno == ENXIO)
            #expect(error.description == "i2c error: /dev/i2c-fake address 0x4a register 0x00: read word data failed: no device acknowledged the address (errno 6)")
        }
    }

    @Test func injectedErrorsFailThenRecover() async throws {
        let bus = FakeI2CBus(devices: [0x48: .tmp102(celsius: 30)])
        bus.injectError(at: 0x48, errno: ETIMEDOUT, count: 2)
        let sensor = TMP102(bus: bus)
        for _ in 0..<2 {
            do { _ = try await sensor.readCelsius(); Issue.record("expected an injected error") } catch {
                #expect(error.kind == .io)
                #expect(error.errno == ETIMEDOUT)
                #expect(error.register == 0x00)
            }
        }
        #expect(try await sensor.readCelsius() == 30)
    }
}

@Suite("GPIO expanders and the heartbeat relay")
struct HeartbeatTests {
    @Test func pcf8574TogglesOnePinAndLeavesTheOthersHigh() async throws {
        let bus = FakeI2CBus(devices: [0x20: .pcf8574()])
        let relay = HeartbeatRelay(expander: PCF8574(bus: bus, address: 0x20), pin: 3, safeLevel: false)
        try await relay.start()
        #expect(bus.pinLevel(3, at: 0x20) == false)
        var levels: [Bool] = []
        for _ in 0..<4 {
            try await relay.beat()
            levels.append(bus.pinLevel(3, at: 0x20)!)
        }
        #expect(levels == [true, false, true, false])
        // Quasi-bidirectional: every other pin stays written high (usable as input).
        #expect(bus.transfers.map(\.bytes) == [[0xF7], [0xFF], [0xF7], [0xFF], [0xF7]])
        try await relay.beat()
        try await relay.drop()
        #expect(bus.pinLevel(3, at: 0x20) == false)
        #expect(await relay.level == false)
        #expect(await relay.beats == 5)
    }

    @Test func mcp23017ConfiguresDirectionAfterTheLevel() async throws {
        let bus = FakeI2CBus(devices: [0x21: .mcp23017()])
        let relay = HeartbeatRelay(expander: MCP23017(bus: bus, address: 0x21), pin: 10, safeLevel: true)  // GPB2
        try await relay.start()
        #expect(bus.register(0x01, at: 0x21) == 0xFB)  // IODIRB: pin B2 output, others inputs
        #expect(bus.register(0x00, at: 0x21) == 0xFF)  // port A untouched
        #expect(bus.register(0x15, at: 0x21) == 0x04)  // OLATB: safe level high
        // OLAT is written before IODIR so the pin never glitches low.
        let ops = bus.transfers.filter { $0.operation.hasPrefix("write") }.map(\.register)
        #expect(ops == [0x15, 0x01])
        try await relay.beat()
        #expect(bus.pinLevel(10, at: 0x21) == false)
        #expect(bus.register(0x13, at: 0x21) == 0x00)  // GPIOB reads back the output
        try await relay.beat()
        #expect(bus.pinLevel(10, at: 0x21) == true)
        try await relay.beat()
        try await relay.drop()
        #expect(bus.pinLevel(10, at: 0x21) == true)
    }

    @Test func mcp23017ReadsInputsAndKeepsOtherLatchBits() async throws {
        let bus = FakeI2CBus(devices: [0x20: .mcp23017(inputs: 0b0000_0001_0000_0010)])
        let chip = MCP23017(bus: bus)
        #expect(try await chip.read(pin: 1) == true)
        #expect(try await chip.read(pin: 8) == true)
        #expect(try await chip.read(pin: 2) == false)
        try await chip.configureOutput(pin: 0, level: true)
        try await chip.configureOutput(pin: 7, level: true)
        try await chip.write(pin: 0, false)
        #expect(bus.register(0x14, at: 0x20) == 0x80)
        #expect(try await chip.read(pin: 7) == true)
    }

    @Test func beatWithoutStartConfiguresFirstAndBadPinsAreRejected() async throws {
        let bus = FakeI2CBus(devices: [0x38: .pcf8574()])
        let relay = HeartbeatRelay(expander: PCF8574(bus: bus, address: 0x38), pin: 0)
        try await relay.beat()
        #expect(bus.pinLevel(0, at: 0x38) == true)
        do {
            try await PCF8574(bus: bus, address: 0x38).write(pin: 8, true)
            Issue.record("pin 8 does not exist on a PCF8574")
        } catch {
            #expect(error.kind == .invalidArgument)
            #expect(error.description.contains("pins 0…7"))
        }
    }

    @Test func aFailedBeatLeavesTheKnownLevel() async throws {
        let bus = FakeI2CBus(devices: [0x20: .pcf8574()])
        let relay = HeartbeatRelay(expander: PCF8574(bus: bus), pin: 1)
        try await relay.start()
        bus.injectError(at: 0x20, errno: EIO)
        await #expect(throws: I2CError.self) { try await relay.beat() }
        #expect(await relay.level == false)
        #expect(await relay.beats == 0)
        try await relay.beat()
        #expect(bus.pinLevel(1, at: 0x20) == true)
    }
}

@Suite("Fake bus register files, config, and the Linux bus")
struct BusTests {
    @Test func registerFileSupportsWordAndBlockAccess() async throws {
        let bus = FakeI2CBus(devices: [0x50: .registers([0x10: 0xAB])])
        #expect(try await bus.readByteData(address: 0x50, register: 0x10) == 0xAB)
        try await bus.writeWordData(address: 0x50, register: 0x20, 0x1234)
        #expect(try await bus.readBlockData(address: 0x50, register: 0x20, count: 2) == [0x34, 0x12])
        try await bus.writeBlockData(address: 0x50, register: 0x30, [1, 2, 3])
        #expect(try await bus.readWordData(address: 0x50, register: 0x31) == 0x0302)
        await #expect(throws: I2CError.self) { _ = try await bus.readBlockData(address: 0x50, register: 0, count: 33) }
        await #expect(throws: I2CError.self) { _ = try await bus.readByte(address: 0x78) }
    }

    @Test func unsupportedTransfersAreNacked() async {
        let bus = FakeI2CBus(devices: [0x48: .tmp102(celsius: 20)])
        do {
            try await bus.writeWordData(address: 0x48, register: 0x00, 0)
            Issue.record("the temperature register is read-only")
        } catch {
            #expect(error.kind == .noAcknowledge)
            #expect(error.register == 0x00)
        }
    }

    @Test func hardwareFromConfig() async throws {
        let json = #"{"bus": "/dev/i2c-1", "temperature": {"model": "lm75", "address": 73, "bits": 11}, "heartbeat": {"expander": "mcp23017", "address": 32, "pin": 15, "safe_level": false}}"#
        let config = try JSONDecoder().decode(I2CConfig.self, from: Data(json.utf8))
        let bus = FakeI2CBus(devices: [0x49: .lm75(celsius: 41.3, bits: 11), 0x20: .mcp23017()])
        let hw = try I2CHardware(config: config, bus: bus)
        #expect(try await hw.temperature?.readCelsius() == 41.25)
        try await hw.heartbeat?.beat()
        #expect(bus.pinLevel(15, at: 0x20) == true)
        do {
            _ = try I2CHardware(config: I2CConfig(bus: "b", heartbeat: .init(expander: .pcf8574, pin: 9)), bus: bus)
            Issue.record("pin 9 is not on a PCF8574")
        } catch {
            #expect(error.kind == .invalidArgument)
        }
    }

    @Test func openingAMissingBusNamesIt() async {
        do {
            _ = try await LinuxI2CBus.open("/dev/i2c-does-not-exist")
            Issue.record("expected open to fail")
        } catch {
            #expect(error.kind == .openFailed)
            #expect(error.errno == ENOENT)
            #expect(error.description == "i2c error: /dev/i2c-does-not-exist: open failed: No such file or directory (errno 2)")
        }
    }

    /// Blocking libi2c calls happen on the bus's own thread, not the cooperative pool:
    /// a non-I2C file descriptor makes I2C_SLAVE fail, and the error is typed and located.
    @Test func ioctlFailureOnANonI2CDeviceIsTyped() async throws {
        let bus = try await LinuxI2CBus.open("/dev/null")
        do {
            _ = try await bus.readByteData(address: 0x48, register: 0x05)
            Issue.record("I2C_SLAVE on /dev/null should fail")
        } catch {
            #expect(error.kind == .io)
            #expect(error.address == 0x48)
            #expect(error.register == 0x05)
            #expect(error.errno == ENOTTY)
            #expect(error.description.hasPrefix("i2c error: /dev/null address 0x48 register 0x05: select address (I2C_SLAVE) failed"))
        }
        await bus.close()
        await #expect(throws: I2CError.self) { _ = try await bus.readByte(address: 0x48) }
    }

    static let realBus: String? = (0..<16).map { "/dev/i2c-\($0)" }.first { FileManager.default.fileExists(atPath: $0) }

    /// Needs a real adapter with a TMP102 or LM75 at 0x48 (`SWITCHYARD_I2C_TMP102=1` selects TMP102).
    @Test(.enabled(if: realBus != nil, "no /dev/i2c-N on this machine (and i2c-stub cannot be loaded), so the real-bus test is skipped"))
    func readsARealSensor() async throws {
        let bus = try await LinuxI2CBus.open(try #require(Self.realBus))
        let sensor: any TemperatureSensor = ProcessInfo.processInfo.environment["SWITCHYARD_I2C_TMP102"] == "1"
            ? TMP102(bus: bus) : LM75(bus: bus)
        let t = try await sensor.readCelsius()
        #expect((-55.0...150.0).contains(t))
    }
}
