// luatalloc — TallocCore tests
// SPDX-License-Identifier: MIT
//
// The remaining scenarios of talloc's testsuite.c (SEMANTICS §5), rewritten in our own words. The others
// live beside the behaviour they check (FreeTests, ReferenceTests, PoolTests, MemoryLimitTests,
// ReportAndNameTests).

#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import TallocCore

@Suite struct TestsuiteScenarioTests {
    @Test func reallocOfAnArrayWithChildren() throws {
        // test_realloc_child: the array moves; its children's parent links and its siblings' links follow
        let root = try TallocContext.new(parent: nil, name: "root")
        defer { try? root.free() }
        let before = try TallocContext.new(parent: root, name: "before")
        var el1 = try TallocContext.allocate(parent: root, byteCount: 8, name: "el1")
        let after = try TallocContext.new(parent: root, name: "after")
        var kids: [TallocContext] = []
        for _ in 0..<5 { kids.append(try TallocContext.allocate(parent: el1, byteCount: 16, name: "list")) }
        for n in [64, 4096, 65536, 32] { try el1.resize(byteCount: n) }
        #expect(kids.allSatisfy { $0.parent == el1 })
        #expect(root.children == [after, el1, before])
        #expect(el1.totalBlocks == 6)
    }

    @Test func reallocBasics() throws {
        // test_realloc
        let root = try TallocContext.new(parent: nil, name: "root")
        defer { try? root.free() }
        var p1 = try TallocContext.allocate(parent: root, byteCount: 10, name: "p1")
        #expect(p1.totalSize == 10)
        try p1.resize(byteCount: 20)
        #expect(p1.totalSize == 20)
        _ = try TallocContext.new(parent: p1, name: "child")
        try p1.resize(byteCount: 30)
        #expect(p1.totalSize == 30 && p1.totalBlocks == 2)
        try p1.resize(byteCount: 10)
        #expect(p1.totalSize == 10)
    }

    @Test func reallocFnCycle() throws {
        // test_realloc_fn: allocate, grow, free through the function form (renames to UNNAMED on moves)
        let root = try TallocContext.new(parent: nil, name: "root")
        defer { try? root.free() }
        let p = try #require(try TallocContext.reallocate(nil, parent: root, byteCount: 10, name: .none))
        #expect(root.totalBlocks == 2 && root.totalSize == 10)
        let q = try #require(try TallocContext.reallocate(p, parent: root, byteCount: 20, name: .none))
        #expect(root.totalSize == 20)
        #expect(try TallocContext.reallocate(q, parent: root, byteCount: 0, name: .none) == nil)
        #expect(root.totalBlocks == 1)
    }

    @Test func reallocOfANodeWhoseDescendantsHaveDestructors() throws {
        // test_realloc_on_destructor_parent ("free_for_exit")
        let top = try TallocContext.new(parent: nil, name: "top")
        var parent = try TallocContext.allocate(parent: top, byteCount: 8, name: "parent")
        let a = try TallocContext.allocate(parent: parent, byteCount: 8, name: "a")
        let b = try TallocContext.allocate(parent: a, byteCount: 8, name: "b")
        var fired: [String] = []
        a.setDestructor { _ in fired.append("a"); return .allow }
        b.setDestructor { _ in fired.append("b"); return .allow }
        try parent.resize(byteCount: 16_000)
        try top.free()
        #expect(fired == ["a", "b"])
    }

    @Test func poolStealAndReallocOfStolenMembers() throws {
        // test_pool_steal
        let root = try TallocContext.new(parent: nil, name: "root")
        defer { try? root.free() }
        let pool = try TallocContext.pool(parent: nil, capacity: 1024)
        var p1 = try TallocContext.allocate(parent: pool, byteCount: 4 * 16, name: "p1")
        try p1.steal(to: root)
        var p2 = try TallocContext.allocate(parent: pool, byteCount: 4 * 16, name: "p2")
        try p2.steal(to: root)
        try pool.free()
        // p2 is the last chunk: it grows in place
        let p2Before = p2
        try p2.resize(byteCount: 5 * 16)
        #expect(p2 == p2Before)
        // p1 is not the last chunk: the freed pool has room after p2
        try p1.resize(byteCount: 5 * 16)
        #expect(p1.isPoolMemory && p1.unsafePointer - p2.unsafePointer == _align16(64 + 5 * 16))
        try p2.free()
        // p1 is now the only live chunk of the freed pool: it moves to the start
        try p1.resize(byteCount: 8 * 16)
        #expect(p1.isPoolMemory && p1.unsafePointer - p2Before.unsafePointer == -_align16(64 + 4 * 16))
        try p1.resize(byteCount: 2000)
        #expect(!p1.isPoolMemory, "too big for the freed pool: the heap")
    }

