// luatalloc — TallocCore tests
// SPDX-License-Identifier: MIT
//
// What `dot()` draws (issue 14): every kind of thing visibly different — chunks, pools, pool memory,
// memory pinning a freed pool, memory limits, references inside and outside the tree — the text the same
// for the same tree, and Graphviz accepting it without a warning.

import Foundation
import Testing
@testable import TallocCore

/// A tree with one of everything `dot()` draws differently.
private func everything(outside: TallocContext) throws -> TallocContext {
    let app = try TallocContext.new(parent: nil, name: "app")
    try app.setMemoryLimit(1 << 20)
    let config = try TallocContext.strdup(parent: app, "config")
    let pool = try TallocContext.pool(parent: app, capacity: 1024)
    _ = try TallocContext.allocate(parent: pool, byteCount: 100, name: "member")
    _ = try TallocContext.pool(parent: pool, capacity: 128)  // a pool carved from a pool
    // A pool freed while two of its members live on elsewhere: they pin it.
    let old = try TallocContext.pool(parent: app, capacity: 512)
    let survivor = try TallocContext.allocate(parent: old, byteCount: 32, name: "survivor")
    let other = try TallocContext.allocate(parent: old, byteCount: 16, name: "other survivor")
    try survivor.steal(to: app)
    try other.steal(to: app)
    try old.free()
    let cache = try TallocContext.new(parent: app, name: "cache \"quoted\"")
    try config.reference(from: cache)
    try outside.reference(from: cache)
    return app
}

/// The picture of `everything`, line by line. The numbers (the limit's count, the pools' fill) are read
/// through the public API: this test is about the look; the accounting has its own tests.
private func expectedLook(_ app: TallocContext) -> String {
    var kids: [String: TallocContext] = [:]
    var c = app.firstChild
    while let k = c { kids[k.name] = k; c = k.nextSibling }
    let limit = app.memoryLimit!
    func fill(_ c: TallocContext) -> String {
        let i = c.poolInfo!
        return "pool \(i.used)/\(i.capacity) bytes, \(i.objectCount) objects"
    }
    let pool = kids["UNNAMED"]!
    return #"""
    digraph talloc {
        graph [nodesep=0.25, ranksep=0.4];
        node [shape=box, style=filled, fillcolor="#ffffff", fontname="monospace", fontsize=10];
        edge [arrowsize=0.6, fontname="monospace", fontsize=9];
        n0 [label="app\n0 bytes\nlimit \#(limit.current)/1048576 bytes", peripheries=2, color="#b3261e"];
        n1 [label="cache \"quoted\"\n0 bytes"];
        n0 -> n1;
        n2 [label="other survivor\n16 bytes", style="filled,rounded", fillcolor="#ffe6cc", color="#c45f00"];
        p0 [label="freed pool, pinned\n\#(fill(kids["survivor"]!))", style="filled,bold,dashed", fillcolor="#ffd1a3", color="#c45f00"];
        n2 -> p0 [style=dotted, color="#c45f00", fontcolor="#c45f00", label="pins"];
        n0 -> n2;
        n3 [label="survivor\n32 bytes", style="filled,rounded", fillcolor="#ffe6cc", color="#c45f00"];
        n3 -> p0 [style=dotted, color="#c45f00", fontcolor="#c45f00", label="pins"];
        n0 -> n3;
        n4 [label="UNNAMED\n\#(fill(pool))", style="filled,bold", fillcolor="#cfe0ff", color="#2f5597"];
        n0 -> n4;
        n5 [label="UNNAMED\n\#(fill(pool.firstChild!))", style="filled,bold,rounded", fillcolor="#cfe0ff", color="#2f5597"];
        n4 -> n5;
        n6 [label="member\n100 bytes", style="filled,rounded", fillcolor="#eef3ff", color="#2f5597"];
        n4 -> n6;
        n7 [label="config\n7 bytes"];
        n0 -> n7;
        n8 [label="outside\n0 bytes\n(outside this tree)", style="filled,dashed", fillcolor="#f2f2f2", color="#777777"];
        n1 -> n8 [style=dashed, color="#7b3fa0", fontcolor="#7b3fa0", label="ref", constraint=false];
        n1 -> n7 [style=dashed, color="#7b3fa0", fontcolor="#7b3fa0", label="ref", constraint=false];
    }

    """#
}

@Suite struct DotLookTests {
    @Test("each kind of thing has its own look, and the text is the same for the same tree")
    func oneOfEverything() throws {
        let outside = try TallocContext.new(parent: nil, name: "outside")
        defer { try? outside.free() }
        let first = try everything(outside: outside)
        let text = first.dot()
        try first.free()
        // Built again (at other addresses): the same text.
        let second = try everything(outside: outside)
        defer { try? second.free() }
        #expect(second.dot() == text)
        #expect(text == expectedLook(second), "\(text)")
        // The several-roots form draws the same tree the same way.
        #expect(TallocContext.dot([second]) == text)
    }

    @Test("a chunk under two roots draws its pins edge once")
    func pinsOnceUnderTwoRoots() throws {
        let outside = try TallocContext.new(parent: nil, name: "outside")
        defer { try? outside.free() }
        let app = try everything(outside: outside)
        defer { try? app.free() }
        let text = TallocContext.dot([app, app])
        #expect(text.components(separatedBy: "label=\"pins\"").count - 1 == 2)
        #expect(text.components(separatedBy: "label=\"freed pool, pinned").count - 1 == 1)
    }

    @Test("Graphviz draws it without a warning", .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/dot")))
    func graphvizAcceptsIt() throws {
        let outside = try TallocContext.new(parent: nil, name: "outside")
        defer { try? outside.free() }
        let app = try everything(outside: outside)
        defer { try? app.free() }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/dot")
        process.arguments = ["-Tsvg"]
        let input = Pipe(), output = Pipe(), errors = Pipe()
        process.standardInput = input
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        input.fileHandleForWriting.write(Data(app.dot().utf8))
        try input.fileHandleForWriting.close()
        let svg = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let warnings = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        #expect(warnings == "")
        #expect(svg.contains("<svg") && svg.contains("freed pool, pinned") && svg.contains("limit \(app.memoryLimit!.current)/1048576 bytes"))
    }
}
