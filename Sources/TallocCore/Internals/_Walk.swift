// luatalloc — TallocCore
// SPDX-License-Identifier: MIT
//
// Subtree walks without recursion: totals, reports, DOT export. A 10^6-deep chain or a 10^6-wide node
// walks in O(n) time and O(1) stack. The walk marks the chunks on its current path (`_Flag.walk`) and
// skips a chunk met again, so detached loops built through references terminate, as talloc's
// TALLOC_FLAG_LOOP makes them terminate.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

@usableFromInline
enum _Walk {

    /// Visits `root` and its subtree, newest child first. `enter(chunk, depth)` runs in pre-order and says
    /// whether to go into the chunk's children; `leave(chunk, depth)` runs in post-order. Chunks on the
    /// current path are skipped, and with `skipLoop` so are chunks being freed (talloc's LOOP flag).
    @inline(__always)
    static func walk(
        _ root: _Chunk, skipLoop: Bool,
        enter: (_Chunk, Int) -> Bool, leave: (_Chunk, Int) -> Void
    ) {
        let skip = _Flag.walk | (skipLoop ? _Flag.loop : 0)
        if root.pointee.flags & skip != 0 { return }
        @inline(__always) func eligible(_ start: _Chunk?) -> _Chunk? {
            var c = start
            while let x = c, x.pointee.flags & skip != 0 { c = x.pointee.next }
            return c
        }
        var node = root
        var depth = 0
        var steps = 1
        root.pointee.flags |= _Flag.walk
        var goDown = enter(root, 0)
        while true {
            if goDown, let c = eligible(node.pointee.child) {
                node = c
                depth += 1
                steps &+= 1
                c.pointee.flags |= _Flag.walk
                goDown = enter(c, depth)
                continue
            }
            while true {
                node.pointee.flags &= ~_Flag.walk
                leave(node, depth)
                if node == root { _Work.note(steps); return }
                if let s = eligible(node.pointee.next) {
                    node = s
                    steps &+= 1
                    s.pointee.flags |= _Flag.walk
                    goDown = enter(s, depth)
                    break
                }
                node = node.pointee.parent!
                depth -= 1
            }
        }
    }

    enum Step { case descend, skipChildren, stop }

    /// `walk` that can stop: `enter` says whether to go into the chunk's children or to stop, `leave`
    /// returns false to stop. On a stop, the marks on the current path are cleared before returning.
    /// Returns false when it stopped.
    static func walkStoppable(
        _ root: _Chunk, skipLoop: Bool,
        enter: (_Chunk, Int) -> Step, leave: (_Chunk, Int) -> Bool
    ) -> Bool {
        let skip = _Flag.walk | (skipLoop ? _Flag.loop : 0)
        if root.pointee.flags & skip != 0 { return true }
        func eligible(_ start: _Chunk?) -> _Chunk? {
            var c = start
            while let x = c, x.pointee.flags & skip != 0 { c = x.pointee.next }
            return c
        }
        func unwind(_ from: _Chunk) -> Bool {
            var c = from
            while true {
                c.pointee.flags &= ~_Flag.walk
                if c == root { return false }
                c = c.pointee.parent!
            }
        }
        var node = root
        var depth = 0
        var steps = 1
        defer { _Work.note(steps) }
        root.pointee.flags |= _Flag.walk
        var step = enter(root, 0)
        while true {
            if step == .stop { return unwind(node) }
            if step == .descend, let c = eligible(node.pointee.child) {
                node = c
                depth += 1
                steps &+= 1
                c.pointee.flags |= _Flag.walk
                step = enter(c, depth)
                continue
            }
            while true {
                node.pointee.flags &= ~_Flag.walk
                if !leave(node, depth) {
                    if node == root { return false }
                    return unwind(node.pointee.parent!)
                }
                if node == root { return true }
                if let s = eligible(node.pointee.next) {
                    node = s
                    steps &+= 1
                    s.pointee.flags |= _Flag.walk
                    step = enter(s, depth)
                    break
                }
                node = node.pointee.parent!
                depth -= 1
            }
        }
    }

    /// talloc_total_size / talloc_total_blocks of a subtree (0 for a chunk being freed, as talloc).
    static func totals(_ root: _Chunk) -> (bytes: Int, blocks: Int) {
        var bytes = 0, blocks = 0
        walk(root, skipLoop: true) { tc, _ in
            blocks += 1
            if tc.pointee.flags & _Flag.reference == 0 { bytes += Int(tc.pointee.size) }
            return true
        } leave: { _, _ in }
        return (bytes, blocks)
    }

    // MARK: - Names

