// luatalloc — the man page (docs/man/luatalloc.1) and `--help` agree.
// SPDX-License-Identifier: MIT
//
// Every option `luatalloc --help` lists is a tagged paragraph of the man page's OPTIONS section, written
// the same way (`-l g=mod`, `--memlimit SIZE`, `-h, --help`), and the other way round; the history file the
// REPL uses is the one FILES names; and groff formats the page without a warning.

import Foundation
import Testing

enum ManPage {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()
    static let path = root.appendingPathComponent("docs/man/luatalloc.1").path

    /// The page's lines.
    static func lines() throws -> [Substring] {
        try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false)
    }

    /// The lines of section `name` (from its `.SH` to the next).
    static func section(_ name: String, of lines: [Substring]) -> [Substring] {
        guard let start = lines.firstIndex(where: { $0 == ".SH \(name)" || $0 == ".SH \"\(name)\"" }) else { return [] }
        let rest = lines[(start + 1)...]
        let end = rest.firstIndex(where: { $0.hasPrefix(".SH ") }) ?? rest.endIndex
        return Array(rest[..<end])
    }

    /// A font-alternating macro line (`.B`, `.BI`, `.BR`, ...) as the text it prints: its arguments
    /// (words, or "quoted strings") joined without spaces, `\-` as `-`, font escapes dropped.
    static func text(ofMacroLine line: Substring) -> String {
        var arguments: [String] = []
        var current = ""
        var quoted = false
        var started = false
        for ch in line.drop(while: { $0 != " " }).dropFirst() {
            if ch == "\"" {
                quoted.toggle()
                started = true
            } else if ch == " " && !quoted {
                if started { arguments.append(current) }
                current = ""
                started = false
            } else {
                current.append(ch)
                started = true
            }
        }
        if started { arguments.append(current) }
        let macro = line.prefix(while: { $0 != " " })
        let joined = macro == ".B" || macro == ".I" ? arguments.joined(separator: " ") : arguments.joined()
        return joined.replacingOccurrences(of: "\\-", with: "-")
            .replacingOccurrences(of: "\\fR", with: "").replacingOccurrences(of: "\\fB", with: "")
            .replacingOccurrences(of: "\\fI", with: "")
    }

    /// The tags of the tagged paragraphs (`.TP` and the line after it) of `lines`.
    static func tags(_ lines: [Substring]) -> [String] {
        var tags: [String] = []
        for (i, line) in lines.enumerated() where line == ".TP" && i + 1 < lines.count {
            tags.append(text(ofMacroLine: lines[i + 1]))
        }
        return tags
    }
}

/// The option column of the usage text: each indented line that starts with `-`, up to the gap before
/// its description.
func optionsOfUsage(_ usage: String) -> [String] {
    usage.split(separator: "\n").compactMap { line -> String? in
        let trimmed = line.drop(while: { $0 == " " })
        guard line.hasPrefix("  "), trimmed.hasPrefix("-") else { return nil }
        if let gap = trimmed.range(of: "  ") { return String(trimmed[..<gap.lowerBound]) }
        return String(trimmed)
    }
}

@Suite struct ManPageTests {
    @Test func theManPageAndHelpListTheSameOptions() throws {
        let help = try runLuatalloc(["--help"])
        #expect(help.status == 0)
        let fromHelp = optionsOfUsage(help.stdout)
        #expect(fromHelp.count >= 13, "\(fromHelp)")
        let fromPage = ManPage.tags(ManPage.section("OPTIONS", of: try ManPage.lines()))
        #expect(fromPage == fromHelp, "man page: \(fromPage)\n--help: \(fromHelp)")
    }

    /// The parser is not vacuous: it reads what it should from lines written as the page writes them.
    @Test func theTagReaderReadsMacroLines() {
        #expect(ManPage.text(ofMacroLine: #".BI \-l " g" = mod"#) == "-l g=mod")
        #expect(ManPage.text(ofMacroLine: #".BR \-h ", " \-\-help"#) == "-h, --help")
        #expect(ManPage.text(ofMacroLine: #".BI \-\-memlimit " SIZE""#) == "--memlimit SIZE")
        #expect(ManPage.text(ofMacroLine: #".B \-"#) == "-")
        #expect(optionsOfUsage("usage: x\n  -e stat   execute\n  --report         print\ntalloc options:\n")
                == ["-e stat", "--report"])
    }

    @Test func filesNamesTheHistoryFileTheREPLUses() throws {
        let repl = try String(
            contentsOf: ManPage.root.appendingPathComponent("Sources/luatalloc/REPL.swift"), encoding: .utf8)
        let name = try #require(repl.firstMatch(of: #/"\/(\.[a-z_]+history)"/#)?.1)
        let files = ManPage.section("FILES", of: try ManPage.lines())
        #expect(files.contains { $0 == ".I ~/\(name)" }, "\(files)")
    }

    @Test("groff formats the page without a warning",
          .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/man")))
    func formatsCleanly() throws {
        let result = try run(
            "/usr/bin/man", ["--warnings", "-E", "UTF-8", "-l", "-Tutf8", "-Z", ManPage.path],
            environment: ["MANWIDTH": "80", "MANROFFSEQ": "", "LC_ALL": "C.UTF-8"])
        #expect(result.status == 0)
        #expect(result.stderr == "", "\(result.stderr)")
        #expect(result.stdout.count > 1000)
    }
}
