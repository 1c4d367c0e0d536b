// The roles of an API token, shared by the site API (tokens in the site store) and the fleet hub's API (tokens in
// PostgreSQL): viewer < operator < admin; a route needs a least role.

public enum Role: String, Codable, Sendable, CaseIterable, Comparable {
    case viewer, `operator`, admin

    var rank: Int { switch self { case .viewer: 0; case .operator: 1; case .admin: 2 } }
    public static func < (a: Role, b: Role) -> Bool { a.rank < b.rank }
}
