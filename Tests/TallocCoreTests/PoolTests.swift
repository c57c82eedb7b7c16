// luatalloc — TallocCore tests
// SPDX-License-Identifier: MIT
//
// Pools, measured the way ../shared/oracle/talloc-probes/pool.c measures libtalloc. Offsets are ours:
// a member costs ALIGN16(64 + size) where talloc's costs ALIGN16(96 + size); the decisions (fits or
// not, reclaim, reset, realloc path) are talloc's.

import Testing
@testable import TallocCore

func offset(_ c: TallocContext, from base: TallocContext) -> Int { c.unsafePointer - base.unsafePointer }

@Suite struct PoolTests {
    @Test func bumpAllocationReclaimAndReset() throws {
        let pool = try TallocContext.pool(parent: nil, capacity: 1024)
        defer { try? pool.free() }
        #expect(pool.name == "UNNAMED")
        #expect(pool.size == 0 && pool.totalSize == 0 && pool.totalBlocks == 1)
        let a = try TallocContext.allocate(parent: pool, byteCount: 1, name: "a")
        let b = try TallocContext.allocate(parent: pool, byteCount: 17, name: "b")
        let c = try TallocContext.allocate(parent: b, byteCount: 100, name: "c")  // grandchild: same pool
        let d = try TallocContext.allocate(parent: pool, byteCount: 0, name: "d")
        #expect(offset(a, from: pool) == 64)
        #expect(offset(b, from: pool) == 144)
        #expect(offset(c, from: pool) == 240)
        #expect(offset(d, from: pool) == 416)
        #expect(c.isPoolMemory && d.isPoolMemory)
        try d.free()
        let e = try TallocContext.allocate(parent: pool, byteCount: 5, name: "e")
        #expect(offset(e, from: pool) == 416, "the last chunk is reclaimed")
        try b.free()  // b and c sit in the middle: wasted, no coalescing
        let f = try TallocContext.allocate(parent: pool, byteCount: 5, name: "f")
        #expect(offset(f, from: pool) == 496)
        try a.free(); try e.free(); try f.free()
        #expect(pool.poolInfo?.objectCount == 1)
        let g = try TallocContext.allocate(parent: pool, byteCount: 5, name: "g")
        #expect(offset(g, from: pool) == 64, "an empty pool resets")
        let big = try TallocContext.allocate(parent: pool, byteCount: 2000, name: "big")
        #expect(!big.isPoolMemory)
        let bigChild = try TallocContext.allocate(parent: big, byteCount: 10, name: "bigchild")
        #expect(!bigChild.isPoolMemory)
        try big.free()
        try g.free()
        let h = try TallocContext.allocate(parent: pool, byteCount: 1024 - 64, name: "h")
        #expect(offset(h, from: pool) == 64 && h.isPoolMemory, "a request of capacity - header fits exactly")
        let i = try TallocContext.allocate(parent: pool, byteCount: 0, name: "i")
        #expect(!i.isPoolMemory, "a full pool sends even 0 bytes to the heap")
        #expect(pool.poolInfo == TallocPoolInfo(capacity: 1024, used: 1024, available: 0, objectCount: 2, isFreed: false))
    }

    @Test func reallocPathsInsideAPool() throws {
        let pool = try TallocContext.pool(parent: nil, capacity: 1024)
        defer { try? pool.free() }
        let a = try TallocContext.allocate(parent: pool, byteCount: 10, name: "a")
        let b = try TallocContext.allocate(parent: pool, byteCount: 10, name: "b")
        #expect(offset(a, from: pool) == 64 && offset(b, from: pool) == 144)
        // grow the last chunk: in place, name kept
        let b2 = try #require(try TallocContext.reallocate(b, parent: nil, byteCount: 40, name: .constant("moved")))
        #expect(b2 == b && b2.name == "b")
        let b3 = try #require(try TallocContext.reallocate(b2, parent: nil, byteCount: 20, name: .constant("moved")))
        #expect(b3 == b && b3.size == 20)
        // same aligned size: in place
        let a2 = try #require(try TallocContext.reallocate(a, parent: nil, byteCount: 12, name: .constant("moved")))
        #expect(a2 == a && a2.name == "a")
        // non-last chunk grows: a new chunk from the pool, renamed
        let a3 = try #require(try TallocContext.reallocate(a2, parent: nil, byteCount: 100, name: .constant("moved")))
        #expect(a3 != a && a3.isPoolMemory && a3.name == "moved")
        #expect(offset(a3, from: pool) == 240)
        let n = try TallocContext.allocate(parent: pool, byteCount: 1, name: "n")
        #expect(offset(n, from: pool) == 416)
        try n.free(); try a3.free()
        // b is now the only chunk: it moves to the pool's start
        let b4 = try #require(try TallocContext.reallocate(b3, parent: nil, byteCount: 300, name: .constant("start")))
        #expect(offset(b4, from: pool) == 64 && b4.name == "start")
        // too big for the pool: the heap
        let b5 = try #require(try TallocContext.reallocate(b4, parent: nil, byteCount: 5000, name: .constant("heap")))
        #expect(!b5.isPoolMemory && b5.size == 5000)
        let m = try TallocContext.allocate(parent: pool, byteCount: 1, name: "m")
        #expect(offset(m, from: pool) == 64, "the pool reset after its last member moved out")
        try b5.free(); try m.free()
        #expect(throws: TallocError.isPool) { try TallocContext.reallocate(pool, parent: nil, byteCount: 2048, name: .none) }
    }

