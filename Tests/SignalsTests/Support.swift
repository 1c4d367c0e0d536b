import Basics
import Foundation
@testable import Signals

/// The repository's examples/ directory, found from this file's path.
let examplesDir: URL = {
    var url = URL(fileURLWithPath: #filePath)
    while url.path != "/" {
        url.deleteLastPathComponent()
        let candidate = url.appendingPathComponent("examples")
        if FileManager.default.fileExists(atPath: candidate.appendingPathComponent("prices").path) { return candidate }
    }
    return URL(fileURLWithPath: "examples")
}()

func example(_ path: String) -> String { examplesDir.appendingPathComponent(path).path }

func date(_ s: String) -> Date {
    guard let d = ISO8601.parseDate(s) else { fatalError("bad test timestamp \(s)") }
    return d
}

let chicago = TimeZone(identifier: "America/Chicago")!

/// Runs `body` and returns the SignalsError it throws (nil if it does not throw one).
func signalsError(_ body: () throws -> Void) -> SignalsError? {
    do { try body() } catch let e as SignalsError { return e } catch { return nil }
    return nil
}
