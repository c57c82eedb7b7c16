// luatalloc — TallocCore
// SPDX-License-Identifier: MIT
//
// Memory limits (talloc_set_memlimit), counted exactly: what each chunk costs, and the walk up
// its limits.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension _Core {
    /// What a chunk costs its memory limits: the bytes it really took from malloc. Pool members cost
    /// nothing (their pool was charged), pools cost their whole block.
    @inline(__always)
    static func chargeOf(_ tc: _Chunk) -> Int {
        let f = tc.pointee.flags
        if f & _Flag.poolMem != 0 { return 0 }
        if f & _Flag.pool != 0 { return _poolPrefixSize + tc.poolHeader.limit }  // the pool's whole block
        return _headerSize + Int(tc.pointee.size)
    }

    /// Visits the limits at or above `start`, nearest first, while `body` returns true; returns the owner
    /// of the limit it stopped at, or nil. The walk ends at the first chunk no limit governs: no step cap,
    /// parent chains have no loops (steal and reparent refuse one; the invariant checker verifies it).
    @inline(__always)
    static func walkLimits(from start: _Chunk, _ body: (UnsafeMutablePointer<_Rare>) -> Bool) -> _Chunk? {
        var c: _Chunk? = start
        var steps = 0
        defer { _Work.note(steps) }
        while let x = c {
            steps &+= 1
            let f = x.pointee.flags
            // (a limit owner has its side record and the rare record in it: `setLimit` made both)
            if f & _Flag.hasLimit != 0, let e = x.pointee.extra, let r = e.pointee.rare, !body(r) { return x }
            if f & _Flag.underLimit == 0 { return nil }
            c = x.pointee.parent
        }
        return nil
    }

    /// talloc_memlimit_check over `start` and its ancestors.
    static func limitAllows(_ start: _Chunk, _ bytes: Int) -> Bool {
        walkLimits(from: start) { e in
            let mx = e.pointee.limitMax, cur = e.pointee.limitCurrent
            return mx == 0 || (mx > cur && mx - cur >= bytes)
        } == nil
    }

    static func limitGrow(_ start: _Chunk, _ bytes: Int) {
        limitAdjust(start, bytes)
    }

    static func limitShrink(_ start: _Chunk, _ bytes: Int) {
        limitAdjust(start, -bytes)
    }

    static func limitAdjust(_ start: _Chunk, _ delta: Int) {
        _ = walkLimits(from: start) { e in
            e.pointee.limitCurrent = Swift.max(0, e.pointee.limitCurrent + delta)
            if e.pointee.limitCurrent > e.pointee.limitPeak { e.pointee.limitPeak = e.pointee.limitCurrent }
            return true
        }
    }

    /// The summed charge of `root`'s subtree (with the pinned pools its limits carry); also sets or
    /// clears `underLimit` below `root` to match `markUnderLimit` (root) and the limits inside the subtree.
    static func subtreeCharge(_ root: _Chunk, markUnderLimit: Bool) -> Int {
        var total = 0
        _Walk.walk(root, skipLoop: false) { tc, _ in
            total += chargeOf(tc)
            if _slowPath(tc.pointee.flags & _Flag.hasLimit != 0) { total += pinnedCharge(tc) }
            let under: Bool
            if tc == root {
                under = markUnderLimit
            } else {
                let pf = tc.pointee.parent!.pointee.flags
                under = pf & (_Flag.hasLimit | _Flag.underLimit) != 0
            }
            if under { tc.pointee.flags |= _Flag.underLimit } else { tc.pointee.flags &= ~_Flag.underLimit }
            return true
        } leave: { _, _ in }
        return total
    }

    // MARK: Pinned pools

    // A pool freed while members stolen out of it still live keeps its whole block (talloc semantics):
    // that memory is still the tree's, so it stays charged. The nearest limit above the pool when it was
    // freed carries it (with every limit above that one, as any charge): the freed pool's header links
    // into the carrier's list (`_Extra.pinnedPools`, through the header's `next`/`prev`; its `child`
    // points back at the carrier). The charge moves with the carrier's subtree (`subtreeCharge`), goes to
    // the next limit up when the carrier is freed, and is given back when the block is finally freed.

    /// The chunk that owns the nearest limit at or above `start` (which is under a limit).
    static func nearestLimitOwner(from start: _Chunk) -> _Chunk? {
        walkLimits(from: start) { _ in false }
    }

    /// A freed pool's block (its whole charge) stays with `carrier`'s limit.
    static func pin(_ pool: _Chunk, to carrier: _Chunk) {
        guard let e = carrier.pointee.extra, e.pointee.rare != nil else { return }  // (a limit owner has both)
        pool.pointee.child = carrier
        pool.pointee.prev = nil
        pool.pointee.next = e.pointee.pinnedPools
        if let first = e.pointee.pinnedPools { first.pointee.prev = pool }
        e.pointee.pinnedPools = pool
    }

    /// The block of a pinned pool is freed now: its charge goes back.
    static func unpin(_ pool: _Chunk) {
        guard let carrier = pool.pointee.child else { return }
        limitShrink(carrier, chargeOf(pool))
        if let prev = pool.pointee.prev {
            prev.pointee.next = pool.pointee.next
        } else {
            carrier.pointee.extra!.pointee.pinnedPools = pool.pointee.next
        }
        if let next = pool.pointee.next { next.pointee.prev = pool.pointee.prev }
        pool.pointee.child = nil
        pool.pointee.next = nil
        pool.pointee.prev = nil
    }

    /// A limit owner moved (a realloc): the pinned pools it carries point at its new header.
    static func carriedPoolsMoved(to owner: _Chunk) {
        var p = owner.pointee.extra?.pointee.pinnedPools
        while let x = p { x.pointee.child = owner; p = x.pointee.next }
    }

    /// The summed charge of the pinned pools a limit carries.
    static func pinnedCharge(_ owner: _Chunk) -> Int {
        var total = 0
        var p = owner.pointee.extra?.pointee.pinnedPools
        var steps = 0
        while let x = p { total += chargeOf(x); p = x.pointee.next; steps &+= 1 }
        _Work.note(steps)
        return total
    }

    /// A limit owner is freed while pinned pools count on it: they go to the next limit up, which was
    /// charged for them all along (or to none: their charge then goes with the limit).
    static func handOverPinnedPools(of owner: _Chunk, _ e: UnsafeMutablePointer<_Extra>) {
        let up = owner.pointee.flags & _Flag.underLimit != 0 ? owner.pointee.parent.flatMap { nearestLimitOwner(from: $0) } : nil
        var p = e.pointee.pinnedPools
        e.pointee.pinnedPools = nil
        while let x = p {
            p = x.pointee.next
            x.pointee.child = nil
            x.pointee.next = nil
            x.pointee.prev = nil
            if let up { pin(x, to: up) }
        }
    }

    /// talloc_set_memlimit: `max` bytes (0 = unlimited) for `tc`'s subtree. False on allocation failure.
    static func setLimit(_ tc: _Chunk, max: Int) -> Bool {
        if tc.pointee.flags & _Flag.hasLimit != 0 {
            tc.pointee.extra!.pointee.limitMax = max
            return true
        }
        guard let e = tc.makeExtra(), e.makeRare() else { return false }
        tc.pointee.flags |= _Flag.hasLimit
        let current = subtreeCharge(tc, markUnderLimit: tc.pointee.flags & _Flag.underLimit != 0)
        e.pointee.limitMax = max
        e.pointee.limitCurrent = current
        e.pointee.limitPeak = current
        return true
    }
}
