import Synchronization
import Testing
@testable import Modbus

/// Issue 15: reads that allocate less. `read(_:unit:address:into:)` fills the caller's buffer; a plan's requests
/// share one buffer and each request's words are a slice of it. Both must give the same words, the same errors and
/// the same counters as the allocating reads they stand beside.
@Suite("Reads into the caller's buffer and a plan's shared buffer", .serialized)
struct ReadIntoTests {
    static func server() throws -> ModbusTCPServer {
        let s = ModbusTCPServer(units: [1: ServerUnitLayout(coils: 0..<64, holding: 0..<200, input: 0..<50)])
        try s.start()
        s.set(unit: 1, .holding, address: 0, (0..<200).map { UInt16($0) })
        s.set(unit: 1, .input, address: 0, (0..<50).map { UInt16(1000 + $0) })
        s.set(unit: 1, .coil, address: 0, (0..<64).map { UInt16($0 % 3 == 0 ? 1 : 0) })
        return s
    }

    @Test func readIntoFillsTheBufferOnTheConnectionThreadAndFromAnyOtherTask() async throws {
        let s = try Self.server()
        defer { s.stop() }
        let client = ModbusClient(endpoint: .tcp(host: "127.0.0.1", port: s.port))
        // On the connection's thread: in place, no hop; the buffer keeps its storage.
        let onThread = await withTaskGroup(of: ([UInt16], [UInt16], [UInt16], Bool).self) { g in
            g.addTask(executorPreference: client.preferredExecutor()) {
                var words = [UInt16](repeating: 0, count: 8)
                let before = words.withUnsafeBufferPointer { $0.baseAddress }
                try? await client.read(.holding, unit: 1, address: 20, into: &words)
                let same = words.withUnsafeBufferPointer { $0.baseAddress } == before
                var inputs = [UInt16](repeating: 0, count: 3)
                try? await client.read(.input, unit: 1, address: 5, into: &inputs)
                var coils = [UInt16](repeating: 9, count: 7)
                try? await client.read(.coil, unit: 1, address: 0, into: &coils)
                return (words, inputs, coils, same)
            }
            return await g.next()!
        }
        #expect(onThread.0 == (20..<28).map { UInt16($0) })
        #expect(onThread.1 == [1005, 1006, 1007])
        #expect(onThread.2 == [1, 0, 0, 1, 0, 0, 1])
        #expect(onThread.3, "the read wrote into the caller's storage, not a new array")
        #expect(client.stats.hops == 0)
        // From another task: one hop, the same words.
        var words = [UInt16](repeating: 0, count: 4)
        try await client.read(.holding, unit: 1, address: 100, into: &words)
        #expect(words == [100, 101, 102, 103])
        #expect(client.stats.hops == 1)
        #expect(client.stats.requests == 4)
        await client.close()
    }

    @Test func readIntoRefusesWhatTheAllocatingReadRefusesWithTheSameMessage() async throws {
        let s = try Self.server()
        defer { s.stop() }
        let client = ModbusClient(endpoint: .tcp(host: "127.0.0.1", port: s.port))
        let outcome = await withTaskGroup(of: [String].self) { g in
            g.addTask(executorPreference: client.preferredExecutor()) {
                var messages: [String] = []
                var empty: [UInt16] = []
                do { try await client.read(.holding, unit: 1, address: 0, into: &empty) } catch { messages.append("\(error)") }
                var tooMany = [UInt16](repeating: 0, count: 126)
                do { try await client.read(.holding, unit: 1, address: 0, into: &tooMany) } catch { messages.append("\(error)") }
                var pastEnd = [UInt16](repeating: 0, count: 2)
                do { try await client.read(.holding, unit: 1, address: 65535, into: &pastEnd) } catch { messages.append("\(error)") }
                var badUnit = [UInt16](repeating: 0, count: 1)
                do { try await client.read(.holding, unit: 256, address: 0, into: &badUnit) } catch { messages.append("\(error)") }
                // The server's answer to a register it does not have: ILLEGAL DATA ADDRESS, named.
                var missing = [UInt16](repeating: 0, count: 2)
                do { try await client.read(.holding, unit: 1, address: 199, into: &missing) } catch { messages.append("\(error)") }
                do { _ = try await client.read(.holding, unit: 1, address: 199, count: 2) } catch { messages.append("\(error)") }
                return messages
            }
            return await g.next()!
        }
        #expect(outcome.count == 6)
        guard outcome.count == 6 else { return }
        #expect(outcome[0].contains("count must be at least 1"))
        #expect(outcome[1].contains("count 126 exceeds the Modbus limit of 125"))
        #expect(outcome[2].contains("runs past register 65535"))
        #expect(outcome[3].contains("unit id 256 is outside 0…255"))
        #expect(outcome[4].contains("ILLEGAL DATA ADDRESS") || outcome[4].lowercased().contains("illegal data address"), "\(outcome[4])")
        #expect(outcome[4] == outcome[5], "into and allocating reads report a device's exception alike")
        await client.close()
    }

