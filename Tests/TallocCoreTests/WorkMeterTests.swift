// luatalloc — TallocCore tests
// SPDX-License-Identifier: MIT
//
// The work meter (`Talloc.takeWork()`): long walks are counted per thread, so a binding can charge a
// script's budget for single calls whose work no instruction count sees (issue 10, adversarial F9).

import Testing
@testable import TallocCore

@Suite struct WorkMeterTests {
    @Test("short walks cost nothing; long subtree and parent-chain walks are counted, then reset")
    func longWalksAreCounted() throws {
        _ = Talloc.takeWork()
        let root = try TallocContext.new(parent: nil, name: "root")
        defer { try? root.free() }
        for _ in 0..<10 { _ = try TallocContext.new(parent: root, name: "kid") }
        _ = root.totalSize
        #expect(Talloc.takeWork() == 0, "a walk of 11 chunks is below the threshold")

        for _ in 0..<1000 { _ = try TallocContext.new(parent: root, name: "kid") }
        _ = root.totalBlocks
        #expect(Talloc.takeWork() >= 1011)
        #expect(Talloc.takeWork() == 0, "taking resets")

        // a deep chain under a limit: every allocation at the bottom walks up to the limit
        try root.setMemoryLimit(1 << 30)
        var bottom = root
        for _ in 0..<500 { bottom = try TallocContext.new(parent: bottom, name: "link") }
        _ = Talloc.takeWork()
        for _ in 0..<10 { _ = try TallocContext.new(parent: bottom, name: "leaf") }
        #expect(Talloc.takeWork() >= 10 * 500)
        // and so does the loop check of a steal to the bottom, and finding a parent by name
        let loose = try TallocContext.new(parent: nil, name: "loose")
        try loose.steal(to: bottom)
        #expect(bottom.findParent(byName: "root") == root)
        #expect(Talloc.takeWork() >= 500)
    }

    @Test("each thread has its own count")
    func perThread() throws {
        _ = Talloc.takeWork()
        final class Seen: @unchecked Sendable { let lock = TestLock(); var counts: [Int] = [] }
        let seen = Seen()
        runOnThreads(2) { i in
            let t = try! TallocContext.new(parent: nil, name: "t")
            for _ in 0..<(100 * (i + 1)) { _ = try! TallocContext.new(parent: t, name: "k") }
            _ = t.totalSize
            let w = Talloc.takeWork()
            seen.lock.withLock { seen.counts.append(w) }
            try! t.free()
        }
        #expect(seen.counts.sorted() == [101, 201])
        #expect(Talloc.takeWork() == 0)
    }
}
