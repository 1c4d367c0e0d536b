// API token secrets, shared by the site API (tokens in the site store) and the fleet hub's API (tokens in
// PostgreSQL): "sy_" + 64 hex characters of system randomness (getrandom on Linux); only the SHA-256 of a secret
// is stored, and the secret is shown once.

public enum TokenSecret {
    /// A new secret and a short public id ("tok_" + 8 hex characters).
    public static func generate() -> (secret: String, id: String) {
        var rng = SystemRandomNumberGenerator()
        let secretBytes = (0..<32).map { _ in UInt8.random(in: 0...255, using: &rng) }
        let idBytes = (0..<4).map { _ in UInt8.random(in: 0...255, using: &rng) }
        return ("sy_" + SHA256.hexString(secretBytes), "tok_" + SHA256.hexString(idBytes))
    }

    /// What is stored of a secret.
    public static func hash(_ secret: String) -> String { SHA256.hex(secret) }
}
