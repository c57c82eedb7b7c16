// luatalloc — TallocCore
// SPDX-License-Identifier: MIT
//
// The invariant checker. What must hold between public calls, for a tree and for every pool one of its
// chunks is (or was) carved from:
//
//   links      each child's `prev` is the child before it (nil for the first), its `parent` the chunk
//              whose list it is in; no chunk is reached twice (no loop, no shared chunk)
//   flags      every chunk has the live magic; no free is in progress (LOOP, WALK, the destructor flags,
//              FREEING_CHILD clear, the thread's free registry empty); `underLimit` exactly below a limit
//   limits     each limit's `current` is the summed charge (`chargeOf`) of its subtree, with the pinned
//              pools the limits in it carry (a freed pool's block that stolen members keep alive)
//   pools      the records from the pool's start to its `end` are all valid (`_PoolWalk.record`), and
//              `objectCount` is the live members among them plus one for the pool while it lives; every
//              member lies inside [start, end) of the pool it names
//   side       a reference handle is in its target's list and points back at it; a name copy the chunk
//   records    owns is its name; no observer data without an observer; a limit's numbers only with a limit
//
// `violations(ofTree:)` checks a tree on request (the tests corrupt trees on purpose and call it). Built
// with `-DTALLOC_INTERNAL_CHECKS` (see Package.swift), every public mutation also checks the trees and
// pools it touched when it ends (`_Mutation`), and traps with the list on the first violation; a
// registry of live chunks and pool blocks tells which of them survived. Without the flag `_Mutation` and
// the registry hooks are empty and inline: they compile to nothing.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

@usableFromInline
enum _Invariants {
    /// What is wrong with the tree under `root` (its own place among its siblings is not checked) and
    /// with every pool one of its chunks is or was carved from, nested pools included; empty when
    /// nothing is.
    static func violations(ofTree root: _Chunk) -> [String] {
        var check = _InvariantCheck()
        check.tree(root)
        check.poolsFound()
        return check.violations
    }

    /// What is wrong with `pool` (a pool's chunk, alive or freed but pinned) and the pools nested in it.
    static func violations(ofPool pool: _Chunk) -> [String] {
        var check = _InvariantCheck()
        check.pools.append(pool)
        check.poolsFound()
        return check.violations
    }

    /// The top-level ancestor of `c` (itself at top level); nil when the parent chain loops.
    static func root(of c: _Chunk) -> _Chunk? {
        var x = c
        var seen: Set<_Chunk> = [c]
        while let p = x.pointee.parent {
            if !seen.insert(p).inserted { return nil }
            x = p
        }
        return x
    }
}

/// One run of the checks, collecting what it finds.
struct _InvariantCheck {
    var violations: [String] = []
    /// Pools met so far, to be checked by `poolsFound` (each once).
    var pools: [_Chunk] = []
    private var poolsSeen: Set<_Chunk> = []

    mutating func fail(_ c: _Chunk, _ what: String) {
        violations.append("\(_Walk.pointerText(c.body)): \(what)")
    }

    static func isLive(_ c: _Chunk) -> Bool { c.pointee.flags & (_Flag.free | _Flag.magicMask) == _magic }
    static func isFreed(_ c: _Chunk) -> Bool { c.pointee.flags & (_Flag.free | _Flag.magicMask) == _magicFree | _Flag.free }

    mutating func notePool(_ p: _Chunk) {
        if poolsSeen.insert(p).inserted { pools.append(p) }
    }

    // MARK: - Trees

    /// Checks `root`'s subtree, iteratively, reading each chunk once.
    mutating func tree(_ root: _Chunk) {
        let before = violations.count
        var seen: Set<_Chunk> = []
        var limitOwners: [_Chunk] = []
        var stack: [(chunk: _Chunk, parent: _Chunk?)] = [(root, root.pointee.parent)]
        while let (c, p) = stack.popLast() {
            guard _InvariantCheck.isLive(c) else {
                fail(c, "in a child list without the live magic (flags \(String(c.pointee.flags, radix: 16)))")
                continue
            }
            if c.pointee.parent != p {
                fail(c, "parent is \(describe(c.pointee.parent)), but it is in the child list of \(describe(p))")
            }
            flags(c, parent: p)
            sideRecord(c)
            poolMembership(c)
            if c.pointee.flags & _Flag.hasLimit != 0 { limitOwners.append(c) }
            var previous: _Chunk? = nil
            var next = c.pointee.child
            while let k = next {
                if !seen.insert(k).inserted {
                    fail(k, "reached twice (a loop in the child lists of \(describe(c)), or a chunk in two lists)")
                    break
                }
                guard _InvariantCheck.isLive(k) else {
                    fail(k, "in the child list of \(describe(c)) without the live magic")
                    break
                }
                if k.pointee.prev != previous {
                    fail(k, "prev is \(describe(k.pointee.prev)), but it follows \(describe(previous))")
                }
                stack.append((k, c))
                previous = k
                next = k.pointee.next
            }
        }
        // The limits' sums walk the links again: only when they are sound.
        guard violations.count == before else { return }
        for owner in limitOwners {
            guard let e = owner.pointee.extra else { continue }
            let charge = subtreeCharge(owner)
            if e.pointee.limitCurrent != charge {
                fail(owner, "its memory limit counts \(e.pointee.limitCurrent) bytes, its subtree takes \(charge)")
            }
        }
    }

