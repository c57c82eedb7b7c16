// luatalloc — TallocCore tests
// SPDX-License-Identifier: MIT
//
// The report and DOT writers as they were before they streamed (commit 4f22663, _Walk.swift), kept
// as the reference the streaming writers must match byte for byte. The report is verbatim; the DOT
// writer has the streaming writer's later look (issue 14: attributes, pinned pools), its structure still
// computed independently here.

@testable import TallocCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

enum LegacyText {
    static func legacyName(_ tc: _Chunk) -> String {
        let f = tc.pointee.flags
        if f & _Flag.reference != 0 { return ".reference" }
        guard let n = tc.pointee.name else { return "UNNAMED" }
        let s = String(cString: n.assumingMemoryBound(to: CChar.self))
        if f & _Flag.nameIsLocation != 0 {
            let loc = s + ":" + String(tc.pointee.line)
            return f & _Flag.nameHasNewPrefix != 0 ? "talloc_new: " + loc : loc
        }
        return s
    }

    /// talloc_report_depth_file's text for `root`.
    static func report(_ root: _Chunk, _ options: _Walk.ReportOptions) -> String {
        struct Entry { var tc: _Chunk; var depth: Int; var isRef: Bool; var bytes: Int; var blocks: Int }
        var entries: [Entry] = []
        var open: [Int] = []  // entry index (or -1 when not reported) of each chunk on the path
        var totals: [(Int, Int)] = []
        _Walk.walk(root, skipLoop: true) { tc, d in
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
                out += indent + "reference to: " + legacyName(e.tc.referenceBody.pointee.target) + "\n"
                continue
            }
            let nm = legacyName(e.tc)
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

    /// Graphviz source of `root`'s tree: one box per chunk (name, size; pools with their fill; limits),
    /// solid edges for ownership, dashed edges from a referrer to what it references, dotted edges from
    /// members of a freed pool to one node for that pool. The look (attributes) follows the streaming
    /// writer's; the structure is computed here independently, with dictionaries.
    static func dot(_ roots: [_Chunk], graphName: String = "talloc") -> String {
        var out = "digraph \(graphName) {\n"
        out += "    graph [nodesep=0.25, ranksep=0.4];\n"
        out += "    node [shape=box, style=filled, fillcolor=\"#ffffff\", fontname=\"monospace\", fontsize=10];\n"
        out += "    edge [arrowsize=0.6, fontname=\"monospace\", fontsize=9];\n"
        var ids: [_Chunk: Int] = [:]
        var pinnedIds: [_Chunk: Int] = [:]
        var refEdges: [(Int, _Chunk)] = []
        func id(_ tc: _Chunk) -> Int {
            if let i = ids[tc] { return i }
            let i = ids.count
            ids[tc] = i
            return i
        }
        func poolFill(_ pool: _Chunk) -> String {
            let h = pool.poolHeader.pointee
            return "pool \(Int(h.end) - _headerSize)/\(h.poolSize) bytes, \(h.objectCount) objects"
        }
        for root in roots {
            var path: [Int] = []
            _Walk.walk(root, skipLoop: true) { tc, _ in
                if tc.pointee.flags & _Flag.reference != 0 {
                    if let owner = path.last { refEdges.append((owner, tc.referenceBody.pointee.target)) }
                    path.append(-1)
                    return false
                }
                let seen = ids[tc] != nil
                let me = id(tc)
                let pinned = tc.isPoolMem && tc.carvingPool.pointee.flags & _Flag.free != 0
                var label = escape(legacyName(tc))
                if tc.isPool {
                    label += "\\n" + poolFill(tc)
                    if tc.pointee.size > 0 { label += "\\nobject \(tc.pointee.size) bytes" }
                } else {
                    label += "\\n\(tc.pointee.size) bytes"
                }
                let limit = tc.pointee.flags & _Flag.hasLimit != 0 ? tc.pointee.extra : nil
                if let x = limit { label += "\\nlimit \(x.pointee.limitCurrent)/\(x.pointee.limitMax) bytes" }
                var attrs = "label=\"\(label)\""
                if tc.isPool {
                    attrs += tc.isPoolMem ? ", style=\"filled,bold,rounded\"" : ", style=\"filled,bold\""
                    attrs += ", fillcolor=\"#cfe0ff\""
                } else if tc.isPoolMem {
                    attrs += ", style=\"filled,rounded\", fillcolor=\"" + (pinned ? "#ffe6cc" : "#eef3ff") + "\""
                }
                if limit != nil { attrs += ", peripheries=2, color=\"#b3261e\"" }
                else if pinned { attrs += ", color=\"#c45f00\"" }
                else if tc.isPool || tc.isPoolMem { attrs += ", color=\"#2f5597\"" }
                out += "    n\(me) [\(attrs)];\n"
                if pinned && !seen {
                    let pool = tc.carvingPool
                    let p: Int
                    if let known = pinnedIds[pool] { p = known } else {
                        p = pinnedIds.count
                        pinnedIds[pool] = p
                        out += "    p\(p) [label=\"freed pool, pinned\\n\(poolFill(pool))\", style=\"filled,bold,dashed\", fillcolor=\"#ffd1a3\", color=\"#c45f00\"];\n"
                    }
                    out += "    n\(me) -> p\(p) [style=dotted, color=\"#c45f00\", fontcolor=\"#c45f00\", label=\"pins\"];\n"
                }
                if let parent = path.last, parent >= 0 { out += "    n\(parent) -> n\(me);\n" }
                path.append(me)
                return true
            } leave: { _, _ in
                path.removeLast()
            }
        }
        let refEdge = " [style=dashed, color=\"#7b3fa0\", fontcolor=\"#7b3fa0\", label=\"ref\", constraint=false];\n"
        for (from, target) in refEdges {
            if let t = ids[target] {
                out += "    n\(from) -> n\(t)" + refEdge
            } else {
                let t = id(target)
                out += "    n\(t) [label=\"\(escape(legacyName(target)))\\n\(target.pointee.size) bytes\\n(outside this tree)\", style=\"filled,dashed\", fillcolor=\"#f2f2f2\", color=\"#777777\"];\n"
                out += "    n\(from) -> n\(t)" + refEdge
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
