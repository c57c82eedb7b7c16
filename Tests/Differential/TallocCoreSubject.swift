// luatalloc — the differential harness (TallocCore against Debian's libtalloc 2.4.0)
// SPDX-License-Identifier: MIT
//
// TallocCore behind `DifferentialSubject`, through its public API only.

import TallocCore

final class TallocCoreSubject: DifferentialSubject {
    let label = "TallocCore"
    private var contexts: [Int: TallocContext] = [:]
    private var ids: [TallocContext: Int] = [:]
    private var modes: [Int: DestructorMode] = [:]
    private var log: [DestructorEvent] = []
    private let replay: DestructorReplay?

    init(replay: DestructorReplay? = nil) { self.replay = replay }

    /// TallocCore's bump space for `pooledObject(byteCount: size, subobjects: k, subobjectBytes: bytes)`:
    /// talloc's formula with our header (64) and pool prefix (16) in place of 96 and 32.
    static func pooledObjectCapacity(_ size: Int, _ k: Int, _ bytes: Int) -> Int {
        size + bytes + (64 + 16 + 15) * (k + 1) - ((size + 15) & ~15)
    }

    private func ctx(_ id: Int?) -> TallocContext? { id.flatMap { contexts[$0] } }
    private func context(_ id: Int) -> TallocContext { contexts[id]! }

    private func register(_ id: Int, _ make: () throws -> TallocContext?) -> OpResult {
        do {
            guard let c = try make() else { return .failed }
            contexts[id] = c
            ids[c] = id
            modes[id] = DestructorMode.none
            return .ok
        } catch {
            return .failed
        }
    }

    private func moved(_ id: Int, to c: TallocContext) {
        let old = contexts[id]!
        if old != c {
            if ids[old] == id { ids[old] = nil }
            contexts[id] = c
            ids[c] = id
        }
    }

    private func attempt(_ body: () throws -> Void) -> OpResult {
        do {
            try body()
            return .ok
        } catch {
            return .failed
        }
    }

    private func destructorCalled(_ c: TallocContext) -> TallocDestructorVerdict {
        guard let id = ids[c] else {
            log.append(DestructorEvent(id: -1, refused: false))
            return .allow
        }
        switch modes[id] {
        case .freeChild?, .freeOther?:
            guard let replay else { break }
            // Replay the oracle's decision (it ran the same operation first).
            guard replay.index < replay.decisions.count, replay.decisions[replay.index].id == id else {
                replay.mismatches.append("destructor of #\(id) ran in TallocCore with no matching libtalloc call")
                break
            }
            let d = replay.decisions[replay.index]
            replay.index += 1
            guard let f = d.freed, let t = contexts[f] else { break }
            if modes[id] == .freeChild {
                guard let first = c.firstChild, ids[first] == f else {
                    replay.mismatches.append("#\(id)'s newest child is not #\(f) in TallocCore")
                    break
                }
            } else {
                guard t.parent == nil, t.firstChild == nil, t.referencedContexts.isEmpty, !t.hasDestructor,
                      t.referenceCount == 0 else {
                    replay.mismatches.append("#\(f) is not a top-level plain leaf in TallocCore")
                    break
                }
            }
            do { try t.free() } catch { replay.mismatches.append("free(#\(f)) from #\(id)'s destructor: \(error)") }
        default: break
        }
        let refuse = modes[id] == .refuse
        log.append(DestructorEvent(id: id, refused: refuse))
        return refuse ? .refuse : .allow
    }

    /// TallocCore's pool capacity of a pool id (for the memory-limit model).
    func poolCapacity(_ id: Int) -> Int? { contexts[id]?.poolInfo?.capacity }
    func memoryLimit(_ id: Int) -> (max: Int, current: Int)? { contexts[id]?.memoryLimit }

