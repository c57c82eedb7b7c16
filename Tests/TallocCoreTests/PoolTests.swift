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
        let c = try TallocContext.allocate(parent: pool, byteCount: 16, name: "c")
        try b.free()
        let layout = try #require(pool.poolLayout)
        #expect(layout.map(\.kind) == [.header, .live, .hole, .header, .live, .free])
        #expect(layout.map(\.member) == [a, a, nil, c, c, nil])
        #expect(layout.map(\.length) == [64, 16, 80, 64, 16, 1024 - 3 * 80])
    }

    // MARK: - The pool walk trusts only what TallocCore wrote

    @Test func layoutsAreExact() throws {
        let pool = try TallocContext.pool(parent: nil, capacity: 1024)
        defer { try? pool.free() }
        let a = try TallocContext.allocate(parent: pool, byteCount: 16, name: "a")   // at 64, 80 bytes
        let b = try TallocContext.allocate(parent: pool, byteCount: 16, name: "b")   // at 144
        let c = try TallocContext.allocate(parent: pool, byteCount: 0, name: "c")    // at 224, 64 bytes
        let d = try TallocContext.allocate(parent: pool, byteCount: 100, name: "d")  // at 288, 176 bytes
        try b.free()
        #expect(pool.poolLayout == [
            seg(.header, 0, 64, a), seg(.live, 64, 16, a), seg(.hole, 80, 80),
            seg(.header, 160, 64, c), seg(.header, 224, 64, d), seg(.live, 288, 112, d),
            seg(.free, 400, 624),
        ], "a 0-byte member has no .live segment")
        #expect(a.poolLayout == pool.poolLayout, "any member reports its pool's layout")
        try c.free()
        #expect(pool.poolLayout == [
            seg(.header, 0, 64, a), seg(.live, 64, 16, a), seg(.hole, 80, 144),
            seg(.header, 224, 64, d), seg(.live, 288, 112, d), seg(.free, 400, 624),
        ], "neighbouring holes merge")
        // Shrinking within the same aligned size changes nothing.
        let a2 = try #require(try TallocContext.reallocate(a, parent: nil, byteCount: 1, name: .keep))
        #expect(a2 == a)
        try TallocContext.reallocate(d, parent: nil, byteCount: 20, name: .keep)
        #expect(pool.poolLayout == [
            seg(.header, 0, 64, a), seg(.live, 64, 16, a), seg(.hole, 80, 144),
            seg(.header, 224, 64, d), seg(.live, 288, 32, d), seg(.free, 320, 704),
        ], "the last member shrinks the used space")
        let heap = try TallocContext.allocateUnnamed(parent: nil, byteCount: 1)
        defer { try? heap.free() }
        #expect(heap.poolLayout == nil)
    }

    @Test func nestedPoolsAndPooledObjectsLayOutExactly() throws {
        let outer = try TallocContext.pool(parent: nil, capacity: 4096)
        defer { try? outer.free() }
        let keep = try TallocContext.allocate(parent: outer, byteCount: 10, name: "keep")
        let inner = try TallocContext.pool(parent: outer, capacity: 500)
        let oa = try TallocContext.allocate(parent: outer, byteCount: 10, name: "oa")
        #expect(outer.poolLayout == [
            seg(.header, 0, 64, keep), seg(.live, 64, 16, keep),
            seg(.header, 80, 80, inner), seg(.live, 160, 512, inner),
            seg(.header, 672, 64, oa), seg(.live, 736, 16, oa), seg(.free, 752, 3344),
        ], "a nested pool's segment is its prefix and header, then all of its space")
        let ia = try TallocContext.allocate(parent: inner, byteCount: 30, name: "ia")
        #expect(inner.poolLayout == [seg(.header, 0, 64, ia), seg(.live, 64, 32, ia), seg(.free, 96, 404)])
        let object = try TallocContext.pooledObject(parent: nil, byteCount: 40, name: "object", subobjects: 1, subobjectBytes: 8)
        defer { try? object.free() }
        let sub = try TallocContext.allocate(parent: object, byteCount: 8, name: "sub")
        let capacity = 40 + 8 + 2 * (64 + 16 + 15)
        #expect(object.poolLayout == [
            seg(.pool, 0, 48), seg(.header, 48, 64, sub), seg(.live, 112, 16, sub), seg(.free, 128, capacity - 128),
        ])
    }

    @Test func aNestedPoolFreedLastLeavesATrustedGap() throws {
        // talloc's arithmetic reclaims a 0-byte nested pool to its chunk header, past its prefix: the
        // 16-byte gap left in front is marked, not read as a prefix.
        let outer = try TallocContext.pool(parent: nil, capacity: 4096)
        defer { try? outer.free() }
        let keep = try TallocContext.allocate(parent: outer, byteCount: 10, name: "keep")
        let empty = try TallocContext.pool(parent: outer, capacity: 0)
        #expect(offset(empty, from: outer) == 64 + 80 + 16)
        try empty.free()
        let x = try TallocContext.allocate(parent: outer, byteCount: 10, name: "x")
        #expect(offset(x, from: outer) == 64 + 80 + 16, "talloc's reclaim: the next header sits where the pool's was")
        #expect(outer.poolLayout == [
            seg(.header, 0, 64, keep), seg(.live, 64, 16, keep), seg(.hole, 80, 16),
            seg(.header, 96, 64, x), seg(.live, 160, 16, x), seg(.free, 176, 4096 - 176),
        ])
    }

    /// Writes a chunk header of our layout into user bytes: what an attacker with a pool member's body
    /// can write.
    func forge(_ at: UnsafeMutableRawPointer, poolOffset: Int, size: UInt32, pool isPool: Bool = false) {
        let flags = _magic | _Flag.poolMem | (isPool ? _Flag.pool : 0)
        at.storeBytes(of: _ChunkHeader(next: nil, prev: nil, parent: nil, child: nil, name: nil, extra: nil,
                                       size: size, flags: flags, poolOffset: UInt32(poolOffset), line: 0),
                      as: _ChunkHeader.self)
    }

    @Test func aForgedHeaderBehindAShrunkMemberIsNotRead() throws {
        let pool = try TallocContext.pool(parent: nil, capacity: 1024)
        defer { try? pool.free() }
        var a = try TallocContext.allocate(parent: pool, byteCount: 200, name: "a")  // at 64, 272 bytes
        let b = try TallocContext.allocate(parent: pool, byteCount: 16, name: "b")   // at 336
        // Where the walk looks once `a` is 16 bytes: pool + 64 + 80 = a's body + 16.
        forge(a.unsafePointer + 16, poolOffset: 144, size: 0x0FFF_FFF0)
        try a.resize(byteCount: 16)
        let expected = [
            seg(.header, 0, 64, a), seg(.live, 64, 16, a), seg(.hole, 80, 192),
            seg(.header, 272, 64, b), seg(.live, 336, 16, b), seg(.free, 352, 672),
        ]
        #expect(pool.poolLayout == expected)
        // Forged again after the shrink, in bytes that are no longer a's: still not read (a's writes
        // are bounded by its size; this is an out-of-bounds write, which only unsafe code can do).
        forge(a.unsafePointer + 16 + 16, poolOffset: 160, size: 0x0FFF_FFF0)
        #expect(pool.poolLayout == expected)
        // The same forgery in the shape of a nested pool (prefix, then a pool's header).
        var c = try TallocContext.allocate(parent: pool, byteCount: 200, name: "c")  // at 416, 272 bytes
        let d = try TallocContext.allocate(parent: pool, byteCount: 16, name: "d")   // at 688
        let prefix = c.unsafePointer + 16
        prefix.storeBytes(of: (UInt32(64), UInt32(1), UInt32(0x0FFF_FFF0), UInt32(0)), as: (UInt32, UInt32, UInt32, UInt32).self)
        forge(prefix + 16, poolOffset: 416 + 80 + 16, size: 0, pool: true)
        try c.resize(byteCount: 16)
        #expect(pool.poolLayout == Array(expected.dropLast()) + [
            seg(.header, 352, 64, c), seg(.live, 416, 16, c), seg(.hole, 432, 192),
            seg(.header, 624, 64, d), seg(.live, 688, 16, d), seg(.free, 704, 320),
        ])
    }

    @Test func aForgedSpanCannotLeadTheWalkPastThePool() throws {
        // A full pool: a forged span ending 16 bytes before the end would make the walk read a header
        // 48 bytes past the pool's block (AddressSanitizer: heap-buffer-overflow).
        let pool = try TallocContext.pool(parent: nil, capacity: 512)
        defer { try? pool.free() }
        var a = try TallocContext.allocate(parent: pool, byteCount: 200, name: "a")  // at 64, 272 bytes
        let b = try TallocContext.allocate(parent: pool, byteCount: 176, name: "b")  // at 336, to the end
        #expect(pool.poolInfo?.available == 0)
        forge(a.unsafePointer + 16, poolOffset: 144, size: 352)  // span 416: 144 + 416 = end - 16
        try a.resize(byteCount: 16)
        #expect(pool.poolLayout == [
            seg(.header, 0, 64, a), seg(.live, 64, 16, a), seg(.hole, 80, 192),
            seg(.header, 272, 64, b), seg(.live, 336, 176, b), seg(.free, 512, 0),
        ])
    }

    @Test func forgedBytesInFreedMovedAndPooledBodiesAreNotRead() throws {
        let pool = try TallocContext.pool(parent: nil, capacity: 1024)
        defer { try? pool.free() }
        let a = try TallocContext.allocate(parent: pool, byteCount: 100, name: "a")  // at 64, 176 bytes
        let b = try TallocContext.allocate(parent: pool, byteCount: 16, name: "b")   // at 240
        forge(a.unsafePointer, poolOffset: 128, size: 0x0FFF_FFF0)
        forge(a.unsafePointer + 32, poolOffset: 160, size: 0x0FFF_FFF0)  // a's last byte is at +99
        // a grows and moves to a new chunk of the pool: its old chunk is a hole, by its trusted header.
        let a2 = try #require(try TallocContext.reallocate(a, parent: nil, byteCount: 300, name: .keep))
        #expect(offset(a2, from: pool) == 320)
        #expect(pool.poolLayout == [
            seg(.hole, 0, 176), seg(.header, 176, 64, b), seg(.live, 240, 16, b),
            seg(.header, 256, 64, a2), seg(.live, 320, 304, a2), seg(.free, 624, 400),
        ])
        forge(a2.unsafePointer, poolOffset: 384 + 64, size: 8)
        try b.free()
        try a2.free()  // the pool resets
        let c = try TallocContext.allocate(parent: pool, byteCount: 8, name: "c")
        #expect(pool.poolLayout == [seg(.header, 0, 64, c), seg(.live, 64, 16, c), seg(.free, 80, 944)])
        // A pooled object's own body is the object's: the walk starts after it.
        let object = try TallocContext.pooledObject(parent: nil, byteCount: 64, name: "object", subobjects: 1, subobjectBytes: 16)
        defer { try? object.free() }
        forge(object.unsafePointer, poolOffset: 128, size: 0x0FFF_FFF0)
        let sub = try TallocContext.allocate(parent: object, byteCount: 16, name: "sub")
        let capacity = 64 + 16 + 2 * (64 + 16 + 15)
        #expect(object.poolLayout == [
            seg(.pool, 0, 64), seg(.header, 64, 64, sub), seg(.live, 128, 16, sub), seg(.free, 144, capacity - 144),
        ])
    }

    @Test func anExternalContextIsNeverCarvedFromAPool() throws {
        let limited = try TallocContext.new(parent: nil, name: "limited")
        defer { try? limited.free() }
        try limited.setMemoryLimit(100_000)
        let pool = try TallocContext.pool(parent: limited, capacity: 1024)
        let before = try #require(limited.memoryLimit).current
        let ext = try TallocContext.newExternal(parent: pool, name: "heap")
        #expect(!ext.isPoolMemory, "its size is not its body: a pool walk must not take a span from it")
        #expect(ext.unsafeAdjustExternalSize(by: 5000))
        #expect(limited.memoryLimit?.current == before + 64 + 5000)
        #expect(pool.poolLayout == [seg(.free, 0, 1024)])
        try ext.free()
        #expect(limited.memoryLimit?.current == before)
    }

    @Test func theSegmentsStream() throws {
        let members = 100_000
        let pool = try TallocContext.pool(parent: nil, capacity: members * 64)
        defer { try? pool.free() }
        for _ in 0..<members { _ = try TallocContext.allocateUnnamed(parent: pool, byteCount: 0) }
        var headers = 0, other = 0
        #expect(pool.forEachPoolSegment { s in
            if s.kind == .header { headers += 1 } else { other += 1 }
            return true
        })
        #expect(headers == members && other == 1)
        var seen = 0
        #expect(!pool.forEachPoolSegment { _ in seen += 1; return seen < 3 }, "false: the body stopped it")
        #expect(seen == 3)
        let plain = try TallocContext.new(parent: nil, name: "plain")
        defer { try? plain.free() }
        #expect(!plain.forEachPoolSegment { _ in Issue.record("not a pool"); return true })
    }
}

func seg(_ kind: TallocPoolSegment.Kind, _ offset: Int, _ length: Int, _ member: TallocContext? = nil) -> TallocPoolSegment {
    TallocPoolSegment(kind: kind, offset: offset, length: length, member: member)
}
