// luatalloc — TallocCore tests
// SPDX-License-Identifier: MIT
//
// Report text (SEMANTICS §4), names (§1.5), strings (§1.2), realloc renaming (§1.1, §7 #13).
// Expected texts are report_example.out.txt, misc.out.txt and realloc_name.out.txt with addresses
// dropped (`addresses: false`) or masked.

import Testing
@testable import TallocCore

func maskAddresses(_ s: String) -> String {
    var out = ""
    var i = s.startIndex
    while i < s.endIndex {
        if s[i...].hasPrefix("0x") {
            out += "0xADDR"
            i = s.index(i, offsetBy: 2)
            while i < s.endIndex, s[i].isHexDigit { i = s.index(after: i) }
        } else {
            out.append(s[i]); i = s.index(after: i)
        }
    }
    return out
}

@Suite struct ReportAndNameTests {
    @Test func theChapterSixExample() throws {
        let ctx = try TallocContext.new(parent: nil, file: "report_example.c", line: 6)
        defer { try? ctx.free() }
        let str = try TallocContext.strdup(parent: ctx, "my string")
        let foo = try TallocContext.allocateZeroed(parent: ctx, byteCount: 8, name: "struct foo")
        _ = try TallocContext.strdup(parent: foo, "I am Foo")
        let str2 = try TallocContext.strdup(parent: foo, "Foo is my parent")
        #expect(maskAddresses(ctx.reportFull()) == """
            full talloc report on 'talloc_new: report_example.c:6' (total     44 bytes in   5 blocks)
                struct foo                     contains     34 bytes in   3 blocks (ref 0) 0xADDR
                    Foo is my parent               contains     17 bytes in   1 blocks (ref 0) 0xADDR
                    I am Foo                       contains      9 bytes in   1 blocks (ref 0) 0xADDR
                my string                      contains     10 bytes in   1 blocks (ref 0) 0xADDR

            """)
        #expect(ctx.report(addresses: false) == """
            talloc report on 'talloc_new: report_example.c:6' (total     44 bytes in   5 blocks)
                struct foo                     contains     34 bytes in   3 blocks (ref 0)
                my string                      contains     10 bytes in   1 blocks (ref 0)

            """)
        #expect(ctx.report(depth: 1, maxDepth: 2, addresses: false) == """
                talloc_new: report_example.c:6 contains     44 bytes in   5 blocks (ref 0)
                    struct foo                     contains     34 bytes in   3 blocks (ref 0)
                    my string                      contains     10 bytes in   1 blocks (ref 0)

            """)
        #expect(foo.report(depth: 0, maxDepth: 0) == "talloc report on 'struct foo' (total     34 bytes in   3 blocks)\n")
        str.setNameConst("a_name_that_is_longer_than_thirty_characters")
        try str.reference(from: foo)
        try str2.setMemoryLimit(4096)
        #expect(ctx.reportFull(addresses: false) == """
            full talloc report on 'talloc_new: report_example.c:6' (total     44 bytes in   6 blocks)
                struct foo                     contains     34 bytes in   4 blocks (ref 0)
                    reference to: a_name_that_is_longer_than_thirty_characters
                    Foo is my parent               is a memlimit context (max_size = 4096 bytes, cur_size = 81 bytes)
                    Foo is my parent               contains     17 bytes in   1 blocks (ref 0)
                    I am Foo                       contains      9 bytes in   1 blocks (ref 0)
                a_name_that_is_longer_than_thirty_characters contains     10 bytes in   1 blocks (ref 1)

            """, "cur_size is 17 + our 64-byte header (talloc: 17 + 96 = 113)")
        #expect(str2.showParents() == "talloc parents of 'Foo is my parent'\n\t'Foo is my parent'\n\t'struct foo'\n\t'talloc_new: report_example.c:6'\n")
        #expect(str2.findParent(byName: "struct foo") == foo)
        #expect(str2.isParent(ctx) && !ctx.isParent(str2))
    }

    @Test func aReferenceFromADescendantReportsAndUnlinkDropsIt() throws {
        let top = try TallocContext.new(parent: nil, name: "top")
        defer { try? top.free() }
        let parent = try TallocContext.strdup(parent: top, "parent")
        let child = try TallocContext.strdup(parent: parent, "child")
        try parent.reference(from: child)
        #expect(top.reportFull(addresses: false) == """
            full talloc report on 'top' (total     13 bytes in   4 blocks)
                parent                         contains     13 bytes in   3 blocks (ref 1)
                    child                          contains      6 bytes in   2 blocks (ref 0)
                        reference to: parent

            """)
        // talloc would make parent a child of its own child here (a detached loop); we drop the
        // reference from inside, and parent, with no other parent, is freed.
        try parent.unlink(from: top)
        #expect(top.totalBlocks == 1)
    }

    @Test func names() throws {
        let root = try TallocContext.new(parent: nil, name: "root")
        defer { try? root.free() }
        let s = try TallocContext.strdup(parent: root, "hello")
        #expect(s.name == "hello" && s.size == 6 && s.isNamedByContents)
        let n = try TallocContext.new(parent: root)
        #expect(n.name.hasPrefix("talloc_new: TallocCoreTests/ReportAndNameTests.swift:"))
        let z = try TallocContext.allocate(parent: root, byteCount: 3)
        #expect(z.name.hasPrefix("TallocCoreTests/ReportAndNameTests.swift:"))
        let arr = try TallocContext.allocate(parent: root, of: Int32.self, count: 4)
        #expect(arr.name == "Int32" && arr.size == 16 && arr.arrayLength(of: Int32.self) == 4)
        let u = try TallocContext.allocateUnnamed(parent: root, byteCount: 1)
        #expect(u.name == "UNNAMED")
        let named = try TallocContext.named(parent: root, byteCount: 5, name: "n5")
        #expect(named.name == "n5" && named.totalBlocks == 2 && named.children.first?.name == ".name")
        named.unsafeSetNameConst(nil)
        #expect(named.name == "UNNAMED")
        #expect(named.checkName("UNNAMED") && !named.checkName("n5"))
        struct Foo {}
        let f = try TallocContext.allocate(parent: root, of: Foo.self)
        #expect(f.isType(Foo.self) && !f.isType(Int.self))
        f.setType(Int.self)
        #expect(f.isType(Int.self))
        #expect(throws: TallocError.typeMismatch(name: "Int", expected: "Foo")) { try f.expectName("Foo") }
        let i = try TallocContext.initContext(name: "init 42")
        #expect(i.name == "init 42" && i.totalBlocks == 2)
        try i.free()
        #expect(throws: TallocError.sizeTooLarge) { try TallocContext.allocate(parent: root, byteCount: 0x1000_0000) }
        #expect(throws: TallocError.sizeTooLarge) { try TallocContext.allocate(parent: root, of: Double.self, count: 0x2000_0000) }
    }

    @Test func stringsAndAppends() throws {
        let root = try TallocContext.new(parent: nil, name: "root")
        defer { try? root.free() }
        var s = try TallocContext.asprintf(parent: root, "abc%d", Int32(4))
        try s.asprintfAppend("%d", Int32(2))
        #expect(s.stringValue == "abc42" && s.name == "abc42")
        try s.asprintfAppend("%s", "")
        #expect(s.stringValue == "abc42", "empty output leaves the string unchanged")
        var t = try TallocContext.strdup(parent: root, "ab")
        try t.strdupAppend("X")
        #expect(t.stringValue == "abX" && t.size == 4)
        var b = try TallocContext.allocateZeroed(parent: root, byteCount: 3, name: "buf")
        b.unsafeMutableBytes[0] = UInt8(ascii: "a")
        try b.strdupAppendBuffer("12345678")
        #expect(b.size == 11 && b.unsafeMutableBytes[2] == UInt8(ascii: "1"), "appends at size - 1, not at strlen")
        let nd = try TallocContext.strndup(parent: root, "abcdef", 3)
        #expect(nd.stringValue == "abc" && nd.size == 4)
        var nd2 = try TallocContext.strdup(parent: root, "x")
        try nd2.strndupAppend("yzw", 2)
        #expect(nd2.stringValue == "xyz" && nd2.name == "xyz")
        let long = String(repeating: "talloc ", count: 300)
        let l = try TallocContext.asprintf(parent: root, "%s", long)
        #expect(l.stringValue == long, "output over talloc's 1024-byte stack buffer")
        let m = try [UInt8](repeating: 7, count: 5).withUnsafeBytes { try TallocContext.memdup(parent: root, $0) }
        #expect(m.size == 5 && m.unsafeMutableBytes.allSatisfy { $0 == 7 })
    }

    @Test func reallocRenamesOnlyWhenItMoves() throws {
        let root = try TallocContext.new(parent: nil, name: "root")
        defer { try? root.free() }
        let a = try TallocContext.allocate(parent: root, byteCount: 10, name: "keepme")
        var r = try #require(try TallocContext.reallocate(a, parent: nil, byteCount: 10, name: .constant("char")))
        #expect(r.name == "keepme", "same size")
        r = try #require(try TallocContext.reallocate(r, parent: nil, byteCount: 5, name: .constant("char")))
        #expect(r.name == "keepme", "shrink by less than 1 KiB returns early")
        r = try #require(try TallocContext.reallocate(r, parent: nil, byteCount: 5000, name: .constant("char")))
        #expect(r.name == "char")
        r = try #require(try TallocContext.reallocate(r, parent: nil, byteCount: 9000, name: .location(file: "misc.c", line: 46)))
        #expect(r.name == "misc.c:46")
        r = try #require(try TallocContext.reallocate(r, parent: nil, byteCount: 20000, name: .none))
        #expect(r.name == "UNNAMED")
        // children follow a moved parent
        let kid = try TallocContext.allocate(parent: r, byteCount: 1, name: "kid")
        r = try #require(try TallocContext.reallocate(r, parent: nil, byteCount: 200_000, name: .none))
        #expect(kid.parent == r && r.children == [kid])
        // referenced chunks do not reallocate; size 0 unlinks
        try r.reference(from: root)
        #expect(throws: TallocError.referenced) { try TallocContext.reallocate(r, parent: nil, byteCount: 10, name: .none) }
        #expect(try TallocContext.reallocate(r, parent: nil, byteCount: 0, name: .none) == nil)
        #expect(r.referenceCount == 1, "the NULL parent owned nothing: nothing happened")
        #expect(try TallocContext.reallocate(r, parent: root, byteCount: 0, name: .none) == nil)
        #expect(r.referenceCount == 0 && r.parent == root, "root's reference went")
        #expect(try TallocContext.reallocate(r, parent: root, byteCount: 0, name: .none) == nil)
        #expect(root.totalBlocks == 1)
        #expect(throws: TallocError.sizeTooLarge) { try TallocContext.reallocate(nil, parent: root, byteCount: 0x1000_0000, name: .none) }
        let fresh = try #require(try TallocContext.reallocate(nil, parent: root, byteCount: 8, name: .constant("fresh")))
        #expect(fresh.name == "fresh" && fresh.parent == root)
    }

    @Test func dotExport() throws {
        let root = try TallocContext.new(parent: nil, name: "root")
        defer { try? root.free() }
        let pool = try TallocContext.pool(parent: root, capacity: 256)
        let a = try TallocContext.strdup(parent: pool, "a \"quoted\" name")
        try a.reference(from: root)
        let dot = root.dot()
        #expect(dot.hasPrefix("digraph talloc {"))
        #expect(dot.contains("a \\\"quoted\\\" name"))
        #expect(dot.contains("style=dashed"))
        #expect(dot.contains("pool "))
    }
}
