// luatalloc — TallocCore tests
// SPDX-License-Identifier: MIT
//
// Names are bytes (talloc's names are C strings): a name that is not valid UTF-8 round-trips, location
// names compare piece by piece, and the bytes are exactly what talloc_get_name returns.

import Testing
@testable import TallocCore

private let notUTF8: [UInt8] = [0x66, 0xFF, 0xFE, 0x80, 0x41, 0xC3]  // "f", invalid bytes, "A", a lone lead byte

private func check(_ c: TallocContext, _ bytes: [UInt8]) -> Bool { bytes.withUnsafeBytes { c.checkName(bytes: $0) } }
private func check(_ c: TallocContext, _ s: String) -> Bool { check(c, Array(s.utf8)) }

@Suite struct NameBytesTests {
    @Test func aNameThatIsNotUTF8RoundTrips() throws {
        let root = try TallocContext.new(parent: nil, name: "root")
        defer { try? root.free() }
        let copied = try TallocContext.new(parent: root, name: "x")
        #expect(notUTF8.withUnsafeBytes { copied.setNameCopy($0) })
        #expect(copied.nameBytes == notUTF8)
        #expect(copied.name == String(decoding: notUTF8, as: UTF8.self), "the String is the repaired bytes")
        #expect(check(copied, notUTF8))
        #expect(!copied.checkName(copied.name), "the repaired text is not the name")
        #expect(!check(copied, Array(notUTF8.dropLast())) && !check(copied, notUTF8 + [0x41]))

        let viaChild = try TallocContext.new(parent: root, name: "y")
        let holder = try notUTF8.withUnsafeBytes { try viaChild.setName(bytes: $0) }
        #expect(viaChild.nameBytes == notUTF8 && holder.name == ".name")
        #expect(Array(holder.withUnsafeBytes { $0 }) == notUTF8 + [0])

        let string = try notUTF8.withUnsafeBytes { try TallocContext.strdup(parent: root, bytes: $0) }
        #expect(string.nameBytes == notUTF8 && string.isNamedByContents)

        let deep = try TallocContext.new(parent: string, name: "deep")
        #expect(notUTF8.withUnsafeBytes { deep.findParent(byNameBytes: $0) } == string)
        #expect(notUTF8.withUnsafeBytes { root.findParent(byNameBytes: $0) } == nil)
        #expect(deep.findParent(byName: "root") == root)
    }

    @Test func theBytesAreTallocGetName() throws {
        let root = try TallocContext.new(parent: nil, file: "dir/file.c", line: 42)
        defer { try? root.free() }
        #expect(root.nameBytes == Array("talloc_new: dir/file.c:42".utf8))
        let sized = try TallocContext.allocate(parent: root, byteCount: 3, file: "a.c", line: 7)
        #expect(sized.nameBytes == Array("a.c:7".utf8))
        let unnamed = try TallocContext.allocateUnnamed(parent: root, byteCount: 1)
        #expect(unnamed.nameBytes == Array("UNNAMED".utf8) && check(unnamed, "UNNAMED"))
        let target = try TallocContext.new(parent: root, name: "target")
        let handle = try #require(_Core.reference(target.chunk, owner: root.chunk))
        #expect(TallocContext(chunk: handle).nameBytes == Array(".reference".utf8))
        #expect(check(TallocContext(chunk: handle), ".reference"))
        let located = try TallocContext.new(parent: root, name: "later")
        "bind.lua".withCString { file in
            located.unsafeSetNameLocation(file: file, line: 4_294_967_295, talloc_new: false)
            #expect(located.nameBytes == Array("bind.lua:4294967295".utf8))
            #expect(check(located, "bind.lua:4294967295"))
        }
        located.setNameConst("const")
        #expect(located.nameBytes == Array("const".utf8) && located.name == "const")
    }

