// luatalloc — TallocCore tests
// SPDX-License-Identifier: MIT
//
// Reports and DOT stream: the text in pieces to a sink, working memory announced to an accountant and
// bounded by the number of chunks (never by the text), and the text byte for byte what it was when it
// was built as one String (LegacyText), and what libtalloc prints.

import CTalloc
import Testing
@testable import TallocCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

private struct LCG {
    var state: UInt64
    mutating func next(_ n: Int) -> Int {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return Int((state >> 33) % UInt64(n))
    }
}

private let constantNames: [StaticString] = [
    "a", "struct foo", "a_name_that_is_longer_than_thirty_characters", "exactly_thirty_characters_long", "",
]
private let texts = ["hello", "quote \" and \\ backslash", "new\nline", "tab\tand\u{1}control", "naïve ünïcödé €",
                     String(repeating: "x", count: 40)]

/// A random tree: plain and located chunks, strings, pools and their members, pooled objects, ".name"
/// children, references (some to chunks outside the tree), memory limits.
private func randomTree(seed: UInt64, size: Int, outside: TallocContext) throws -> TallocContext {
    var rng = LCG(state: seed)
    let root = try TallocContext.new(parent: nil, name: "root")
    var nodes = [root]
    for i in 0..<size {
        let parent = nodes[rng.next(nodes.count)]
        let c: TallocContext
        switch rng.next(9) {
        case 0: c = try TallocContext.allocate(parent: parent, byteCount: rng.next(100), name: constantNames[rng.next(constantNames.count)])
        case 1: c = try TallocContext.allocate(parent: parent, byteCount: rng.next(50), file: "file.c", line: UInt(i))
        case 2: c = try TallocContext.new(parent: parent, file: "dir/new.c", line: UInt(rng.next(100_000)))
        case 3: c = try TallocContext.strdup(parent: parent, texts[rng.next(texts.count)])
        case 4: c = try TallocContext.pool(parent: parent, capacity: 200 + rng.next(2000))
        case 5:
            c = try TallocContext.pooledObject(parent: parent, byteCount: rng.next(64), name: "pooled", subobjects: 2,
                                               subobjectBytes: 40)
        case 6:
            c = try TallocContext.new(parent: parent, name: "named")
            try c.setName(texts[rng.next(texts.count)])
        case 7:
            c = try TallocContext.allocate(parent: parent, byteCount: rng.next(10), name: "referrer")
            // Not the root: a referenced chunk is not freed (talloc_free refuses), and the root must go.
            let target = rng.next(4) == 0 || nodes.count == 1 ? outside : nodes[1 + rng.next(nodes.count - 1)]
            try target.reference(from: c)
        default:
            c = try TallocContext.allocate(parent: parent, byteCount: rng.next(30), name: "limited")
            try c.setMemoryLimit(100_000 + rng.next(1000))
        }
        nodes.append(c)
    }
    // Pinned pools: a pool freed while members stolen out of it live on elsewhere in the tree (every other
    // seed; two members pin the same pool, the second carved as the first one's child).
    if seed % 2 == 0 {
        let pool = try TallocContext.pool(parent: nodes[rng.next(nodes.count)], capacity: 512)
        let kept = try TallocContext.allocate(parent: pool, byteCount: 16, name: "pinning")
        let kept2 = try TallocContext.strdup(parent: kept, "pinning too")
        try kept.steal(to: nodes[rng.next(nodes.count)])
        try kept2.steal(to: nodes[rng.next(nodes.count)])
        try pool.free()
    }
    return root
}

/// Everything a writer sends, and what its accountant saw.
private struct Capture {
    var bytes: [UInt8] = []
    var pieces = 0
    var balance = 0
    var peak = 0
    var text: String { String(decoding: bytes, as: UTF8.self) }

    mutating func account(_ n: Int) -> Bool {
        balance += n
        peak = max(peak, balance)
        return true
    }
}

