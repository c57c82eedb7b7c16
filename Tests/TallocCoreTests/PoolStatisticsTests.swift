// luatalloc — TallocCore tests
// SPDX-License-Identifier: MIT
//
// Pool statistics and advice (issue 15), against values computed by hand: a member takes
// ALIGN16(64 + size) bytes of its pool ("span"), a pool's carved space starts 64 bytes after its chunk
// header, so `used` = end - 64.

import Testing
@testable import TallocCore

@Suite struct PoolStatisticsTests {
    func stats(_ c: TallocContext) throws -> TallocPoolStatistics { try #require(c.poolStatistics) }

    @Test("allocations, a spill, peak, a hole, reclaims and a reset, counted by hand")
    func countsByHand() throws {
        let pool = try TallocContext.pool(parent: nil, capacity: 1024, statistics: true)
        defer { try? pool.free() }
        let a = try TallocContext.allocate(parent: pool, byteCount: 100, name: "a")  // span 176: [64, 240)
        let b = try TallocContext.allocate(parent: pool, byteCount: 200, name: "b")  // span 272: [240, 512)
        let c = try TallocContext.allocate(parent: b, byteCount: 300, name: "c")     // span 368: [512, 880)
        let d = try TallocContext.allocate(parent: pool, byteCount: 200, name: "d")  // 272 > 208 left: heap
        let e = try TallocContext.allocate(parent: pool, byteCount: 100, name: "e")  // 176 fits: [880, 1056)
        #expect(a.isPoolMemory && b.isPoolMemory && c.isPoolMemory && !d.isPoolMemory && e.isPoolMemory)
        var s = try stats(pool)
        #expect(s.capacity == 1024 && s.used == 992 && s.peakUsed == 992)
        #expect(s.allocations == 4 && s.allocatedBytes == 176 + 272 + 368 + 176)
        #expect(s.spills == 1 && s.spilledBytes == 272 && s.largestSpill == 272)
        #expect(s.members == 4 && s.liveBytes == 992 && s.wastedBytes == 0)
        // a pool that never spills puts d at 880 and e at 1152: it needs 1328 - 64 bytes
        #expect(s.neededCapacity == 1264)

        try c.free()      // not the last carved: a hole of 368
        s = try stats(pool)
        #expect(s.holes == 1 && s.holeBytes == 368 && s.wastedBytes == 368 && s.liveBytes == 624)
        try e.free()      // the last carved: taken back
        try d.free()      // the spill
        s = try stats(pool)
        #expect(s.reclaims == 1 && s.used == 816 && s.peakUsed == 992)
        try b.free()      // [240, 512) ends where c's hole starts: a hole (no coalescing)
        try a.free()      // the last member: the pool resets
        s = try stats(pool)
        #expect(s.holes == 2 && s.holeBytes == 368 + 272)
        #expect(s.resets == 1 && s.used == 0 && s.members == 0 && s.liveBytes == 0 && s.wastedBytes == 0)
        #expect(s.neededCapacity == 1264, "the advice keeps the peak of the whole run")
        #expect(s.allocations == 4 && s.spills == 1 && s.reclaims == 1)
    }

    /// The same run at any capacity: returns the pool's statistics before it is freed.
    func sizingRun(capacity: Int) throws -> TallocPoolStatistics {
        let pool = try TallocContext.pool(parent: nil, capacity: capacity, statistics: true)
        defer { try? pool.free() }
        _ = try TallocContext.allocate(parent: pool, byteCount: 100, name: "a")
        let b = try TallocContext.allocate(parent: pool, byteCount: 200, name: "b")
        _ = try TallocContext.allocate(parent: b, byteCount: 300, name: "c")
        let d = try TallocContext.allocate(parent: pool, byteCount: 200, name: "d")
        let e = try TallocContext.allocate(parent: pool, byteCount: 100, name: "e")
        try e.free()
        try d.free()
        return try stats(pool)
    }

    @Test("the advice, applied, serves every allocation; 16 bytes less does not")
    func adviceRemovesTheSpills() throws {
        let first = try sizingRun(capacity: 1024)
        #expect(first.spills == 1 && first.neededCapacity == 1264)
        let advice = TallocPoolAdvice(first)
        #expect(advice.advisedCapacity == 1264 && advice.change == 240 && advice.mallocsSaved == 1)
        #expect(advice.advisedBlockBytes == 16 + 64 + 1264)
        #expect(advice.text.contains("A capacity of 1264 would have served every allocation"), "\(advice.text)")
        let rerun = try sizingRun(capacity: advice.advisedCapacity)
        #expect(rerun.spills == 0 && rerun.allocations == 5 && rerun.peakUsed == 1264)
        #expect(rerun.neededCapacity == 1264, "no spill: the advice is the peak")
        #expect(TallocPoolAdvice(rerun).text.contains("was full at the peak"))
        #expect(try sizingRun(capacity: 1248).spills == 1)
    }

    @Test("a pool bigger than needed is told by how much")
    func adviceToShrink() throws {
        let pool = try TallocContext.pool(parent: nil, capacity: 4096, statistics: true)
        defer { try? pool.free() }
        for _ in 0..<3 { _ = try TallocContext.allocate(parent: pool, byteCount: 100, name: "x") }
        let s = try stats(pool)
        #expect(s.peakUsed == 528 && s.neededCapacity == 528 && s.spills == 0)
        let advice = try #require(pool.poolAdvice)
        #expect(advice.change == 528 - 4096)
        #expect(advice.text == "capacity 4096 served all 3 allocations; at the peak 528 bytes were used (12%): "
                + "a capacity of 528 would have served them too, 3568 bytes less")
    }

