// luatalloc — TallocCore tests (issue 13): names made at run time (`String`s), named pools, and
// asprintf with Swift strings — against the real libtalloc where talloc has the same call.
// SPDX-License-Identifier: MIT

import CTalloc
import Glibc
import Testing
@testable import TallocCore

@Suite struct SwiftStringNameTests {
    /// The same tree in both libraries: a root, four children named at run time ("worker 0"...), and a pool
    /// with a name made at run time holding two members.
    @Test("a run-time name is the chunk's own, as talloc_named_const's: same report and blocks as libtalloc")
    func runTimeNamesMatchNamedConst() throws {
        let root = try TallocContext.new(parent: nil, name: "root")
        defer { try? root.free() }
        for i in 0..<4 { _ = try TallocContext.new(parent: root, name: "worker \(i)") }
        let pool = try TallocContext.pool(parent: root, capacity: 1024, name: "pool \(7 * 6)")
        _ = try TallocContext.allocate(parent: pool, byteCount: 10, name: "member \(1)")
        _ = try TallocContext.allocate(parent: pool, byteCount: 20, name: "member \(2)")

        // libtalloc: talloc_named_const with C strings kept alive for the tree's life
        var names: [UnsafeMutablePointer<CChar>] = []
        defer { names.forEach { Glibc.free($0) } }
        func keep(_ s: String) -> UnsafeMutablePointer<CChar> { let p = strdup(s)!; names.append(p); return p }
        let croot = ctalloc_named_const(nil, 0, keep("root"))!
        defer { _ = ctalloc_free(croot) }
        for i in 0..<4 { _ = ctalloc_named_const(croot, 0, keep("worker \(i)")) }
        let cpool = ctalloc_pool(croot, 1024)!
        talloc_set_name_const(cpool, keep("pool 42"))
        _ = ctalloc_named_const(cpool, 10, keep("member 1"))
        _ = ctalloc_named_const(cpool, 20, keep("member 2"))

        #expect(root.totalBlocks == Int(talloc_total_blocks(croot)))
        #expect(root.totalSize == Int(talloc_total_size(croot)))
        let c = ctalloc_report_full_string(croot)!
        defer { ctalloc_free_cstring(c) }
        #expect(maskAddresses(root.reportFull()) == maskAddresses(String(cString: c)))
        #expect(pool.name == "pool 42" && pool.isPool)
        #expect(root.children.map(\.name).contains("worker 3"))
    }

    @Test("a string literal still picks the constant name; named() and setName() keep talloc's .name child")
    func overloads() throws {
        let a = try TallocContext.new(parent: nil, name: "constant")
        defer { try? a.free() }
        #expect(a.ownedNameByteCount == 0)  // stored, not copied
        let n = 3
        let b = try TallocContext.new(parent: a, name: "copy \(n)")
        #expect(b.ownedNameByteCount == "copy 3".utf8.count + 1)
        #expect(a.totalBlocks == 2)  // no ".name" child
        let c = try TallocContext.named(parent: a, byteCount: 0, name: "named \(n)")
        #expect(c.totalBlocks == 2 && c.name == "named 3")  // talloc_named: a ".name" child, as talloc
        let p = try TallocContext.pool(parent: a, capacity: 64, name: "constant pool")
        #expect(p.name == "constant pool" && p.ownedNameByteCount == 0)
    }

    @Test("asprintf takes Swift strings for %s, without Foundation's CVarArg")
    func asprintfWithStrings() throws {
        let root = try TallocContext.new(parent: nil, name: "root")
        defer { try? root.free() }
        let who = "world", count = 42
        let tail: Substring = "xyz".dropFirst()
        let s = try TallocContext.asprintf(parent: root, "hello %s: %d %s %.1f", who as any TallocFormatArgument, count, tail, 2.5)
        #expect(s.stringValue == "hello world: 42 yz 2.5")
        #expect(s.name == "hello world: 42 yz 2.5")  // named by its contents, as talloc's
        var t = try TallocContext.asprintf(parent: root, "%s", "a" as any TallocFormatArgument)
        try t.asprintfAppend("%s-%d", "b" as any TallocFormatArgument, 1)
        try t.asprintfAppendBuffer("%s", "c" as any TallocFormatArgument)
        #expect(t.stringValue == "ab-1c" && t.name == "ab-1c")
        // the same text as libtalloc's talloc_asprintf
        let c = ctalloc_asprintf(nil, "hello world: 42 yz 2.5")!
        defer { _ = ctalloc_free(c) }
        #expect(String(cString: c) == s.stringValue && Int(talloc_get_size(c)) == s.size)
        // a long string (longer than the first buffer)
        let long = String(repeating: "x", count: 5000)
        let l = try TallocContext.asprintf(parent: root, "<%s>", long as any TallocFormatArgument)
        #expect(l.size == 5003)
    }
}
