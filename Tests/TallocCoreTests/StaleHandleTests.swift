// luatalloc — TallocCore tests: a copy of a handle whose chunk moved reads as freed, never as the moved
// chunk (issue 13)
// SPDX-License-Identifier: MIT

import Testing
@testable import TallocCore

/// A stale copy is detected by reading the header it names, which for a heap chunk is memory malloc got
/// back: AddressSanitizer rightly calls that a use after free, so this suite is not in CI's ASan run.
@Suite("Stale handles")
struct StaleHandleTests {
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
