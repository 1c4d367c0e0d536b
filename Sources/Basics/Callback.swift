// A closure that is kept behind a lock and called many times.

/// Holds a closure by reference, so that it can be kept in a `Mutex` and read back any number of times.
///
/// Keep a callback that is set once and called often as `Mutex<Callback<In, Out>?>`, never as
/// `Mutex<((In) -> Out)?>`. A function value stored in generic storage (the `Mutex`) and read back with
/// `withLock { $0 }` is converted to and from the generic representation on the way through the `inout`,
/// and the converted value is written back: every read wraps it in two more reabstraction thunks. After N
/// calls it is called through 2N frames, each call costs O(N), and some 100,000 calls overflow the stack
/// (swift 6.3; `ObserverDepthTests`, `ServerHookDepthTests`). A class reference passes through unchanged.
public final class Callback<Input, Output>: Sendable {
    public let call: @Sendable (Input) -> Output

    public init(_ call: @escaping @Sendable (Input) -> Output) { self.call = call }

    public func callAsFunction(_ input: Input) -> Output { call(input) }
}