    /// The summed `chargeOf` of `root`'s subtree, with the pinned pools its limits carry, read-only (the
    /// links are sound).
    func subtreeCharge(_ root: _Chunk) -> Int {
        var total = 0
        var stack: [_Chunk] = [root]
        while let c = stack.popLast() {
            total += _Core.chargeOf(c)
            if c.pointee.flags & _Flag.hasLimit != 0 { total += _Core.pinnedCharge(c) }
            var k = c.pointee.child
            while let x = k { stack.append(x); k = x.pointee.next }
        }
        return total
    }

    mutating func flags(_ c: _Chunk, parent p: _Chunk?) {
        let f = c.pointee.flags
        let transient: [(UInt32, String)] = [
            (_Flag.loop, "LOOP"), (_Flag.walk, "WALK"), (_Flag.inDestructor, "IN_DESTRUCTOR"),
            (_Flag.destructorReplaced, "DESTRUCTOR_REPLACED"), (_Flag.freeingChild, "FREEING_CHILD"),
            (_Flag.childrenBusy, "CHILDREN_BUSY"),
        ]
        for (bit, name) in transient where f & bit != 0 { fail(c, "\(name) is set, but no free is in progress") }
        let governed = p.map { $0.pointee.flags & (_Flag.hasLimit | _Flag.underLimit) != 0 } ?? false
        if (f & _Flag.underLimit != 0) != governed {
            fail(c, governed ? "a limit governs its parent, but UNDER_LIMIT is clear" : "UNDER_LIMIT is set, but no limit governs its parent")
        }
        if f & _Flag.hasLimit != 0 && c.pointee.extra == nil { fail(c, "owns a limit without a side record") }
        if f & _Flag.nameHasNewPrefix != 0 && f & _Flag.nameIsLocation == 0 { fail(c, "a talloc_new prefix on a name that is not a location") }
        if f & _Flag.nameIsLocation != 0 && c.pointee.name == nil { fail(c, "a location name without a file") }
        if f & _Flag.external != 0 && f & (_Flag.pool | _Flag.poolMem) != 0 { fail(c, "external and in a pool") }
        if f & _Flag.external == 0 && Int(c.pointee.size) >= _maxSize { fail(c, "size \(c.pointee.size) is not below MAX_TALLOC_SIZE") }
        if f & _Flag.reference != 0 {
            let target = c.referenceBody.pointee.target
            if !_InvariantCheck.isLive(target) {
                fail(c, "a reference to \(describe(target)), which is not alive")
            } else if !handles(of: target).contains(c) {
                fail(c, "a reference to \(describe(target)), but not in its list of references")
            }
        }
    }

    /// The reference handles in `target`'s list, as far as the list is sound.
    func handles(of target: _Chunk) -> [_Chunk] {
        var out: [_Chunk] = []
        var h = target.pointee.extra?.pointee.refs
        while let x = h, _InvariantCheck.isLive(x), x.isReference, !out.contains(x) {
            out.append(x)
            h = x.referenceBody.pointee.next
        }
        return out
    }

    mutating func sideRecord(_ c: _Chunk) {
        guard let e = c.pointee.extra else { return }
        let x = e.pointee
        var previous: _Chunk? = nil
        var h = x.refs
        var seen: Set<_Chunk> = []
        while let r = h {
            guard seen.insert(r).inserted else { fail(c, "its list of references loops"); break }
            guard _InvariantCheck.isLive(r), r.isReference else { fail(c, "its list of references holds \(describe(r)), not a live reference"); break }
            let b = r.referenceBody.pointee
            if b.target != c { fail(r, "in the references of \(describe(c)), but it references \(describe(b.target))") }
            if b.prev != previous { fail(r, "its prev reference is \(describe(b.prev)), but it follows \(describe(previous))") }
            previous = r
            h = b.next
        }
        if let copy = x.ownedName, c.pointee.name != UnsafeRawPointer(copy) || c.pointee.flags & _Flag.nameIsLocation != 0 {
            fail(c, "owns a name copy that is not its name")
        }
        if x.observer == nil && x.observerData != nil { fail(c, "observer data without an observer") }
        if c.pointee.flags & _Flag.hasLimit == 0 {
            if x.limitMax != 0 || x.limitCurrent != 0 { fail(c, "limit numbers without a limit") }
        } else if x.limitMax < 0 || x.limitCurrent < 0 {
            fail(c, "a negative limit (max \(x.limitMax), current \(x.limitCurrent))")
        }
    }

