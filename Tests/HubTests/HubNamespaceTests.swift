import Hub
import Testing

@Suite struct HubNamespaceTests {
    @Test func subscribesToTheWholeSparkplugNamespace() {
        #expect(Hub.subscription == "spBv1.0/#")
    }
}
