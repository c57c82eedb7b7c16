// luatalloc — TallocCore
// SPDX-License-Identifier: MIT
//
// The free protocol (talloc's _tc_free_internal), iteratively, and the registry of frees in
// progress that keeps a destructor from pulling the ground from under a free.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension _Core {
    enum Entry { case proceed, alreadyFreeing, refused, refusedByReference(_Chunk?) }

    /// The first half of _tc_free_internal for one chunk: references, the loop guard, the destructor,
    /// then unlinking. `.proceed` leaves the chunk unlinked with LOOP set and `parent` kept as the way
    /// back up (and, for the chunk a free started from, as the home of refusing children).
    static func enter(_ tc: _Chunk) -> Entry {
        if tc.refs != nil, let verdict = dropReferences(tc) { return verdict }
        let flags = tc.pointee.flags
        if flags & _Flag.loop != 0 { return .alreadyFreeing }
        if flags & (_Flag.inDestructor | _Flag.childrenBusy) != 0 { return .refused }
        if let e = tc.pointee.extra {
            if e.pointee.hasDestructor {
                if runDestructor(tc, e) == .refuse { return .refused }
                // References the destructor gave its own chunk decide as those made before it ran (talloc
                // would free the chunk under them). Its destructor is not run again.
                if tc.refs != nil, let verdict = dropReferences(tc) { return verdict }
            }
            if let e2 = tc.pointee.extra, let obs = e2.pointee.observer {
                e2.notify(obs, .freeing, body: tc.body)
            }
        }
        unlinkFromSiblings(tc)
        tc.pointee.flags |= _Flag.loop
        return .proceed
    }

    /// The reference rule of a free: a reference from inside tc's own subtree is dropped and the free goes
    /// on (talloc's is_child case); any other reference keeps tc alive, owned by that referrer.
    static func dropReferences(_ tc: _Chunk) -> Entry? {
        while let h = tc.refs {
            let owner = owner(ofHandle: h)
            let fromInside = owner.map { isAncestorOrSelf(tc, of: $0) } ?? false
            _ = free(h)
            if !fromInside { return .refusedByReference(owner) }
        }
        return nil
    }

    static func runDestructor(_ tc: _Chunk, _ e: UnsafeMutablePointer<_Extra>) -> TallocDestructorVerdict {
        let swiftBox = e.pointee.swiftDestructor
        let cFn = e.pointee.cDestructor
        let cCtx = e.pointee.cDestructorContext
        e.pointee.cDestructor = nil
        e.pointee.destructorData = nil
        tc.pointee.flags = (tc.pointee.flags | _Flag.inDestructor) & ~_Flag.destructorReplaced
        let verdict: TallocDestructorVerdict
        if let swiftBox {
            let box = Unmanaged<_DestructorBox>.fromOpaque(swiftBox).takeUnretainedValue()
            verdict = box.body(TallocContext(tc.body))
        } else {
            verdict = cFn!(tc.body, cCtx) == -1 ? .refuse : .allow
        }
        let replaced = tc.pointee.flags & _Flag.destructorReplaced != 0
        tc.pointee.flags &= ~(_Flag.inDestructor | _Flag.destructorReplaced)
        if verdict == .refuse && !replaced {
            // Only put the old destructor back if the callback did not install another one.
            let e2 = tc.pointee.extra!
            e2.pointee.cDestructor = cFn
            e2.pointee.destructorData = cFn != nil ? cCtx : swiftBox
            return .refuse
        }
        if let swiftBox { Unmanaged<_DestructorBox>.fromOpaque(swiftBox).release() }
        return verdict
    }

    /// _talloc_free (talloc_free): the reference rules of §1.4, then the free itself.
    static func freeTop(_ tc: _Chunk, location: String) -> Int32 {
        if _slowPath(tc.refs != nil) {
            let null = _NullTracking.current
            if tc.pointee.parent == null && tc.refs!.referenceBody.pointee.next == nil {
                return unlink(tc, from: null)
            }
            log("ERROR: talloc_free with references at \(location)\n")
            logReferences(tc)
            return -1
        }
        return free(tc)
    }

    /// The free of a chunk with no side record (no destructor, references, observer, limit): nothing of
    /// its own can refuse. False when the chunk needs the full protocol.
    @inline(__always) @usableFromInline
    static func freePlain(_ tc0: _Chunk) -> Bool {
        guard tc0.pointee.extra == nil && tc0.pointee.flags & _Flag.busy == 0 else { return false }
        unlinkFromSiblings(tc0)
        tc0.pointee.flags |= _Flag.loop
        if tc0.pointee.child != nil { freeChildren(of: tc0, isFreeing: true) }
        release(tc0)
        return true
    }

    /// _tc_free_internal, iteratively: 0 when freed (or already being freed), -1 when refused.
    @usableFromInline
    static func free(_ tc0: _Chunk) -> Int32 {
        if freePlain(tc0) { return 0 }
        switch enter(tc0) {
        case .proceed: break
        case .alreadyFreeing: return 0
        case .refused, .refusedByReference: return -1
        }
        freeChildren(of: tc0, isFreeing: true)
        release(tc0)
        return 0
    }

    /// _tc_free_children_internal over the whole subtree, without recursion. When `isFreeing`, `root` is
    /// itself being freed (its `parent` is where refusing children of the root go). Children refusing to
    /// die move to the parent of the chunk being freed — always, whatever their sibling position (talloc
    /// makes them top level unless they were the newest sibling: SEMANTICS §8.4, DESIGN §8).
    ///
    /// The current ".name" child of a chunk is freed after its siblings, so that their destructors can
    /// still read the chunk's name (talloc frees it first, then reads it: a use after free). In
    /// talloc_free_children mode (`!isFreeing`), root's own name child is kept, also one a destructor made
    /// during the walk, and root is pinned (`childrenBusy`): those destructors cannot free or move it.
    static func freeChildren(of root: _Chunk, isFreeing: Bool) {
        if isFreeing {
            walkFree(root, keepRootName: false)
        } else {
            freeChildrenPinned(root)
        }
    }

    /// talloc_free_children's walk: `root` is pinned while it runs and keeps its name child.
    @inline(never)
    static func freeChildrenPinned(_ root: _Chunk) {
        let wasBusy = root.pointee.flags & _Flag.childrenBusy
        root.pointee.flags |= _Flag.childrenBusy
        walkFree(root, keepRootName: true)
        if wasBusy == 0 { root.pointee.flags &= ~_Flag.childrenBusy }
    }

    @inline(__always)
    static func walkFree(_ root: _Chunk, keepRootName: Bool) {
        var registered = false
        var keptName: _Chunk? = nil
        var cur = root
        while true {
            if let child = cur.pointee.child {
                if _slowPath(UnsafeRawPointer(child.body) == cur.pointee.name) {
                    if keepRootName && cur == root {
                        if keepNameChild(root, child, &keptName) { continue }
                    } else if nameChildLast(cur, child) {
                        continue
                    }
                }
                if isPlainLeaf(child) {
                    // A run of leaves with no destructor, references or observer: nothing can refuse, run
                    // or look at `cur`'s list until the run ends, so the list is mended once, after it
                    // (W2: a pool's thousand members). The run stops at `cur`'s name child (freed last).
                    let curName = cur.pointee.name
                    var leaf = child
                    var next: _Chunk?
                    while true {
                        next = leaf.pointee.next
                        release(leaf)
                        guard let n = next, isPlainLeaf(n), UnsafeRawPointer(n.body) != curName else { break }
                        leaf = n
                    }
                    cur.pointee.child = next
                    if let next { next.pointee.prev = nil }
                    continue
                }
                if !registered, cur == root, child.pointee.extra != nil || child.pointee.child != nil {
                    // User code may run from here on: let a free of root's parent find us.
                    registered = _FreeRegistry.push(root)
                }
                switch enter(child) {
                case .proceed:
                    if _slowPath(child.pointee.parent != cur) {
                        // Its destructor moved it and then let it go: it is unlinked now, and its parent
                        // pointer is this walk's way back up, so it must lead to `cur` again. Its bytes
                        // go back to `cur`'s limits, as a steal back would take them.
                        let moved = child.pointee.parent
                        if child.pointee.flags & _Flag.underLimit != 0 || cur.pointee.flags & (_Flag.hasLimit | _Flag.underLimit) != 0 {
                            let under = cur.pointee.flags & (_Flag.hasLimit | _Flag.underLimit) != 0
                            let wasUnder = child.pointee.flags & _Flag.underLimit != 0
                            let charge = subtreeCharge(child, markUnderLimit: under)
                            if wasUnder, let moved { limitShrink(moved, charge) }
                            if under { limitGrow(cur, charge) }
                        }
                        child.pointee.parent = cur
                    }
                    cur = child
                    continue
                case .alreadyFreeing:
                    // Being freed further up the stack but linked here again. The public API refuses to
                    // move a chunk that is being freed, so this is defensive: take it out of this list so
                    // the loop makes progress.
                    unlinkFromSiblings(child)
                    continue
                case .refusedByReference(let owner):
                    if child.pointee.parent != cur { continue }
                    // A reference owned by the null context names no owner: talloc then falls back to the
                    // parent of the chunk being freed, as for a refusing child.
                    steal(child, to: owner == _NullTracking.current ? cur.pointee.parent : owner)
                    continue
                case .refused:
                    // A destructor that already moved its chunk elsewhere is obeyed.
                    if child.pointee.parent != cur { continue }
                    steal(child, to: cur.pointee.parent)
                    continue
                }
            }
            if cur == root {
                if _fastPath(keptName == nil) { break }
                if keptNameStays(root, &keptName) { break }
                continue  // renamed otherwise meanwhile: it is an ordinary child now, freed as one
            }
            let up = cur.pointee.parent!
            release(cur)
            cur = up
        }
        if registered { _FreeRegistry.pop(root) }
    }

    /// The walk met root's current name child first in root's list (talloc_free_children): it is kept
    /// aside; a name child it superseded goes back to be freed. True when the walk must look again.
    @inline(never)
    static func keepNameChild(_ root: _Chunk, _ child: _Chunk, _ keptName: inout _Chunk?) -> Bool {
        guard root.pointee.flags & _Flag.nameIsLocation == 0 else { return false }
        unlinkFirstChild(of: root, child)
        child.pointee.next = nil
        if let superseded = keptName { linkAsNewest(superseded, under: root) }  // freed by the walk
        keptName = child
        return true
    }

    /// The walk met `cur`'s current name child first in `cur`'s list: it moves behind its siblings, freed
    /// last. True when the walk must look at `cur`'s list again.
    @inline(never)
    static func nameChildLast(_ cur: _Chunk, _ child: _Chunk) -> Bool {
        guard cur.pointee.flags & _Flag.nameIsLocation == 0, child.pointee.next != nil else { return false }
        moveFirstChildToEnd(of: cur, child)
        return true
    }

    /// The walk of root's children is over: the kept name child goes back. True when it is still root's
    /// name; false when root was renamed otherwise meanwhile (it is an ordinary child again, to free).
    @inline(never)
    static func keptNameStays(_ root: _Chunk, _ keptName: inout _Chunk?) -> Bool {
        guard let k = keptName else { return true }
        keptName = nil
        linkAsNewest(k, under: root)
        return UnsafeRawPointer(k.body) == root.pointee.name && root.pointee.flags & _Flag.nameIsLocation == 0
    }



    /// A leaf with no side record (no destructor, references or observer) that no free has reached yet.
    @inline(__always)
    static func isPlainLeaf(_ c: _Chunk) -> Bool {
        c.pointee.extra == nil && c.pointee.child == nil && c.pointee.flags & _Flag.busy == 0
    }

    /// talloc_free_children: frees every child but keeps a ".name" child that holds the chunk's name.
    static func freeChildrenKeepingName(_ tc: _Chunk) {
        freeChildren(of: tc, isFreeing: false)
    }

    /// The second half of _tc_free_internal: the chunk has no children left; give its memory back.
    @inline(__always)
    static func release(_ tc: _Chunk) {
        let flags = tc.pointee.flags
        if _fastPath(flags & (_Flag.reference | _Flag.freeingChild | _Flag.hasLimit | _Flag.underLimit | _Flag.pool
                              | _Flag.poolStats) == 0
                     && tc.pointee.extra == nil) {
            // No side record, reference list, limit or pool of its own: stamp it freed (a double free then
            // reads "access after free") and give its bytes back, to malloc or to its pool. (Before free(),
            // the compiler may drop the stamp as a dead store: best effort, as in talloc.)
            let freed = (flags & (_Flag.mask & ~_Flag.loop)) | _Flag.free | _magicFree
            _Invariants.died(tc)
            if flags & _Flag.poolMem == 0 {
                tc.pointee.flags = freed
                Glibc.free(UnsafeMutableRawPointer(tc))
            } else {
                tc.pointee.flags = freed
                tc.pointee.name = nil  // the header stays readable in the pool; its name may not
                releasePoolMem(tc, isPool: false)
            }
            return
        }
        releaseSlow(tc, flags)
    }

    @inline(never)
    static func releaseSlow(_ tc: _Chunk, _ flags: UInt32) {
        if _slowPath(flags & _Flag.poolStats != 0) {
            if flags & (_Flag.reference | _Flag.freeingChild | _Flag.hasLimit | _Flag.underLimit | _Flag.pool | _Flag.poolMem)
                == _Flag.poolMem && tc.pointee.extra == nil {
                // A plain member of a pool with statistics: the fast path's work, counted.
                _Invariants.died(tc)
                tc.pointee.flags = (flags & (_Flag.mask & ~_Flag.loop)) | _Flag.free | _magicFree
                tc.pointee.name = nil
                releasePoolMemCounted(tc, isPool: false)
                return
            }
            releasingCounted(tc, flags)
        }
        if flags & _Flag.reference != 0 { detachHandle(tc) }
        if flags & _Flag.hasLimit != 0, let e = tc.pointee.extra, e.pointee.pinnedPools != nil {
            handOverPinnedPools(of: tc, e)
        }
        if let e = tc.pointee.extra {
            releaseExtra(tc, e)
        }
        if _slowPath(flags & _Flag.freeingChild != 0) { _FreeRegistry.parentIsGoing(tc) }
        let charge = flags & (_Flag.hasLimit | _Flag.underLimit) != 0 ? chargeOf(tc) : 0
        // A pool that members stolen out of it keep alive (pinned) keeps its block, so its limits keep the
        // charge until the block goes: the nearest one carries it (see `pin`).
        var carrier: _Chunk? = nil
        if charge != 0, flags & _Flag.underLimit != 0, let p = tc.pointee.parent {
            if flags & _Flag.pool != 0 && tc.poolHeader.pointee.objectCount > 1 {
                carrier = nearestLimitOwner(from: p)
            } else {
                limitShrink(p, charge)
            }
        }
        tc.pointee.flags = (flags & (_Flag.mask & ~(_Flag.loop | _Flag.hasLimit | _Flag.underLimit)))
            | _Flag.free | _magicFree
        _Invariants.died(tc)
        tc.pointee.name = nil
        tc.pointee.parent = nil
        tc.pointee.child = nil
        if flags & _Flag.pool != 0 {
            let hdr = tc.poolHeader
            if hdr.dropObject() != 0 {  // pinned by members still alive
                if let carrier { pin(tc, to: carrier) }
                return
            }
            _Invariants.poolGone(tc)
            if flags & _Flag.poolMem != 0 {
                if _slowPath(flags & _Flag.poolStats != 0) {
                    releasePoolMemCounted(tc, isPool: true)
                } else {
                    releasePoolMem(tc, isPool: true)
                }
            } else {
                Glibc.free(UnsafeMutableRawPointer(tc) - _poolPrefixSize)
            }
            return
        }
        if flags & _Flag.poolMem != 0 {
            if _slowPath(flags & _Flag.poolStats != 0) {
                releasePoolMemCounted(tc, isPool: false)
            } else {
                releasePoolMem(tc, isPool: false)
            }
            return
        }
        Glibc.free(UnsafeMutableRawPointer(tc))
    }

    static func releaseExtra(_ tc: _Chunk, _ e: UnsafeMutablePointer<_Extra>) {
        // References added while the chunk was dying point at nothing now: drop them (release detaches).
        while let h = e.pointee.refs {
            unlinkFromSiblings(h)
            release(h)
        }
        if let obs = e.pointee.observer {
            e.pointee.observer = nil
            e.notify(obs, .freed, body: tc.body)
        }
        if let box = e.pointee.swiftDestructor { Unmanaged<_DestructorBox>.fromOpaque(box).release() }
        if let n = e.pointee.ownedName { Glibc.free(n) }
        if let r = e.pointee.rare {
            r.deinitialize(count: 1)
            Glibc.free(r)
        }
        tc.pointee.extra = nil
        e.deinitialize(count: 1)
        Glibc.free(e)
    }

    /// _tc_free_poolmem: a chunk carved from a pool (already stamped freed) goes back to it. When only the
    /// pool is left the pool resets; when the pool was freed and this was its last member, the pool's
    /// block goes too (`releaseLastMember`); otherwise the last chunk carved is reclaimed.
    /// Returns what became of its bytes (pool statistics count it; the fast path ignores it).
    @inline(__always) @discardableResult
    static func releasePoolMem(_ tc: _Chunk, isPool: Bool) -> _PoolRelease {
        let pool = tc.carvingPool
        let hdr = pool.poolHeader
        if _slowPath(hdr.pointee.objectCount <= 1) {
            releaseLastMember(of: pool)
            return .lastMember
        }
        if hdr.dropObject() == 1 && pool.pointee.flags & _Flag.free == 0 {
            hdr.reset()  // only the pool is left
            return .reset
        } else if hdr.reclaim(offset: Int(tc.pointee.poolOffset), span: tc.span) {
            if isPool {
                // talloc's arithmetic reclaims a nested pool (only one of 0 bytes can end there) to its chunk
                // header, past its prefix: the 16 bytes left in front become a marked hole.
                pool.markHole(at: Int(tc.pointee.poolOffset) - _poolPrefixSize, length: _poolPrefixSize)
            }
            return .reclaimed
        }
        return .hole
    }

    /// The last member of `pool`, which was freed already, is gone: the pool's block goes back to malloc,
    /// or, for a nested pool, to its own pool (and so on up).
    @inline(never)
    static func releaseLastMember(of first: _Chunk) {
        var pool = first
        while true {
            let hdr = pool.poolHeader
            if hdr.pointee.objectCount == 0 { abort("Pool object count zero!") }
            hdr.dropObject()
            unpin(pool)  // a pinned pool's charge goes back with its block
            _Invariants.poolGone(pool)
            guard pool.pointee.flags & _Flag.poolMem != 0 else {
                Glibc.free(UnsafeMutableRawPointer(pool) - _poolPrefixSize)
                return
            }
            // A nested pool's block is a member of its outer pool.
            let outer = pool.carvingPool
            if outer.poolHeader.pointee.objectCount > 1 {
                if _slowPath(pool.pointee.flags & _Flag.poolStats != 0) {
                    releasePoolMemCounted(pool, isPool: true)
                } else {
                    releasePoolMem(pool, isPool: true)
                }
                return
            }
            pool = outer
        }
    }
}

