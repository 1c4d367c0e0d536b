// Sparkplug B protocol pieces without I/O: topics, seq/bdSeq, payloads, commands, STATE.

import Foundation
import Testing
@testable import Sparkplug

@Suite("Sparkplug topics")
struct TopicTests {
    @Test func buildsAndParsesEveryMessageType() throws {
        for type in SparkplugMessageType.allCases {
            let topic: SparkplugTopic = type.isDeviceMessage
                ? try .device(type, group: "north", edge: "site-7", device: "c01")
                : try .node(type, group: "north", edge: "site-7")
            let text = topic.description
            #expect(text == (type.isDeviceMessage ? "spBv1.0/north/\(type.rawValue)/site-7/c01" : "spBv1.0/north/\(type.rawValue)/site-7"))
            #expect(try SparkplugTopic(parsing: text) == topic)
        }
        #expect(try SparkplugTopic(parsing: "spBv1.0/STATE/hq") == .state(hostID: "hq"))
    }

    @Test(arguments: ["", "a/b", "a+b", "a#", "tab\there"])
    func rejectsInvalidIDs(_ id: String) {
        #expect(throws: SparkplugTopicError.self) { try validateSparkplugID(id, kind: "group id") }
        #expect(throws: SparkplugTopicError.self) { _ = try SparkplugTopic.node(.ndata, group: id, edge: "e") }
    }

    @Test(arguments: [
        "spAv1.0/g/NDATA/e", "spBv1.0/g/NDATA", "spBv1.0/g/NDATA/e/d", "spBv1.0/g/DDATA/e",
        "spBv1.0/g/XDATA/e", "spBv1.0/STATE", "spBv1.0/STATE/a/b", "spBv1.0//NDATA/e", "spBv1.0/g/DCMD/e/d/x",
    ])
    func rejectsMalformedTopics(_ topic: String) {
        #expect(throws: SparkplugTopicError.self) { try SparkplugTopic(parsing: topic) }
    }

    @Test func errorsSayWhatIsWrong() {
        #expect(throws: SparkplugTopicError.invalidID(kind: "device id", id: "c/1", reason: "contains '/'")) {
            _ = try SparkplugTopic.device(.ddata, group: "g", edge: "e", device: "c/1")
        }
    }
}

@Suite("seq and bdSeq")
struct SequenceTests {
    @Test func seqWrapsAfter255() {
        var s = SparkplugSeq(0)
        var seen: [UInt8] = []
        for _ in 0..<300 { seen.append(s.value); s = s.next }
        #expect(seen[255] == 255)
        #expect(seen[256] == 0)
        #expect(seen[299] == 43)
    }

    @Test func bdSeqWraps() {
        #expect(BdSeq(254).next == BdSeq(255))
        #expect(BdSeq(255).next == BdSeq(0))
    }

    @Test func fileStoreKeepsTheBdSeqAcrossInstances() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bdseq-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("bdseq").path
        #expect(try FileBdSeqStore(path: path).load() == nil)
        try FileBdSeqStore(path: path).save(BdSeq(41))
        #expect(try FileBdSeqStore(path: path).load() == BdSeq(41))
        try "300\n".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(throws: SparkplugStoreError.corrupt(path: path, line: 1, text: "300")) { try FileBdSeqStore(path: path).load() }
    }
}

@Suite("Sparkplug payloads")
struct PayloadTests {
    static let values: [MetricValue] = [
        .int8(-1), .int8(127), .int16(-30000), .int32(-2_000_000_000), .int32(7), .int64(-5_000_000_000_000),
        .uint8(255), .uint16(65535), .uint32(4_000_000_000), .uint64(UInt64.max),
        .float(-1.5), .double(40_123.25), .boolean(true), .boolean(false), .string("grid import"), .text("long text"),
        .dateTime(millisecondsSinceEpoch: 1_790_000_000_000), .bytes([0, 1, 255]),
    ]

    @Test(arguments: PayloadTests.values)
    func everyDatatypeRoundTrips(_ value: MetricValue) throws {
        let m = SparkplugMetric(name: "m", timestamp: 1_790_000_000_123, value: value)
        let p = SparkplugPayload(timestamp: 1_790_000_000_000, seq: 200, metrics: [m])
        let back = try SparkplugPayload(decoding: p.encoded())
        #expect(back == p)
        #expect(back.metrics[0].dataType == value.dataType)
    }

    @Test func historicalAndNullSurvive() throws {
        let p = SparkplugPayload(timestamp: 5, seq: 3, metrics: [
            SparkplugMetric(name: "import_kw", timestamp: 1, value: .double(12.5), isHistorical: true),
            SparkplugMetric(name: "price", timestamp: 2, null: .double),
        ])
        let back = try SparkplugPayload(decoding: p.encoded())
        #expect(back.metrics[0].isHistorical)
        #expect(back.metrics[1].value == nil && back.metrics[1].dataType == .double)
    }

