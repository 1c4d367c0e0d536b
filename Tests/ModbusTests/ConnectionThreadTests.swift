import Foundation
import Synchronization
import Testing
@testable import Modbus

/// Issue 15: a task that prefers a client's connection executor makes its requests in place on the
/// connection's thread (no hop per request); other callers hop there and back; the lanes a gateway
/// allows share the tasks between them; a closed client fails requests from either kind of task.
@Suite("Connection threads as task executors", .serialized)
struct ConnectionThreadTests {
    static func server(units: [Int] = [1]) throws -> ModbusTCPServer {
        let s = ModbusTCPServer(units: Dictionary(uniqueKeysWithValues: units.map { ($0, ServerUnitLayout(holding: 0..<200)) }))
        try s.start()
        s.set(unit: units[0], .holding, address: 0, (0..<200).map { UInt16($0) })
        return s
    }

    @Test func aTaskOnTheConnectionThreadMakesItsRequestsWithoutAHop() async throws {
        let s = try Self.server()
        defer { s.stop() }
        let client = ModbusClient(endpoint: .tcp(host: "127.0.0.1", port: s.port))
        // On the connection's thread: 100 reads, one write and read-back, a plan: no hop at all.
        let onThread = await withTaskGroup(of: (Int, Bool).self) { g in
            g.addTask(executorPreference: client.preferredExecutor()) {
                var ok = 0
                let expected = (0..<16).map(UInt16.init)
                for _ in 0..<100 where (try? await client.read(.holding, unit: 1, address: 0, count: 16)) == expected {
                    ok += 1
                }
                let back = try? await client.writeAndReadBack(unit: 1, address: 100, values: [7, 8], combined: true)
                let plan = await client.read(plan: [ReadRequest(table: .holding, address: 0, count: 4, spans: [0])], unit: 1)
                return (ok, back == [7, 8] && (try? plan[0].get()) == [0, 1, 2, 3])
            }
            return await g.next()!
        }
        #expect(onThread == (100, true))
        #expect(client.stats.requests == 102)
        #expect(client.stats.hops == 0)
        // From any other task: one hop per call.
        for _ in 0..<10 { _ = try await client.read(.holding, unit: 1, address: 0, count: 1) }
        #expect(client.stats.hops == 10)
        #expect(client.stats.requests == 112)
        await client.close()
    }

    @Test func libmodbusCallsRunOnTheConnectionThreadWhateverTheCaller() async throws {
        let s = try Self.server()
        defer { s.stop() }
        let client = ModbusClient(endpoint: .tcp(host: "127.0.0.1", port: s.port))
        // A request from the cooperative pool never runs there: it is counted as a hop to the connection's thread.
        _ = try await client.read(.holding, unit: 1, address: 0, count: 1)
        #expect(client.stats.hops == 1)
        // And a task that prefers the connection's executor runs on a thread of its own, not the pool's.
        let threads = await withTaskGroup(of: Bool.self) { g in
            g.addTask(executorPreference: client.preferredExecutor()) { client.isOnConnectionThread }
            g.addTask { client.isOnConnectionThread }
            var out: [Bool] = []
            for await b in g { out.append(b) }
            return out.sorted { !$0 && $1 }
        }
        #expect(threads == [false, true])
        await client.close()
    }

    /// Each gateway lane gets its share of the tasks (max_connections > 1): all connections are opened and used.
    @Test func tasksSpreadOverTheGatewaysConnections() async throws {
        let s = try Self.server(units: [1, 2, 3])
        defer { s.stop() }
        let client = ModbusClient(endpoint: .tcp(host: "127.0.0.1", port: s.port), options: .init(maxInFlight: 3))
        #expect(client.connections == 3)
        await withTaskGroup(of: Void.self) { g in
            for i in 0..<30 {
                g.addTask(executorPreference: client.preferredExecutor()) {
                    _ = try? await client.writeAndReadBack(unit: 1 + i % 3, address: 10, values: [UInt16(i)], combined: true)
                }
            }
        }
        #expect(client.stats.connects == 3)
        #expect(client.stats.requests == 30)
        #expect(client.stats.failures == 0)
        #expect(client.stats.hops == 0)
        await client.close()
    }

    /// A dead device behind one gateway (no answer) never delays a task working another gateway.
    @Test func aDeadGatewayDoesNotDelayTasksOnAnother() async throws {
        let dead = try Self.server(), live = try Self.server()
        defer { dead.stop(); live.stop() }
        dead.setHook { _ in .drop }
        let deadClient = ModbusClient(endpoint: .tcp(host: "127.0.0.1", port: dead.port),
                                      options: .init(responseTimeout: .seconds(3), backoff: .immediate), name: "dead")
        let liveClient = ModbusClient(endpoint: .tcp(host: "127.0.0.1", port: live.port), name: "live")
        let order = OrderLog()
        await withTaskGroup(of: Void.self) { g in
            g.addTask(executorPreference: deadClient.preferredExecutor()) {
                let r = try? await deadClient.read(.holding, unit: 1, address: 0, count: 1)
                order.append(r == nil ? "dead timed out" : "dead answered")
            }
            g.addTask(executorPreference: liveClient.preferredExecutor()) {
                var ok = 0
                for _ in 0..<20 where (try? await liveClient.read(.holding, unit: 1, address: 0, count: 2)) == [0, 1] { ok += 1 }
                order.append("live \(ok)")
            }
        }
        #expect(order.entries == ["live 20", "dead timed out"])
        #expect(deadClient.stats.timeouts == 1)
        await deadClient.close()
        await liveClient.close()
    }

    @Test func aClosedClientFailsRequestsFromEitherKindOfTask() async throws {
        let s = try Self.server()
        defer { s.stop() }
        let client = ModbusClient(endpoint: .tcp(host: "127.0.0.1", port: s.port))
        let executor = client.preferredExecutor()
        _ = try await client.read(.holding, unit: 1, address: 0, count: 1)
        await client.close()
        await #expect { _ = try await client.read(.holding, unit: 1, address: 0, count: 1) }
            throws: { ($0 as? ModbusError)?.kind == .closed }
        // A task still preferring the stopped thread runs (elsewhere) and is told the client is closed.
        let kind = await withTaskGroup(of: ModbusError.Kind?.self) { g in
            g.addTask(executorPreference: executor) {
                do throws(ModbusError) { _ = try await client.read(.holding, unit: 1, address: 0, count: 1); return nil }
                catch { return error.kind }
            }
            return await g.next()!
        }
        #expect(kind == .closed)
    }
}
