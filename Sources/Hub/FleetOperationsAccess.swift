// What the hub's fleet operations are fed, read from outside the Hub target (the fleet command benchmark,
// SwitchyardBench fleet-command, sizes its sheds from the same offers a shed would start from).

extension FleetOperations {
    /// One row per site, as the operations see them (the host's model).
    public func siteStatus() async -> [SiteStatus] { await host.status() }

    /// What a shed in `region` would start from now: the region's online sites with an offer and a metered import.
    public nonisolated func shedInputs(region: String) -> (sites: [SiteKey: SiteShedInput], missing: [SiteKey: String]) {
        host.shedInputs(region: region)
    }
}