    @Test("reallocs: in place, shrink leaving a hole, a move within the pool, a move to the heap")
    func reallocs() throws {
        let pool = try TallocContext.pool(parent: nil, capacity: 1024, statistics: true)
        defer { try? pool.free() }
        var a = try TallocContext.allocate(parent: pool, byteCount: 100, name: "a")  // [64, 240)
        var b = try TallocContext.allocate(parent: pool, byteCount: 10, name: "b")   // [240, 320)
        try b.reallocate(byteCount: 100)   // the last: grows in place to [240, 416)
        try a.reallocate(byteCount: 10)    // shrinks in place: [144, 240) is a hole
        var s = try stats(pool)
        #expect(s.reallocs == 2 && s.holes == 1 && s.holeBytes == 96 && s.liveBytes == 80 + 176 && s.used == 352)
        try a.reallocate(byteCount: 500)   // not the last: carved anew at [416, 992); [64, 144) a hole
        #expect(a.isPoolMemory)
        s = try stats(pool)
        #expect(s.reallocs == 3 && s.holes == 2 && s.holeBytes == 176 && s.used == 928 && s.peakUsed == 928)
        #expect(s.allocations == 2, "a move within the pool is not an allocation")
        try b.reallocate(byteCount: 900)   // span 976, 96 bytes left: the heap
        #expect(!b.isPoolMemory)
        s = try stats(pool)
        #expect(s.spills == 1 && s.spilledBytes == 976 && s.holes == 3 && s.holeBytes == 352)
        // a pool that never spills moves b to its end, 992: it needs 992 + 976 - 64 bytes
        #expect(s.neededCapacity == 1904)
        try b.reallocate(byteCount: 950)   // the spill grows on the heap; in the unbounded pool it is last
        #expect(try stats(pool).neededCapacity == 992 + _span(950) - 64)
        try b.free()
        try a.free()
        s = try stats(pool)
        #expect(s.members == 0 && s.resets == 1 && s.reallocs == 5)
    }

