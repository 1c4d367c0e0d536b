import Foundation
import Synchronization
import Testing
@testable import Signals

/// A VTN that ignores `skip` and always answers with a full page of programs
/// (a broken or hostile server). After `giveUpAfter` requests it answers 500, so a
/// client without a bound ends with an error instead of looping forever.
final class EndlessPagesTransport: HTTPTransport, Sendable {
    let requests = Mutex(0)
    let giveUpAfter: Int
    init(giveUpAfter: Int) { self.giveUpAfter = giveUpAfter }

    func send(_ request: HTTPRequest) async throws(SignalsError) -> HTTPResponse {
        if request.url.path.hasSuffix("/auth/token") {
            return HTTPResponse(status: 200, body: Data(#"{"access_token":"t","token_type":"Bearer","expires_in":3600}"#.utf8))
        }
        let n = requests.withLock { $0 += 1; return $0 }
        if n > giveUpAfter { return HTTPResponse(status: 500, body: Data("stop".utf8)) }
        let page = (0..<50).map { i in #"{"id":"p\#(n)-\#(i)","programName":"P\#(n)-\#(i)"}"# }.joined(separator: ",")
        return HTTPResponse(status: 200, body: Data("[\(page)]".utf8))
    }
}

@Suite("OpenADR VEN robustness")
struct VENRobustnessTests {
    @Test func pagingStopsAtABoundWithAClearError() async throws {
        let transport = EndlessPagesTransport(giveUpAfter: 2_000)
        let ven = OpenADRVEN(config: venConfig(port: 9), transport: transport, clock: ManualSignalClock(now: Date(timeIntervalSince1970: 0)))
        var caught: SignalsError?
        do { _ = try await ven.programs() } catch { caught = error }
        let n = transport.requests.withLock { $0 }
        let error = try #require(caught, "an endless VTN must end in an error")
        #expect(n <= 200, "\(n) page requests: the bound is 200 pages of 50")
        #expect(error.description.contains("pages"), "\(error)")
        #expect(error.description.contains("/programs"), "the error names the URL: \(error)")
    }
}
