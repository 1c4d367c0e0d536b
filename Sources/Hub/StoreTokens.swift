// The fleet API's tokens in the hub's database (migration v4-api-tokens): created by `switchyard hub token create`
// on the hub's machine, checked by the API on every request.

import Basics
import PostgresNIO

/// A token as the API sees it once its secret matched.
public struct HubTokenRecord: Sendable, Hashable {
    public var id: String
    public var name: String
    public var role: Role
    public var revoked: Bool

    public init(id: String, name: String, role: Role, revoked: Bool) {
        self.id = id
        self.name = name
        self.role = role
        self.revoked = revoked
    }
}

extension HubStore {
    /// A new token: its secret (shown once) and its id.
    public func createToken(name: String, role: Role) async throws -> (secret: String, id: String) {
        let (secret, id) = TokenSecret.generate()
        do {
            try await client.query("""
                INSERT INTO api_tokens (id, name, role, secret_hash) VALUES (\(id), \(name), \(role.rawValue), \(TokenSecret.hash(secret)))
                """, logger: logger)
        } catch {
            throw HubStoreError.wrap(error, "create token \(name)")
        }
        return (secret, id)
    }

    /// The token whose secret hashes to `hash`, if any.
    public func token(hash: String) async throws -> HubTokenRecord? {
        do {
            let rows = try await client.query("""
                SELECT id, name, role, secret_hash, revoked_at IS NOT NULL FROM api_tokens WHERE secret_hash = \(hash)
                """, logger: logger)
            for try await (id, name, role, stored, revoked) in rows.decode((String, String, String, String, Bool).self) {
                guard constantTimeEquals(stored, hash), let r = Role(rawValue: role) else { return nil }
                return HubTokenRecord(id: id, name: name, role: r, revoked: revoked)
            }
            return nil
        } catch {
            throw HubStoreError.wrap(error, "read a token")
        }
    }

    /// Revokes token `id`; false if there is none.
    @discardableResult
    public func revokeToken(id: String) async throws -> Bool {
        do {
            let rows = try await client.query("""
                UPDATE api_tokens SET revoked_at = now() WHERE id = \(id) AND revoked_at IS NULL RETURNING id
                """, logger: logger)
            for try await _ in rows.decode(String.self) { return true }
            return false
        } catch {
            throw HubStoreError.wrap(error, "revoke token \(id)")
        }
    }
}
