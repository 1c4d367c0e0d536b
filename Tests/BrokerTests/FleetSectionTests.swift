import Basics
import Site
import Testing

/// The site file's `fleet:` section (issue 17): defaults, and file:line:column errors for bad keys and values.
@Suite("Site file fleet section")
struct FleetSectionTests {
    /// SiteFileTests.minimal with `fleet` appended: `fleet:` is line 46.
    func parse(_ fleet: String) throws(LocatedError) -> Site {
        try Site.parse(yaml: SiteFileTests.minimal + "\n" + fleet, file: "s.yaml")
    }

    /// The site's region is the group id unless `group_id` says otherwise.
    @Test func theGroupIDDefaultsToTheSiteRegion() throws {
        func withRegion(_ region: String, _ fleet: String) throws(LocatedError) -> Site {
            try Site.parse(yaml: SiteFileTests.minimal.replacingOccurrences(of: "  id: t\n", with: "  id: t\n  region: \(region)\n") + "\n" + fleet,
                           file: "s.yaml")
        }
        let site = try withRegion("ercot-north", "fleet:\n  broker: {host: h}\n")
        #expect(site.region == "ercot-north")
        #expect(site.fleet?.groupID == "ercot-north")
        #expect(try withRegion("ercot-north", "fleet:\n  broker: {host: h}\n  group_id: north\n").fleet?.groupID == "north")
        #expect(try parse("fleet:\n  broker: {host: h}\n  group_id: g\n").region == nil)
        do {
            _ = try withRegion("west/2", "fleet:\n  broker: {host: h}\n")
            Issue.record("a region that cannot be a group id was accepted")
        } catch {
            #expect(error.description == "s.yaml:3:11: the site region 'west/2' cannot be the fleet's Sparkplug group id: it contains '/'; give fleet group_id")
        }
        // A region that cannot be a group id is fine when group_id is given, and when there is no fleet section.
        #expect(try withRegion("west/2", "fleet:\n  broker: {host: h}\n  group_id: west\n").fleet?.groupID == "west")
        #expect(try Site.parse(yaml: SiteFileTests.minimal.replacingOccurrences(of: "  id: t\n", with: "  id: t\n  region: west/2\n"),
                               file: "s.yaml").region == "west/2")
    }

    @Test func absentMeansNoEdgeNode() throws {
        #expect(try Site.parse(yaml: SiteFileTests.minimal, file: "s.yaml").fleet == nil)
    }

    @Test func defaultsTheEdgeNodeToTheSiteIDAndThePortByTLS() throws {
        let plain = try #require(try parse("fleet:\n  broker: {host: mqtt.example.net}\n  group_id: north\n").fleet)
        #expect(plain == FleetConfig(brokerHost: "mqtt.example.net", brokerPort: 1883, groupID: "north", edgeNodeID: "t"))
        #expect(plain.clientID == "switchyard-t")
        #expect(plain.primaryHostID == nil && plain.tls == nil)
        let tls = try #require(try parse("""
            fleet:
              broker: {host: mqtt.example.net}
              group_id: north
              edge_node_id: site-7
              primary_host_id: hq
              client_id: box-7
              tls: {ca_file: /etc/ca.pem, cert_file: /etc/s.crt, key_file: /etc/s.key}
            """).fleet)
        #expect(tls.brokerPort == 8883)
        #expect(tls.edgeNodeID == "site-7" && tls.primaryHostID == "hq" && tls.clientID == "box-7")
        #expect(tls.tls == FleetConfig.TLS(caFile: "/etc/ca.pem", certFile: "/etc/s.crt", keyFile: "/etc/s.key"))
        #expect(try parse("fleet:\n  broker: {host: h, port: 18830}\n  group_id: g\n").fleet?.brokerPort == 18830)
    }

    static let bad: [(fleet: String, error: String)] = [
        ("fleet:\n  broker: {host: h}\n  group_id: g\n  colour: red\n",
         "s.yaml:49:3: unknown key 'colour' in 'fleet'; expected one of: broker, group_id, edge_node_id, primary_host_id, tls, client_id, roles, command_window_s, buffer_samples"),
        ("fleet:\n  broker: {host: h}\n", "s.yaml:47:3: 'fleet' is missing 'group_id'"),
        ("fleet:\n  group_id: g\n", "s.yaml:47:3: 'fleet' is missing 'broker'"),
        ("fleet:\n  broker: {host: h, port: 70000}\n  group_id: g\n", "s.yaml:47:27: fleet broker port must be 1…65535, got 70000"),
        ("fleet:\n  broker: {host: h, port: x}\n  group_id: g\n", "s.yaml:47:27: fleet broker port should be a whole number, found 'x'"),
        ("fleet:\n  broker: {host: h}\n  group_id: a/b\n", "s.yaml:48:13: fleet group_id 'a/b' cannot be a Sparkplug group id: it contains '/'"),
        ("fleet:\n  broker: {host: h}\n  group_id: g\n  primary_host_id: \"hq#\"\n",
         "s.yaml:49:20: fleet primary_host_id 'hq#' cannot be a Sparkplug host id: it contains the MQTT wildcard '#'"),
        ("fleet:\n  broker: {host: h}\n  group_id: g\n  tls: {cert_file: c.crt}\n",
         "s.yaml:49:8: 'fleet' tls needs both cert_file and key_file, or neither"),
        ("fleet:\n  broker: {host: h}\n  group_id: g\n  tls: {ca: c.pem}\n",
         "s.yaml:49:9: unknown key 'ca' in 'fleet' tls; expected one of: ca_file, cert_file, key_file"),
        ("fleet:\n  broker: {host: h}\n  group_id: g\n  roles:\n    hq-scada: operator\n    hq-ops: root\n",
         "s.yaml:51:13: fleet roles: 'hq-ops' has role 'root'; expected one of: viewer, operator, admin"),
        ("fleet:\n  broker: {host: h}\n  group_id: g\n  roles: [hq-scada]\n",
         "s.yaml:49:10: 'fleet' roles should be a mapping of client id to role"),
        ("fleet:\n  broker: {host: h}\n  group_id: g\n  roles: {\"\": admin}\n",
         "s.yaml:49:11: fleet roles client id '' must be non-empty, without control characters"),
        ("fleet:\n  broker: {host: h}\n  group_id: g\n  command_window_s: 0\n",
         "s.yaml:49:21: fleet command_window_s must be 1…86400 seconds, got 0.0"),
        ("fleet:\n  broker: {host: h}\n  group_id: g\n  buffer_samples: 0\n",
         "s.yaml:49:19: fleet buffer_samples must be 1…31536000 samples (one per tick), got 0"),
        ("fleet:\n  broker: {host: h}\n  group_id: g\n  buffer_samples: 40000000\n",
         "s.yaml:49:19: fleet buffer_samples must be 1…31536000 samples (one per tick), got 40000000"),
        ("fleet:\n  broker: {host: h}\n  group_id: g\n  buffer_samples: 1.5\n",
         "s.yaml:49:19: fleet buffer_samples should be a whole number, found '1.5'"),
        ("fleet:\n  broker: {host: h}\n  group_id: g\n  buffer_samples: week\n",
         "s.yaml:49:19: fleet buffer_samples should be a whole number, found 'week'"),
    ]

    @Test("bad fleet sections name file:line:column", arguments: bad.indices)
    func badSections(_ i: Int) {
        let c = Self.bad[i]
        #expect(throws: LocatedError.self) { _ = try parse(c.fleet) }
        do { _ = try parse(c.fleet) } catch { #expect("\(error)" == c.error) }
    }

    /// `fleet.roles` maps a command's claimed client id to an API role; the window defaults to 300 s.
    @Test func rolesAndTheCommandWindow() throws {
        let plain = try #require(try parse("fleet:\n  broker: {host: h}\n  group_id: g\n").fleet)
        #expect(plain.roles == [:] && plain.commandWindowS == 300)
        let f = try #require(try parse("""
            fleet:
              broker: {host: h}
              group_id: g
              command_window_s: 60
              roles:
                hq-scada: operator
                hq-admin: admin
                hq-dashboard: viewer
            """).fleet)
        #expect(f.roles == ["hq-scada": "operator", "hq-admin": "admin", "hq-dashboard": "viewer"])
        #expect(f.commandWindowS == 60)
    }

    /// `fleet.buffer_samples` bounds the store-and-forward buffer; absent, the daemon's default applies (7 days at 1 s).
    @Test func theStoreAndForwardBound() throws {
        #expect(try parse("fleet:\n  broker: {host: h}\n  group_id: g\n").fleet?.bufferSamples == nil)
        #expect(try parse("fleet:\n  broker: {host: h}\n  group_id: g\n  buffer_samples: 86400\n").fleet?.bufferSamples == 86_400)
        #expect(try parse("fleet:\n  broker: {host: h}\n  group_id: g\n  buffer_samples: 1\n").fleet?.bufferSamples == 1)
    }

    @Test func aSiteIDThatCannotBeAnEdgeNodeIDNeedsOne() {
        let yaml = SiteFileTests.minimal.replacingOccurrences(of: "id: t\n", with: "id: \"a+b\"\n") + "\nfleet:\n  broker: {host: h}\n  group_id: g\n"
        do {
            _ = try Site.parse(yaml: yaml, file: "s.yaml")
            Issue.record("accepted")
        } catch {
            #expect("\(error)" == "s.yaml:2:7: the site id 'a+b' cannot be the Sparkplug edge node id (it contains the MQTT wildcard '+'); give fleet edge_node_id")
        }
    }
}