    @Test func poolNest() throws {
        // test_pool_nest: a pool carved from a pool; a member of the inner pool stolen out pins it after its
        // free, and freeing that member gives the inner pool back to the outer one
        let pool = try TallocContext.pool(parent: nil, capacity: 1024)
        let child = try TallocContext.pool(parent: pool, capacity: 256)
        #expect(child.isPool && child.isPoolMemory, "the inner pool is carved from the outer one")
        #expect(pool.poolInfo?.objectCount == 2 && pool.poolInfo?.used == _align16(16 + 64 + 256))
        let e = try TallocContext.new(parent: nil, name: "e")
        let grandchild = try TallocContext.allocate(parent: child, byteCount: 10, name: "gc")
        #expect(grandchild.owningPool == child, "carved from the nearest pool, never the outer one")
        try grandchild.steal(to: e)
        #expect(grandchild.parent == e && grandchild.owningPool == child)
        try child.free()
        // the inner pool is freed but pinned by its stolen member; the outer pool still counts it
        #expect(grandchild.poolInfo == TallocPoolInfo(capacity: 256, used: _align16(64 + 10),
                                                      available: 256 - _align16(64 + 10), objectCount: 1, isFreed: true))
        #expect(pool.poolInfo?.objectCount == 2 && pool.children.isEmpty)
        try grandchild.free()
        // its last member gone, the inner pool goes back to the outer one, which resets
        #expect(pool.poolInfo == TallocPoolInfo(capacity: 1024, used: 0, available: 1024, objectCount: 1, isFreed: false))
        #expect(e.totalBlocks == 1)
        try pool.free()
        try e.free()
    }

    @Test func ptrtypeSizes() throws {
        // test_talloc_ptrtype: sizes follow the element type, names the location
        let root = try TallocContext.new(parent: nil, name: "root")
        defer { try? root.free() }
        let one = try TallocContext.allocate(parent: root, byteCount: MemoryLayout<(Int, Int)>.size)
        #expect(one.size == 16 && one.name.contains("TestsuiteScenarioTests.swift:"))
        let arr = try TallocContext.allocate(parent: root, of: (Int, Int).self, count: 3)
        #expect(arr.size == 48)
    }

    @Test func misc() throws {
        // test_misc, the parts not covered elsewhere
        let root = try TallocContext.new(parent: nil, name: "root")
        defer { try? root.free() }
        // "large talloc allowed": 0x7fffffff bytes are refused (MAX_TALLOC_SIZE), and nothing is left behind
        #expect(throws: TallocError.sizeTooLarge) { try TallocContext.allocate(parent: root, byteCount: 0x7fff_ffff, name: "p1") }
        #expect(root.totalBlocks == 1)
        let name = try TallocContext.named(parent: root, byteCount: 1, name: "my name is foo")
        #expect(name.name == "my name is foo")
        let z = try TallocContext.allocateZeroed(parent: root, byteCount: 100, name: "zero")
        #expect(z.unsafeMutableBytes.allSatisfy { $0 == 0 })
        var s = try TallocContext.strdup(parent: root, "foo")
        try s.asprintfAppendBuffer("%s", "bar")
        #expect(s.stringValue == "foobar" && s.size == 7)
        let a = try TallocContext.asprintf(parent: root, "%s%d", "hello", Int32(1234567890))
        #expect(a.size == 16)
        #expect(throws: TallocError.sizeTooLarge) { try TallocContext.allocate(parent: root, of: Double.self, count: 0x2000_0000) }
    }

    @Test func threadsEachBuildATreeAndHandItOver() async throws {
        // test_pthread_talloc_passing: trees built on many threads, moved to one parent under a lock
        final class Box: @unchecked Sendable {
            let lock = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
            let main: TallocContext
            init(_ m: TallocContext) { main = m; pthread_mutex_init(lock, nil) }
            deinit { lock.deallocate() }
        }
        let box = Box(try TallocContext.new(parent: nil, name: "main"))
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<100 {
                group.addTask {
                    guard let ctx = try? TallocContext.new(parent: nil, name: "thread") else { return }
                    let payload = try? TallocContext.allocate(parent: ctx, byteCount: 100, name: "payload")
                    pthread_mutex_lock(box.lock)
                    try? payload?.steal(to: box.main)
                    pthread_mutex_unlock(box.lock)
                    try? ctx.free()
                }
            }
        }
        #expect(box.main.totalSize == 100 * 100)
        try box.main.free()
    }
}