    @Test func locationNamesComparePieceByPiece() throws {
        let c = try TallocContext.new(parent: nil, file: "x.c", line: 7)
        defer { try? c.free() }
        #expect(check(c, "talloc_new: x.c:7"))
        for wrong in ["", "talloc_new: ", "talloc_new: x.c", "talloc_new: x.c:", "talloc_new: x.c:70",
                      "talloc_new: x.c:7 ", "talloc_new: x.c;7", "x.c:7", "talloc_new:  x.c:7", "talloc_new: y.c:7"] {
            #expect(!check(c, wrong), "\(wrong)")
        }
        #expect(c.checkName("talloc_new: x.c:7") && !c.checkName("talloc_new: x.c:8"))
        #expect(check(c, Array("talloc_new: x.c:7".utf8) + [0, 0x41]), "compared up to the first NUL, as C strings")
        let plain = try TallocContext.new(parent: c, name: "abc")
        #expect(check(plain, "abc") && !check(plain, "ab") && !check(plain, "abcd") && !check(plain, ""))
        #expect(check(plain, Array("abc".utf8) + [0, 0x64]))
        let empty = try TallocContext.new(parent: c, name: "")
        #expect(check(empty, "") && check(empty, [0]) && !check(empty, "a"))
        #expect(plain.findParent(byName: "talloc_new: x.c:7") == c)
        #expect(Array("talloc_new: x.c:7".utf8).withUnsafeBytes { plain.findParent(byNameBytes: $0) } == c)
    }

    @Test func anOwnedNameCopyIsAccountedAndFreedWhenReplaced() throws {
        let c = try TallocContext.new(parent: nil, name: "c")
        defer { try? c.free() }
        #expect(!c.hasSideRecord && c.ownedNameByteCount == 0)
        #expect(TallocContext.sideRecordByteCount == MemoryLayout<_Extra>.stride && TallocContext.sideRecordByteCount > 0)
        #expect(Array("copied".utf8).withUnsafeBytes { c.setNameCopy($0) })
        #expect(c.hasSideRecord && c.ownedNameByteCount == 7)
        #expect(Array("a longer copy\0ignored".utf8).withUnsafeBytes { c.setNameCopy($0) })
        #expect(c.ownedNameByteCount == 14 && c.name == "a longer copy")
        c.setNameConst("constant")
        #expect(c.ownedNameByteCount == 0, "another name frees the copy")
        #expect(c.chunk.pointee.extra?.pointee.ownedName == nil)
        #expect(notUTF8.withUnsafeBytes { c.setNameCopy($0) })
        try c.setName("via .name")
        #expect(c.ownedNameByteCount == 0)
        #expect(Array("again".utf8).withUnsafeBytes { c.setNameCopy($0) })
        struct T {}
        c.setType(T.self)
        #expect(c.ownedNameByteCount == 0)
        #expect(Array("again".utf8).withUnsafeBytes { c.setNameCopy($0) })
        let file: StaticString = "f.lua"  // must outlive the name
        c.unsafeSetNameLocation(file: UnsafeRawPointer(file.utf8Start).assumingMemoryBound(to: CChar.self), line: 1,
                                talloc_new: true)
        #expect(c.ownedNameByteCount == 0 && c.name == "talloc_new: f.lua:1")
        var s = try TallocContext.strdup(parent: c, "text")
        #expect(Array("copy".utf8).withUnsafeBytes { s.setNameCopy($0) })
        try s.strdupAppend(" more")
        #expect(s.ownedNameByteCount == 0 && s.name == "text more", "appending renames to the contents")
        #expect(Array("copy".utf8).withUnsafeBytes { s.setNameCopy($0) })
        #expect(s.hasSideRecord)
        try s.reallocate(byteCount: 4000)  // a heap chunk's realloc() path: renamed "FILE:LINE"
        #expect(s.ownedNameByteCount == 0 && s.name.hasPrefix("TallocCoreTests/NameBytesTests.swift:"))
    }
}
