// luatalloc — TallocCore tests
// SPDX-License-Identifier: MIT
//
// Memory limits (SEMANTICS §1.6, §2.8, §7 #4, §8 1–3). The scenarios of talloc's accounting bugs, each of
// which ends in a phantom ENOMEM, a stale pointer or "logic error in talloc_memlimit_shrink" in talloc
// 2.4.0 (../shared/oracle/talloc-probes/ml_*), here working: the limit always equals the bytes really
// held. A chunk costs 64 + size; a pool 16 + 64 + capacity; pool members nothing.

import Testing
@testable import TallocCore

func current(_ c: TallocContext) -> Int { c.memoryLimit!.current }

@Suite struct MemoryLimitTests {
    @Test func nestedLimitsCheckEveryLevel() throws {
        // test_memlimit, first part, with our header size
        let root = try TallocContext.new(parent: nil, name: "root")
        defer { try? root.free() }
        try root.setMemoryLimit(2048)
        #expect(current(root) == 64)
        let a = try TallocContext.allocate(parent: root, byteCount: 1000, name: "a")
        #expect(current(root) == 64 + 1064)
        #expect(throws: TallocError.outOfMemory) { try TallocContext.allocate(parent: root, byteCount: 1000, name: "b") }
        let l2 = try TallocContext.new(parent: root, name: "l2")
        try l2.setMemoryLimit(500)
        #expect(current(l2) == 64)
        #expect(throws: TallocError.outOfMemory) { try TallocContext.allocate(parent: l2, byteCount: 500, name: "c") }
        let c = try TallocContext.allocate(parent: l2, byteCount: 372, name: "c")  // 64 + 64 + 372 = 500: exactly
        #expect(current(l2) == 500 && current(root) == 64 + 1064 + 64 + 436)
        #expect(throws: TallocError.outOfMemory) { try TallocContext.allocate(parent: l2, byteCount: 0, name: "d") }
        try c.free()
        #expect(current(l2) == 64)
        // realloc is checked on the growth
        var grow = try TallocContext.allocate(parent: l2, byteCount: 100, name: "g")
        #expect(throws: TallocError.outOfMemory) { try grow.reallocate(byteCount: 1000) }
        try grow.reallocate(byteCount: 200)
        #expect(current(l2) == 64 + 264)
        // a steal moves the whole subtree's bytes and does not fail
        try a.steal(to: l2)
        #expect(current(l2) == 64 + 264 + 1064)
        #expect(current(root) == 64 + 64 + 264 + 1064)
        try a.steal(to: root)
        #expect(current(l2) == 64 + 264)
        // raising a limit
        try l2.setMemoryLimit(0)
        _ = try TallocContext.allocate(parent: l2, byteCount: 400, name: "now fine")
    }

    @Test func limitsOnAPool() throws {
        // test_memlimit, pool part: a limit equal to the pool forbids every heap fallback but lets the
        // pool fill.
        let pool = try TallocContext.pool(parent: nil, capacity: 10240)
        defer { try? pool.free() }
        try pool.setMemoryLimit(10240)
        #expect(current(pool) == 10240 + 64 + 16)
        var members: [TallocContext] = []
        for _ in 0..<9 { members.append(try TallocContext.allocate(parent: pool, byteCount: 1024, name: "m")) }
        #expect(members.allSatisfy { $0.isPoolMemory })
        #expect(current(pool) == 10240 + 80, "pool members cost nothing")
        #expect(throws: TallocError.outOfMemory) { try TallocContext.allocate(parent: pool, byteCount: 1024, name: "tenth") }
        let outside = try TallocContext.new(parent: nil, name: "outside")
        try members[0].steal(to: outside)
        #expect(current(pool) == 10240 + 80, "stealing pool memory out does not change the count")
        try outside.free()
    }

    /// Bug 1 (ml_pool_leak): talloc subtracts `TC_HDR + TP_HDR + 0` when a pool is freed, so each pool
    /// leaks its capacity of budget and the 10th pool of 10,000 bytes under a 100,000-byte limit fails.
    @Test func freedPoolsReturnAllTheirBytes() throws {
        let root = try TallocContext.new(parent: nil, name: "root")
        defer { try? root.free() }
        try root.setMemoryLimit(100_000)
        for _ in 0..<1000 {
            let p = try TallocContext.pool(parent: root, capacity: 10_000)
            _ = try TallocContext.allocate(parent: p, byteCount: 100, name: "member")
            try p.free()
        }
        #expect(current(root) == 64)
    }