    @Test func shrinkingTheLastChunkLetsTheNextOneFollowIt() throws {
        let pool = try TallocContext.pool(parent: nil, capacity: 4096)
        defer { try? pool.free() }
        _ = try TallocContext.allocate(parent: pool, byteCount: 10, name: "first")
        let x = try TallocContext.allocate(parent: pool, byteCount: 1000, name: "x")
        _ = try TallocContext.reallocate(x, parent: nil, byteCount: 10, name: .none)
        let y = try TallocContext.allocate(parent: pool, byteCount: 1, name: "y")
        #expect(offset(y, from: x) == 80)
        #expect(x.name == "x", "shrinking keeps the name")
    }

    @Test func freedPoolIsPinnedByStolenMembers() throws {
        let root = try TallocContext.new(parent: nil, name: "root")
        defer { try? root.free() }
        let pool = try TallocContext.pool(parent: nil, capacity: 100_000)
        let s = try TallocContext.allocate(parent: pool, byteCount: 10, name: "stolen")
        _ = try TallocContext.allocate(parent: pool, byteCount: 10, name: "other")
        try s.steal(to: root)
        #expect(s.poolInfo?.objectCount == 3)
        try pool.free()
        let info = try #require(s.poolInfo)
        #expect(info.isFreed && info.objectCount == 1)
        // children of the stolen member keep coming from the freed pool
        let sc = try TallocContext.allocate(parent: s, byteCount: 10, name: "child-of-stolen")
        #expect(sc.isPoolMemory && offset(sc, from: s) == 80)
        #expect(throws: TallocError.accessAfterFree) { try pool.validate() }
        #expect(root.reportFull(addresses: false) == """
            full talloc report on 'root' (total     20 bytes in   3 blocks)
                stolen                         contains     20 bytes in   2 blocks (ref 0)
                    child-of-stolen                contains     10 bytes in   1 blocks (ref 0)

            """)
        try s.free()  // the last member: the pool's block goes back to malloc (checked under valgrind/ASan)
    }

    @Test func nestedPools() throws {
        let outer = try TallocContext.pool(parent: nil, capacity: 4096)
        defer { try? outer.free() }
        let inner = try TallocContext.pool(parent: outer, capacity: 500)
        #expect(inner.isPool && inner.isPoolMemory)
        #expect(offset(inner, from: outer) == 64 + 16)
        let ia = try TallocContext.allocate(parent: inner, byteCount: 10, name: "ia")
        #expect(ia.owningPool == inner && offset(ia, from: inner) == 64)
        let ib = try TallocContext.allocate(parent: inner, byteCount: 600, name: "ib")
        #expect(!ib.isPoolMemory, "overflow of an inner pool goes to the heap, not to the outer pool")
        let oa = try TallocContext.allocate(parent: outer, byteCount: 10, name: "oa")
        #expect(oa.owningPool == outer)
        #expect(offset(oa, from: outer) == 64 + _align16(64 + 500 + 16))
        try oa.free()
        try inner.free()
        let ob = try TallocContext.allocate(parent: outer, byteCount: 10, name: "ob")
        #expect(offset(ob, from: outer) == 64, "the outer pool reset once the inner pool was gone")
    }

    @Test func nestedPoolFreedLastIsNotReclaimed() throws {
        let outer = try TallocContext.pool(parent: nil, capacity: 4096)
        defer { try? outer.free() }
        let keep = try TallocContext.allocate(parent: outer, byteCount: 10, name: "keep")
        let inner = try TallocContext.pool(parent: outer, capacity: 500)
        try inner.free()
        let next = try TallocContext.allocate(parent: outer, byteCount: 10, name: "next")
        #expect(offset(next, from: outer) > offset(keep, from: outer) + 500, "talloc's rule: a nested pool is not reclaimed")
    }

    @Test func pooledObject() throws {
        struct Pooled { var a: Int = 0, b: Int = 0, c: Int = 0 }
        let obj = try TallocContext.pooledObject(parent: nil, byteCount: 24, name: "struct pooled", subobjects: 3, subobjectBytes: 6 + 6 + 2)
        defer { try? obj.free() }
        #expect(obj.name == "struct pooled" && obj.size == 24 && obj.totalSize == 24 && obj.totalBlocks == 1)
        let s1 = try TallocContext.strdup(parent: obj, "hello")
        let s2 = try TallocContext.strdup(parent: obj, "world")
        let s3 = try TallocContext.strdup(parent: obj, "x")
        #expect(s1.isPoolMemory && s2.isPoolMemory && s3.isPoolMemory)
        #expect(offset(s1, from: obj) == 96 && offset(s2, from: obj) == 176 && offset(s3, from: obj) == 256)
        let s4 = try TallocContext.strdup(parent: obj, "")
        #expect(s4.isPoolMemory, "the slack of the per-object overhead leaves room")
        let info = try #require(obj.poolInfo)
        #expect(info.used + info.available == info.capacity)
        #expect(obj.totalSize == 24 + 6 + 6 + 2 + 1 && obj.totalBlocks == 5)
        // strdup / free cycles reuse the space
        try s4.free()
        let s5 = try TallocContext.strdup(parent: obj, "again")
        #expect(s5 == s4)
    }

    @Test func poolLayoutShowsHolesAndFreeSpace() throws {
        let pool = try TallocContext.pool(parent: nil, capacity: 1024)
        defer { try? pool.free() }
        let a = try TallocContext.allocate(parent: pool, byteCount: 16, name: "a")
        let b = try TallocContext.allocate(parent: pool, byteCount: 16, name: "b")
        _ = try TallocContext.allocate(parent: pool, byteCount: 16, name: "c")
        try b.free()
        let kinds = try #require(pool.poolLayout).map(\.kind)
        #expect(kinds == [.header, .live, .hole, .header, .live, .free] || kinds.contains(.hole))
        _ = a
    }
}