    @Test func narrowSignedIntegersDecodeInEitherWidth() throws {
        var m = PBMetric()
        m.name = "x"
        m.datatype = SparkplugDataType.int8.rawValue
        m.value = .intValue(0xFF)  // 8-bit two's complement, as some hosts send it
        var p = PBPayload()
        p.timestamp = 1
        p.metrics = [m]
        #expect(try SparkplugPayload(decoding: p.serializedBytes()).metrics[0].value == .int8(-1))
        p.metrics[0].value = .intValue(0xFFFF_FFFF)  // sign-extended to 32 bits
        #expect(try SparkplugPayload(decoding: p.serializedBytes()).metrics[0].value == .int8(-1))
        p.metrics[0].value = .intValue(0x1FF)
        #expect(throws: SparkplugDecodeError.valueDoesNotMatchDataType(metric: "x", dataType: .int8)) {
            try SparkplugPayload(decoding: p.serializedBytes())
        }
    }

    @Test func metricsWithoutADatatypeTakeTheKnownOne() throws {
        var m = PBMetric()
        m.name = "setpoint_kw"
        m.value = .doubleValue(250)
        var p = PBPayload()
        p.timestamp = 1
        p.seq = 4
        p.metrics = [m]
        let bytes: [UInt8] = try p.serializedBytes()
        #expect(throws: SparkplugDecodeError.unknownDataType(metric: "setpoint_kw", code: 0)) { try SparkplugPayload(decoding: bytes) }
        let decoded = try SparkplugPayload(decoding: bytes) { $0 == "setpoint_kw" ? .double : nil }
        #expect(decoded.metrics[0].value == .double(250))
    }

    @Test func garbageIsNotAPayload() {
        #expect(throws: SparkplugDecodeError.self) { try SparkplugPayload(decoding: [0xFF, 0xFF, 0xFF]) }
    }

    @Test func birthAndDeathCarryTheBdSeq() throws {
        let birth = SparkplugPayloads.nbirth(timestamp: 10, bdSeq: BdSeq(9), metrics: [SparkplugMetric(name: "a", value: .int32(1))])
        #expect(birth.seq == 0)
        #expect(birth.metric(named: "bdSeq")?.value == .int64(9))
        #expect(birth.metric(named: "Node Control/Rebirth")?.value == .boolean(false))
        let death = try SparkplugPayload(decoding: SparkplugPayloads.ndeath(timestamp: 10, bdSeq: BdSeq(9)).encoded())
        #expect(death.seq == nil)
        #expect(death.metrics == [SparkplugMetric(name: "bdSeq", value: .int64(9))])
    }
}

@Suite("Sparkplug commands")
struct CommandTests {
    let schema = CommandSchema.node(["Site/Cap kW": .double, "Site/Mode": .string])

    func payload(_ metrics: [PBMetric]) throws -> [UInt8] {
        var p = PBPayload()
        p.timestamp = 1
        p.metrics = metrics
        return try p.serializedBytes()
    }

    func metric(_ name: String, _ type: SparkplugDataType?, _ value: PBMetric.OneOf_Value?) -> PBMetric {
        var m = PBMetric()
        m.name = name
        if let type { m.datatype = type.rawValue }
        m.value = value
        return m
    }

    @Test func validCommandsDecode() throws {
        let bytes = try payload([metric("Site/Cap kW", .double, .doubleValue(9000)), metric("Node Control/Rebirth", nil, .booleanValue(true))])
        #expect(decodeCommands(bytes, schema: schema) == .success([
            SparkplugCommand(name: "Site/Cap kW", value: .double(9000)),
            SparkplugCommand(name: "Node Control/Rebirth", value: .boolean(true)),
        ]))
    }

    @Test func unknownMetricIsRejected() throws {
        let bytes = try payload([metric("Site/Cap kW", .double, .doubleValue(1)), metric("Site/Self Destruct", .boolean, .booleanValue(true))])
        #expect(decodeCommands(bytes, schema: schema) == .failure(.unknownMetric("Site/Self Destruct")))
    }

    @Test func wrongDeclaredDatatypeIsRejected() throws {
        let bytes = try payload([metric("Site/Cap kW", .int32, .intValue(9000))])
        #expect(decodeCommands(bytes, schema: schema) == .failure(.wrongDataType(metric: "Site/Cap kW", expected: .double, received: "Int32")))
    }

    @Test func valueInTheWrongFieldIsRejected() throws {
        let bytes = try payload([metric("Site/Mode", nil, .intValue(3))])
        #expect(decodeCommands(bytes, schema: schema) == .failure(.wrongDataType(metric: "Site/Mode", expected: .string, received: "int_value")))
    }

    @Test func nullEmptyAndGarbageAreRejected() throws {
        var null = metric("Site/Mode", .string, nil)
        null.isNull = true
        #expect(decodeCommands(try payload([null]), schema: schema) == .failure(.nullValue(metric: "Site/Mode")))
        #expect(decodeCommands(try payload([]), schema: schema) == .failure(.empty))
        guard case .failure(.undecodable) = decodeCommands([0x0A, 0xFF], schema: schema) else {
            Issue.record("garbage decoded")
            return
        }
    }
}

@Suite("Sparkplug STATE")
struct HostStateTests {
    @Test func parsesAndBuilds() throws {
        let s = try HostState(parsing: Array(#"{"online": true, "timestamp": 1790000000000}"#.utf8))
        #expect(s == HostState(online: true, timestamp: 1_790_000_000_000))
        #expect(String(decoding: HostState(online: false, timestamp: 5).encoded(), as: UTF8.self) == #"{"online":false,"timestamp":5}"#)
        #expect(try HostState(parsing: HostState(online: false, timestamp: 5).encoded()) == HostState(online: false, timestamp: 5))
    }

    @Test(arguments: ["ONLINE", #"{"online":"yes","timestamp":1}"#, #"{"timestamp":1}"#, ""])
    func rejectsOtherPayloads(_ text: String) {
        #expect(throws: HostState.ParseError.self) { try HostState(parsing: Array(text.utf8)) }
    }
}