    @Test func aPlansRequestsShareOneBufferAndEachFailsOnItsOwn() async throws {
        let s = try Self.server()
        defer { s.stop() }
        let client = ModbusClient(endpoint: .tcp(host: "127.0.0.1", port: s.port))
        let spans = [ReadSpan(table: .holding, address: 10, count: 2), ReadSpan(table: .holding, address: 13, count: 3),
                     ReadSpan(table: .holding, address: 150, count: 2), ReadSpan(table: .input, address: 40, count: 4),
                     ReadSpan(table: .holding, address: 199, count: 2)]
        let plan = [ReadRequest(table: .holding, address: 10, count: 6, spans: [0, 1]),
                    ReadRequest(table: .holding, address: 199, count: 2, spans: [4]),  // past the server's registers
                    ReadRequest(table: .holding, address: 150, count: 0, spans: []),   // a count no read allows
                    ReadRequest(table: .holding, address: 150, count: 2, spans: [2]),
                    ReadRequest(table: .input, address: 40, count: 4, spans: [3])]
        let results = await withTaskGroup(of: [Result<ArraySlice<UInt16>, ModbusError>].self) { g in
            g.addTask(executorPreference: client.preferredExecutor()) { await client.read(plan: plan, unit: 1) }
            return await g.next()!
        }
        #expect(results.count == 5)
        #expect((try? results[0].get()).map(Array.init) == (10..<16).map { UInt16($0) })
        #expect(throws: ModbusError.self) { try results[1].get() }
        if case .failure(let e) = results[2] { #expect("\(e)".contains("count must be at least 1")) } else { Issue.record("a zero count read") }
        #expect((try? results[3].get()).map(Array.init) == [150, 151])
        #expect((try? results[4].get()).map(Array.init) == [1040, 1041, 1042, 1043])
        // The spans, sliced out of slices of the shared buffer: the right words, whatever the slice's start index.
        let bySpan = spanResults(plan, spans: spans, results)
        #expect((try? bySpan[0]?.get()).map(Array.init) == [10, 11])
        #expect((try? bySpan[1]?.get()).map(Array.init) == [13, 14, 15])
        #expect((try? bySpan[2]?.get()).map(Array.init) == [150, 151])
        #expect((try? bySpan[3]?.get()).map(Array.init) == [1040, 1041, 1042, 1043])
        #expect(throws: ModbusError.self) { try bySpan[4]?.get() }
        await client.close()
    }

    @Test func aTimeoutMidPlanFailsTheRestWithTheSameError() async throws {
        let s = try Self.server()
        let client = ModbusClient(endpoint: .tcp(host: "127.0.0.1", port: s.port), options: .init(responseTimeout: .milliseconds(300), backoff: .immediate))
        // No answer to the second request (a timeout): the first keeps its words, the second and third fail alike.
        let served = Mutex(0)
        s.setHook { _ in
            let n = served.withLock { $0 += 1; return $0 }
            return n == 2 ? .drop : .reply
        }
        let plan = [ReadRequest(table: .holding, address: 0, count: 2, spans: [0]),
                    ReadRequest(table: .holding, address: 2, count: 2, spans: [1]),
                    ReadRequest(table: .holding, address: 4, count: 2, spans: [2])]
        let results = await withTaskGroup(of: [Result<ArraySlice<UInt16>, ModbusError>].self) { g in
            g.addTask(executorPreference: client.preferredExecutor()) { await client.read(plan: plan, unit: 1) }
            return await g.next()!
        }
        s.stop()
        #expect(results.count == 3)
        #expect((try? results[0].get()).map(Array.init) == [0, 1])
        guard case .failure(let e1) = results[1], case .failure(let e2) = results[2] else {
            Issue.record("requests after the lost link must fail: \(results)")
            return
        }
        #expect(e1.breaksConnection || e1.kind == .timeout, "\(e1)")
        #expect("\(e1)" == "\(e2)")
        await client.close()
    }
}
