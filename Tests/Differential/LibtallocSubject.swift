// luatalloc — the differential harness (TallocCore against Debian's libtalloc 2.4.0)
// SPDX-License-Identifier: MIT
//
// The oracle: the real libtalloc behind `DifferentialSubject`.
//
// Null tracking is on while a sequence runs, so every live chunk hangs somewhere under talloc's
// null_context (detached loops are never generated). After each operation the oracle walks the whole
// tree from null_context and keeps exactly the ids it reaches: that is how we know what died without
// ever reading freed memory. With null tracking, "top level" means "child of null_context"; talloc's
// steal/free/unlink behave the same as without it for every case we generate (§1.3-1.4: NULL means
// null_context). The walk reads talloc's chunk header directly (test-only, checked by
// `ctalloc_layout_is_sane`).

import CTalloc
import TallocCore

#if canImport(Glibc)
import Glibc
#endif

/// The destructor hook and the log hook are C function pointers: they find the active oracle here.
/// The differential suite is serialized (and the fuzzer single-threaded), so one oracle is active at a time.
nonisolated(unsafe) var activeOracles: [CTallocSubject] = []
nonisolated(unsafe) var capturedTallocLog: [String] = []

/// What libtalloc's freeing destructors (`DestructorMode.freeChild`, `.freeOther`) did, for TallocCore to
/// replay: the oracle runs every operation first and decides, by safe reads of its live lists, which chunk
/// a destructor frees; TallocCore's destructor then frees the same id (after checking that it may).
final class DestructorReplay {
    struct Decision { var id: Int; var freed: Int? }
    var decisions: [Decision] = []
    var index = 0
    var mismatches: [String] = []
}

final class CTallocSubject: DifferentialSubject {
    private var pointers: [Int: UnsafeMutableRawPointer] = [:]
    private var ids: [UnsafeMutableRawPointer: Int] = [:]
    private var modes: [Int: DestructorMode] = [:]
    private var log: [DestructorEvent] = []
    private(set) var liveIDs: Set<Int> = []
    let nullContext: UnsafeMutableRawPointer

    let label: String
    private let primary: Bool
    private let replay: DestructorReplay?

    /// Turns null tracking on and installs the hooks. Call `shutdown()` when done. A second, non-primary
    /// instance may share the library (the harness self-test runs libtalloc against itself).
    init(primary: Bool = true, replay: DestructorReplay? = nil) {
        self.primary = primary
        self.replay = replay
        label = primary ? "libtalloc" : "libtalloc (second instance)"
        if primary {
            talloc_enable_null_tracking_no_autofree()
            ctalloc_set_destructor_hook { ptr in
                guard let ptr else { return 0 }
                for oracle in activeOracles where oracle.ids[ptr] != nil { return oracle.destructorCalled(ptr) }
                return activeOracles.first?.destructorCalled(ptr) ?? 0
            }
            ctalloc_set_log_hook { message in
                if let message { capturedTallocLog.append(String(cString: message)) }
            }
        }
        let probe = ctalloc_named_const(nil, 0, "probe")!
        nullContext = talloc_parent(probe)!
        _ = ctalloc_free(probe)
        activeOracles.append(self)
    }

    func shutdown() {
        activeOracles.removeAll { $0 === self }
        if primary {
            ctalloc_set_destructor_hook(nil)
            ctalloc_set_log_hook(nil)
            talloc_disable_null_tracking()
        }
    }

    private func destructorCalled(_ ptr: UnsafeMutableRawPointer) -> Int32 {
        guard let id = ids[ptr] else {
            log.append(DestructorEvent(id: -1, refused: false))
            return 0
        }
        // Freeing destructors: decided here, on the oracle (which runs first), and replayed by
        // TallocCoreSubject. Only safe reads: pointer comparisons along live lists.
        switch modes[id] {
        case .freeChild?:
            var c = ctalloc_first_child(ptr)
            while let ch = c, ctalloc_is_reference_handle(ch) != 0 { c = ctalloc_next_sibling(ch) }
            var freed: Int? = nil
            if let ch = c, let cid = ids[ch], ctalloc_first_child(ch) == nil, ctalloc_has_destructor(ch) == 0,
               ctalloc_newest_handle(ch) == nil {
                freed = cid
                _ = ctalloc_free(ch)
            }
            replay?.decisions.append(.init(id: id, freed: freed))
        case .freeOther(let t)?:
            var freed: Int? = nil
            if let tp = pointers[t] {
                var c = ctalloc_first_child(nullContext)
                while let ch = c, ch != tp { c = ctalloc_next_sibling(ch) }
                if let ch = c, ctalloc_is_reference_handle(ch) == 0, ctalloc_first_child(ch) == nil,
                   ctalloc_has_destructor(ch) == 0, ctalloc_newest_handle(ch) == nil {
                    freed = t
                    _ = ctalloc_free(ch)
                }
            }
            replay?.decisions.append(.init(id: id, freed: freed))
        default: break
        }
        let refuse = modes[id] == .refuse
        log.append(DestructorEvent(id: id, refused: refuse))
        return refuse ? -1 : 0
    }

