// luatalloc — TallocCore tests
// SPDX-License-Identifier: MIT
//
// The invariant checker itself: a sound tree passes, and each kind of corruption is found. The trees are
// corrupted by hand through the internal headers, checked, and repaired before they are freed. Built with
// -DTALLOC_INTERNAL_CHECKS, the next public mutation after a corruption traps (an exit test).

import Testing
@testable import TallocCore

@Suite struct InvariantTests {
    /// A tree with a bit of everything: a pool with a nested pool, a pooled object, a hole from a shrink, a
    /// member stolen out of a pool that was then freed (pinned), a memory limit, references, a destructor,
    /// an owned name copy.
    struct Fixture {
        let root: TallocContext
        let pool: TallocContext
        let nested: TallocContext
        let limited: TallocContext
        let a: TallocContext, b: TallocContext, c: TallocContext
        let referenced: TallocContext
        let stolen: TallocContext

        init() throws {
            root = try TallocContext.new(parent: nil, name: "root")
            pool = try TallocContext.pool(parent: root, capacity: 4096)
            pool.setNameConst("pool")
            a = try TallocContext.allocate(parent: pool, byteCount: 40, name: "a")
            b = try TallocContext.allocate(parent: pool, byteCount: 100, name: "b")
            c = try TallocContext.allocate(parent: pool, byteCount: 24, name: "c")
            var shrunk = b
            try shrunk.resize(byteCount: 10)  // not the last chunk: a hole behind it
            nested = try TallocContext.pool(parent: pool, capacity: 512)
            nested.setNameConst("nested")
            _ = try TallocContext.allocate(parent: nested, byteCount: 32, name: "in nested")
            limited = try TallocContext.new(parent: root, name: "limited")
            try limited.setMemoryLimit(1 << 20)
            let object = try TallocContext.pooledObject(parent: limited, byteCount: 48, name: "object",
                                                        subobjects: 2, subobjectBytes: 64)
            _ = try TallocContext.strdup(parent: object, "inside the object")
            referenced = try TallocContext.allocate(parent: limited, byteCount: 8, name: "referenced")
            try referenced.reference(from: root)
            try referenced.reference(from: limited)
            referenced.setDestructor { _ in .allow }
            let copied = referenced
            _ = Array("a copy".utf8).withUnsafeBytes { copied.setNameCopy($0) }
            let doomed = try TallocContext.pool(parent: root, capacity: 256)
            stolen = try TallocContext.allocate(parent: doomed, byteCount: 16, name: "stolen")
            try stolen.steal(to: limited)
            try doomed.free()  // pinned by `stolen`
        }

        var violations: [String] { _Invariants.violations(ofTree: root.chunk) }

        func free() throws { try root.free() }
    }

    /// The violations after `corrupt`, with the tree repaired by `repair` afterwards.
    func violations(_ f: Fixture, corrupt: () -> Void, repair: () -> Void) -> [String] {
        corrupt()
        defer { repair() }
        return f.violations
    }

    @Test func aSoundTreeHasNone() throws {
        let f = try Fixture()
        defer { try? f.free() }
        #expect(f.violations == [])
        #expect(_Invariants.violations(ofPool: f.stolen.chunk.carvingPool) == [], "the pinned pool")
        #expect(f.stolen.poolInfo?.isFreed == true, "the fixture pins a freed pool")
    }

    @Test func aBrokenPrevLinkIsFound() throws {
        let f = try Fixture()
        defer { try? f.free() }
        let x = f.b.chunk
        let saved = x.pointee.prev
        let v = violations(f, corrupt: { x.pointee.prev = nil }, repair: { x.pointee.prev = saved })
        #expect(v.count == 1 && v[0].contains("prev is nil, but it follows 'c'"), "\(v)")
        #expect(f.violations == [])
    }

    @Test func aWrongParentIsFound() throws {
        let f = try Fixture()
        defer { try? f.free() }
        let x = f.c.chunk
        let v = violations(f, corrupt: { x.pointee.parent = f.root.chunk }, repair: { x.pointee.parent = f.pool.chunk })
        #expect(v.contains { $0.contains("parent is 'root'") && $0.contains("in the child list of 'pool'") }, "\(v)")
    }

