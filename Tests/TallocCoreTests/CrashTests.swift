// luatalloc — TallocCore tests
// SPDX-License-Identifier: MIT
//
// Misuse traps in the core, as talloc aborts: each runs in a child process (exit tests). Their throwing
// twins are checked in the same place.

import Testing
@testable import TallocCore

@Suite struct CrashTests {
    @Test func usingAFreedPoolMemberTraps() async throws {
        await #expect(processExitsWith: .failure) {
            let pool = try TallocContext.pool(parent: nil, capacity: 1024)
            let a = try TallocContext.allocate(parent: pool, byteCount: 8, name: "a")
            _ = try TallocContext.allocate(parent: pool, byteCount: 8, name: "b")
            try a.free()
            _ = a.name  // "Bad talloc magic value - access after free"
        }
    }

    @Test func freeingAFreedPoolMemberTwiceTraps() async throws {
        await #expect(processExitsWith: .failure) {
            let pool = try TallocContext.pool(parent: nil, capacity: 1024)
            let a = try TallocContext.allocate(parent: pool, byteCount: 8, name: "a")
            _ = try TallocContext.allocate(parent: pool, byteCount: 8, name: "b")
            try a.free()
            try a.free()
        }
    }

    @Test func aForeignPointerTraps() async throws {
        await #expect(processExitsWith: .failure) {
            let raw = UnsafeMutableRawPointer.allocate(byteCount: 256, alignment: 16)
            raw.initializeMemory(as: UInt8.self, repeating: 0, count: 256)
            _ = TallocContext(unsafePointer: raw + 128).size  // "Bad talloc magic value - unknown value"
        }
    }

    @Test func typeMismatchAborts() async throws {
        await #expect(processExitsWith: .failure) {
            let c = try TallocContext.new(parent: nil, name: "struct foo")
            c.getTypeAbort("int")
        }
    }

    @Test func anAbortHandlerThatReturnsStillTraps() async throws {
        await #expect(processExitsWith: .failure) {
            Talloc.setAbortHandler { _ in }
            let c = try TallocContext.new(parent: nil, name: "struct foo")
            c.getTypeAbort("int")
        }
    }

    @Test func theThrowingTwinsDoNotTrap() throws {
        try handlerLock.withLock { try throwingTwinsDoNotTrap() }
    }

    func throwingTwinsDoNotTrap() throws {
        nonisolated(unsafe) var messages: [String] = []
        Talloc.setAbortHandler { messages.append($0) }
        defer { Talloc.setAbortHandler(nil) }
        let pool = try TallocContext.pool(parent: nil, capacity: 1024)
        defer { try? pool.free() }
        let a = try TallocContext.allocate(parent: pool, byteCount: 8, name: "a")
        _ = try TallocContext.allocate(parent: pool, byteCount: 8, name: "b")
        try a.free()
        #expect(throws: TallocError.accessAfterFree) { try a.validate() }
        #expect(!a.isValid)
        let c = try TallocContext.new(parent: pool, name: "struct foo")
        #expect(throws: TallocError.typeMismatch(name: "struct foo", expected: "int")) { try c.expectName("int") }
        #expect(messages.isEmpty)
    }
}