    /// The bytes of a constant string.
    @inline(__always)
    static func bytes(_ s: StaticString) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount)
    }

    /// The bytes of a NUL-terminated string, without the NUL.
    @inline(__always)
    static func bytes(cString p: UnsafeRawPointer) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: p, count: strlen(p.assumingMemoryBound(to: CChar.self)))
    }

    /// talloc_get_name's bytes, in pieces and without allocating: ".reference", "UNNAMED", a C string, or a
    /// location's "talloc_new: " prefix, file, ":" and line. `piece` returns false to stop; the result is
    /// false when it did.
    static func forEachNamePiece(_ tc: _Chunk, _ piece: (UnsafeRawBufferPointer) -> Bool) -> Bool {
        let f = tc.pointee.flags
        if f & _Flag.reference != 0 { return piece(bytes(".reference")) }
        guard let n = tc.pointee.name else { return piece(bytes("UNNAMED")) }
        if f & _Flag.nameIsLocation == 0 { return piece(bytes(cString: n)) }
        if f & _Flag.nameHasNewPrefix != 0 && !piece(bytes("talloc_new: ")) { return false }
        if !piece(bytes(cString: n)) || !piece(bytes(":")) { return false }
        return withDecimal(UInt64(tc.pointee.line), piece)
    }

    /// `value` in decimal, as bytes on the stack.
    @inline(__always)
    static func withDecimal<R>(_ value: UInt64, _ body: (UnsafeRawBufferPointer) -> R) -> R {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { buf in
            var v = value
            var i = 20
            repeat {
                i &-= 1
                buf[i] = UInt8(truncatingIfNeeded: v % 10) &+ 0x30
                v /= 10
            } while v != 0
            return body(UnsafeRawBufferPointer(UnsafeMutableBufferPointer(rebasing: buf[i...])))
        }
    }

    /// The number of bytes of the name.
    static func nameLength(_ tc: _Chunk) -> Int {
        var n = 0
        _ = forEachNamePiece(tc) { n &+= $0.count; return true }
        return n
    }

    static func nameBytes(_ tc: _Chunk) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(nameLength(tc))
        _ = forEachNamePiece(tc) { out.append(contentsOf: $0); return true }
        return out
    }

    /// The name as a String (invalid UTF-8 repaired, as `String(decoding:as:)` repairs it).
    static func name(_ tc: _Chunk) -> String {
        let f = tc.pointee.flags
        if f & (_Flag.reference | _Flag.nameIsLocation) == 0, let n = tc.pointee.name {
            return String(decoding: bytes(cString: n), as: UTF8.self)
        }
        return String(decoding: nameBytes(tc), as: UTF8.self)
    }

    /// `other` up to its first NUL: talloc compares names as C strings.
    @inline(__always)
    static func cStringPrefix(_ other: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer {
        guard let base = other.baseAddress, other.count > 0 else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        guard let nul = memchr(base, 0, other.count) else { return other }
        return UnsafeRawBufferPointer(start: base, count: UnsafeRawPointer(nul) - base)
    }

    /// Whether the chunk's name is `other` (up to its first NUL), piece by piece, without allocating.
    static func nameEquals(_ tc: _Chunk, bytes other: UnsafeRawBufferPointer) -> Bool {
        var rest = cStringPrefix(other)
        let f = tc.pointee.flags
        if f & (_Flag.reference | _Flag.nameIsLocation) == 0, let n = tc.pointee.name {
            // A C string: strncmp stops at the first difference; then the name must end there too.
            let count = rest.count
            if count == 0 { return n.load(as: UInt8.self) == 0 }
            return strncmp(n.assumingMemoryBound(to: CChar.self), rest.baseAddress!.assumingMemoryBound(to: CChar.self), count) == 0
                && n.load(fromByteOffset: count, as: UInt8.self) == 0
        }
        let matched = forEachNamePiece(tc) { piece in
            if piece.count > rest.count { return false }
            if piece.count > 0 && memcmp(piece.baseAddress!, rest.baseAddress!, piece.count) != 0 { return false }
            rest = UnsafeRawBufferPointer(rebasing: rest[piece.count...])
            return true
        }
        return matched && rest.isEmpty
    }

    /// The same for a String (its UTF-8 bytes).
    static func nameEquals(_ tc: _Chunk, _ other: String) -> Bool {
        var s = other
        return s.withUTF8 { nameEquals(tc, bytes: UnsafeRawBufferPointer($0)) }
    }

    // MARK: - Report options

    struct ReportOptions {
        var depth = 0
        var maxDepth = -1
        var addresses = true
    }

    /// glibc's `%p`.
    static func pointerText(_ p: UnsafeRawPointer?) -> String {
        guard let p else { return "(nil)" }
        return "0x" + String(UInt(bitPattern: p), radix: 16)
    }
}
