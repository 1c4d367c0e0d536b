import Foundation
public enum ReplayReport {
    public static func html(_ r: BacktestResult) -> String { "" }
}