    // MARK: queries for the generator (the oracle's state is the truth)

    func pointer(_ id: Int) -> UnsafeMutableRawPointer { pointers[id]! }
    func pointerIfLive(_ id: Int?) -> UnsafeMutableRawPointer? { id.flatMap { pointers[$0] } }
    func id(of ptr: UnsafeRawPointer?) -> Int? { ptr.flatMap { ids[UnsafeMutableRawPointer(mutating: $0)] } }

    /// The parent's id, nil for top level (a child of null_context).
    func parentID(_ id: Int) -> Int? {
        guard let p = talloc_parent(pointer(id)), p != nullContext else { return nil }
        return ids[p]
    }

    func parentRef(_ ptr: UnsafeMutableRawPointer) -> NodeRef {
        guard let p = talloc_parent(ptr), p != nullContext else { return .top }
        if let id = ids[p] { return .tracked(id) }
        return .untracked(String(cString: talloc_get_name(p)))
    }

    /// The owners of x's reference handles, newest first; nil = owned by the NULL context.
    func referenceOwners(_ id: Int) -> [Int?] {
        var out: [Int?] = []
        var h = ctalloc_newest_handle(pointer(id))
        while let handle = h {
            if let o = talloc_parent(handle), o != nullContext {
                out.append(ids[o] ?? -1)
            } else {
                out.append(nil)
            }
            h = ctalloc_next_handle(handle)
        }
        return out
    }

    /// `a == b` or a is an ancestor of b.
    func isAncestor(_ a: Int, of b: Int) -> Bool { talloc_is_parent(pointer(b), pointer(a)) == 1 }

    func isPoolMemory(_ id: Int) -> Bool { ctalloc_is_pool_memory(pointer(id)) != 0 }
    func size(_ id: Int) -> Int { talloc_get_size(pointer(id)) }
    func isFirstSibling(_ id: Int) -> Bool { ctalloc_is_first_sibling(pointer(id)) != 0 }

    /// Tracked ids in x's subtree (x included), following child links only.
    func subtree(_ id: Int) -> [Int] {
        var out: [Int] = []
        var stack = [pointer(id)]
        while let p = stack.popLast() {
            if let i = ids[p] { out.append(i) }
            var c = ctalloc_first_child(p)
            while let child = c {
                if ctalloc_is_reference_handle(child) == 0 { stack.append(child) }
                c = ctalloc_next_sibling(child)
            }
        }
        return out
    }

    /// Moves x to the head of its parent's child list (talloc_steal to the current parent does that for
    /// a non-head child). Used to turn talloc's §8.4 behaviour into the documented one.
    func moveToHead(_ id: Int) {
        let p = talloc_parent(pointer(id))
        _ = ctalloc_steal(p, pointer(id))
    }

    /// Sets x's name to NULL ("UNNAMED"), as a failed talloc_set_name leaves it.
    func clearName(_ id: Int) { talloc_set_name_const(pointer(id), nil) }

    /// The model of what TallocCore charges a limit owned by `id`: every chunk of the subtree (reference
    /// handles and `.name` blocks included) as libtalloc holds it, at TallocCore's prices — a heap chunk
    /// `64 + size`, a pool `16 + 64 + capacity` (TallocCore's capacity, from `poolCapacity`), pool memory 0.
    func modelCharge(_ id: Int, poolCapacity: (Int) -> Int?) -> Int {
        var total = 0
        var stack = [pointer(id)]
        while let p = stack.popLast() {
            let f = ctalloc_flags(p)
            if f & CTALLOC_FLAG_POOLMEM != 0 {
                total += 0
            } else if f & CTALLOC_FLAG_POOL != 0 {
                total += Talloc.poolHeaderSize + Talloc.chunkHeaderSize
                    + (ids[p].flatMap(poolCapacity) ?? ctalloc_pool_size(p))
            } else {
                total += Talloc.chunkHeaderSize + talloc_get_size(p)
            }
            var c = ctalloc_first_child(p)
            while let child = c {
                stack.append(child)
                c = ctalloc_next_sibling(child)
            }
        }
        return total
    }

