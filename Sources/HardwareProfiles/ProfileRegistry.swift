// Finds profiles by id or path. Search order: an explicit directory
// (--profiles-dir), the SWITCHYARD_PROFILES environment variable (a
// colon-separated list), ./hardware-profiles, then the hardware-profiles
// directory of the package the executable was built in.

import Foundation

public struct ProfileRegistry: Sendable {
    /// Directories searched, in order (only those that exist).
    public var searchPaths: [URL]

    public init(searchPaths: [URL]) {
        var seen = Set<String>()
        self.searchPaths = searchPaths.filter { url in
            var isDir: ObjCBool = false
            let path = url.standardizedFileURL.path
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir), isDir.boolValue else { return false }
            return seen.insert(path).inserted
        }
    }

    /// The standard search path.
    public static func standard(profilesDir: String? = nil,
                                environment: [String: String] = ProcessInfo.processInfo.environment,
                                currentDirectory: String = FileManager.default.currentDirectoryPath,
                                executablePath: String? = Bundle.main.executablePath ?? CommandLine.arguments.first) -> ProfileRegistry {
        var paths: [URL] = []
        if let profilesDir { paths.append(URL(fileURLWithPath: profilesDir)) }
        if let env = environment["SWITCHYARD_PROFILES"] {
            paths += env.split(separator: ":").map { URL(fileURLWithPath: String($0)) }
        }
        paths.append(URL(fileURLWithPath: currentDirectory).appendingPathComponent("hardware-profiles"))
        if let exe = executablePath.map({ URL(fileURLWithPath: $0).resolvingSymlinksInPath() }) {
            // e.g. <package>/.build/debug/switchyard → <package>/hardware-profiles
            var dir = exe.deletingLastPathComponent()
            for _ in 0..<6 {
                let candidate = dir.appendingPathComponent("hardware-profiles")
                if FileManager.default.fileExists(atPath: dir.appendingPathComponent("Package.swift").path) {
                    paths.append(candidate)
                    break
                }
                dir.deleteLastPathComponent()
            }
        }
        return ProfileRegistry(searchPaths: paths)
    }

    public enum LookupError: Error, CustomStringConvertible {
        case notFound(String, searched: [String])
        case invalid(ProfileErrors)

        public var description: String {
            switch self {
            case let .notFound(id, searched):
                "no profile '\(id)' found (searched: \(searched.isEmpty ? "no existing directories" : searched.joined(separator: ", ")))"
            case let .invalid(errors): errors.description
            }
        }
    }

    /// Every profile file in the search path (`*.yaml` directly in each directory).
    public func profileFiles() -> [URL] {
        searchPaths.flatMap { dir -> [URL] in
            let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
            return names.filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") }.sorted().map { dir.appendingPathComponent($0) }
        }
    }

    /// Resolves `idOrPath` to a file: an existing path, `<dir>/<id>.yaml`, or a profile whose `id:` matches.
    public func locate(_ idOrPath: String) throws(LookupError) -> URL {
        let fm = FileManager.default
        if idOrPath.contains("/") || idOrPath.hasSuffix(".yaml") || idOrPath.hasSuffix(".yml") {
            if fm.fileExists(atPath: idOrPath) { return URL(fileURLWithPath: idOrPath) }
            throw .notFound(idOrPath, searched: [])
        }
        for dir in searchPaths {
            let direct = dir.appendingPathComponent("\(idOrPath).yaml")
            if fm.fileExists(atPath: direct.path) { return direct }
        }
        for file in profileFiles() where Self.declaredID(of: file) == idOrPath { return file }
        throw .notFound(idOrPath, searched: searchPaths.map(\.path))
    }

    /// Loads a profile by id or path.
    public func load(_ idOrPath: String) throws(LookupError) -> DeviceProfile {
        let url = try locate(idOrPath)
        do { return try ProfileLoader.loadValid(path: url.path) } catch { throw .invalid(error) }
    }

    /// Loads each distinct profile of `ids` once (a site's devices name them), keyed by the id as given.
    public func load(each ids: some Sequence<String>) throws(LookupError) -> [String: DeviceProfile] {
        var out: [String: DeviceProfile] = [:]
        for id in ids where out[id] == nil { out[id] = try load(id) }
        return out
    }

    /// The `id:` line of a profile, read without a full parse.
    static func declaredID(of file: URL) -> String? {
        guard let text = try? String(contentsOf: file, encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("id:") {
            let value = line.dropFirst(3).split(separator: "#", maxSplits: 1).first.map(String.init) ?? ""
            return value.trimmingCharacters(in: .whitespaces).trimmingCharacters(in: CharacterSet(charactersIn: "\"'"))
        }
        return nil
    }
}