private func captureReport(_ c: TallocContext, depth: Int, maxDepth: Int, addresses: Bool) -> (Capture, Bool) {
    var cap = Capture()
    let ok = c.writeReport(depth: depth, maxDepth: maxDepth, addresses: addresses,
                           accountant: { cap.account($0) }, to: { cap.bytes.append(contentsOf: $0); cap.pieces += 1; return true })
    return (cap, ok)
}

@Suite struct StreamingTextTests {
    @Test("reports and DOT are byte-identical to the String versions they replace, on random trees")
    func identicalToTheStringVersions() throws {
        let outside = try TallocContext.new(parent: nil, name: "outside")
        defer { try? outside.free() }
        var seen = Set<String>()
        let features = ["reference to: ", "is a memlimit context", "\\npool ", "\\nobject ", "label=\"ref\", constraint=false]",
                        "(outside this tree)", "peripheries=2", "\\nlimit ", "freed pool, pinned", "label=\"pins\"",
                        "talloc_new: dir/new.c:", "file.c:", "\\\"", "?"]
        for seed in 1...40 as ClosedRange<UInt64> {
            let root = try randomTree(seed: seed, size: 20 + Int(seed) * 5, outside: outside)
            var targets = [root]
            if let c = root.firstChild { targets.append(c) }
            for t in targets {
                for (depth, maxDepth) in [(0, -1), (0, 1), (0, 0), (1, 2), (3, 5), (2, 1), (0, 3)] {
                    for addresses in [false, true] {
                        let legacy = LegacyText.report(t.chunk, .init(depth: depth, maxDepth: maxDepth, addresses: addresses))
                        let (cap, ok) = captureReport(t, depth: depth, maxDepth: maxDepth, addresses: addresses)
                        #expect(ok && cap.text == legacy, "seed \(seed) depth \(depth) max \(maxDepth)")
                        #expect(t.report(depth: depth, maxDepth: maxDepth, addresses: addresses) == legacy)
                        #expect(cap.balance == 0, "every byte announced was given back")
                    }
                }
                #expect(t.reportFull() == LegacyText.report(t.chunk, .init(depth: 0, maxDepth: -1, addresses: true)))
                #expect(t.report(addresses: false) == LegacyText.report(t.chunk, .init(depth: 0, maxDepth: 1, addresses: false)))
                var dot = Capture()
                #expect(t.writeDot(accountant: { dot.account($0) }, to: { dot.bytes.append(contentsOf: $0); return true }))
                #expect(dot.text == LegacyText.dot([t.chunk]), "seed \(seed)")
                #expect(t.dot() == dot.text && dot.balance == 0)
                for f in features where cap(t).contains(f) || dot.text.contains(f) { seen.insert(f) }
            }
            // Several roots in one graph, overlapping: a chunk under two of them is one node.
            let roots = [root, root.firstChild ?? root, outside, root]
            #expect(TallocContext.dot(roots) == LegacyText.dot(roots.map(\.chunk)), "seed \(seed)")
            try root.free()
        }
        #expect(seen == Set(features), "the random trees exercise every kind of line: missing \(Set(features).subtracting(seen))")
    }

    private func cap(_ t: TallocContext) -> String { t.reportFull(addresses: false) }

