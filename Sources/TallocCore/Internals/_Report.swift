// luatalloc — TallocCore
// SPDX-License-Identifier: MIT
//
// Reports and DOT, streamed: the text goes to a sink in pieces as it is written, and the working memory
// is O(chunks) with a small constant, allocated up front and announced to an accountant:
//
//     report   16 bytes per listed chunk (its subtree's totals) + 8 per listed level + a 4 KiB buffer
//     DOT      8 bytes per level + 16 per reference + a hash table of 16-byte slots (at least twice as
//              many as the references and the members of freed pools, plus twice the chunks when
//              several roots share one graph) +
//              a 4 KiB buffer
//
// Each walks the tree more than once (count, then totals or ids, then text); the tree must not change
// in between, so the sink must not touch it.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One malloc'd block of working memory, announced to an accountant before it exists and after it is gone.
struct _Scratch {
    let base: UnsafeMutableRawPointer
    let byteCount: Int
    private let accountant: (Int) -> Bool

    /// Nil when the accountant refuses or malloc fails (the accountant has then been told -n again).
    init?(byteCount: Int, accountant: @escaping (Int) -> Bool) {
        guard accountant(byteCount) else { return nil }
        guard let p = malloc(Swift.max(byteCount, 1)) else {
            _ = accountant(-byteCount)
            return nil
        }
        self.base = p
        self.byteCount = byteCount
        self.accountant = accountant
    }

    func release() {
        free(base)
        _ = accountant(-byteCount)
    }
}

/// An open-addressing map from chunk addresses to ints, in caller-provided slots (16 bytes each; the
/// count a power of two, more than the keys). Keys are never 0.
struct _AddressTable {
    private let keys: UnsafeMutablePointer<UInt>
    private let values: UnsafeMutablePointer<Int>
    private let mask: Int

    /// Room for `capacity` slots (a power of two) at `memory` (16 * capacity bytes).
    init(_ memory: UnsafeMutableRawPointer, capacity: Int) {
        keys = memory.bindMemory(to: UInt.self, capacity: capacity)
        keys.initialize(repeating: 0, count: capacity)
        values = (memory + capacity * 8).bindMemory(to: Int.self, capacity: capacity)
        values.initialize(repeating: 0, count: capacity)
        mask = capacity - 1
    }

    static func capacity(for keys: Int) -> Int {
        var c = 16
        while c < keys * 2 { c *= 2 }
        return c
    }

    @inline(__always)
    private func slot(_ key: UInt) -> Int {
        var i = Int(truncatingIfNeeded: (key >> 4) &* 0x9E37_79B9_7F4A_7C15) & mask
        while keys[i] != 0 && keys[i] != key { i = (i + 1) & mask }
        return i
    }

    func value(_ c: _Chunk) -> Int? {
        let i = slot(UInt(bitPattern: c))
        return keys[i] == 0 ? nil : values[i]
    }

    /// Sets the value (adding the key if it is new).
    func set(_ c: _Chunk, _ v: Int) {
        let k = UInt(bitPattern: c)
        let i = slot(k)
        keys[i] = k
        values[i] = v
    }
}

extension _Walk {
    static let textBufferSize = 4096

    // MARK: - Report

