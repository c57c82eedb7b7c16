// luatalloc — TallocCore tests
// SPDX-License-Identifier: MIT
//
// Sizes come from untrusted scripts: Int.max, negative numbers, products that overflow. Every public
// entry point answers with `.sizeTooLarge` (talloc's MAX_TALLOC_SIZE is 256 MiB), never a trap, never
// `.outOfMemory` for arithmetic, and never a half-made chunk.

import Testing
@testable import TallocCore

@Suite struct SizeTests {
    @Test func pooledObjectSizesThatOverflowOrReach256MiB() throws {
        let root = try TallocContext.new(parent: nil, name: "root")
        defer { try? root.free() }
        let cases: [(byteCount: Int, subobjects: Int, subobjectBytes: Int)] = [
            (0, Int.max, 0), (0, Int.max / 2, 0), (0, Int.max / 95, 0), (0, 1, Int.max), (Int.max, 1, 1),
            (Int.max - 10, 0, 20), (1, 0, Talloc.maximumSize), (0, 0, Talloc.maximumSize - 95),
            (Talloc.maximumSize, 0, 0), (0, 3_000_000, 0), (-1, 1, 1), (1, -1, 1), (1, 1, -1), (Int.min, 0, 0),
        ]
        for c in cases {
            #expect(throws: TallocError.sizeTooLarge, "\(c)") {
                try TallocContext.pooledObject(parent: root, byteCount: c.byteCount, name: "p", subobjects: c.subobjects,
                                               subobjectBytes: c.subobjectBytes)
            }
        }
        #expect(root.totalBlocks == 1, "nothing was made")
        // Just below the limit, it is made (talloc's arithmetic: size + bytes + 95 * (count + 1)).
        let p = try TallocContext.pooledObject(parent: root, byteCount: 0, name: "p", subobjects: 0,
                                               subobjectBytes: Talloc.maximumSize - 96)
        #expect(p.poolInfo?.capacity == Talloc.maximumSize - 1)
        try p.free()
    }

    @Test func theOtherEntryPointsRefuseHugeAndNegativeSizes() throws {
        let root = try TallocContext.new(parent: nil, name: "root")
        defer { try? root.free() }
        for n in [Int.max, Int.min, -1, Talloc.maximumSize, Int.max - 63] {
            #expect(throws: TallocError.sizeTooLarge) { try TallocContext.allocate(parent: root, byteCount: n, name: "x") }
            #expect(throws: TallocError.sizeTooLarge) { try TallocContext.allocateZeroed(parent: root, byteCount: n) }
            #expect(throws: TallocError.sizeTooLarge) { try TallocContext.allocateUnnamed(parent: root, byteCount: n) }
            #expect(throws: TallocError.sizeTooLarge) { try TallocContext.named(parent: root, byteCount: n, name: "x") }
            #expect(throws: TallocError.sizeTooLarge) { try TallocContext.pool(parent: root, capacity: n) }
            #expect(throws: TallocError.sizeTooLarge) { try TallocContext.allocate(parent: root, of: UInt64.self, count: n) }
            #expect(throws: TallocError.sizeTooLarge) { try TallocContext.reallocate(nil, parent: root, byteCount: n, name: .none) }
            var c = try TallocContext.allocate(parent: root, byteCount: 8, name: "c")
            #expect(throws: TallocError.sizeTooLarge) { try c.reallocate(byteCount: n) }
            #expect(throws: TallocError.sizeTooLarge) { try c.resize(byteCount: n) }
            #expect(throws: TallocError.sizeTooLarge) { try TallocContext.reallocate(c, parent: nil, byteCount: n, name: .keep) }
            #expect(c.size == 8)
            try c.free()
        }
        #expect(throws: TallocError.sizeTooLarge) { try TallocContext.allocate(parent: root, of: UInt64.self, count: Int.max / 4) }
        #expect(throws: TallocError.sizeTooLarge) { try root.setMemoryLimit(-1) }
        #expect(root.totalBlocks == 1)
        let s = try TallocContext.strndup(parent: root, "abc", Int.max)
        #expect(s.stringValue == "abc")
        var t = try TallocContext.strdup(parent: root, "x")
        try t.strndupAppend("yz", Int.max)
        #expect(t.stringValue == "xyz")
    }

    @Test func externalSizesNeverWrap() throws {
        let root = try TallocContext.new(parent: nil, name: "root")
        defer { try? root.free() }
        let ext = try TallocContext.newExternal(parent: root, name: "ext")
        #expect(!ext.unsafeAdjustExternalSize(by: -1), "below 0 is refused")
        #expect(ext.size == 0)
        #expect(ext.unsafeAdjustExternalSize(by: 100))
        #expect(!ext.unsafeAdjustExternalSize(by: Int.max))
        #expect(!ext.unsafeAdjustExternalSize(by: Int.min))
        #expect(!ext.unsafeAdjustExternalSize(by: -101))
        #expect(!ext.unsafeAdjustExternalSize(by: Int(UInt32.max)))
        #expect(ext.size == 100)
        #expect(ext.unsafeAdjustExternalSize(by: -100) && ext.size == 0)
        // The same under a memory limit: a refusal changes neither the size nor the limit's count.
        try root.setMemoryLimit(1_000_000)
        let before = try #require(root.memoryLimit).current
        #expect(!ext.unsafeAdjustExternalSize(by: -1))
        #expect(!ext.unsafeAdjustExternalSize(by: Int.min))
        #expect(!ext.unsafeAdjustExternalSize(by: Int.max))
        #expect(ext.unsafeAdjustExternalSize(by: 500) && root.memoryLimit?.current == before + 500)
        #expect(!ext.unsafeAdjustExternalSize(by: -501))
        #expect(ext.size == 500 && root.memoryLimit?.current == before + 500)
        #expect(ext.unsafeAdjustExternalSize(by: -500) && root.memoryLimit?.current == before)
    }
}
