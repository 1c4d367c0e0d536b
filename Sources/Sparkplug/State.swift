// The primary host's STATE message (Sparkplug 3.0): retained JSON on spBv1.0/STATE/<host_id>,
// {"online": true|false, "timestamp": <ms since the epoch>}.

import Foundation

public struct HostState: Sendable, Hashable, Codable {
    public var online: Bool
    public var timestamp: UInt64

    public init(online: Bool, timestamp: UInt64) {
        self.online = online
        self.timestamp = timestamp
    }

    public enum ParseError: Error, Sendable, Hashable, CustomStringConvertible {
        case notJSON(String)
        public var description: String {
            switch self { case .notJSON(let why): "STATE payload is not {\"online\": bool, \"timestamp\": ms}: \(why)" }
        }
    }

    public init(parsing payload: [UInt8]) throws(ParseError) {
        do { self = try JSONDecoder().decode(HostState.self, from: Data(payload)) } catch { throw .notJSON("\(error)") }
    }

    public func encoded() -> [UInt8] {
        // Keys in a fixed order, as the specification's examples show them.
        Array("{\"online\":\(online),\"timestamp\":\(timestamp)}".utf8)
    }
}
