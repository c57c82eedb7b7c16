// luatalloc — TallocCore
// SPDX-License-Identifier: MIT
//
// Steal: a chunk moves under another parent, with its memory-limit charge and its observer.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension _Core {
    /// _talloc_steal_internal: `tc` becomes the newest child of `newParent` (nil: the null context, or top
    /// level). Stealing to the current parent moves it to the head, as talloc does. Memory limits follow.
    @inlinable @inline(__always)
    static func steal(_ tc: _Chunk, to newParentIn: _Chunk?) {
        guard let (old, newParent) = stealTarget(tc, newParentIn) else { return }
        let governed = (tc.pointee.flags & (_Flag.underLimit | _Flag.poolStats))
            | ((newParent?.pointee.flags ?? 0) & (_Flag.hasLimit | _Flag.underLimit))
        if _slowPath(governed != 0 || tc.pointee.extra != nil) {
            stealSlow(tc, from: old, to: newParent)
            return
        }
        // Unlink (talloc's _TLIST_REMOVE), then link as the newest child of the new parent: no call, so
        // inlined into a caller it needs no registers of its own (W4).
        detachFromSiblings(tc)
        linkAsNewest(tc, under: newParent)
    }

    /// The parent a steal of `tc` to `newParentIn` goes from and to, or nil when there is nothing to do
    /// (stealing to itself, or to the parent whose newest child it already is).
    @inlinable @inline(__always)
    static func stealTarget(_ tc: _Chunk, _ newParentIn: _Chunk?) -> (old: _Chunk?, new: _Chunk?)? {
        let newParent = _NullTracking.parent(newParentIn)
        if let np = newParent, np == tc { return nil }
        let old = tc.pointee.parent
        if old == newParent && (old == nil || old!.pointee.child == tc) { return nil }
        return (old, newParent)
    }

    /// The same with memory limits to move, an observer to tell, or pool statistics to count.
    @inline(never) @usableFromInline
    static func stealSlow(_ tc: _Chunk, from old: _Chunk?, to newParent: _Chunk?) {
        stealMoving(tc, from: old, to: newParent)
    }

    /// The steal itself, right for every chunk (limits and observer only when there are some): inlined into
    /// `stealSlow` and into `_stealChecked`, the path of every context with a side record (each of Lua's), so
    /// that one call does it (L4).
    @inline(__always)
    static func stealMoving(_ tc: _Chunk, from old: _Chunk?, to newParent: _Chunk?) {
        if tc.pointee.flags & _Flag.poolStats != 0 { stolenCounted(tc, from: old, to: newParent) }
        detachFromSiblings(tc)
        let newFlags = newParent?.pointee.flags ?? 0
        if (tc.pointee.flags & _Flag.underLimit) | (newFlags & (_Flag.hasLimit | _Flag.underLimit)) != 0 {
            moveCharge(tc, from: old, to: newParent)
        }
        linkAsNewest(tc, under: newParent)
        if tc.pointee.extra != nil && old != newParent { notifyReparented(tc) }
    }

    /// A steal's memory limits: the subtree's charge leaves the limits above `old` and joins those above
    /// `newParent`, and `underLimit` follows below `tc`.
    static func moveCharge(_ tc: _Chunk, from old: _Chunk?, to newParent: _Chunk?) {
        let oldLimited = tc.pointee.flags & _Flag.underLimit != 0
        let newLimited = (newParent?.pointee.flags ?? 0) & (_Flag.hasLimit | _Flag.underLimit) != 0
        let charge = subtreeCharge(tc, markUnderLimit: newLimited)
        if oldLimited, let old { limitShrink(old, charge) }
        if newLimited, let newParent { limitGrow(newParent, charge) }
    }

    /// Tells `tc`'s observer, if it has one, that its parent changed.
    static func notifyReparented(_ tc: _Chunk) {
        if let e = tc.pointee.extra, let obs = e.pointee.observer { e.notify(obs, .reparented, body: tc.body) }
    }
}
