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
        root.pointee.flags |= _Flag.walk
        var goDown = enter(root, 0)
        while true {
            if goDown, let c = eligible(node.pointee.child) {
                node = c
                depth += 1
                c.pointee.flags |= _Flag.walk
                goDown = enter(c, depth)
                continue
            }
            while true {
                node.pointee.flags &= ~_Flag.walk
                leave(node, depth)
                if node == root { return }
                if let s = eligible(node.pointee.next) {
                    node = s
                    s.pointee.flags |= _Flag.walk
                    goDown = enter(s, depth)
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

    // MARK: - Report

    struct ReportOptions {
        var depth = 0
        var maxDepth = -1
        var addresses = true
    }

    /// talloc_report_depth_file's text for `root`.
    static func report(_ root: _Chunk, _ options: ReportOptions) -> String {
        struct Entry { var tc: _Chunk; var depth: Int; var isRef: Bool; var bytes: Int; var blocks: Int }
        var entries: [Entry] = []
        var open: [Int] = []  // entry index (or -1 when not reported) of each chunk on the path
        var totals: [(Int, Int)] = []
        walk(root, skipLoop: true) { tc, d in
            let isRef = tc.pointee.flags & _Flag.reference != 0
            let depth = options.depth + d
            var index = -1
            // talloc prints a handle as a "reference to:" line in its owner's listing, and lists the
            // children of a chunk only while the chunk's depth is below max_depth.
            let show = d == 0 || options.maxDepth < 0 || depth - 1 < options.maxDepth
            if show {
                index = entries.count
                entries.append(Entry(tc: tc, depth: depth, isRef: isRef, bytes: 0, blocks: 0))
            }
            open.append(index)
            totals.append((isRef ? 0 : Int(tc.pointee.size), 1))
            return !isRef
        } leave: { _, _ in
            let index = open.removeLast()
            let t = totals.removeLast()
            if index >= 0 {
                entries[index].bytes = t.0
                entries[index].blocks = t.1
            }
            if !totals.isEmpty {
                totals[totals.count - 1].0 += t.0
                totals[totals.count - 1].1 += t.1
            }
        }
        var out = ""
        for e in entries {
            let indent = String(repeating: " ", count: e.depth * 4)
            if e.isRef {
                out += indent + "reference to: " + name(e.tc.referenceBody.pointee.target) + "\n"
                continue
            }
            let nm = name(e.tc)
            if e.tc.pointee.flags & _Flag.hasLimit != 0, let x = e.tc.pointee.extra {
                out += indent + padRight(nm, 30) + " is a memlimit context (max_size = \(x.pointee.limitMax) bytes, cur_size = \(x.pointee.limitCurrent) bytes)\n"
            }
            if e.depth == 0 {
                out += (options.maxDepth < 0 ? "full " : "") + "talloc report on '" + nm + "' (total "
                    + padLeft(String(e.bytes), 6) + " bytes in " + padLeft(String(e.blocks), 3) + " blocks)\n"
                continue
            }
            out += indent + padRight(nm, 30) + " contains " + padLeft(String(e.bytes), 6) + " bytes in "
                + padLeft(String(e.blocks), 3) + " blocks (ref \(_Core.referenceCount(e.tc)))"
            if options.addresses { out += " " + pointerText(e.tc.body) }
            out += "\n"
        }
        return out
    }

    static func padRight(_ s: String, _ width: Int) -> String {
        let n = s.utf8.count
        return n >= width ? s : s + String(repeating: " ", count: width - n)
    }

    static func padLeft(_ s: String, _ width: Int) -> String {
        let n = s.utf8.count
        return n >= width ? s : String(repeating: " ", count: width - n) + s
    }

    /// glibc's `%p`.
    static func pointerText(_ p: UnsafeRawPointer?) -> String {
        guard let p else { return "(nil)" }
        return "0x" + String(UInt(bitPattern: p), radix: 16)
    }

    // MARK: - DOT

    /// Graphviz source of `root`'s tree: one box per chunk (name, size; pools with their fill), solid
    /// edges for ownership, dashed edges from a referrer to what it references.
    static func dot(_ roots: [_Chunk], graphName: String = "talloc") -> String {
        var out = "digraph \(graphName) {\n"
        out += "    node [shape=box, fontname=\"monospace\", fontsize=10];\n"
        out += "    edge [arrowsize=0.6];\n"
        var ids: [_Chunk: Int] = [:]
        var refEdges: [(Int, _Chunk)] = []
        func id(_ tc: _Chunk) -> Int {
            if let i = ids[tc] { return i }
            let i = ids.count
            ids[tc] = i
            return i
        }
        for root in roots {
            var path: [Int] = []
            walk(root, skipLoop: true) { tc, _ in
                if tc.pointee.flags & _Flag.reference != 0 {
                    if let owner = path.last { refEdges.append((owner, tc.referenceBody.pointee.target)) }
                    path.append(-1)
                    return false
                }
                let me = id(tc)
                var label = escape(name(tc))
                if tc.isPool {
                    let h = tc.poolHeader.pointee
                    let used = Int(h.end) - _headerSize
                    label += "\\npool \(used)/\(h.poolSize) bytes, \(h.objectCount) objects"
                    if tc.pointee.size > 0 { label += "\\nobject \(tc.pointee.size) bytes" }
                } else {
                    label += "\\n\(tc.pointee.size) bytes"
                }
                var attrs = "label=\"\(label)\""
                if tc.isPool { attrs += ", style=filled, fillcolor=\"#dde8ff\"" }
                else if tc.isPoolMem { attrs += ", style=filled, fillcolor=\"#eef3ff\"" }
                if tc.pointee.flags & _Flag.hasLimit != 0, let x = tc.pointee.extra {
                    attrs += ", peripheries=2, xlabel=\"limit \(x.pointee.limitCurrent)/\(x.pointee.limitMax)\""
                }
                out += "    n\(me) [\(attrs)];\n"
                if let parent = path.last, parent >= 0 { out += "    n\(parent) -> n\(me);\n" }
                path.append(me)
                return true
            } leave: { _, _ in
                path.removeLast()
            }
        }
        for (from, target) in refEdges {
            if let t = ids[target] {
                out += "    n\(from) -> n\(t) [style=dashed, color=\"#aa3333\", label=\"ref\"];\n"
            } else {
                let t = id(target)
                out += "    n\(t) [label=\"\(escape(name(target)))\\n\(target.pointee.size) bytes\", style=dashed];\n"
                out += "    n\(from) -> n\(t) [style=dashed, color=\"#aa3333\", label=\"ref\"];\n"
            }
        }
        out += "}\n"
        return out
    }

    static func escape(_ s: String) -> String {
        var r = ""
        for ch in s.unicodeScalars {
            switch ch {
            case "\"": r += "\\\""
            case "\\": r += "\\\\"
            case "\n": r += "\\n"
            default:
                if ch.value < 0x20 { r += "?" } else { r.unicodeScalars.append(ch) }
            }
        }
        return r
    }
}