/// Frees in progress that may run user code, per thread, so that a destructor freeing (or moving) the
/// parent of the chunk a free started from cannot leave that free pointing at dead memory (§8.6).
/// The list lives in the calling thread's `_ThreadState`: frees on different threads never see each
/// other's roots (a `freeingChild` flag is only ever set on chunks of the freeing thread's own tree).
enum _FreeRegistry {
    /// Registers `root`. False when the thread's state cannot be allocated (the free then goes on without
    /// the §8.6 protection, as talloc always does).
    static func push(_ root: _Chunk) -> Bool {
        guard let state = _ThreadState.current else { return false }
        state.pointee.freeRoots.append(root)
        if let p = root.pointee.parent { p.pointee.flags |= _Flag.freeingChild }
        return true
    }

    static func pop(_ root: _Chunk) {
        guard let state = _ThreadState.existing else { return }
        if let i = state.pointee.freeRoots.lastIndex(of: root) { state.pointee.freeRoots.remove(at: i) }
        if let p = root.pointee.parent, !state.pointee.freeRoots.contains(where: { $0.pointee.parent == p }) {
            p.pointee.flags &= ~_Flag.freeingChild
        }
    }

    /// `parent` is being released while a free started below it is running: that free's refusing
    /// children go to the top level instead, and its subtree's charge leaves `parent`'s limits.
    static func parentIsGoing(_ parent: _Chunk) {
        guard let state = _ThreadState.existing else { return }
        for root in state.pointee.freeRoots where root.pointee.parent == parent {
            if root.pointee.flags & _Flag.underLimit != 0, let up = parent.pointee.parent {
                _Core.limitShrink(up, _Core.subtreeCharge(root, markUnderLimit: false))
            }
            root.pointee.parent = nil
        }
    }

    static func parentMoved(from old: _Chunk, to new: _Chunk) {
        guard let state = _ThreadState.existing else { return }
        for i in state.pointee.freeRoots.indices where state.pointee.freeRoots[i].pointee.parent == old {
            state.pointee.freeRoots[i].pointee.parent = new
        }
    }
}
