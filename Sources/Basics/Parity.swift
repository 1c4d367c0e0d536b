/// Serial parity of a Modbus RTU line: none, even or odd (libmodbus's 'N', 'E', 'O').
public enum Parity: String, Sendable, Hashable, CaseIterable, Codable {
    case none = "N", even = "E", odd = "O"
}
