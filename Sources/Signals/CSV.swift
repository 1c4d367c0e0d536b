// A small RFC 4180 CSV reader that keeps line numbers.

import Foundation

struct CSVRow {
    var fields: [String]
    /// 1-based line the row starts on.
    var line: Int
}

enum CSV {
    /// Splits `text` into rows. Quoted fields may contain commas, quotes ("") and newlines.
    /// Blank lines are skipped.
    static func parse(_ text: String, file: String) throws(SignalsError) -> [CSVRow] {
        var rows: [CSVRow] = []
        var fields: [String] = []
        var field = ""
        var inQuotes = false
        var line = 1
        var rowLine = 1
        var fieldWasQuoted = false
        var chars = text.unicodeScalars.makeIterator()
        var pending: Unicode.Scalar? = nil
        func next() -> Unicode.Scalar? {
            if let p = pending { pending = nil; return p }
            return chars.next()
        }
        func endRow() {
            fields.append(field)
            if !(fields.count == 1 && fields[0].isEmpty && !fieldWasQuoted) {
                rows.append(CSVRow(fields: fields, line: rowLine))
            }
            fields = []
            field = ""
            fieldWasQuoted = false
        }
        if let first = chars.next(), first != "\u{FEFF}" { pending = first }  // drop a BOM
        while let c = next() {
            if inQuotes {
                if c == "\"" {
                    if let n = next() {
                        if n == "\"" { field.unicodeScalars.append("\"") } else { inQuotes = false; pending = n }
                    } else { inQuotes = false }
                } else {
                    if c == "\n" { line += 1 }
                    field.unicodeScalars.append(c)
                }
                continue
            }
            switch c {
            case ",":
                fields.append(field)
                field = ""
                fieldWasQuoted = false
            case "\"":
                guard field.trimmingCharacters(in: .whitespaces).isEmpty else {
                    throw SignalsError(.syntax, "a quote inside an unquoted field", at: SignalSource(file: file, line: line))
                }
                field = ""
                inQuotes = true
                fieldWasQuoted = true
            case "\r":
                continue
            case "\n":
                endRow()
                line += 1
                rowLine = line
            default:
                field.unicodeScalars.append(c)
            }
        }
        if inQuotes { throw SignalsError(.syntax, "a quoted field is not closed", at: SignalSource(file: file, line: rowLine)) }
        if !field.isEmpty || !fields.isEmpty { endRow() }
        return rows
    }

    /// Normalises a header name for matching: lowercase, only letters and digits.
    static func key(_ s: String) -> String {
        String(s.lowercased().unicodeScalars.filter { CharacterSet.alphanumerics.contains($0) }.map(Character.init))
    }
}

/// Column lookup by normalised header name.
struct CSVHeader {
    let names: [String]
    let index: [String: Int]
    let file: String
    let line: Int

    init(_ row: CSVRow, file: String) {
        names = row.fields.map { $0.trimmingCharacters(in: .whitespaces) }
        var idx: [String: Int] = [:]
        for (i, n) in names.enumerated() where idx[CSV.key(n)] == nil { idx[CSV.key(n)] = i }
        index = idx
        self.file = file
        line = row.line
    }

    func column(_ candidates: String...) -> Int? {
        for c in candidates { if let i = index[CSV.key(c)] { return i } }
        return nil
    }

    func require(_ display: String, _ candidates: String...) throws(SignalsError) -> Int {
        for c in [display] + candidates { if let i = index[CSV.key(c)] { return i } }
        throw SignalsError(.missingField, "missing column \"\(display)\" (columns are: \(names.joined(separator: ", ")))",
                           at: SignalSource(file: file, line: line))
    }
}

extension CSVRow {
    func field(_ i: Int, _ name: String, file: String) throws(SignalsError) -> String {
        guard i < fields.count else {
            throw SignalsError(.missingField, "row has \(fields.count) fields; no value for column \"\(name)\"", at: SignalSource(file: file, line: line))
        }
        return fields[i].trimmingCharacters(in: .whitespaces)
    }

    func number(_ i: Int, _ name: String, file: String) throws(SignalsError) -> Double {
        let text = try field(i, name, file: file)
        guard let v = Double(text), v.isFinite else {
            throw SignalsError(.badValue, "\(name) \"\(text)\" is not a number", at: SignalSource(file: file, line: line))
        }
        return v
    }
}