    @Test("a member stolen out, then the pool freed: the recorder names what pins it")
    func pinning() throws {
        let recorder = TallocPoolRecorder()
        var pins: [TallocPoolRecorder.Pin] = []
        recorder.onPinned = { pins.append($0) }
        let outside = try TallocContext.new(parent: nil, name: "outside")
        defer { try? outside.free() }
        let pool = try TallocContext.pool(parent: nil, capacity: 4096, statistics: true, recorder: recorder, site: "here:1")
        let keep = try TallocContext.strdup(parent: pool, "data we want to keep")
        _ = try TallocContext.strdup(parent: pool, "scratch")
        try keep.steal(to: outside)
        #expect(try stats(pool).stolen == 1)
        try pool.free()
        #expect(pins.count == 1)
        let pin = try #require(pins.first)
        #expect(pin.site == "here:1" && pin.serial == 1 && pin.capacity == 4096 && pin.pinnedBytes == 16 + 64 + 4096)
        #expect(pin.memberCount == 1 && pin.members == [.init(name: "data we want to keep", size: 21, parentName: "outside")])
        let now = try stats(keep)
        #expect(now.isFreed && now.pinningMembers == 1 && now.pinnedBytes == 4176)
        #expect(keep.livePoolMembers() == [keep])
        let site = try #require(recorder.sites.first)
        #expect(recorder.sites.count == 1 && site.pools == 1 && site.pinned == 1 && site.stolen == 1 && site.allocations == 2)
        try keep.free()
        #expect(recorder.poolCount == 1)
    }

    @Test("what a recorder keeps is bounded: pins over all sites, members per pin, names cut at 256 bytes")
    func recorderIsBounded() throws {
        let recorder = TallocPoolRecorder()
        let outside = try TallocContext.new(parent: nil, name: "outside")
        defer { try? outside.free() }
        let sites = TallocPoolRecorder.pinTotalLimit / TallocPoolRecorder.Site.pinLimit + 10
        for i in 0..<sites {
            for _ in 0..<TallocPoolRecorder.Site.pinLimit + 1 {
                let pool = try TallocContext.pool(parent: nil, capacity: 16384, statistics: true, recorder: recorder, site: "s:\(i)")
                for _ in 0..<20 {
                    let m = try TallocContext.strdup(parent: pool, String(repeating: "m", count: 300))
                    try m.steal(to: outside)
                }
                try pool.free()
            }
        }
        let kept = recorder.sites.reduce(0) { $0 + $1.pins.count }
        let pinned = recorder.sites.reduce(0) { $0 + $1.pinned }
        #expect(kept == TallocPoolRecorder.pinTotalLimit && pinned == sites * (TallocPoolRecorder.Site.pinLimit + 1))
        let pin = try #require(recorder.sites.first?.pins.first)
        #expect(pin.memberCount == 20 && pin.members.count == TallocPoolRecorder.Pin.memberLimit)
        #expect(pin.members.allSatisfy { $0.name == String(repeating: "m", count: 256) + "..." })
    }

    @Test("pools freed while closing are alive at exit, not pinned; no callback")
    func closing() throws {
        let recorder = TallocPoolRecorder()
        var calls = 0
        recorder.onPinned = { _ in calls += 1 }
        let outside = try TallocContext.new(parent: nil, name: "outside")
        let pool = try TallocContext.pool(parent: nil, capacity: 1024, statistics: true, recorder: recorder, site: "s")
        let m = try TallocContext.allocate(parent: pool, byteCount: 10, name: "m")
        try m.steal(to: outside)
        recorder.isClosing = true
        try pool.free()
        try outside.free()
        #expect(calls == 0)
        let site = try #require(recorder.sites.first)
        #expect(site.pinned == 0 && site.aliveAtExit == 1 && site.pins.first?.atExit == true)
    }

    @Test("statistics need an empty live pool; pools without them carry no flag")
    func enabling() throws {
        let plain = try TallocContext.pool(parent: nil, capacity: 256)
        defer { try? plain.free() }
        let m = try TallocContext.allocate(parent: plain, byteCount: 8, name: "m")
        #expect(m.chunk.pointee.flags & _Flag.poolStats == 0 && plain.poolStatistics == nil)
        #expect(try plain.enablePoolStatistics() == false, "it has a member already")
        let notAPool = try TallocContext.new(parent: nil, name: "x")
        defer { try? notAPool.free() }
        #expect(try notAPool.enablePoolStatistics() == false && notAPool.poolStatistics == nil)
        try m.free()
        #expect(try plain.enablePoolStatistics() && plain.keepsPoolStatistics)
        #expect(try plain.enablePoolStatistics(), "again: it does already")
        let n = try TallocContext.allocate(parent: plain, byteCount: 8, name: "n")
        #expect(n.chunk.pointee.flags & _Flag.poolStats != 0 && plain.poolStatistics?.allocations == 1)
    }

