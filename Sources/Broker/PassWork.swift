// The mutable state of one greedy pass, in raw buffers (the hot loop).

/// The mutable state of one greedy pass, with the constant topology it needs.
struct DevConst: Sendable {
    var k0: Int32
    var k1: Int32
    var rampBase: Double
    var minStable: Double
}

struct DevMut {
    var x: Double
    var rejectedBy: Int32
    var limitedBy: Int32
    var saturated: Bool
    var admitted: Bool
    var forbidden: Bool
}

struct PassWork {
    // Mutable state in raw buffers, one record per device: one cache line per visit and no
    // copy-on-write checks in the hot loop.
    let dev: UnsafeMutableBufferPointer<DevMut>
    let residual: UnsafeMutableBufferPointer<Double>
    let nodeHits: UnsafeMutableBufferPointer<Int32>
    var restoreLeft: Double
    var restoreUsed: Double
    var restoreHit: Bool
    let path: [PathEntry]
    let devConst: [DevConst]
    let eps: Double

    init(_ st: PassState, plant: Plant, devConst: [DevConst], forbidden: [Bool], eps: Double) {
        let n = st.x.count
        dev = .allocate(capacity: n)
        for d in 0..<n {
            (dev.baseAddress! + d).initialize(
                to: DevMut(
                    x: st.x[d], rejectedBy: st.rejectedBy[d], limitedBy: st.limitedBy[d], saturated: st.saturated[d],
                    admitted: st.admitted[d], forbidden: forbidden[d]))
        }
        residual = .allocate(capacity: st.residual.count)
        _ = residual.initialize(from: st.residual)
        nodeHits = .allocate(capacity: st.nodeHits.count)
        _ = nodeHits.initialize(from: st.nodeHits)
        restoreLeft = st.restoreLeft
        restoreUsed = st.restoreUsed
        restoreHit = st.restoreHit
        path = plant.nodePath
        self.devConst = devConst
        self.eps = eps
    }

    /// The result as a PassState; frees the buffers.
    func finish() -> PassState {
        let st = PassState(
            x: dev.map(\.x), residual: Array(residual), restoreLeft: restoreLeft, restoreUsed: restoreUsed,
            admitted: dev.map(\.admitted), saturated: dev.map(\.saturated), rejectedBy: dev.map(\.rejectedBy),
            limitedBy: dev.map(\.limitedBy), nodeHits: Array(nodeHits), restoreHit: restoreHit, total: 0)
        dev.deallocate()
        residual.deallocate()
        nodeHits.deallocate()
        return st
    }

    @inline(__always)
    mutating func hit(_ limNode: Int32) {
        if limNode >= 0 { nodeHits[Int(limNode)] += 1 } else if limNode == -2 { restoreHit = true }
    }

    /// Give device `d` as much as fits of its block ending at `b` kW.
    @inline(__always)
    mutating func take(_ d: Int, _ b: Double, _ first: Bool) {
        var m = dev[d]
        if m.forbidden || m.saturated || m.rejectedBy != -1 { return }
        let x0 = m.x
        if b <= x0 + eps { return }
        let c = devConst[d]
        var avail = b - x0
        var limNode: Int32 = -1
        let k0 = Int(c.k0)
        let k1 = Int(c.k1)
        path.withUnsafeBufferPointer { path in
            for k in k0..<k1 {
                let e = path[k]
                let room = max(0, residual[Int(e.node)]) * e.inv
                // The limiter named is the first clearly tighter one: rounding noise (which depends
                // on summation order) must not change which constraint a reason names.
                if room < avail - 1e-6 {
                    avail = room
                    limNode = e.node
                } else if room < avail {
                    avail = room
                }
            }
        }
        let s = c.rampBase
        let restoreRoom = max(0, s - x0) + restoreLeft
        if restoreRoom < avail - 1e-6 {
            avail = restoreRoom
            limNode = -2
        } else if restoreRoom < avail {
            avail = restoreRoom
        }
        if first && !m.admitted {
            if avail < c.minStable - eps {
                m.rejectedBy = limNode == -1 ? -4 : limNode  // -4: a near-tie, still rejected
                dev[d] = m
                hit(limNode)
                return
            }
            m.admitted = true
        }
        if avail <= eps {
            m.saturated = true
            m.limitedBy = limNode
            dev[d] = m
            hit(limNode)
            return
        }
        let newX = x0 + avail
        let use = max(0, newX - max(x0, s))
        restoreLeft -= use
        restoreUsed += use
        m.x = newX
        path.withUnsafeBufferPointer { path in
            for k in k0..<k1 {
                let e = path[k]
                residual[Int(e.node)] -= avail * e.mult
            }
        }
        if avail < b - x0 - eps {
            m.saturated = true
            m.limitedBy = limNode
            hit(limNode)
        }
        dev[d] = m
    }
}

/// Indices of the positive keys, by key descending; equal keys keep index order (stable LSD radix
/// sort on the IEEE bit pattern, which orders positive doubles like integers).
func radixSortDescending(_ keys: [Double]) -> [Int32] {
    var idx: [Int32] = []
    var bits: [UInt64] = []
    idx.reserveCapacity(keys.count)
    bits.reserveCapacity(keys.count)
    for i in keys.indices where keys[i] > 0 {
        idx.append(Int32(i))
        bits.append(~keys[i].bitPattern)  // inverted: ascending order of ~bits is descending key
    }
    let n = idx.count
    if n < 2 { return idx }
    var idx2 = [Int32](repeating: 0, count: n)
    var bits2 = [UInt64](repeating: 0, count: n)
    var count = [Int](repeating: 0, count: 2049)
    // The top 44 bits of the pattern (relative precision 2^-32) are plenty to order $/MWh values;
    // keys equal to that precision keep their index (id) order.
    var shift: UInt64 = 20
    while shift < 64 {
        for k in 0..<2049 { count[k] = 0 }
        var allSame = true
        let first = (bits[0] >> shift) & 0x7FF
        for i in 0..<n {
            let digit = (bits[i] >> shift) & 0x7FF
            count[Int(digit) + 1] += 1
            if digit != first { allSame = false }
        }
        if !allSame {
            for k in 1..<2049 { count[k] += count[k - 1] }
            for i in 0..<n {
                let digit = Int((bits[i] >> shift) & 0x7FF)
                let pos = count[digit]
                count[digit] = pos + 1
                idx2[pos] = idx[i]
                bits2[pos] = bits[i]
            }
            swap(&idx, &idx2)
            swap(&bits, &bits2)
        }
        shift += 11
    }
    return idx
}
