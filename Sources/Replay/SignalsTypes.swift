// The Signals module's names, for files that import both Site and Signals. This file
// imports Signals only.

import Signals

typealias FeedDREvent = DREvent
typealias FeedContractCalendar = ContractCalendar
