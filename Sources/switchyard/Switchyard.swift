import ArgumentParser

@main
struct Switchyard: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "switchyard",
        abstract: "Power-budget controller for mixed bitcoin-mining and AI-inference sites.",
        version: SwitchyardVersion.string,
        subcommands: [
            ModbusCommand.self,
            Profile.self,
            Probe.self,
            Dispatch.self,
            Sim.self,
            Serve.self,
            Replay.self,
            Status.self,
            Devices.self,
            Explain.self,
            Event.self,
            Mode.self,
            Config.self,
            Token.self,
            Audit.self,
        ]
    )
}

enum SwitchyardVersion {
    static let string = "0.1.0"
}
