// A payload's envelope without its metrics: for a receiver that must keep counting seq even when a message's
// metrics do not decode (the host's sequence check).

extension SparkplugPayload {
    /// The timestamp and seq of a Sparkplug B payload, read without decoding its metrics; nil if the bytes are not a
    /// payload at all. A seq above 255 reads as nil.
    public static func envelope(of bytes: [UInt8]) -> (timestamp: UInt64?, seq: UInt8?)? {
        guard let p = try? PBPayload(serializedBytes: bytes) else { return nil }
        return (p.hasTimestamp ? p.timestamp : nil, p.hasSeq ? UInt8(exactly: p.seq) : nil)
    }
}