    /// talloc_report_depth_file's text for `root`, to `sink`. False when the accountant refused or the
    /// sink stopped.
    static func writeReport(
        _ root: _Chunk, _ options: ReportOptions,
        accountant: (Int) -> Bool, to sink: (UnsafeRawBufferPointer) -> Bool
    ) -> Bool {
        // Children of a chunk are listed while its depth is below max_depth (talloc_report_depth_cb):
        // chunk at relative depth d is listed when d <= levels.
        let (room, overflow) = options.maxDepth.subtractingReportingOverflow(options.depth)
        let levels = options.maxDepth < 0 || overflow ? Int.max : Swift.max(room, 0)

        // 1. Count the listed chunks and their deepest level.
        var entries = 0
        var deepest = 0
        walk(root, skipLoop: true) { tc, d in
            entries += 1
            if d > deepest { deepest = d }
            return d < levels && tc.pointee.flags & _Flag.reference == 0
        } leave: { _, _ in }
        if entries == 0 { return true }  // a chunk being freed reports nothing, as talloc

        let totalsBytes = entries * 16
        let openBytes = (deepest + 1) * 8
        return withoutActuallyEscaping(accountant) { accountant in
            withoutActuallyEscaping(sink) { sink in
                guard let scratch = _Scratch(byteCount: textBufferSize + totalsBytes + openBytes, accountant: accountant)
                else { return false }
                defer { scratch.release() }
                let totals = (scratch.base + textBufferSize).bindMemory(to: (bytes: Int, blocks: Int).self, capacity: entries)
                totals.initialize(repeating: (0, 0), count: entries)
                let open = (scratch.base + textBufferSize + totalsBytes).bindMemory(to: Int.self, capacity: deepest + 1)
                open.initialize(repeating: 0, count: deepest + 1)

                // 2. Subtree totals of the listed chunks, in walk order: running sums at entry, differences
                // at exit.
                var next = 0
                var runBytes = 0, runBlocks = 0
                walk(root, skipLoop: true) { tc, d in
                    let isRef = tc.pointee.flags & _Flag.reference != 0
                    if d <= levels && next < entries && d <= deepest {
                        totals[next] = (runBytes, runBlocks)
                        open[d] = next
                        next += 1
                    }
                    runBlocks &+= 1
                    if !isRef { runBytes &+= Int(tc.pointee.size) }
                    return !isRef
                } leave: { _, d in
                    if d <= levels && d <= deepest {
                        let i = open[d]
                        totals[i] = (runBytes &- totals[i].bytes, runBlocks &- totals[i].blocks)
                    }
                }
                let listed = next

                // 3. The lines.
                var w = _TextWriter(buffer: scratch.base, capacity: textBufferSize, sink: sink)
                next = 0
                let finished = walkStoppable(root, skipLoop: true) { tc, d in
                    if d > levels { return .skipChildren }
                    if next >= listed { return .stop }
                    let t = totals[next]
                    next += 1
                    writeReportLine(&w, tc, depth: options.depth.addingReportingOverflow(d), options, t)
                    if w.stopped { return .stop }
                    return d < levels && tc.pointee.flags & _Flag.reference == 0 ? .descend : .skipChildren
                } leave: { _, _ in true }
                return finished && w.flush()
            }
        }
    }

    /// One chunk's lines: "reference to: NAME", or its memlimit line and its "contains" line (the header
    /// line at depth 0).
    static func writeReportLine(
        _ w: inout _TextWriter, _ tc: _Chunk, depth: (partialValue: Int, overflow: Bool), _ options: ReportOptions,
        _ t: (bytes: Int, blocks: Int)
    ) {
        // printf's "%*s" with depth*4: a negative width pads as much, left-justified.
        let indent: UInt = depth.overflow ? UInt.max
            : depth.partialValue.magnitude.multipliedReportingOverflow(by: 4).overflow ? UInt.max
            : depth.partialValue.magnitude * 4
        let isHeader = !depth.overflow && depth.partialValue == 0
        func name(_ c: _Chunk, padTo width: Int) {
            var n = 0
            _ = forEachNamePiece(c) { w.write($0); n &+= $0.count; return !w.stopped }
            if n < width { w.writeSpaces(UInt(width - n)) }
        }
        if tc.pointee.flags & _Flag.reference != 0 {
            w.writeSpaces(indent)
            w.write("reference to: ")
            name(tc.referenceBody.pointee.target, padTo: 0)
            w.write("\n")
            return
        }
        if tc.pointee.flags & _Flag.hasLimit != 0, let x = tc.pointee.extra {
            w.writeSpaces(indent)
            name(tc, padTo: 30)
            w.write(" is a memlimit context (max_size = ")
            w.writeDecimal(x.pointee.limitMax)
            w.write(" bytes, cur_size = ")
            w.writeDecimal(x.pointee.limitCurrent)
            w.write(" bytes)\n")
        }
        if isHeader {
            if options.maxDepth < 0 { w.write("full ") }
            w.write("talloc report on '")
            name(tc, padTo: 0)
            w.write("' (total ")
            w.writeDecimal(t.bytes, width: 6)
            w.write(" bytes in ")
            w.writeDecimal(t.blocks, width: 3)
            w.write(" blocks)\n")
            return
        }
        w.writeSpaces(indent)
        name(tc, padTo: 30)
        w.write(" contains ")
        w.writeDecimal(t.bytes, width: 6)
        w.write(" bytes in ")
        w.writeDecimal(t.blocks, width: 3)
        w.write(" blocks (ref ")
        w.writeDecimal(_Core.referenceCount(tc))
        w.write(")")
        if options.addresses {
            w.write(" ")
            w.writePointer(tc.body)
        }
        w.write("\n")
    }

