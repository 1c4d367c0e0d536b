// The Site module's names for events and contracts. The Signals module has types of the
// same names (and the Site module a type named `Site`, so `Site.DREvent` does not
// qualify), hence these aliases: this file imports Site only.

import Site

typealias SiteDREvent = DREvent
typealias SiteContract = Contract