    /// The pools that some live chunk was carved from, and the pools those were carved from: every chunk
    /// under null_context, reference handles and `.name` blocks included (a handle carved from a pool and
    /// moved out pins it as well).
    func poolsHeldByLiveChunks() -> Set<UnsafeMutableRawPointer> {
        var held = Set<UnsafeMutableRawPointer>()
        var stack = [nullContext]
        while let p = stack.popLast() {
            var c = ctalloc_first_child(p)
            while let child = c {
                // A freed nested pool kept by a member keeps its outer pool too (its block is carved there).
                var member = child
                while let pool = ctalloc_pool_of(member), held.insert(pool).inserted { member = pool }
                stack.append(child)
                c = ctalloc_next_sibling(child)
            }
        }
        return held
    }

    /// Frees whatever is left under null_context (untracked chunks), for the end of a run.
    func freeRemaining() {
        while let c = ctalloc_first_child(nullContext) { _ = ctalloc_free(c) }
        refreshLiveness()
    }

    // MARK: DifferentialSubject

    private func register(_ id: Int, _ ptr: UnsafeMutableRawPointer?) -> OpResult {
        guard let ptr else { return .failed }
        pointers[id] = ptr
        ids[ptr] = id
        modes[id] = DestructorMode.none
        return .ok
    }

    private func moved(_ id: Int, to ptr: UnsafeMutableRawPointer) {
        let old = pointers[id]!
        if old != ptr {
            ids[old] = nil
            pointers[id] = ptr
            ids[ptr] = id
        }
    }

    /// "fake.c:LINE" and "talloc_new: fake.c:LINE" as static C strings (talloc keeps the pointer).
    nonisolated(unsafe) private static var locationNames: [String: UnsafePointer<CChar>] = [:]
    private func locationName(_ line: Int, new: Bool) -> UnsafePointer<CChar> {
        let text = (new ? "talloc_new: " : "") + "fake.c:\(line)"
        if let p = Self.locationNames[text] { return p }
        let p = UnsafePointer(strdup(text)!)
        Self.locationNames[text] = p
        return p
    }

    private func name(_ i: Int) -> UnsafePointer<CChar> {
        UnsafeRawPointer(DiffNames.table[i].utf8Start).assumingMemoryBound(to: CChar.self)
    }

    func perform(_ op: DiffOp) -> OpResult {
        let result = run(op)
        refreshLiveness()
        return result
    }