    // MARK: - DOT

    /// Graphviz source of the trees under `roots` in one graph. Each kind of thing looks different:
    ///
    /// - a chunk: a white box (name, size);
    /// - a pool: a bold blue box with its fill ("pool USED/CAPACITY bytes, N objects");
    /// - pool memory: a rounded light blue box; carved from a pool that was freed while members lived
    ///   (a *pinned* pool), a rounded orange box, joined by a dotted "pins" edge to one dashed orange
    ///   box for that pool (its fill; it has no name any more);
    /// - a memory limit: a red double border and a "limit CURRENT/MAX bytes" line;
    /// - ownership: solid edges; a reference: a dashed purple edge from the referrer to what it
    ///   references (that does not shape the layout), with a dashed grey box of its own for a target
    ///   outside the trees.
    ///
    /// A chunk under two of the roots is one node, listed once per root that reaches it. The text
    /// depends only on the trees (node ids count in walk order; pinned pools are `pN` in order of first
    /// sight), so the same tree always gives the same text.
    static func writeDot(
        _ roots: [_Chunk], accountant: (Int) -> Bool, to sink: (UnsafeRawBufferPointer) -> Bool
    ) -> Bool {
        // 1. Count chunks, references, members of freed pools and the deepest level.
        var chunks = 0, refs = 0, pinnedMembers = 0, deepest = 0
        for root in roots {
            walk(root, skipLoop: true) { tc, d in
                if d > deepest { deepest = d }
                if tc.pointee.flags & _Flag.reference != 0 { refs += 1; return false }
                chunks += 1
                if isInFreedPool(tc) { pinnedMembers += 1 }
                return true
            } leave: { _, _ in }
        }
        let dedupe = roots.count > 1
        let slots = _AddressTable.capacity(for: refs + pinnedMembers + (dedupe ? chunks : 0))
        let pathBytes = (deepest + 1) * 8
        let edgeBytes = Swift.max(refs, 1) * 16
        let tableBytes = slots * 16

        return withoutActuallyEscaping(accountant) { accountant in
            withoutActuallyEscaping(sink) { sink in
                guard let scratch = _Scratch(byteCount: textBufferSize + pathBytes + edgeBytes + tableBytes,
                                             accountant: accountant)
                else { return false }
                defer { scratch.release() }
                var at = scratch.base + textBufferSize
                let path = at.bindMemory(to: Int.self, capacity: deepest + 1)
                at += pathBytes
                let edges = at.bindMemory(to: (from: Int, target: _Chunk).self, capacity: Swift.max(refs, 1))
                at += edgeBytes
                // Chunk -> node id (>= 0; with several roots, and for reference targets), and freed pool ->
                // -2 - its pN number (a freed pool is never a chunk of the trees, so the keys never clash).
                let table = _AddressTable(at, capacity: slots)

                var w = _TextWriter(buffer: scratch.base, capacity: textBufferSize, sink: sink)
                w.write("digraph talloc {\n")
                w.write("    graph [nodesep=0.25, ranksep=0.4];\n")
                w.write("    node [shape=box, style=filled, fillcolor=\"#ffffff\", fontname=\"monospace\", fontsize=10];\n")
                w.write("    edge [arrowsize=0.6, fontname=\"monospace\", fontsize=9];\n")

                // 2. The nodes and ownership edges, in walk order; the reference edges are kept for last.
                var nextId = 0
                var nextPinned = 0
                var edgeCount = 0
                for root in roots {
                    let finished = walkStoppable(root, skipLoop: true) { tc, d in
                        if d > deepest { return .stop }
                        if tc.pointee.flags & _Flag.reference != 0 {
                            if d > 0, path[d - 1] >= 0, edgeCount < refs {
                                edges[edgeCount] = (path[d - 1], tc.referenceBody.pointee.target)
                                edgeCount += 1
                            }
                            path[d] = -1
                            return .skipChildren
                        }
                        let me: Int
                        var seen = false
                        if dedupe {
                            if let known = table.value(tc) { me = known; seen = true } else { me = nextId; nextId += 1; table.set(tc, me) }
                        } else {
                            me = nextId
                            nextId += 1
                        }
                        writeDotNode(&w, tc, id: me)
                        if !seen && isInFreedPool(tc) {
                            // The pool it pins: one node per pool, at its first member.
                            let pool = tc.carvingPool
                            let pinned: Int
                            if let known = table.value(pool), known <= -2 {
                                pinned = -2 - known
                            } else {
                                pinned = nextPinned
                                nextPinned += 1
                                table.set(pool, -2 - pinned)
                                writeDotPinnedPool(&w, pool, id: pinned)
                            }
                            w.write("    n")
                            w.writeDecimal(me)
                            w.write(" -> p")
                            w.writeDecimal(pinned)
                            w.write(" [style=dotted, color=\"#c45f00\", fontcolor=\"#c45f00\", label=\"pins\"];\n")
                        }
                        if d > 0, path[d - 1] >= 0 {
                            w.write("    n")
                            w.writeDecimal(path[d - 1])
                            w.write(" -> n")
                            w.writeDecimal(me)
                            w.write(";\n")
                        }
                        path[d] = me
                        return w.stopped ? .stop : .descend
                    } leave: { _, _ in true }
                    if !finished || w.stopped { return false }
                }

                // 3. Ids of the reference targets: with one root, the walk order numbered every chunk, so
                // number them again to find the targets'; with several, the table has them all.
                if !dedupe && edgeCount > 0 {
                    for i in 0..<edgeCount where table.value(edges[i].target) == nil { table.set(edges[i].target, -1) }
                    var id = 0
                    for root in roots {
                        walk(root, skipLoop: true) { tc, _ in
                            if tc.pointee.flags & _Flag.reference != 0 { return false }
                            if table.value(tc) == -1 { table.set(tc, id) }
                            id += 1
                            return true
                        } leave: { _, _ in }
                    }
                }
                for i in 0..<edgeCount {
                    let (from, target) = edges[i]
                    var t = table.value(target) ?? -1
                    if t < 0 {
                        // Outside the trees: a dashed box of its own, once.
                        t = nextId
                        nextId += 1
                        table.set(target, t)
                        w.write("    n")
                        w.writeDecimal(t)
                        w.write(" [label=\"")
                        writeEscapedName(&w, target)
                        w.write("\\n")
                        w.writeDecimal(Int(target.pointee.size))
                        w.write(" bytes\\n(outside this tree)\", style=\"filled,dashed\", fillcolor=\"#f2f2f2\", color=\"#777777\"];\n")
                    }
                    w.write("    n")
                    w.writeDecimal(from)
                    w.write(" -> n")
                    w.writeDecimal(t)
                    w.write(" [style=dashed, color=\"#7b3fa0\", fontcolor=\"#7b3fa0\", label=\"ref\", constraint=false];\n")
                    if w.stopped { return false }
                }
                w.write("}\n")
                return w.flush()
            }
        }
    }

