// luatalloc — TallocCore tests
// SPDX-License-Identifier: MIT
//
// A pool freed while a member stolen out of it lives keeps its whole block (SEMANTICS §2.5): that memory
// stays charged to the limits the pool was under until the block really goes (issue 10, adversarial F12:
// the charge used to go back at the pool's free, and each round of "pool, steal a member out, free the
// pool" kept 4 MiB outside an 8 MiB limit, without bound).

import Testing
@testable import TallocCore

@Suite struct PinnedPoolLimitTests {
    let block = 16 + 64 + 4096  // a 4096-byte pool's whole charge

    @Test("a pinned pool stays charged until its last member goes")
    func pinnedPoolStaysCharged() throws {
        let limit = try TallocContext.new(parent: nil, name: "limit")
        defer { try? limit.free() }
        try limit.setMemoryLimit(1 << 20)
        let pool = try TallocContext.pool(parent: limit, capacity: 4096)
        let m = try TallocContext.allocate(parent: pool, byteCount: 16, name: "m")
        #expect(current(limit) == 64 + block)
        try m.steal(to: nil)  // out of the limit: a member costs nothing, the block stays with the pool
        try pool.free()
        #expect(current(limit) == 64 + block, "the block is still held, by m")
        try m.free()
        #expect(current(limit) == 64)
    }

    @Test("a member stolen within the limit pins it the same way")
    func pinnedWithinTheLimit() throws {
        let limit = try TallocContext.new(parent: nil, name: "limit")
        defer { try? limit.free() }
        try limit.setMemoryLimit(1 << 20)
        let pool = try TallocContext.pool(parent: limit, capacity: 4096)
        let m = try TallocContext.allocate(parent: pool, byteCount: 16, name: "m")
        try m.steal(to: limit)
        try pool.free()
        #expect(current(limit) == 64 + block)
        limit.freeChildren()
        #expect(current(limit) == 64)
    }

    @Test("rounds of pool, steal out, free cannot go over the limit")
    func roundsStayWithinTheLimit() throws {
        let limit = try TallocContext.new(parent: nil, name: "limit")
        defer { try? limit.free() }
        try limit.setMemoryLimit(64 << 10)
        var kept: [TallocContext] = []
        var refused = false
        for _ in 0..<100 {
            guard let pool = try? TallocContext.pool(parent: limit, capacity: 16 << 10) else { refused = true; break }
            let m = try TallocContext.allocate(parent: pool, byteCount: 16, name: "m")
            try m.steal(to: nil)
            kept.append(m)
            try pool.free()
            #expect(current(limit) <= 64 << 10)
        }
        #expect(refused && kept.count == 3, "\(kept.count) pinned pools under a 64 KiB limit")
        for m in kept { try m.free() }
        #expect(current(limit) == 64)
    }

    @Test("the carrier's free hands the charge to the limit above; the block's free gives it back there")
    func carrierFreedFirst() throws {
        let outer = try TallocContext.new(parent: nil, name: "outer")
        defer { try? outer.free() }
        try outer.setMemoryLimit(1 << 20)
        let inner = try TallocContext.new(parent: outer, name: "inner")
        try inner.setMemoryLimit(1 << 20)
        let pool = try TallocContext.pool(parent: inner, capacity: 4096)
        let m = try TallocContext.allocate(parent: pool, byteCount: 16, name: "m")
        try m.steal(to: nil)
        try pool.free()
        #expect(current(inner) == 64 + block && current(outer) == 64 + 64 + block)
        try inner.free()
        #expect(current(outer) == 64 + block)
        try m.free()
        #expect(current(outer) == 64)
    }

    @Test("the charge moves with the carrier's subtree, and a new limit above counts it")
    func chargeMovesWithTheCarrier() throws {
        let a = try TallocContext.new(parent: nil, name: "a")
        let b = try TallocContext.new(parent: nil, name: "b")
        defer { try? a.free() }
        try a.setMemoryLimit(1 << 20)
        try b.setMemoryLimit(1 << 20)
        let carrier = try TallocContext.new(parent: a, name: "carrier")
        try carrier.setMemoryLimit(1 << 20)
        let pool = try TallocContext.pool(parent: carrier, capacity: 4096)
        let m = try TallocContext.allocate(parent: pool, byteCount: 16, name: "m")
        try m.steal(to: nil)
        try pool.free()
        #expect(current(a) == 64 + 64 + block)
        try carrier.steal(to: b)
        #expect(current(a) == 64 && current(b) == 64 + 64 + block)
        let top = try TallocContext.new(parent: nil, name: "top")
        defer { try? top.free() }  // with b
        try b.steal(to: top)
        try top.setMemoryLimit(1 << 20)
        #expect(current(top) == 64 + 64 + 64 + block)
        try m.free()
        #expect(current(top) == 3 * 64 && current(b) == 2 * 64 && current(carrier) == 64)
    }

    @Test("a carrier that moves (realloc) takes its pinned pools along (found by the differential fuzzer)")
    func carrierMoves() throws {
        var carrier = try TallocContext.allocate(parent: nil, byteCount: 16, name: "carrier")
        try carrier.setMemoryLimit(1 << 20)
        let pool = try TallocContext.pool(parent: carrier, capacity: 4096)
        let m = try TallocContext.allocate(parent: pool, byteCount: 16, name: "m")
        try m.steal(to: nil)
        try pool.free()
        try carrier.reallocate(byteCount: 100_000)  // a heap realloc this large moves the header
        #expect(current(carrier) == 64 + 100_000 + block)
        try m.free()  // the block goes: its charge leaves the carrier at its new address
        #expect(current(carrier) == 64 + 100_000)
        try carrier.free()
    }
}
