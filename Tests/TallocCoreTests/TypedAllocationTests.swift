// luatalloc — TallocCore tests: typed allocation initialises, and deinitialises what needs it on free;
// a copy of a handle whose chunk moved reads as freed, never as the moved chunk (issue 13)
// SPDX-License-Identifier: MIT

import Testing
@testable import TallocCore

/// Counts its live instances.
private final class Tracked {
    nonisolated(unsafe) static var live = 0
    let id: Int
    init(_ id: Int) { self.id = id; Tracked.live += 1 }
    deinit { Tracked.live -= 1 }
}

private struct Holder {
    var tracked: Tracked
    var n: Int
}

private struct Point: Equatable {
    var x: Double
    var y: Double
}

@Suite("Typed allocation", .serialized)
struct TypedAllocationTests {
    @Test("values of a class type are initialised, and deinitialised when their context (or its parent) is freed")
    func classValuesAreDeinitialised() throws {
        let root = try TallocContext.new(parent: nil, name: "root")
        let before = Tracked.live
        let one = try TallocContext.allocate(parent: root, repeating: Tracked(1), count: 1)
        #expect(Tracked.live == before + 1)  // the argument's instance, now held by the chunk only
        #expect(one.hasDestructor && one.name == "Tracked")
        #expect(one.withMemory(as: Tracked.self) { $0.count == 1 && $0[0].id == 1 })
        try one.free()
        #expect(Tracked.live == before)

        let many = try TallocContext.allocate(parent: root, repeating: Holder(tracked: Tracked(7), n: 3), count: 5)
        #expect(many.size == 5 * MemoryLayout<Holder>.stride && many.hasDestructor)
        many.withMemory(as: Holder.self) { values in
            for i in values.indices { values[i].tracked = Tracked(10 + i) }
        }
        #expect(Tracked.live == before + 5)
        try root.free()  // with the parent
        #expect(Tracked.live == before)
    }

    @Test("a trivial type gets no destructor: the values are initialised, nothing runs at free")
    func trivialValuesCostNothing() throws {
        let root = try TallocContext.new(parent: nil, name: "root")
        defer { try? root.free() }
        let points = try TallocContext.allocate(parent: root, repeating: Point(x: 1, y: 2), count: 100)
        #expect(!points.hasDestructor && !points.hasSideRecord)
        #expect(points.withMemory(as: Point.self) { $0.allSatisfy { $0 == Point(x: 1, y: 2) } })
        #expect(points.arrayLength(of: Point.self) == 100 && points.name == "Point")
        let ints = try TallocContext.allocate(parent: root, repeating: 42, count: 3)
        #expect(!ints.hasSideRecord && ints.withMemory(as: Int.self) { Array($0) } == [42, 42, 42])
    }

    @Test("a typed allocation over a memory limit fails cleanly, with nothing initialised left behind")
    func typedAllocationOverALimit() throws {
        let root = try TallocContext.new(parent: nil, name: "root")
        defer { try? root.free() }
        try root.setMemoryLimit(1024)
        let before = Tracked.live
        #expect(throws: TallocError.outOfMemory) { try TallocContext.allocate(parent: root, repeating: Tracked(0), count: 200) }
        #expect(Tracked.live == before)
        #expect(throws: TallocError.sizeTooLarge) { try TallocContext.allocate(parent: root, repeating: 0, count: Int.max / 4) }
    }

    // MARK: Stale handles

    @Test("a copy of a handle whose heap chunk realloc() moved reads as freed, not as the chunk")
    func staleCopyAfterAHeapMove() throws {
        let root = try TallocContext.new(parent: nil, name: "root")
        defer { try? root.free() }
        var s = try TallocContext.strdup(parent: root, "start")
        let old = s
        _ = try TallocContext.allocate(parent: root, byteCount: 16, name: "neighbour")  // no growth in place
        try s.strdupAppend(String(repeating: "x", count: 4000))
        #expect(s != old, "the string did not move")
        #expect(s.isValid && s.stringValue.hasPrefix("startxxx"))
        #expect(!old.isValid)
        #expect(throws: TallocError.accessAfterFree) { try old.validate() }
        var r = try TallocContext.allocate(parent: root, byteCount: 32, name: "r")
        let oldR = r
        _ = try TallocContext.allocate(parent: root, byteCount: 16, name: "neighbour")
        try r.reallocate(byteCount: 5000)
        #expect(r != oldR && !oldR.isValid && r.isValid)
        var z = try TallocContext.allocate(parent: root, byteCount: 32, name: "z")
        let oldZ = z
        _ = try TallocContext.allocate(parent: root, byteCount: 16, name: "neighbour")
        try z.resize(byteCount: 6000, zeroFill: true)
        #expect(z != oldZ && !oldZ.isValid && z.isValid && z.name == "z")
    }

    @Test("a copy of a handle whose pool member moved reads as freed, on every moving path")
    func staleCopyAfterAPoolMove() throws {
        let pool = try TallocContext.pool(parent: nil, capacity: 4096)
        defer { try? pool.free() }
        // out of the pool to the heap
        var a = try TallocContext.strdup(parent: pool, "a")
        _ = try TallocContext.allocate(parent: pool, byteCount: 8, name: "after a")
        let oldA = a
        try a.strdupAppend(String(repeating: "y", count: 8000))
        #expect(a != oldA && !a.isPoolMemory && !oldA.isValid)
        // within the pool
        var b = try TallocContext.allocate(parent: pool, byteCount: 16, name: "b")
        _ = try TallocContext.allocate(parent: pool, byteCount: 8, name: "after b")
        let oldB = b
        try b.reallocate(byteCount: 200)
        #expect(b != oldB && b.isPoolMemory && !oldB.isValid)
        // the only member, moved to the pool's start
        let solo = try TallocContext.pool(parent: nil, capacity: 4096)
        defer { try? solo.free() }
        let first = try TallocContext.allocate(parent: solo, byteCount: 1000, name: "first")
        var only = try TallocContext.allocate(parent: solo, byteCount: 16, name: "only")
        try first.free()
        let oldOnly = only
        try only.reallocate(byteCount: 64)
        #expect(only != oldOnly && only.isValid && !oldOnly.isValid)
    }
}