    /// Whether `tc` was carved from a pool that has been freed (and that it now pins).
    @inline(__always)
    static func isInFreedPool(_ tc: _Chunk) -> Bool {
        tc.isPoolMem && tc.carvingPool.pointee.flags & _Flag.free != 0
    }

    /// "pool USED/CAPACITY bytes, N objects" of a pool's header.
    static func writePoolFill(_ w: inout _TextWriter, _ pool: _Chunk) {
        let h = pool.poolHeader.pointee
        w.write("pool ")
        w.writeDecimal(Int(h.end) - _headerSize)
        w.write("/")
        w.writeDecimal(Int(h.poolSize))
        w.write(" bytes, ")
        w.writeDecimal(Int(h.objectCount))
        w.write(" objects")
    }

    static func writeDotNode(_ w: inout _TextWriter, _ tc: _Chunk, id: Int) {
        w.write("    n")
        w.writeDecimal(id)
        w.write(" [label=\"")
        writeEscapedName(&w, tc)
        w.write("\\n")
        if tc.isPool {
            writePoolFill(&w, tc)
            if tc.pointee.size > 0 {
                w.write("\\nobject ")
                w.writeDecimal(Int(tc.pointee.size))
                w.write(" bytes")
            }
        } else {
            w.writeDecimal(Int(tc.pointee.size))
            w.write(" bytes")
        }
        let limit = tc.pointee.flags & _Flag.hasLimit != 0 ? tc.pointee.extra : nil
        if let x = limit {
            w.write("\\nlimit ")
            w.writeDecimal(x.pointee.limitCurrent)
            w.write("/")
            w.writeDecimal(x.pointee.limitMax)
            w.write(" bytes")
        }
        w.write("\"")
        let pinned = isInFreedPool(tc)
        if tc.isPool {
            w.write(tc.isPoolMem ? ", style=\"filled,bold,rounded\"" : ", style=\"filled,bold\"")
            w.write(", fillcolor=\"#cfe0ff\"")
        } else if tc.isPoolMem {
            w.write(", style=\"filled,rounded\"")
            w.write(pinned ? ", fillcolor=\"#ffe6cc\"" : ", fillcolor=\"#eef3ff\"")
        }
        if limit != nil {
            w.write(", peripheries=2, color=\"#b3261e\"")
        } else if pinned {
            w.write(", color=\"#c45f00\"")
        } else if tc.isPool || tc.isPoolMem {
            w.write(", color=\"#2f5597\"")
        }
        w.write("];\n")
    }