    @Test func aLoopInAChildListIsFound() throws {
        let f = try Fixture()
        defer { try? f.free() }
        // pool's children, newest first: nested, c, b, a; a's next becomes nested
        let last = f.a.chunk
        #expect(last.pointee.next == nil)
        let v = violations(f, corrupt: { last.pointee.next = f.nested.chunk }, repair: { last.pointee.next = nil })
        #expect(v.contains { $0.contains("reached twice") }, "\(v)")
    }

    @Test func aWrongObjectCountIsFound() throws {
        let f = try Fixture()
        defer { try? f.free() }
        let hdr = f.pool.chunk.poolHeader
        let v = violations(f, corrupt: { hdr.pointee.objectCount += 1 }, repair: { hdr.pointee.objectCount -= 1 })
        #expect(v.count == 1 && v[0].contains("its object count is 6, but it holds 4 live members and itself"), "\(v)")
    }

    @Test func wrongUsedBytesAreFound() throws {
        let f = try Fixture()
        defer { try? f.free() }
        let hdr = f.pool.chunk.poolHeader
        let end = hdr.end
        // `end` moved past the last record, over bytes that hold no record (zeroed: a header with no magic)
        let v = violations(f, corrupt: {
            (UnsafeMutableRawPointer(f.pool.chunk) + end).initializeMemory(as: UInt8.self, repeating: 0, count: 64)
            hdr.pointee.end += 64
        }, repair: { hdr.pointee.end -= 64 })
        #expect(v.contains { $0.contains("no valid record at offset \(end)") }, "\(v)")
        // `end` moved back before the last member: it lies outside the carved space
        let nestedSpan = _span(_poolPrefixSize + 512)
        let w = violations(f, corrupt: { hdr.pointee.end -= UInt32(nestedSpan) }, repair: { hdr.pointee.end += UInt32(nestedSpan) })
        #expect(w.contains { $0.contains("outside its carved space") }, "\(w)")
        #expect(w.contains { $0.contains("holds 3 live members") }, "\(w)")
    }

    @Test func aWrongLimitChargeIsFound() throws {
        let f = try Fixture()
        defer { try? f.free() }
        let e = try #require(f.limited.chunk.pointee.extra)
        let v = violations(f, corrupt: { e.pointee.limitCurrent += 8 }, repair: { e.pointee.limitCurrent -= 8 })
        #expect(v.count == 1 && v[0].contains("its memory limit counts"), "\(v)")
        let x = f.referenced.chunk
        let w = violations(f, corrupt: { x.pointee.flags &= ~_Flag.underLimit }, repair: { x.pointee.flags |= _Flag.underLimit })
        #expect(w.count == 1 && w[0].contains("UNDER_LIMIT is clear"), "\(w)")
    }

    @Test func inconsistentSideRecordsAreFound() throws {
        let f = try Fixture()
        defer { try? f.free() }
        let e = try #require(f.referenced.chunk.pointee.extra)
        let refs = e.pointee.refs
        let v = violations(f, corrupt: { e.pointee.refs = nil }, repair: { e.pointee.refs = refs })
        #expect(v.filter { $0.contains("not in its list of references") }.count == 2, "\(v)")
        let name = f.referenced.chunk.pointee.name
        let w = violations(f, corrupt: { f.referenced.chunk.pointee.name = nil },
                           repair: { f.referenced.chunk.pointee.name = name })
        #expect(w.count == 1 && w[0].contains("owns a name copy that is not its name"), "\(w)")
    }

    @Test func aFreeLeftHalfwayIsFound() throws {
        let f = try Fixture()
        defer { try? f.free() }
        let x = f.c.chunk
        let v = violations(f, corrupt: { x.pointee.flags |= _Flag.loop }, repair: { x.pointee.flags &= ~_Flag.loop })
        #expect(v.count == 1 && v[0].contains("LOOP is set"), "\(v)")
    }

    #if TALLOC_INTERNAL_CHECKS
    @Test func theNextMutationAfterACorruptionTraps() async throws {
        await #expect(processExitsWith: .failure) {
            let pool = try TallocContext.pool(parent: nil, capacity: 1024)
            _ = try TallocContext.allocate(parent: pool, byteCount: 8, name: "a")
            pool.chunk.poolHeader.pointee.objectCount += 1
            _ = try TallocContext.allocate(parent: pool, byteCount: 8, name: "b")  // the check traps here
        }
    }
    #endif
}
