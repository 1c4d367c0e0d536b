// An exact LP solver for tests (the oracle the broker's exactness tests and the hub's allocation tests compare
// against). Small and dense: instances up to a few hundred variables.

/// Bounded-variable primal simplex for max c·y, A y <= b, 0 <= y <= u, with b >= 0 (y = 0 is
/// feasible). Dense tableau, Bland's rule (smallest index enters, smallest basis index leaves on
/// ties): no cycling. Fails loudly rather than return a plan it has not proven optimal.
public enum Simplex {
    public static func maximize(c: [Double], A: [[Double]], b: [Double], upper: [Double]) -> [Double] {
        let m = A.count
        let n = c.count
        let w = n + m  // columns: structurals, then slacks
        var t = [Double](repeating: 0, count: m * w)
        var d = [Double](repeating: 0, count: w)  // reduced costs (to maximise: enter while d_j > 0 at lower, < 0 at upper)
        var beta = b  // values of the basic variables
        var basis = Array(n..<w)
        var isBasic = [Bool](repeating: false, count: w)
        for j in n..<w { isBasic[j] = true }
        var atUpper = [Bool](repeating: false, count: w)
        var ub = upper + [Double](repeating: .infinity, count: m)
        for j in 0..<n where ub[j] < 0 { ub[j] = 0 }
        for i in 0..<m {
            for j in 0..<n { t[i * w + j] = A[i][j] }
            t[i * w + n + i] = 1
        }
        for j in 0..<n { d[j] = c[j] }
        let tol = 1e-9
        var iter = 0
        while true {
            iter += 1
            precondition(iter < 100_000, "simplex did not converge")
            // Entering: Bland's rule.
            var enter = -1
            for j in 0..<w {
                if isBasic[j] { continue }
                if (!atUpper[j] && d[j] > tol && ub[j] > 0) || (atUpper[j] && d[j] < -tol) {
                    enter = j
                    break
                }
            }
            if enter < 0 { break }
            let dir: Double = atUpper[enter] ? -1 : 1
            // Ratio test: how far can the entering variable move?
            var theta = ub[enter]
            var leave = -1
            var leaveToUpper = false
            for i in 0..<m {
                let a = dir * t[i * w + enter]
                var limit = Double.infinity
                var toUpper = false
                if a > tol {
                    limit = max(0, beta[i]) / a
                } else if a < -tol, ub[basis[i]].isFinite {
                    limit = max(0, ub[basis[i]] - beta[i]) / -a
                    toUpper = true
                } else {
                    continue
                }
                if limit < theta - 1e-12 || (abs(limit - theta) <= 1e-12 && leave >= 0 && basis[i] < basis[leave]) {
                    theta = limit
                    leave = i
                    leaveToUpper = toUpper
                }
            }
            precondition(theta.isFinite, "unbounded LP: every variable has an upper bound or a cap")
            for i in 0..<m { beta[i] -= dir * theta * t[i * w + enter] }
            if leave < 0 {
                // Bound flip: the entering variable crosses to its other bound.
                atUpper[enter].toggle()
                continue
            }
            let old = basis[leave]
            atUpper[old] = leaveToUpper
            let enteringValue = dir > 0 ? theta : ub[enter] - theta
            atUpper[enter] = false
            isBasic[old] = false
            isBasic[enter] = true
            basis[leave] = enter
            beta[leave] = enteringValue
            let pv = t[leave * w + enter]
            for j in 0..<w { t[leave * w + j] /= pv }
            for i in 0..<m where i != leave {
                let f = t[i * w + enter]
                if f != 0 { for j in 0..<w { t[i * w + j] -= f * t[leave * w + j] } }
            }
            let fd = d[enter]
            if fd != 0 { for j in 0..<w { d[j] -= fd * t[leave * w + j] } }
        }
        var y = [Double](repeating: 0, count: n)
        for j in 0..<n where atUpper[j] { y[j] = ub[j] }
        for i in 0..<m where basis[i] < n { y[basis[i]] = min(max(0, beta[i]), ub[basis[i]]) }
        return y
    }
}
