// The names of the metrics a Switchyard edge node publishes (issue 17), shared by both ends of the fleet bus:
// the edge node (FleetEdge) writes them and the primary host (Hub) reads them. Datatypes and meanings are listed
// in docs/fleet.md ("What `serve` publishes").

/// Names of the metrics the edge node publishes.
public enum FleetMetricName {
    public static let importKW = "Site/Import kW"
    public static let capKW = "Site/Cap In Force kW"
    public static let miningMW = "Site/Mining MW"
    public static let inferenceMW = "Site/Inference MW"
    public static let price = "Site/Price USD per MWh"
    public static let hashprice = "Site/Hashprice USD per PH day"
    public static let mode = "Site/Governor Mode"
    public static let configVersion = "Site/Config Version"
    public static let activeEvents = "Site/Active Events"
    /// The SHA-256 (hex) of the configuration in force (String; null when unknown): a rollout waits for it.
    public static let configSHA256 = "Site/Config SHA256"

    /// The site's offer to a fleet shed (issue 18): how many of its steps are in use (Int32), then for each step
    /// k in 1…`offerMaxSteps`, cheapest first, the import kW it sheds within one tick and the $/h it loses while
    /// shed (Double; null for steps not in use). Docs: docs/fleet.md, "Fleet DR allocation".
    public static let offerSteps = "Site/Offer/Steps"
    public static let offerMaxSteps = 10
    public static func offerStepKW(_ k: Int) -> String { "Site/Offer/Step \(k) kW" }
    public static func offerStepUSDPerHour(_ k: Int) -> String { "Site/Offer/Step \(k) USD per h" }

    public static let powerKW = "Power kW"
    public static let setpointKW = "Setpoint kW"
    public static let up = "Up"
    public static let following = "Following"
    public static let lastErrorCode = "Last Error Code"
}
