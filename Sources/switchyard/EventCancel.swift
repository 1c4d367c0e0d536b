// `switchyard event cancel`.

import API
import ArgumentParser
import Foundation

extension Switchyard.Event {
    struct Cancel: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Cancel an event.")
        @OptionGroup var remote: RemoteOptions
        @Argument(help: "Event id.") var id: String
        func run() async throws {
            let c = try remote.client()
            let r = try await c.call("DELETE", "/v1/events/" + pathSegment(id))
            if remote.json { printJSON(r.body); return }
            print("event \(id) cancelled")
        }
    }
}