    /// The node of a freed pool that members still pin: its fill, no name (its name may be gone with it).
    static func writeDotPinnedPool(_ w: inout _TextWriter, _ pool: _Chunk, id: Int) {
        w.write("    p")
        w.writeDecimal(id)
        w.write(" [label=\"freed pool, pinned\\n")
        writePoolFill(&w, pool)
        w.write("\", style=\"filled,bold,dashed\", fillcolor=\"#ffd1a3\", color=\"#c45f00\"];\n")
    }

    /// The name inside a DOT string: `"` and `\` escaped, newlines as `\n`, other control characters as
    /// `?`, and bytes that are not UTF-8 as U+FFFD (so the graph is always valid UTF-8).
    static func writeEscapedName(_ w: inout _TextWriter, _ tc: _Chunk) {
        _ = forEachNamePiece(tc) { piece in
            var parser = Unicode.UTF8.ForwardParser()
            var bytes = piece.makeIterator()
            loop: while true {
                switch parser.parseScalar(from: &bytes) {
                case .valid(let encoded):
                    let scalar = Unicode.UTF8.decode(encoded)
                    switch scalar.value {
                    case 0x22: w.write("\\\"")
                    case 0x5C: w.write("\\\\")
                    case 0x0A: w.write("\\n")
                    case 0..<0x20: w.write("?")
                    default: for b in encoded { w.write(byte: b) }
                    }
                case .error:
                    w.write("\u{FFFD}")
                case .emptyInput:
                    break loop
                }
            }
            return !w.stopped
        }
    }
}