    /// Bug 2 (ml_pool_drift, ml_pool_bug): a pool member reallocated to the heap is charged `size` but
    /// discharged `size + TC_HDR`; after 13 rounds talloc aborts with "logic error in
    /// talloc_memlimit_shrink".
    @Test func poolMembersMovedToTheHeapAreChargedAndDischargedTheSame() throws {
        let root = try TallocContext.new(parent: nil, name: "root")
        defer { try? root.free() }
        try root.setMemoryLimit(1_000_000)
        let pool = try TallocContext.pool(parent: root, capacity: 1024)
        pool.setNameConst("pool")
        #expect(current(root) == 64 + 1104)
        for _ in 0..<100 {
            var m = try TallocContext.allocate(parent: pool, byteCount: 16, name: "m")
            try m.reallocate(byteCount: 4000)
            #expect(!m.isPoolMemory)
            #expect(current(root) == 64 + 1104 + 64 + 4000)
            try m.free()
            #expect(current(root) == 64 + 1104)
        }
        try pool.free()
        #expect(current(root) == 64)
    }

    /// Bug 3 (ml_ref_bug): reference handles are left out when a limit is computed but subtracted when
    /// freed. Here handles count like every chunk, always.
    @Test func referenceHandlesCountConsistently() throws {
        let root = try TallocContext.new(parent: nil, name: "root")
        defer { try? root.free() }
        let target = try TallocContext.allocate(parent: root, byteCount: 8, name: "target")
        let holder = try TallocContext.new(parent: root, name: "holder")
        _ = try TallocContext.allocate(parent: holder, byteCount: 100, name: "c1")
        try target.reference(from: holder)
        try holder.setMemoryLimit(4096)
        let handle = 64 + 32
        #expect(current(holder) == 64 + 164 + handle)
        try target.unlink(from: holder)
        #expect(current(holder) == 64 + 164)
        try target.reference(from: holder)
        #expect(current(holder) == 64 + 164 + handle)
        try holder.free()  // talloc 2.4 aborts here
        #expect(target.referenceCount == 0)
    }

    /// §8.1 (ml_steal_cycle): stealing a 2+ chunk subtree between two contexts under the same limit makes
    /// talloc's limit chain point at itself, and the next walk hangs.
    @Test func stealsUnderOneLimitKeepTheCount() throws {
        let root = try TallocContext.new(parent: nil, name: "root")
        defer { try? root.free() }
        try root.setMemoryLimit(100_000)
        let a = try TallocContext.new(parent: root, name: "a")
        let b = try TallocContext.new(parent: root, name: "b")
        let s = try TallocContext.allocate(parent: a, byteCount: 10, name: "s")
        _ = try TallocContext.allocate(parent: s, byteCount: 10, name: "s2")
        let before = current(root)
        for _ in 0..<10 { try s.steal(to: b); try s.steal(to: a) }
        #expect(current(root) == before)
        _ = try TallocContext.allocate(parent: s, byteCount: 10, name: "after")
        #expect(current(root) == before + 74)
    }

    /// §8.2 (ml_stale_limit): stealing out of a limited subtree must take every descendant out of the
    /// limit, so freeing the limit's owner leaves nothing pointing at it.
    @Test func stealingOutOfALimitReleasesTheWholeSubtree() throws {
        let limited = try TallocContext.new(parent: nil, name: "limited")
        try limited.setMemoryLimit(10_000)
        let s = try TallocContext.new(parent: limited, name: "s")
        let deep = try TallocContext.new(parent: s, name: "deep")
        let outside = try TallocContext.new(parent: nil, name: "outside")
        try s.steal(to: outside)
        #expect(current(limited) == 64)
        try limited.free()
        // allocations below the stolen subtree no longer consult any limit
        for _ in 0..<100 { _ = try TallocContext.allocate(parent: deep, byteCount: 1000, name: "x") }
        try outside.free()
    }

    /// §8.3 (ml_realloc_owner): a realloc that moves the owner of a limit keeps the limit.
    @Test func reallocMovingALimitOwnerKeepsItsLimit() throws {
        let root = try TallocContext.new(parent: nil, name: "root")
        defer { try? root.free() }
        var owner = try TallocContext.allocate(parent: root, byteCount: 16, name: "owner")
        try owner.setMemoryLimit(100_000)
        _ = try TallocContext.allocate(parent: owner, byteCount: 100, name: "kid")
        for n in [10_000, 40_000, 80_000] { try owner.reallocate(byteCount: n) }
        #expect(owner.memoryLimit?.max == 100_000)
        #expect(current(owner) == 64 + 80_000 + 164)
        #expect(throws: TallocError.outOfMemory) { try owner.reallocate(byteCount: 99_900) }
        let other = try TallocContext.new(parent: nil, name: "other")
        try other.setMemoryLimit(1_000_000)
        try owner.steal(to: other)
        #expect(owner.memoryLimit?.max == 100_000, "a limit owner keeps its own limit when stolen")
        #expect(current(other) == 64 + 64 + 80_000 + 164)
        try other.free()
    }
}