    func perform(_ op: DiffOp) -> OpResult {
        switch op {
        case .new(let id, let p, let n):
            return register(id) { try TallocContext.new(parent: ctx(p), name: DiffNames.table[n]) }
        case .allocate(let id, let p, let size, let n):
            return register(id) { () in
                try TallocContext.allocate(parent: ctx(p), byteCount: size, name: DiffNames.table[n])
            }
        case .allocateAt(let id, let p, let size, let line):
            return register(id) { try TallocContext.allocate(parent: ctx(p), byteCount: size, file: "fake.c", line: UInt(line)) }
        case .newAt(let id, let p, let line):
            return register(id) { try TallocContext.new(parent: ctx(p), file: "fake.c", line: UInt(line)) }
        case .pool(let id, let p, let capacity):
            return register(id) { try TallocContext.pool(parent: ctx(p), capacity: capacity) }
        case .pooledObject(let id, let p, let size, let n, let k, let bytes):
            return register(id) { () in
                try TallocContext.pooledObject(parent: ctx(p), byteCount: size, name: DiffNames.table[n],
                                               subobjects: k, subobjectBytes: bytes)
            }
        case .strdup(let id, let p, let text):
            return register(id) { try TallocContext.strdup(parent: ctx(p), text) }
        case .asprintf(let id, let p, let text):
            return register(id) { () in
                try text.withCString { s in try TallocContext.asprintf(parent: ctx(p), "%s", s) }
            }
        case .reallocNull(let id, let p, let size, let n):
            return register(id) { () in
                try TallocContext.reallocate(nil, parent: ctx(p), byteCount: size, name: .constant(DiffNames.table[n]))
            }
        case .free(let x):
            return attempt { try context(x).free() }
        case .freeChildren(let x):
            context(x).freeChildren()
            return .void
        case .steal(let x, let to), .stealIntoOwnSubtree(let x, let to as Int?):
            return attempt { try context(x).steal(to: ctx(to)) }
        case .reparent(let x, let from, let to):
            return attempt { try context(x).reparent(from: ctx(from), to: ctx(to)) }
        case .reference(let x, let owner):
            return attempt { try context(x).reference(from: ctx(owner)) }
        case .unlink(let x, let from):
            return attempt { try context(x).unlink(from: ctx(from)) }
        case .setLimit(let x, let bytes):
            return attempt { try context(x).setMemoryLimit(bytes) }
        case .realloc(let x, let c, let size, let n):
            do {
                let r = try TallocContext.reallocate(context(x), parent: ctx(c), byteCount: size,
                                                    name: .constant(DiffNames.table[n]))
                if size == 0 { return .void }
                guard let r else { return .failed }
                moved(x, to: r)
                return .ok
            } catch {
                return size == 0 ? .void : .failed
            }
        case .setDestructor(let x, let mode):
            modes[x] = mode
            if mode == .none {
                context(x).setDestructor(nil)
            } else {
                context(x).setDestructor { [unowned self] c in self.destructorCalled(c) }
            }
            return .void
        case .setName(let x, let text):
            return attempt { _ = try context(x).setName(text) }
        case .setNameConst(let x, let n):
            context(x).setNameConst(DiffNames.table[n])
            return .void
        case .append(let x, let kind, let text):
            var c = context(x)
            let r = attempt { () in
                switch kind {
                case .strdupAppend: try c.strdupAppend(text)
                case .strdupAppendBuffer: try c.strdupAppendBuffer(text)
                case .asprintfAppend:
                    try text.withCString { s in try c.asprintfAppend("%s", s) }
                case .asprintfAppendBuffer:
                    try text.withCString { s in try c.asprintfAppendBuffer("%s", s) }
                }
            }
            moved(x, to: c)
            return r
        }
    }

    func forget(_ dead: [Int]) {
        for id in dead {
            if let c = contexts.removeValue(forKey: id), ids[c] == id { ids[c] = nil }
            modes[id] = nil
        }
    }

    func takeDestructorLog() -> [DestructorEvent] {
        defer { log.removeAll(keepingCapacity: true) }
        return log
    }

    private func ref(_ c: TallocContext?) -> NodeRef {
        guard let c else { return .top }
        if let id = ids[c] { return .tracked(id) }
        return .untracked(c.name)
    }

    func observe(_ live: [Int], withReports: Bool) -> Snapshot {
        var objects: [ObjectSnapshot] = []
        var reports: [String] = []
        objects.reserveCapacity(live.count)
        for id in live {
            guard let c = contexts[id] else {
                objects.append(ObjectSnapshot(id: id, name: "<not alive in TallocCore's records>", parent: .top,
                                              children: [], size: -1, totalSize: -1, totalBlocks: -1,
                                              referenceCount: -1, isPoolMemory: false))
                continue
            }
            let parent = ref(c.parent)
            objects.append(ObjectSnapshot(
                id: id, name: c.name, parent: parent, children: c.children.map { ref($0) },
                size: c.size, totalSize: c.totalSize, totalBlocks: c.totalBlocks,
                referenceCount: c.referenceCount, isPoolMemory: c.isPoolMemory))
            if withReports, parent == .top { reports.append(reportText(id, depth: 0, maxDepth: -1)) }
        }
        return Snapshot(objects: objects, reports: reports)
    }

    func reportText(_ id: Int, depth: Int, maxDepth: Int) -> String {
        let c = context(id)
        var text = maxDepth < 0 && depth == 0 ? c.reportFull() : c.report(depth: depth, maxDepth: maxDepth)
        // Limits are TallocCore-only here: their report lines are checked by the limit model instead.
        if text.contains(" is a memlimit context (") {
            text = text.split(separator: "\n", omittingEmptySubsequences: false)
                .filter { !$0.contains(" is a memlimit context (") }.joined(separator: "\n")
        }
        return maskAddresses(text) { bits in
            UnsafeMutableRawPointer(bitPattern: bits).flatMap { self.ids[TallocContext(unsafePointer: $0)] }
        }
    }
}
