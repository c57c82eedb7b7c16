// luatalloc — TallocCore tests
// SPDX-License-Identifier: MIT
//
// User code running inside a free (destructors) that frees, moves, renames or references what the free
// is walking. talloc itself uses freed memory in each of these; every case here crashed TallocCore too
// (found by the adversarial review and the Lua misuse fuzzer of issue 10). Each asserts what happens now.

import Testing
@testable import TallocCore

@Suite struct FreeDuringFreeTests {
    // MARK: talloc_free_children: the context whose children are freed is pinned while they are

    @Test("free_children: a child's destructor cannot free the context whose children are being freed")
    func freeChildrenRootCannotBeFreed() throws {
        let root = try named(nil, "root", 8)
        let kid = try named(root, "kid")
        _ = try named(root, "older kid")
        var seen: TallocError? = nil
        kid.setDestructor { _ in
            do { try root.free() } catch { seen = error as? TallocError }
            return .allow
        }
        root.freeChildren()
        #expect(seen == .beingFreed)
        #expect(root.isValid && root.children.isEmpty && root.name == "root")
        try root.free()
    }

    @Test("free_children: a child's destructor cannot move the context (realloc)")
    func freeChildrenRootCannotMove() throws {
        let bystander = try named(nil, "bystander")
        var root = try named(nil, "root", 16)
        let kid = try named(root, "kid")
        _ = try named(root, "older kid")
        let r = root
        var seen: TallocError? = nil
        kid.setDestructor { _ in
            var victim = r
            do { try victim.resize(byteCount: 200_000) } catch { seen = error as? TallocError }
            return .allow
        }
        root.freeChildren()
        #expect(seen == .beingFreed)
        #expect(root.isValid && root.size == 16 && root.children.isEmpty)
        #expect(bystander.isValid)
        try root.reallocate(byteCount: 100_000)  // after the walk it may move again
        try root.free()
        try bystander.free()
    }

    @Test("free_children: a child's destructor frees the context's parent; the context survives at the top")
    func freeChildrenRootsParentFreed() throws {
        let log = DestructorLog()
        let parent = try named(nil, "parent")
        parent.setDestructor { _ in log.calls.append("parent"); return .allow }
        let root = try named(parent, "root")
        let kid = try named(root, "kid")
        _ = try named(root, "older kid")
        kid.setDestructor { _ in
            log.calls.append("kid")
            do { try parent.free() } catch { log.calls.append("parent: \(error)") }
            return .allow
        }
        root.freeChildren()
        #expect(log.calls == ["kid", "parent"])
        #expect(root.isValid && root.parent == nil && root.children.isEmpty)
        try root.free()
    }

    @Test("free_children: a name set by a child's destructor survives the walk")
    func freeChildrenRenamedByDestructor() throws {
        let root = try named(nil, "root")
        let kid = try named(root, "kid")
        kid.setDestructor { _ in
            _ = try? root.setName("renamed in a destructor")
            return .allow
        }
        root.freeChildren()
        let filler = try (0..<50).map { _ in try TallocContext.strdup(parent: nil, "JJJJJJJJJJJJJJJJJJJJJJJJJJJJJJJJJJJJJJJJ") }
        #expect(root.name == "renamed in a destructor")
        #expect(root.totalBlocks == 2)  // the context and its ".name" child
        for f in filler { try f.free() }
        try root.free()
    }

    @Test("free_children keeps the current name child, not one superseded during the walk")
    func freeChildrenRenamedTwice() throws {
        let root = try named(nil, "root")
        try root.setName("first")
        let kid = try named(root, "kid")
        kid.setDestructor { _ in
            _ = try? root.setName("second")
            return .allow
        }
        root.freeChildren()
        #expect(root.name == "second")
        #expect(root.totalBlocks == 2)
        try root.free()
    }

    // MARK: talloc_free: the name of a chunk being freed stays readable until the chunk goes

    @Test("free: an older child's destructor reads the parent's name (its .name child is freed last)")
    func nameChildFreedLast() throws {
        let p = try named(nil, "p")
        let kid = try named(p, "kid")
        try p.setName("renamed")  // the newest child: talloc's walk frees it first
        var seen: String? = nil
        kid.setDestructor { k in
            seen = k.parent?.name
            return .allow
        }
        try p.free()
        #expect(seen == "renamed")
    }

    // MARK: references made inside a free

    @Test("references a destructor adds to its own chunk keep the chunk (talloc's -1 for a referenced chunk)")
    func destructorReferencesItsOwnChunk() throws {
        let owner = try named(nil, "owner")
        let c = try named(nil, "c")
        c.setDestructor { me in
            try? me.reference(from: owner)
            try? me.reference(from: owner)
            return .allow
        }
        #expect(throws: TallocError.self) { try c.free() }
        #expect(c.isValid && c.referenceCount == 1 && !c.hasDestructor)  // one reference used up, as talloc
        try owner.free()  // drops the other
        #expect(c.isValid && c.referenceCount == 0 && c.parent == nil)
        try c.free()
    }

    @Test("in a walk, a child whose destructor referenced it goes to the referrer")
    func destructorReferencesItsOwnChunkInAWalk() throws {
        let owner = try named(nil, "owner")
        let p = try named(nil, "p")
        let c = try named(p, "c")
        c.setDestructor { me in
            try? me.reference(from: owner)
            return .allow
        }
        try p.free()
        #expect(c.isValid && c.parent == owner && c.referenceCount == 0)
        var gone = false
        c.setDestructor { _ in gone = true; return .allow }
        try owner.free()
        #expect(gone)
    }

    @Test("a chunk being freed cannot gain a reference (the walk would leave the handle dangling)")
    func noReferenceToAChunkBeingFreed() throws {
        let keeper = try named(nil, "keeper")
        let p = try named(nil, "p")
        let kid = try named(p, "kid")
        var seen: TallocError? = nil
        kid.setDestructor { k in
            do { try k.parent!.reference(from: keeper) } catch { seen = error as? TallocError }
            return .allow
        }
        try p.free()
        #expect(seen == .beingFreed)
        #expect(keeper.children.isEmpty && keeper.totalBlocks == 1)
        try keeper.free()
    }

    @Test("two references a destructor adds from the null context, then the whole tree goes")
    func referenceCycleWithDestructorAddingReferences() throws {
        let top = try named(nil, "top")
        let a = try named(top, "a"), b = try named(top, "b")
        try b.reference(from: a)
        try a.reference(from: b)
        a.setDestructor { me in
            try? me.reference(from: top)
            try? me.reference(from: top)
            try? me.steal(to: top)
            return .allow
        }
        top.freeChildren()
        #expect(top.totalBlocks == 1, "a, b and every reference handle are gone")
        try top.free()
    }

    // MARK: realloc and names

    @Test("a move rebases only a name inside the old body, not a .name child carved after it")
    func reallocKeepsANameOutsideTheBody() throws {
        let pool = try TallocContext.pool(parent: nil, capacity: 160)
        var x = try TallocContext.allocate(parent: pool, byteCount: 16, name: "x")
        try x.setName("nnn")  // its ".name" child lies right after x in the pool
        try x.resize(byteCount: 81)  // no room left: x moves to the heap, keeping its name
        x.unsafeMutableBytes.initializeMemory(as: UInt8.self, repeating: 66)
        #expect(x.name == "nnn")
        try pool.free()
    }
}
