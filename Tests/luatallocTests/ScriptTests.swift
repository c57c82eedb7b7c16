// luatalloc — the chapter scripts, end to end
// SPDX-License-Identifier: MIT
//
// Every scripts/NN-*.lua runs in the built luatalloc (from the package root, so names read
// "scripts/NN-....lua:LINE") and must print exactly scripts/expected/NN-*.txt, with nothing on stderr
// and exit status 0. `scripts/update-expected.sh` regenerates the expected files.

import Foundation
import Testing

enum ScriptFiles {
    /// The built luatalloc: next to the test bundle in the products directory.
    static let binary: String = {
        var dir = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<3 {
            let candidate = dir.appendingPathComponent("luatalloc").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            dir = dir.deletingLastPathComponent()
        }
        return Bundle.main.bundleURL.deletingLastPathComponent().appendingPathComponent("luatalloc").path
    }()
    static let root: URL = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()
    static var scripts: [String] {
        let dir = root.appendingPathComponent("scripts")
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        return names.filter { $0.hasSuffix(".lua") && $0.first?.isNumber == true }.sorted()
    }
}

@Suite struct ScriptTests {
    @Test(arguments: ScriptFiles.scripts)
    func scriptPrintsItsExpectedOutput(_ name: String) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: ScriptFiles.binary)
        process.arguments = ["scripts/" + name]
        process.currentDirectoryURL = ScriptFiles.root
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let expectedURL = ScriptFiles.root.appendingPathComponent("scripts/expected")
            .appendingPathComponent(name.replacingOccurrences(of: ".lua", with: ".txt"))
        let expected = try String(contentsOf: expectedURL, encoding: .utf8)
        #expect(process.terminationStatus == 0)
        #expect(String(decoding: stderr, as: UTF8.self) == "")
        #expect(String(decoding: stdout, as: UTF8.self) == expected)
    }

    @Test func thereAreChapterScripts() {
        #expect(ScriptFiles.scripts.count >= 7)
    }
}
