// luatalloc — TallocCore tests: typed allocation initialises, and deinitialises what needs it on free
// (issue 13)
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

}
