import Broker
import TestSupport

/// The benchmark harness's sweep and exact-search sites (TestSupport's `SweepSite`, the one generator
/// `broker-sweep` and `broker-300` draw from) as the exact oracle's `Instance`, so that the sites the sweep found
/// hard can be pinned in the suite. Each pinned site also pins its size, so a generator that drifts fails there
/// instead of testing another site.
enum SweepInstances {
    /// Instance `c<classIndex>-<k>` of `broker-sweep --seed <seed>`.
    static func sweep(classIndex ci: Int, devices cls: ClosedRange<Int>, index k: Int, seed: UInt64 = 1) -> Instance {
        Instance(SweepSite.sweep(classIndex: ci, devices: cls, index: k, seed: seed))
    }

    /// Instance `t-<k>` of `broker-300 --devices <devices>` (its seed: the options' default, 1).
    static func exactTiming(index k: Int, devices: Int = 300, seed: UInt64 = 1) -> Instance {
        Instance(SweepSite.exactTiming(index: k, devices: devices, seed: seed))
    }
}

extension Instance {
    init(_ s: SweepSite) {
        self.init(nodes: s.nodes, devices: s.devices, states: s.states, uncontrolled: s.uncontrolled, measured: s.measured,
                  importLimit: s.importLimit, margin: s.margin, tick: s.tick, restore: s.restore, staleAfter: 30, signals: s.signals,
                  miningCurtailed: s.miningCurtailed, miningCurtailedFor: s.miningCurtailedFor)
    }
}
