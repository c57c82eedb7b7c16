// luatalloc — TallocCore tests
// SPDX-License-Identifier: MIT
//
// References, unlink, steal and reparent (SEMANTICS §1.3, §3.3 4). Expected shapes from order.out.txt
// and misc.out.txt, and testsuite.c's reference tests in our own words.

import Testing
@testable import TallocCore

@Suite struct ReferenceTests {
    @Test func freeWithReferencesIsRefusedUnlinkHandsToTheNewestReferrer() throws {
        try capturingLog { logged in
            let root = try named(nil, "root", 0)
            defer { try? root.free() }
            let x = try named(root, "X")
            let r1 = try named(root, "R1")
            let r2 = try named(root, "R2")
            try x.reference(from: r1)
            try x.reference(from: r2)
            #expect(x.referenceCount == 2)
            #expect(throws: TallocError.hasReferences) { try x.free() }
            #expect(logged().first?.hasPrefix("ERROR: talloc_free with references at") == true)
            #expect(logged().count == 3, "one line per reference, newest first, where it was made")
            #expect(logged().dropFirst().allSatisfy { $0.hasPrefix("\treference at TallocCoreTests/ReferenceTests.swift:") })
            try x.unlink(from: root)
            #expect(x.parent == r2 && x.referenceCount == 1)
            #expect(root.reportFull(addresses: false) == """
                full talloc report on 'root' (total      3 bytes in   5 blocks)
                    R2                             contains      2 bytes in   2 blocks (ref 0)
                        X                              contains      1 bytes in   1 blocks (ref 1)
                    R1                             contains      1 bytes in   2 blocks (ref 0)
                        reference to: X

                """)
            try r2.free()  // frees X? no: X is referenced by R1, so it moves to R1
            #expect(x.parent == r1 && x.referenceCount == 0)
        }
    }

    @Test func aReferencedChildSurvivesItsParentOwnedByTheReferrer() throws {
        // testsuite.c test_ref3 / test_unref_reparent
        let root = try named(nil, "root", 0)
        defer { try? root.free() }
        let p = try named(root, "P")
        let c = try named(p, "C")
        let q = try named(root, "Q")
        try c.reference(from: q)
        try p.free()
        #expect(c.parent == q && c.referenceCount == 0)
        #expect(root.reportFull(addresses: false) == """
            full talloc report on 'root' (total      2 bytes in   3 blocks)
                Q                              contains      2 bytes in   2 blocks (ref 0)
                    C                              contains      1 bytes in   1 blocks (ref 0)

            """)
    }

    @Test func freeingTheReferrerDropsOnlyTheReference() throws {
        // test_ref4
        let root = try named(nil, "root", 0)
        defer { try? root.free() }
        let p1 = try named(root, "p1", 0)
        let p2 = try named(p1, "p2")
        let r1 = try named(root, "r1", 0)
        try p2.reference(from: r1)
        #expect(root.totalBlocks == 5)
        try r1.free()
        #expect(p2.parent == p1 && p2.referenceCount == 0 && root.totalBlocks == 3)
    }

    @Test func topLevelWithOneReferenceIsHandedOver() throws {
        // test_free_ref_null_context, order.c section 6
        let q = try named(nil, "Q", 0)
        defer { try? q.free() }
        let x = try named(nil, "X")
        try x.reference(from: q)
        try x.free()
        #expect(x.parent == q && x.referenceCount == 0)
    }

    @Test func unlinkRules() throws {
        // test_misc's unlink part, test_ref1, test_ref2
        let root = try named(nil, "root", 0)
        defer { try? root.free() }
        let p1 = try named(root, "p1", 0)
        let p2 = try named(p1, "p2")
        let r1 = try named(root, "r1", 0)
        #expect(throws: TallocError.notAParent) { try p2.unlink(from: r1) }
        try p2.reference(from: r1)
        try p2.unlink(from: r1)  // drops the reference
        #expect(p2.referenceCount == 0 && r1.totalBlocks == 1)
        try p2.unlink(from: p1)  // the parent: frees it
        #expect(p1.totalBlocks == 1)
        let o = try named(root, "o")
        try o.increaseReferenceCount()
        #expect(o.referenceCount == 1)
        try o.unlink(from: nil)
        #expect(o.referenceCount == 0)
    }

    @Test func referenceFromADescendantAndTheLoopOfTestLoop() throws {
        // test_loop: a grandchild references its ancestor; freeing the top runs the inner destructor once
        let top = try named(nil, "top", 0)
        let parent = try named(top, "parent", 0)
        let req1 = try named(parent, "req1", 0)
        let req2 = try named(req1, "req2", 0)
        let req3 = try named(req2, "req3", 0)
        try parent.reference(from: req3)
        var fired = 0
        req3.setDestructor { _ in fired += 1; return .allow }
        try top.free()
        #expect(fired == 1)
    }

    @Test func lifelessLoopFreesWithoutCrashing() throws {
        // test_lifeless: talloc's unlink promotes a referrer inside the subtree and detaches a loop that
        // nothing can free. Here that reference is dropped instead: `parent` has no other referrer, so it
        // is freed, and `child` (referenced from outside) moves to its referrer (DESIGN §8).
        let top = try named(nil, "top", 0)
        let parent = try named(top, "parent", 0)
        let child = try named(parent, "child", 0)
        let childOwner = try named(nil, "child_owner", 0)
        try parent.reference(from: child)
        try child.reference(from: childOwner)
        try parent.unlink(from: top)
        #expect(top.totalBlocks == 1, "parent went: its only referrer was inside it")
        #expect(child.parent == childOwner && child.referenceCount == 0)
        #expect(throws: TallocError.notAParent) { try child.unlink(from: top) }
        try top.free()
        try childOwner.free()
    }

    @Test func unlinkPromotesTheNewestReferrerOutsideTheSubtree() throws {
        let root = try named(nil, "root", 0)
        defer { try? root.free() }
        let x = try named(root, "x", 0)
        let inner = try named(x, "inner", 0)
        let outer = try named(root, "outer", 0)
        try x.reference(from: outer)
        try x.reference(from: inner)   // the newest, from inside
        try x.unlink(from: root)
        #expect(x.parent == outer && x.referenceCount == 0)
        #expect(inner.parent == x && inner.totalBlocks == 1, "the inside reference was dropped")
    }

    @Test func stealBehaviour() throws {
            // test_steal, test_move
        try capturingLog { logged in
            let root = try named(nil, "root", 0)
            defer { try? root.free() }
            let p1 = try named(root, "p1", 10)
            let p2 = try named(root, "p2", 20)
            let c = try named(p1, "c", 5)
            try c.steal(to: p1)  // to its own parent: stays
            #expect(p1.children == [c])
            try c.steal(to: p2)
            #expect(p2.totalSize == 25 && p1.totalSize == 10)
            let older = try named(p2, "older")
            _ = try named(p2, "newest")
            try older.steal(to: p2)
            #expect(p2.children.first == older, "stealing to the current parent moves to the head, as talloc")
            try c.steal(to: nil)
            #expect(c.parent == nil)
            try c.steal(to: root)
            try c.reference(from: p1)
            try c.steal(to: p2)
            #expect(logged().first?.hasPrefix("WARNING: talloc_steal with references at") == true)
            #expect(throws: TallocError.wouldCreateLoop) { try root.steal(to: c) }
            #expect(throws: TallocError.wouldCreateLoop) { try p2.steal(to: p2.children[0]) }
        }
    }

    @Test func reparentMovesTheParentOrAReference() throws {
        let root = try named(nil, "root", 0)
        defer { try? root.free() }
        let a = try named(root, "a", 0), b = try named(root, "b", 0), r = try named(root, "r", 0)
        let c = try named(a, "c")
        try c.reparent(from: a, to: b)
        #expect(c.parent == b)
        try c.reference(from: r)
        try c.reparent(from: r, to: a)
        #expect(c.parent == b && c.referrers == [a])
        #expect(throws: TallocError.notAParent) { try c.reparent(from: r, to: a) }
    }

    @Test func rusty() throws {
        // test_rusty: increase_ref_count keeps a chunk alive past its parent, under the null context
        Talloc.enableNullTrackingNoAutofree()
        defer { Talloc.disableNullTracking() }
        let root = try named(nil, "root", 0)
        let p1 = try named(root, "p1", 0)
        try p1.increaseReferenceCount()
        try root.free()
        #expect(p1.parent == Talloc.nullContext)
        #expect(Talloc.nullContext!.totalBlocks == 2)
        try p1.free()
    }

    @Test func freeInADestructorOfAMultiplyReferencedChunk() throws {
        // test_talloc_free_in_destructor: level3 is referenced by level0, by itself and by level5; the
        // destructor of level5 frees level3 while level3's own free is running.
        let level0 = try named(nil, "level0", 0)
        let level1 = try named(level0, "level1", 0)
        let level2 = try named(level1, "level2", 0)
        let level3 = try named(level2, "level3", 0)
        let level4 = try named(level3, "level4", 0)
        let level5 = try named(level4, "level5", 8)
        try level3.reference(from: level0)
        try level3.reference(from: level3)
        try level3.reference(from: level5)
        var ran = 0
        level5.setDestructor { _ in ran += 1; try? level3.free(); return .allow }
        try level1.free()
        #expect(level3.parent == level0 && level3.referenceCount == 0)
        try level0.free()
        #expect(ran == 1)
        _ = level2
    }
}
