// The options of `switchyard serve` that are groups of their own: the API flags and the site to run.
// The daemon gets them as plain values (`DaemonConfig`, Sources/Daemon/SiteDaemon.swift).

import API
import ArgumentParser

struct APIOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("API listen address.", valueName: "HOST:PORT"))
    var listen: String = "127.0.0.1:8443"

    @Option(name: .customLong("tls-cert"), help: ArgumentHelp("TLS certificate chain (PEM).", valueName: "FILE"))
    var tlsCert: String?

    @Option(name: .customLong("tls-key"), help: ArgumentHelp("TLS private key (PEM).", valueName: "FILE"))
    var tlsKey: String?

    @Flag(name: .long, help: "Allow plain HTTP on a non-loopback address (tokens travel in clear text).")
    var insecure = false

    @Option(name: .customLong("decision-retention-days"), help: "Keep the per-tick decision log this many days.")
    var decisionRetentionDays: Double = 7

    func validate() throws {
        do { _ = try configuration() } catch { throw ValidationError("\(error)") }
        if !(decisionRetentionDays > 0 && decisionRetentionDays <= 3650) { throw ValidationError("--decision-retention-days must be 0…3650") }
    }

    func configuration() throws -> APIConfiguration {
        try APIConfiguration(listen: listen, tlsCertPath: tlsCert, tlsKeyPath: tlsKey, insecure: insecure)
    }
}

/// serve's site options: `--site` is optional (without it the stored configuration runs).
struct ServeSiteOptions: ParsableArguments {
    @Option(name: .customLong("site"), help: ArgumentHelp("The site file (YAML). Given: it runs, and is stored as a new version if it differs from the stored one. Absent: the stored configuration runs.", valueName: "FILE"))
    var siteFile: String?

    @Option(name: .customLong("initial-site"), help: ArgumentHelp("The site file for a state directory that holds no configuration yet (ignored once one is stored; for service units).", valueName: "FILE"))
    var initialSite: String?

    @Option(name: .customLong("profiles-dir"), help: ArgumentHelp("Extra directory of hardware profiles.", valueName: "DIR"))
    var profilesDir: String?

    func validate() throws {
        if siteFile != nil && initialSite != nil { throw ValidationError("give --site or --initial-site, not both") }
    }
}