    @Test func aNameThatIsNotUTF8IsReportedAsItsBytesAsLibtallocDoes() throws {
        let raw: [UInt8] = [0x62, 0xFF, 0xFE, 0xC3, 0x28] + Array("-and-a-long-tail".utf8)  // 21 bytes
        let long: [UInt8] = Array(repeating: 0xE9, count: 40)                                // Latin-1 é, 40 bytes
        // libtalloc's text for the same tree (names are C strings it keeps; sizes and blocks are equal).
        let rawC = UnsafeMutablePointer<CChar>.allocate(capacity: raw.count + 1)
        let longC = UnsafeMutablePointer<CChar>.allocate(capacity: long.count + 1)
        defer { rawC.deallocate(); longC.deallocate() }
        for (p, b) in [(rawC, raw), (longC, long)] {
            for (i, x) in b.enumerated() { p[i] = CChar(bitPattern: x) }
            p[b.count] = 0
        }
        let rootName: StaticString = "root"  // talloc keeps the pointer: it must outlive the chunk
        let croot = ctalloc_named_const(nil, 0, UnsafeRawPointer(rootName.utf8Start).assumingMemoryBound(to: CChar.self))
        defer { _ = ctalloc_free(croot) }
        let c1 = ctalloc_named_const(croot, 3, rawC)
        _ = ctalloc_named_const(c1, 4, longC)
        _ = ctalloc_named_const(croot, 1, rawC)
        let cReport: UnsafeMutablePointer<CChar>? = ctalloc_report_full_string(croot)
        let cText = try #require(cReport)
        defer { ctalloc_free_cstring(cText) }
        let theirs = Array(UnsafeRawBufferPointer(start: cText, count: strlen(cText)))

        let root = try TallocContext.new(parent: nil, name: "root")
        defer { try? root.free() }
        let s1 = try TallocContext.allocate(parent: root, byteCount: 3, name: "x")
        let s2 = try TallocContext.allocate(parent: s1, byteCount: 4, name: "x")
        let s3 = try TallocContext.allocate(parent: root, byteCount: 1, name: "x")
        for (c, b) in [(s1, raw), (s2, long), (s3, raw)] { #expect(b.withUnsafeBytes { c.setNameCopy($0) }) }
        var ours: [UInt8] = []
        #expect(root.writeReport(depth: 0, maxDepth: -1) { ours.append(contentsOf: $0); return true })
        /// The lines without their trailing " 0x..." addresses (the two libraries' chunks are elsewhere).
        func withoutAddresses(_ b: [UInt8]) -> [[UInt8]] {
            b.split(separator: 0x0A).map { line in
                let l = Array(line)
                for j in stride(from: l.count - 3, through: 0, by: -1) where l[j] == 0x20 && l[j + 1] == 0x30 && l[j + 2] == 0x78 {
                    return Array(l[..<j])
                }
                return l
            }
        }
        #expect(withoutAddresses(ours) == withoutAddresses(theirs))
        #expect(ours.count > 0 && !ours.contains(0xBD) , "the bytes, not U+FFFD")
        // DOT stays valid UTF-8: the invalid bytes become U+FFFD, as the String version always had them.
        let dot = root.dot()
        #expect(dot.contains("b\u{FFFD}\u{FFFD}\u{FFFD}(-and-a-long-tail\\n3 bytes"))
        var dotBytes: [UInt8] = []
        #expect(root.writeDot { dotBytes.append(contentsOf: $0); return true })
        #expect(String(validating: dotBytes, as: UTF8.self) == dot)
    }

    @Test func aSinkThatStopsStopsTheWalk() throws {
        let root = try TallocContext.new(parent: nil, name: "root")
        defer { try? root.free() }
        var c = root
        for _ in 0..<300 { c = try TallocContext.allocate(parent: c, byteCount: 1, name: "link") }
        for _ in 0..<300 { _ = try TallocContext.strdup(parent: root, "a sibling with a long enough name") }
        let full = root.reportFull()
        #expect(full.utf8.count > 10 * 4096, "many pieces")
        for stopAfter in [1, 2, 7] {
            var pieces = 0, balance = 0
            var got: [UInt8] = []
            let ok = root.writeReport(depth: 0, maxDepth: -1, accountant: { balance += $0; return true }) { piece in
                pieces += 1
                got.append(contentsOf: piece)
                return pieces < stopAfter
            }
            #expect(!ok && pieces == stopAfter && balance == 0)
            #expect(full.utf8.starts(with: got))
            var dotPieces = 0
            #expect(!root.writeDot { _ in dotPieces += 1; return dotPieces < stopAfter })
            #expect(dotPieces == stopAfter)
            // The walk left no marks behind: everything still counts, and a full report is whole again.
            #expect(root.totalBlocks == 601 && root.reportFull() == full)
        }
    }

    @Test func anAccountantThatRefusesStopsBeforeAnything() throws {
        let root = try TallocContext.new(parent: nil, name: "root")
        defer { try? root.free() }
        for _ in 0..<10 { _ = try TallocContext.allocate(parent: root, byteCount: 1, name: "leaf") }
        var asked: [Int] = []
        var written = 0
        #expect(!root.writeReport(depth: 0, maxDepth: -1, accountant: { asked.append($0); return false }) { _ in written += 1; return true })
        #expect(asked.count == 1 && asked[0] == 4096 + 11 * 16 + 2 * 8 && written == 0, "\(asked)")
        asked = []
        #expect(!root.writeDot(accountant: { asked.append($0); return false }) { _ in written += 1; return true })
        #expect(asked.count == 1 && written == 0)
        // An accountant that allows: what it is told adds up to nothing at the end.
        var balance = 0
        #expect(root.writeDot(accountant: { balance += $0; return true }) { _ in true })
        #expect(balance == 0)
    }

    @Test("a 20,000-deep chain's full report streams with working memory bounded by the chunks, not the text")
    func aDeepChainStreams() throws {
        let depth = 20_000
        let root = try TallocContext.new(parent: nil, name: "root")
        defer { try? root.free() }
        var c = root
        for _ in 0..<depth { c = try TallocContext.allocate(parent: c, byteCount: 0, name: "link") }
        var total = 0, pieces = 0, largest = 0
        var first: [UInt8] = [], last: [UInt8] = []
        var balance = 0, peak = 0
        let ok = root.writeReport(depth: 0, maxDepth: -1, addresses: false, accountant: {
            balance += $0
            peak = max(peak, balance)
            return true
        }) { piece in
            total += piece.count
            pieces += 1
            largest = max(largest, piece.count)
            if first.count < 200 { first.append(contentsOf: piece.prefix(200 - first.count)) }
            last = Array(piece)
            return true
        }
        #expect(ok && balance == 0)
        #expect(peak == 4096 + (depth + 1) * 16 + (depth + 1) * 8, "\(peak)")
        #expect(largest <= 4096)
        // The text: the header, then one line per link with 4 spaces per level.
        let header = "full talloc report on 'root' (total      0 bytes in 20001 blocks)\n"
        var expected = header.utf8.count
        for d in 1...depth {
            let blocks = String(depth - d + 1)
            expected += 4 * d + 30 + " contains ".utf8.count + 6 + " bytes in ".utf8.count
                + max(3, blocks.utf8.count) + " blocks (ref 0)\n".utf8.count
        }
        #expect(total == expected && total > 800_000_000, "\(total)")
        #expect(first.starts(with: Array(header.utf8)))
        let lastLine = "link                           contains      0 bytes in   1 blocks (ref 0)\n"
        #expect(String(decoding: last, as: UTF8.self).hasSuffix(lastLine))
    }

    @Test func negativeAndHugeDepthsDoNotTrap() throws {
        let root = try TallocContext.new(parent: nil, name: "root")
        defer { try? root.free() }
        _ = try TallocContext.allocate(parent: root, byteCount: 1, name: "child")
        // printf's %*s with a negative width pads as much (talloc's depth * 4 < 0).
        #expect(root.report(depth: -1, maxDepth: -1, addresses: false) == """
                root                           contains      1 bytes in   2 blocks (ref 0)
            full talloc report on 'child' (total      1 bytes in   1 blocks)

            """)
        var n = 0
        #expect(!root.writeReport(depth: Int.max, maxDepth: Int.min) { n += $0.count; return n < 100_000 })
        #expect(!root.writeReport(depth: Int.min, maxDepth: Int.max) { n += $0.count; return n < 200_000 })
    }
}
