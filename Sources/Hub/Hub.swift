// The fleet hub (issue 18): the Sparkplug B primary host application that holds the whole fleet. It shares the
// `Sparkplug` target with the edge node and never depends on `Control`. See docs/fleet.md.

/// The hub's namespace for shared constants.
public enum Hub {
    /// The Sparkplug namespace the hub subscribes to.
    public static let subscription = "spBv1.0/#"
}
