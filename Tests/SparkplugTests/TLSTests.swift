// The libmosquitto client over TLS against Debian's mosquitto with client certificates required:
// certificates made by openssl for each run (a CA, the broker's for 127.0.0.1, a site's, and a stranger's
// from another CA). mosquitto decides who gets in; we check what our client does with its answer.

import Foundation
import Testing
@testable import Sparkplug
import TestSupport

/// How a connection attempt ended: connected, or the first failure (thrown by connect, or an event).
enum TLSOutcome: Equatable {
    case connected
    case failed(String)
}

func attempt(_ client: MQTTClient) async -> TLSOutcome {
    var it = client.events.makeAsyncIterator()
    do { try await client.connect(will: nil) } catch { return .failed("\(error)") }
    while let e = await it.next() {
        switch e {
        case .connected: return .connected
        case .connectionRefused(_, let reason): return .failed("refused: \(reason)")
        case .disconnected(_, let reason): return .failed("disconnected: \(reason)")
        case .message: continue
        }
    }
    return .failed("no event")
}

@Suite("MQTT over TLS with client certificates (mosquitto)", .serialized, .timeLimit(.minutes(1)))
struct TLSTests {
    func config(_ port: Int, _ id: String, _ tls: MQTTTLS?) -> MQTTConfiguration {
        MQTTConfiguration(host: "127.0.0.1", port: port, clientID: id, tls: tls)
    }

    @Test func aSiteWithItsCertificatePublishesAndSubscribesOverTLS() async throws {
        let pki = try TestPKI.make()
        defer { pki.remove() }
        let broker = try await MosquittoBroker.start(tls: .init(caFile: pki.path("ca.crt"), certFile: pki.path("server.crt"), keyFile: pki.path("server.key")))
        defer { broker.stop() }
        let client = MQTTClient(config(broker.port, "site-7",
                                       MQTTTLS(caFile: pki.path("ca.crt"), certFile: pki.path("site.crt"), keyFile: pki.path("site.key"))))
        defer { client.close() }
        var it = client.events.makeAsyncIterator()
        try await client.connect(will: nil)
        let connected = await nextEvent(&it) { if case .connected = $0 { true } else if case .message = $0 { false } else { true } }
        #expect(connected == .connected, "\(broker.log)")
        try await client.subscribe("spBv1.0/#", qos: 1)
        try await client.publish(topic: "spBv1.0/g/NDATA/site-7", payload: [1, 2, 3], qos: 1)
        let m = await nextEvent(&it) { message($0) != nil }.flatMap(message)
        #expect(m?.payload == [1, 2, 3])
        // The broker took the certificate's CN as the client's identity.
        #expect(broker.log.contains("u'site-7'") || broker.log.contains("as site-7"), "\(broker.log)")
    }

    @Test func withoutAClientCertificateTheBrokerLetsNobodyIn() async throws {
        let pki = try TestPKI.make()
        defer { pki.remove() }
        let broker = try await MosquittoBroker.start(tls: .init(caFile: pki.path("ca.crt"), certFile: pki.path("server.crt"), keyFile: pki.path("server.key")))
        defer { broker.stop() }
        let noCert = MQTTClient(config(broker.port, "anon", MQTTTLS(caFile: pki.path("ca.crt"))))
        defer { noCert.close() }
        #expect(await attempt(noCert) != .connected)
        let plain = MQTTClient(config(broker.port, "plain", nil))
        defer { plain.close() }
        #expect(await attempt(plain) != .connected)
    }

    @Test func aCertificateFromAnotherCAIsRefused() async throws {
        let pki = try TestPKI.make()
        defer { pki.remove() }
        let broker = try await MosquittoBroker.start(tls: .init(caFile: pki.path("ca.crt"), certFile: pki.path("server.crt"), keyFile: pki.path("server.key")))
        defer { broker.stop() }
        let stranger = MQTTClient(config(broker.port, "stranger",
                                         MQTTTLS(caFile: pki.path("ca.crt"), certFile: pki.path("stranger.crt"), keyFile: pki.path("stranger.key"))))
        defer { stranger.close() }
        #expect(await attempt(stranger) != .connected)
    }

    @Test func aBrokerOutsideTheTrustedCAIsRefusedByTheSite() async throws {
        let pki = try TestPKI.make()
        defer { pki.remove() }
        let broker = try await MosquittoBroker.start(tls: .init(caFile: pki.path("ca.crt"), certFile: pki.path("server.crt"), keyFile: pki.path("server.key")))
        defer { broker.stop() }
        // The site trusts only the other CA: the broker's certificate does not verify, so the site does not connect.
        let site = MQTTClient(config(broker.port, "site-7",
                                     MQTTTLS(caFile: pki.path("other-ca.crt"), certFile: pki.path("site.crt"), keyFile: pki.path("site.key"))))
        defer { site.close() }
        let outcome = await attempt(site)
        #expect(outcome != .connected)
    }
}