    @Test("pooled objects and nested pools are counted in their pool's terms")
    func pooledAndNested() throws {
        let object = try TallocContext.pooledObject(parent: nil, byteCount: 40, name: "obj", subobjects: 2, subobjectBytes: 20)
        defer { try? object.free() }
        #expect(try object.enablePoolStatistics())
        _ = try TallocContext.allocate(parent: object, byteCount: 10, name: "s1")
        var s = try stats(object)
        // capacity 40 + 20 + 95 * 3; the object's own body takes 48 bytes from the start
        #expect(s.capacity == 345 && s.used == 48 + 80 && s.liveBytes == 80 && s.neededCapacity == 128)
        let outer = try TallocContext.pool(parent: nil, capacity: 1024, statistics: true)
        defer { try? outer.free() }
        let inner = try TallocContext.pool(parent: outer, capacity: 100, statistics: true)
        s = try stats(outer)
        #expect(inner.isPoolMemory && s.allocations == 1 && s.allocatedBytes == 192 && s.liveBytes == 192)
        _ = try TallocContext.allocate(parent: inner, byteCount: 30, name: "in")  // span 96 of 100
        #expect(try stats(inner).allocations == 1 && stats(inner).used == 96)
        #expect(try stats(outer).allocations == 1, "carved from the inner pool, not the outer")
        try inner.free()
        s = try stats(outer)
        #expect(s.members == 0 && s.resets == 1 && s.liveBytes == 0)
        _ = object  // keeps the pooled object alive to the end
    }

    /// A reproducible run of allocations, frees, reallocs and steals against one pool.
    func randomRun(seed: UInt64, capacity: Int) throws -> TallocPoolStatistics {
        var rng = SplitMix(seed)
        let outside = try TallocContext.new(parent: nil, name: "outside")
        defer { try? outside.free() }
        let pool = try TallocContext.pool(parent: nil, capacity: capacity, statistics: true)
        defer { try? pool.free() }
        var live: [TallocContext] = []
        for _ in 0..<300 {
            let r = rng.next() % 100
            if r < 50 || live.isEmpty {
                // any parent: a member, a spill (its children would be members in a pool big enough) or the pool
                let parent = live.isEmpty || rng.next() % 3 == 0 ? pool : live[Int(rng.next() % UInt64(live.count))]
                live.append(try TallocContext.allocate(parent: parent, byteCount: Int(rng.next() % 300), name: "x"))
            } else if r < 80 {
                let i = Int(rng.next() % UInt64(live.count))
                let c = live.remove(at: i)
                let gone = [c] + live.filter { $0.isParent(c) }
                try c.free()
                live.removeAll { x in gone.contains(x) }
            } else if r < 95 {
                let i = Int(rng.next() % UInt64(live.count))
                var c = live[i]
                try c.reallocate(byteCount: 1 + Int(rng.next() % 400))
                live[i] = c
            } else {
                let i = Int(rng.next() % UInt64(live.count))
                let c = live.remove(at: i)
                live.removeAll { $0.isParent(c) }
                try c.steal(to: outside)
            }
        }
        return try stats(pool)
    }

    @Test("over random runs, the advice applied never spills", arguments: Array(1...40) as [UInt64])
    func adviceIsSound(seed: UInt64) throws {
        for capacity in [512, 2048] {
            let first = try randomRun(seed: seed, capacity: capacity)
            let again = try randomRun(seed: seed, capacity: first.neededCapacity)
            #expect(again.spills == 0, "seed \(seed), capacity \(capacity): \(first)")
            #expect(again.peakUsed <= first.neededCapacity)
            if first.spills == 0 { #expect(first.neededCapacity == first.peakUsed) }
        }
    }
}

/// A small, seedable generator (the tests' runs must be the same at every capacity).
struct SplitMix {
    var state: UInt64
    init(_ seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