    /// A pool member lies inside its pool's carved space; pools are noted for `poolsFound`.
    mutating func poolMembership(_ c: _Chunk) {
        let f = c.pointee.flags
        if f & _Flag.pool != 0 { notePool(c) }
        guard f & _Flag.poolMem != 0 else { return }
        let offset = Int(c.pointee.poolOffset)
        guard offset >= _headerSize, offset & 15 == 0 else {
            fail(c, "pool memory at offset \(offset) from its pool")
            return
        }
        let pool = c.carvingPool
        let pf = pool.pointee.flags
        guard pf & _Flag.pool != 0, _InvariantCheck.isLive(pool) || _InvariantCheck.isFreed(pool),
              pool.poolHeader.pointee.mark == _poolMark
        else {
            fail(c, "carved from \(describe(pool)), which is not a pool")
            return
        }
        let hdr = pool.poolHeader
        let lower = f & _Flag.pool != 0 ? offset - _poolPrefixSize : offset
        let upper = f & _Flag.pool != 0 ? lower + _span(_poolPrefixSize + Int(c.poolHeader.pointee.poolSize)) : offset + c.span
        if lower < hdr.start || upper > hdr.end {
            fail(c, "takes [\(lower), \(upper)) of its pool, outside its carved space [\(hdr.start), \(hdr.end))")
        }
        notePool(pool)
    }

    // MARK: - Pools

    /// Checks every pool noted so far, and the pools nested in them.
    mutating func poolsFound() {
        var i = 0
        while i < pools.count {
            pool(pools[i])
            i += 1
        }
    }

    mutating func pool(_ p: _Chunk) {
        let alive = _InvariantCheck.isLive(p)
        guard p.pointee.flags & _Flag.pool != 0, alive || _InvariantCheck.isFreed(p) else {
            fail(p, "not a pool")
            return
        }
        let hdr = p.poolHeader
        if hdr.pointee.mark != _poolMark { fail(p, "its pool header has no mark"); return }
        let start = hdr.start, end = hdr.end, limit = hdr.limit
        guard start <= end, end <= limit, end & 15 == 0 else {
            fail(p, "its carved space [\(start), \(end)) does not fit its block of \(limit) bytes")
            return
        }
        var members = 0
        var pos = start
        while pos < end {
            guard let record = _PoolWalk.record(in: p, at: pos, end: end) else {
                fail(p, "no valid record at offset \(pos) of its carved space [\(start), \(end))")
                return
            }
            if case .member(let m, _, _) = record {
                if _InvariantCheck.isLive(m) {
                    members += 1
                    if m.isPool { notePool(m) }
                } else if m.isPool && m.poolHeader.pointee.objectCount > 0 {
                    members += 1  // a nested pool, freed but pinned by its own members
                    notePool(m)
                }
            }
            pos += record.span
        }
        let expected = members + (alive ? 1 : 0)
        let count = Int(hdr.pointee.objectCount)
        if count != expected {
            fail(p, "its object count is \(count), but it holds \(members) live members\(alive ? " and itself" : "")")
        }
        if !alive && count == 0 { fail(p, "freed, with no members, but still allocated") }
    }

    func describe(_ c: _Chunk?) -> String {
        guard let c else { return "nil" }
        guard _InvariantCheck.isLive(c) else { return _Walk.pointerText(c.body) }
        return "'\(_Walk.name(c))' \(_Walk.pointerText(c.body))"
    }
}

// MARK: - After every public mutation (TALLOC_INTERNAL_CHECKS)

/// One public mutation, for the invariant checker. With TALLOC_INTERNAL_CHECKS, it notes the contexts
/// the call is about (and their parents and pools) when it starts; when the outermost mutation on the
/// thread ends, the trees of those still alive, and the pools still allocated, are checked, and a
/// violation traps with the list. Without the flag it is empty and every method inlines to nothing: the
/// arguments are autoclosures, never evaluated (inlinable, for the fast paths that callers inline).
///
///     var mutation = _Mutation(self, newParent)
///     defer { mutation.end() }
@usableFromInline
struct _Mutation {
    #if TALLOC_INTERNAL_CHECKS
    @usableFromInline var record: _MutationRecord
    #endif

    @inlinable @inline(__always)
    init(
        _ a: @autoclosure () -> TallocContext?, _ b: @autoclosure () -> TallocContext? = nil,
        _ c: @autoclosure () -> TallocContext? = nil, operation: StaticString = #function
    ) {
        #if TALLOC_INTERNAL_CHECKS
        record = _MutationRecord(operation, a(), b(), c())
        #endif
    }