    private func run(_ op: DiffOp) -> OpResult {
        switch op {
        case .new(let id, let p, let n):
            return register(id, ctalloc_named_const(pointerIfLive(p), 0, name(n)))
        case .allocate(let id, let p, let size, let n):
            return register(id, ctalloc_named_const(pointerIfLive(p), size, name(n)))
        case .allocateAt(let id, let p, let size, let line):
            return register(id, ctalloc_named_const(pointerIfLive(p), size, locationName(line, new: false)))
        case .newAt(let id, let p, let line):
            return register(id, ctalloc_named_const(pointerIfLive(p), 0, locationName(line, new: true)))
        case .pool(let id, let p, let capacity):
            return register(id, ctalloc_pool(pointerIfLive(p), capacity))
        case .pooledObject(let id, let p, let size, let n, let k, let bytes):
            return register(id, ctalloc_pooled_object(pointerIfLive(p), size, name(n), UInt32(k), bytes))
        case .strdup(let id, let p, let text):
            return register(id, text.withCString { ctalloc_strdup(pointerIfLive(p), $0) })
        case .asprintf(let id, let p, let text):
            return register(id, text.withCString { ctalloc_asprintf(pointerIfLive(p), $0) })
        case .reallocNull(let id, let p, let size, let n):
            return register(id, ctalloc_realloc(pointerIfLive(p), nil, size, name(n)))
        case .free(let x):
            return ctalloc_free(pointer(x)) == 0 ? .ok : .failed
        case .freeChildren(let x):
            talloc_free_children(pointer(x))
            return .void
        case .steal(let x, let to):
            // NULL spelled null_context, as in reparent: talloc_steal's "with references" warning compares
            // talloc_parent(p) (null_context for top level) with new_ctx literally.
            return ctalloc_steal(pointerIfLive(to) ?? nullContext, pointer(x)) != nil ? .ok : .failed
        case .reparent(let x, let from, let to):
            // With null tracking on, "no parent" is the null_context: talloc_reparent compares old_parent
            // with talloc_parent(p) literally, so NULL must be spelled null_context here.
            let old = pointerIfLive(from) ?? nullContext
            return talloc_reparent(old, pointerIfLive(to), pointer(x)) != nil ? .ok : .failed
        case .reference(let x, let owner):
            return ctalloc_reference(pointerIfLive(owner), pointer(x)) != nil ? .ok : .failed
        case .unlink(let x, let from):
            return talloc_unlink(pointerIfLive(from), pointer(x)) == 0 ? .ok : .failed
        case .realloc(let x, let ctx, let size, let n):
            let r = ctalloc_realloc(pointerIfLive(ctx), pointer(x), size, name(n))
            if size == 0 { return .void }
            guard let r else { return .failed }
            moved(x, to: r)
            return .ok
        case .setDestructor(let x, let mode):
            modes[x] = mode
            ctalloc_set_destructor(pointer(x), mode == .none ? 0 : 1)
            return .void
        case .setName(let x, let text):
            return text.withCString { ctalloc_set_name(pointer(x), $0) } != nil ? .ok : .failed
        case .setNameConst(let x, let n):
            talloc_set_name_const(pointer(x), name(n))
            return .void
        case .append(let x, let kind, let text):
            let s = pointer(x).assumingMemoryBound(to: CChar.self)
            let r: UnsafeMutablePointer<CChar>? = text.withCString { a in
                switch kind {
                case .strdupAppend: ctalloc_strdup_append(s, a)
                case .strdupAppendBuffer: ctalloc_strdup_append_buffer(s, a)
                case .asprintfAppend: ctalloc_asprintf_append(s, a)
                case .asprintfAppendBuffer: ctalloc_asprintf_append_buffer(s, a)
                }
            }
            guard let r else { return .failed }
            moved(x, to: UnsafeMutableRawPointer(r))
            return .ok
        case .stealIntoOwnSubtree:
            return .failed  // never run on libtalloc (it would build a detached loop)
        case .setLimit:
            return .void  // never run on libtalloc (its memlimit is buggy, SEMANTICS §2.8)
        }
    }

    /// Walks everything under null_context; the tracked ids not reached are dead.
    private func refreshLiveness() {
        var reached: Set<Int> = []
        var stack = [nullContext]
        while let p = stack.popLast() {
            var c = ctalloc_first_child(p)
            while let child = c {
                if ctalloc_is_reference_handle(child) == 0 {
                    if let id = ids[child] { reached.insert(id) }
                    stack.append(child)
                }
                c = ctalloc_next_sibling(child)
            }
        }
        for (id, ptr) in pointers where !reached.contains(id) {
            pointers[id] = nil
            if ids[ptr] == id { ids[ptr] = nil }
            modes[id] = nil
        }
        liveIDs = reached
    }

    func forget(_ dead: [Int]) {}

    func takeDestructorLog() -> [DestructorEvent] {
        defer { log.removeAll(keepingCapacity: true) }
        return log
    }

    func observe(_ live: [Int], withReports: Bool) -> Snapshot {
        var objects: [ObjectSnapshot] = []
        var reports: [String] = []
        objects.reserveCapacity(live.count)
        for id in live {
            let p = pointer(id)
            var children: [NodeRef] = []
            var c = ctalloc_first_child(p)
            while let child = c {
                if ctalloc_is_reference_handle(child) == 0 {
                    if let cid = ids[child] {
                        children.append(.tracked(cid))
                    } else {
                        children.append(.untracked(String(cString: talloc_get_name(child))))
                    }
                }
                c = ctalloc_next_sibling(child)
            }
            let parent = parentRef(p)
            objects.append(ObjectSnapshot(
                id: id, name: String(cString: talloc_get_name(p)), parent: parent, children: children,
                size: talloc_get_size(p), totalSize: talloc_total_size(p), totalBlocks: talloc_total_blocks(p),
                referenceCount: talloc_reference_count(p), isPoolMemory: ctalloc_is_pool_memory(p) != 0))
            if withReports, parent == .top { reports.append(reportText(id, depth: 0, maxDepth: -1)) }
        }
        return Snapshot(objects: objects, reports: reports)
    }

    func reportText(_ id: Int, depth: Int, maxDepth: Int) -> String {
        guard let raw = ctalloc_report_depth_string(pointer(id), Int32(depth), Int32(maxDepth)) else { return "" }
        defer { ctalloc_free_cstring(raw) }
        return maskAddresses(String(cString: raw)) { self.ids[UnsafeMutableRawPointer(bitPattern: $0)!] }
    }
}
