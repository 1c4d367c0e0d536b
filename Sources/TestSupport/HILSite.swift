// The small site the hardware-in-the-loop, API and daemon tests run: 6 MW import, a 3.8 MW transformer
// (xfmr-1) with up to three 1 MW ASIC containers, a 0.8 MW GPU container on the root, meters on the site
// and the transformer, cooling at 5 % of IT load; optionally the acme inference contract (400 kW,
// 08:00–20:00 UTC). One text, so a change to the test site is made once.

public enum HILSite {
    /// Device addresses 127.0.0.1:20001… in file order (the in-memory simulator ignores them).
    public static func fixedAddress(_ device: String) -> String {
        let order = ["site-meter", "xfmr-1-meter", "asic-1", "asic-2", "asic-3", "gpu-1"]
        return "127.0.0.1:\(20001 + (order.firstIndex(of: device) ?? order.count))"
    }

    /// The site file. `address` gives each Modbus device's `host:port` (a daemon test passes a
    /// placeholder the simulator's ports replace).
    public static func yaml(id: String = "hil", asics: Int = 3, acmeContract: Bool = true,
                            address: (String) -> String = fixedAddress) -> String {
        var s = """
        site: {id: \(id), import_limit_kw: 6000, safety_margin_kw: 200, tick_s: 1, stale_after_s: 3}
        tree:
          id: site
          cap_kw: 6000
          meter: site-meter
          children:
            - {id: xfmr-1, cap_kw: 3800, meter: xfmr-1-meter}
        devices:
          - {id: site-meter, class: meter, profile: janitza-umg604, address: {tcp: "\(address("site-meter"))", unit: 1}}
          - {id: xfmr-1-meter, class: meter, profile: eastron-sdm630, address: {tcp: "\(address("xfmr-1-meter"))", unit: 1}}

        """
        for n in 1...max(1, asics) {
            s += """
              - id: asic-\(n)
                class: mining
                profile: reference-asic-container
                node: xfmr-1
                address: {tcp: "\(address("asic-\(n)"))", unit: 1}
                limits: {max_kw: 1000, min_stable_kw: 200, ramp_kw_per_s: 500, min_on_s: 0, min_off_s: 0}
                efficiency_j_per_th: 20

            """
        }
        s += """
          - id: gpu-1
            class: inference
            profile: reference-gpu-container
            node: site
            address: {tcp: "\(address("gpu-1"))", unit: 1}
            limits: {max_kw: 800, min_stable_kw: 100, ramp_kw_per_s: 400, min_on_s: 0, min_off_s: 0}
            gpus: 800
            kw_per_gpu: 1.0
          - {id: cooling, class: auxiliary, node: site, fraction_of_it: 0.05}
        economics:
          hashprice_usd_per_ph_day: 50
          strike: {price_usd_per_mwh: 150, hysteresis_usd_per_mwh: 20, min_off_s: 0}
          inference_spot: {usd_per_mwh: 300}
        """
        if acmeContract {
            s += """

            contracts:
              - {id: acme, devices: [gpu-1], committed_kw: 400, rate_usd_per_mwh: 250, penalty_usd_per_mwh: 400, daily: {from: "08:00", to: "20:00"}}
            """
        }
        return s
    }
}