    /// Adds a context the mutation made.
    @inlinable @inline(__always)
    mutating func add(_ c: @autoclosure () -> TallocContext?) {
        #if TALLOC_INTERNAL_CHECKS
        record.note(c())
        #endif
    }

    @inlinable @inline(__always)
    func end() {
        #if TALLOC_INTERNAL_CHECKS
        record.end()
        #endif
    }
}

#if TALLOC_INTERNAL_CHECKS
/// What `_Mutation` keeps with the flag on.
@usableFromInline
struct _MutationRecord {
    let operation: StaticString
    var chunks: [_Chunk] = []
    var pools: [_Chunk] = []

    @usableFromInline
    init(_ operation: StaticString, _ a: TallocContext?, _ b: TallocContext?, _ c: TallocContext?) {
        self.operation = operation
        _LiveChunks.enter()
        note(a)
        note(b)
        note(c)
    }

    @usableFromInline
    mutating func note(_ context: TallocContext?) {
        guard let context else { return }
        let c = _Chunk.from(body: context.unsafePointer)
        guard _LiveChunks.isLive(c) else { return }
        chunks.append(c)
        if let p = c.pointee.parent { chunks.append(p) }
        if c.isPool { pools.append(c) } else if c.isPoolMem { pools.append(c.carvingPool) }
    }

    @usableFromInline
    func end() {
        guard _LiveChunks.leave() else { return }
        var roots: [_Chunk] = []
        var check = _InvariantCheck()
        for c in chunks where _LiveChunks.isLive(c) {
            guard let r = _Invariants.root(of: c) else {
                check.fail(c, "its parent chain loops")
                continue
            }
            if !roots.contains(r) { roots.append(r) }
        }
        for r in roots { check.tree(r) }
        for p in pools where _LiveChunks.isPoolBlock(p) { check.notePool(p) }
        check.poolsFound()
        if let state = _ThreadState.existing, !state.pointee.freeRoots.isEmpty {
            check.violations.append("the thread's free registry holds \(state.pointee.freeRoots.count) roots")
        }
        if !check.violations.isEmpty {
            _Core.abort("TallocCore invariants broken after \(operation):\n  " + check.violations.joined(separator: "\n  "))
        }
    }
}
#endif

#if TALLOC_INTERNAL_CHECKS
/// Which chunk headers are live and which pool blocks are allocated, process-wide (a tree may change
/// threads), and how deep the calling thread is in public mutations.
@usableFromInline
enum _LiveChunks {
    private static let lock = _Lock()
    nonisolated(unsafe) private static var chunks: Set<_Chunk> = []  // guarded: lock
    nonisolated(unsafe) private static var poolBlocks: Set<_Chunk> = []  // guarded: lock

    @usableFromInline
    static func born(_ c: _Chunk) { _ = lock.withLock { chunks.insert(c) } }
    static func died(_ c: _Chunk) { _ = lock.withLock { chunks.remove(c) } }
    static func isLive(_ c: _Chunk) -> Bool { lock.withLock { chunks.contains(c) } }
    static func poolBorn(_ p: _Chunk) { _ = lock.withLock { poolBlocks.insert(p) } }
    static func poolGone(_ p: _Chunk) { _ = lock.withLock { poolBlocks.remove(p) } }
    static func isPoolBlock(_ p: _Chunk) -> Bool { lock.withLock { poolBlocks.contains(p) } }

    static func enter() { _ThreadState.current?.pointee.mutationDepth += 1 }

    /// True when the outermost mutation ended.
    static func leave() -> Bool {
        guard let s = _ThreadState.existing else { return false }
        s.pointee.mutationDepth -= 1
        return s.pointee.mutationDepth == 0
    }
}
#endif

extension _Invariants {
    /// A chunk header became live (allocated, or moved by a realloc to here).
    @inlinable @inline(__always)
    static func born(_ c: _Chunk) {
        #if TALLOC_INTERNAL_CHECKS
        _LiveChunks.born(c)
        #endif
    }

    /// A chunk header stopped being live (stamped freed, or moved away by a realloc).
    @inline(__always)
    static func died(_ c: _Chunk) {
        #if TALLOC_INTERNAL_CHECKS
        _LiveChunks.died(c)
        #endif
    }

    /// A pool's block was allocated.
    @inline(__always)
    static func poolBorn(_ p: _Chunk) {
        #if TALLOC_INTERNAL_CHECKS
        _LiveChunks.poolBorn(p)
        #endif
    }

    /// A pool's block went back (to malloc, or to its outer pool).
    @inline(__always)
    static func poolGone(_ p: _Chunk) {
        #if TALLOC_INTERNAL_CHECKS
        _LiveChunks.poolGone(p)
        #endif
    }
}
