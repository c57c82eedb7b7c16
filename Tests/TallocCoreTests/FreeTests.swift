// luatalloc — TallocCore tests
// SPDX-License-Identifier: MIT
//
// The free protocol (SEMANTICS §3.3), sibling order, destructors, and the iterative free of huge trees.
// The expected orders are those measured from libtalloc in ../shared/oracle/talloc-probes/order.out.txt.

import Testing
@testable import TallocCore

/// Records destructor calls (and can refuse some).
final class DestructorLog {
    var calls: [String] = []
    var refuse: Set<String> = []
    func watch(_ c: TallocContext, _ label: String? = nil) {
        let name = label ?? c.name
        c.setDestructor { [unowned self] ctx in
            self.calls.append(name)
            return self.refuse.contains(name) ? .refuse : .allow
        }
    }
}

func named(_ parent: TallocContext?, _ name: StaticString, _ size: Int = 1) throws -> TallocContext {
    try TallocContext.allocate(parent: parent, byteCount: size, name: name)
}

@Suite struct FreeTests {
    @Test func siblingsAreNewestFirstAndDestructorsRunPreorder() throws {
        let log = DestructorLog()
        let root = try named(nil, "root", 0)
        let a = try named(root, "A")
        let a1 = try named(a, "A1"), a2 = try named(a, "A2"), a3 = try named(a, "A3")
        let a2x = try named(a2, "A2x")
        let b = try named(root, "B")
        #expect(root.children == [b, a])
        #expect(a.children == [a3, a2, a1])
        #expect(root.reportFull(addresses: false) == """
            full talloc report on 'root' (total      6 bytes in   7 blocks)
                B                              contains      1 bytes in   1 blocks (ref 0)
                A                              contains      5 bytes in   5 blocks (ref 0)
                    A3                             contains      1 bytes in   1 blocks (ref 0)
                    A2                             contains      2 bytes in   2 blocks (ref 0)
                        A2x                            contains      1 bytes in   1 blocks (ref 0)
                    A1                             contains      1 bytes in   1 blocks (ref 0)

            """)
        var seenBlocks = -1
        root.setDestructor { c in log.calls.append("root"); seenBlocks = c.totalBlocks; return .allow }
        for c in [a, a1, a2, a3, a2x, b] { log.watch(c) }
        var parentSeen: [String] = []
        a2x.setDestructor { c in log.calls.append("A2x"); parentSeen.append(c.parentName ?? "nil"); return .allow }
        try root.free()
        #expect(log.calls == ["root", "B", "A", "A3", "A2", "A2x", "A1"])
        #expect(seenBlocks == 7, "the destructor sees its subtree intact")
        #expect(parentSeen == ["A2"])
    }

    @Test func aRefusingDestructorKeepsEverything() throws {
        let root = try named(nil, "root", 0)
        defer { try? root.free() }
        let a = try named(root, "A")
        _ = try named(a, "A1")
        a.setDestructor { _ in .refuse }
        #expect(throws: TallocError.destructorRefused) { try a.free() }
        #expect(a.totalBlocks == 2 && a.parent == root)
        #expect(a.hasDestructor, "a refusing destructor stays")
        a.setDestructor(nil)
        try a.free()
        #expect(root.totalBlocks == 1)
    }

    @Test func aRefusingChildMovesToTheGrandparent() throws {
        let root = try named(nil, "root", 0)
        defer { try? root.free() }
        let a = try named(root, "A")
        _ = try named(a, "A1")
        let p = try named(root, "P")
        let c = try named(p, "C")
        _ = try named(c, "Cchild")
        c.setDestructor { _ in .refuse }
        try p.free()
        #expect(c.parent == root)
        #expect(root.reportFull(addresses: false) == """
            full talloc report on 'root' (total      4 bytes in   5 blocks)
                C                              contains      2 bytes in   2 blocks (ref 0)
                    Cchild                         contains      1 bytes in   1 blocks (ref 0)
                A                              contains      2 bytes in   2 blocks (ref 0)
                    A1                             contains      1 bytes in   1 blocks (ref 0)

            """)
        c.setDestructor(nil)
    }

    /// SEMANTICS §8.4: talloc makes the refusing child top level when the freed chunk was not its parent's
    /// newest child. We move it to the grandparent whatever the sibling position (DESIGN §8).
    @Test func aRefusingChildMovesToTheGrandparentWhateverTheSiblingPosition() throws {
        let root = try named(nil, "root", 0)
        defer { try? root.free() }
        let older = try named(root, "older")
        _ = try named(root, "newer")
        let c = try named(older, "C")
        c.setDestructor { _ in .refuse }
        try older.free()
        #expect(c.parent == root, "talloc 2.4 would make C top level here")
        c.setDestructor(nil)
    }

    @Test func aRefusingGrandchildBubblesUpOneLevelAtATime() throws {
        // testsuite.c test_free_parent_deny_child
        let top = try named(nil, "top", 0)
        defer { try? top.free() }
        let level1 = try named(top, "level1")
        let level2 = try named(level1, "level2")
        let level3 = try named(level2, "level3")
        var calls = 0
        level3.setDestructor { _ in calls += 1; return .refuse }
        try level1.free()
        #expect(level3.parent == top)
        #expect(calls == 2, "asked once by level2's free and once by level1's, as talloc asks")
        level3.setDestructor(nil)
    }

    @Test func aDestructorMayMoveItsOwnChunk() throws {
        // testsuite.c test_free_parent_reparent_child (and the in-pool variant)
        for usePool in [false, true] {
            let root = try named(nil, "root", 0)
            let other = try named(root, "other", 0)
            let parent = usePool ? try TallocContext.pool(parent: root, capacity: 1024) : try named(root, "parent")
            let child = try named(parent, "child")
            child.setDestructor { c in try? c.steal(to: other); return .refuse }
            try parent.free()
            #expect(child.parent == other)
            child.setDestructor(nil)
            try other.free()
            #expect(root.totalBlocks == 1)
            try root.free()
        }
    }

    @Test func freeingItselfInsideItsDestructorIsRefused() throws {
        let a = try named(nil, "A")
        var inner: TallocError? = nil
        a.setDestructor { c in
            do throws(TallocError) { try c.free() } catch { inner = error }
            return .allow
        }
        try a.free()
        #expect(inner == .destructorRefused)
    }

    @Test func aDestructorThatFreesTheParentOfTheChunkBeingFreed() throws {
        // SEMANTICS §8.6: refusing children must not be re-homed into freed memory.
        let root = try named(nil, "root", 0)
        let p = try named(root, "P", 0)
        let x = try named(p, "X", 0)
        let refuser = try named(x, "refuser")
        let killer = try named(x, "killer")
        killer.setDestructor { _ in try? p.free(); return .allow }
        refuser.setDestructor { _ in .refuse }
        try x.free()
        #expect(refuser.isValid)
        #expect(refuser.parent == nil, "its would-be home was freed meanwhile: it ends at the top level")
        refuser.setDestructor(nil)
        try refuser.free()
        #expect(root.totalBlocks == 1)
        try root.free()
    }

    @Test func freeChildrenKeepsTheNameChild() throws {
        // testsuite.c test_free_children
        let root = try named(nil, "root", 0)
        defer { try? root.free() }
        let p = try named(root, "p", 0)
        _ = try named(p, "c1"); _ = try named(p, "c2")
        try p.setName("my name")
        #expect(p.totalBlocks == 4)
        p.freeChildren()
        #expect(p.totalBlocks == 2 && p.name == "my name")
        p.setNameConst("constant")
        p.freeChildren()
        #expect(p.totalBlocks == 1 && p.name == "constant", "a stale .name child goes once the name is const")
    }

    @Test func freeChildrenRehomesRefusingChildrenToTheParent() throws {
        let root = try named(nil, "root", 0)
        defer { try? root.free() }
        let p = try named(root, "p", 0)
        let r = try named(p, "r")
        r.setDestructor { _ in .refuse }
        p.freeChildren()
        #expect(r.parent == root)
        r.setDestructor(nil)
    }

    @Test func aMillionDeepChainFrees() throws {
        let root = try named(nil, "root", 0)
        var c = root
        for _ in 0..<1_000_000 { c = try TallocContext.allocate(parent: c, byteCount: 0, name: "link") }
        #expect(root.totalBlocks == 1_000_001)
        let report = root.report(addresses: false)  // depth 1, but totals cover the chain
        #expect(report.hasPrefix("talloc report on 'root' (total      0 bytes in 1000001 blocks)"))
        let dot = root.dot()
        #expect(dot.hasPrefix("digraph") && dot.utf8.count > 1_000_000)
        try root.free()
    }

    @Test func aMillionWideNodeFrees() throws {
        let root = try named(nil, "root", 0)
        for _ in 0..<1_000_000 { _ = try TallocContext.allocate(parent: root, byteCount: 1, name: "leaf") }
        #expect(root.totalSize == 1_000_000)
        try root.free()
    }

    @Test func nullTracking() throws {
        Talloc.enableNullTrackingNoAutofree()
        defer { Talloc.disableNullTracking() }
        let null = try #require(Talloc.nullContext)
        #expect(null.name == "null_context")
        let a = try named(nil, "a", 3)
        #expect(a.parent == null)
        #expect(Talloc.nullContextTotalSize == 3)
        #expect(Talloc.reportNull(full: false, addresses: false) == """
            talloc report on 'null_context' (total      3 bytes in   2 blocks)
                a                              contains      3 bytes in   1 blocks (ref 0)

            """)
        Talloc.disableNullTracking()
        #expect(a.parent == nil)
        try a.free()
    }
}
