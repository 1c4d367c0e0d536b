import Basics
import Site
import Testing

/// The site file's optional `gateways` section (issue 15): how many TCP connections the
/// controller may open to one Modbus gateway.
@Suite("Site file gateways")
struct GatewaySiteFileTests {
    static func site(_ gateways: String) -> String {
        """
        site: {id: g, import_limit_kw: 5000}
        tree: {id: site, cap_kw: 5000}
        devices:
          - {id: a-1, class: mining, node: site, address: {tcp: "10.0.0.5:502", unit: 1}, limits: {max_kw: 1000}, efficiency_j_per_th: 20}
          - {id: a-2, class: mining, node: site, address: {tcp: "10.0.0.5:502", unit: 2}, limits: {max_kw: 1000}, efficiency_j_per_th: 20}
          - {id: a-3, class: mining, node: site, address: {tcp: "10.0.0.6:502", unit: 1}, limits: {max_kw: 1000}, efficiency_j_per_th: 20}
        \(gateways)
        """
    }

    @Test func absentMeansOneConnectionEach() throws {
        let s = try Site.parse(yaml: Self.site(""), file: "g.yaml")
        #expect(s.gateways.isEmpty)
        #expect(s.maxConnections(host: "10.0.0.5", port: 502) == 1)
        #expect(s.maxConnections(host: "10.0.0.6", port: 502) == 1)
    }

    @Test func declaredGatewayGetsItsConnections() throws {
        let s = try Site.parse(yaml: Self.site("""
            gateways:
              - {tcp: "10.0.0.5:502", max_connections: 4}
              - {tcp: "10.0.0.6:502"}
            """), file: "g.yaml")
        #expect(s.gateways == [ModbusGatewaySpec(host: "10.0.0.5", port: 502, maxConnections: 4),
                               ModbusGatewaySpec(host: "10.0.0.6", port: 502, maxConnections: 1)])
        #expect(s.maxConnections(host: "10.0.0.5", port: 502) == 4)
        #expect(s.maxConnections(host: "10.0.0.6", port: 502) == 1)
        #expect(s.maxConnections(host: "10.0.0.7", port: 502) == 1)
    }

    static let badCases: [(String, Int, Int, String)] = [
        ("gateways:\n  - {tcp: \"10.0.0.5:502\", max_connections: 0}", 8, 44, "max_connections of gateway 10.0.0.5:502 must be 1–16, found 0"),
        ("gateways:\n  - {tcp: \"10.0.0.5:502\", max_connections: 17}", 8, 44, "must be 1–16, found 17"),
        ("gateways:\n  - {tcp: \"10.0.0.5:502\", max_connections: two}", 8, 44, "should be a whole number"),
        ("gateways:\n  - {tcp: \"10.0.0.5\", max_connections: 2}", 8, 11, "should look like host:port"),
        ("gateways:\n  - {tcp: \"10.0.0.9:502\", max_connections: 2}", 8, 11, "gateway 10.0.0.9:502 is not the tcp address of any device"),
        ("gateways:\n  - {tcp: \"10.0.0.5:502\"}\n  - {tcp: \"10.0.0.5:502\", max_connections: 2}", 9, 11, "gateway 10.0.0.5:502 is listed twice"),
        ("gateways:\n  - {tcp: \"10.0.0.5:502\", lanes: 2}", 8, 27, "unknown key 'lanes' in a gateway; expected one of: tcp, max_connections"),
        ("gateways:\n  - {max_connections: 2}", 8, 5, "a gateway is missing 'tcp'"),
    ]

    @Test("bad gateways name file:line:column and what is wrong", arguments: badCases.indices)
    func badInput(_ i: Int) {
        let (gateways, line, column, words) = Self.badCases[i]
        do {
            _ = try Site.parse(yaml: Self.site(gateways), file: "bad.yaml")
            Issue.record("case \(i): no error")
        } catch {
            #expect((error.line, error.column) == (line, column), "case \(i): \(error)")
            #expect(error.message.contains(words), "case \(i): \(error)")
            #expect(error.description.hasPrefix("bad.yaml:\(line):\(column): "), "case \(i): \(error)")
        }
    }
}
