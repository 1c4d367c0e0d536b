// The request context: who is calling (set by the auth middleware) and where from.

import Basics
import Foundation
import HTTPBasics
import Hummingbird
import NIOCore
import Store

/// An authenticated caller.
public struct Identity: Sendable, Equatable {
    public var tokenID: String
    public var name: String
    public var role: Role
    /// "alice (tok_1a2b3c4d)"
    public var actor: String { "\(name) (\(tokenID))" }
}

public struct APIRequestContext: RequestContext, RemoteAddressRequestContext {
    public var coreContext: CoreRequestContextStorage
    public var identity: Identity?
    public let remoteAddress: SocketAddress?

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress
    }

    /// JSON out: snake_case keys, sorted, so responses are stable.
    public var responseEncoder: JSONEncoder { .apiResponse }

    /// The client's address without the port ("unknown" in router tests).
    var clientKey: String {
        guard let a = remoteAddress else { return "unknown" }
        return a.ipAddress ?? "unknown"
    }
}
