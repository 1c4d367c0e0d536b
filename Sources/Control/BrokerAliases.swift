import Broker

/// The broker's signals at one instant (named apart from the Signals module's feeds).
public typealias DispatchSignals = Signals
