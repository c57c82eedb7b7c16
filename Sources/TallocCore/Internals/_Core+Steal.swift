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
    @inline(__always) @usableFromInline
    static func steal(_ tc: _Chunk, to newParentIn: _Chunk?) {
        let newParent = _NullTracking.parent(newParentIn)
        if let np = newParent, np == tc { return }
        let old = tc.pointee.parent
        if old == newParent && (old == nil || old!.pointee.child == tc) { return }
        let flags = tc.pointee.flags
        let newFlags = newParent?.pointee.flags ?? 0
        detachFromSiblings(tc)
        if _slowPath((flags & _Flag.underLimit) | (newFlags & (_Flag.hasLimit | _Flag.underLimit)) != 0) {
            let oldLimited = flags & _Flag.underLimit != 0
            let newLimited = newFlags & (_Flag.hasLimit | _Flag.underLimit) != 0
            let charge = subtreeCharge(tc, markUnderLimit: newLimited)
            if oldLimited, let old { limitShrink(old, charge) }
            if newLimited, let newParent { limitGrow(newParent, charge) }
        }
        linkAsNewest(tc, under: newParent)
        if _slowPath(tc.pointee.extra != nil), let e = tc.pointee.extra, let obs = e.pointee.observer, old != newParent {
            e.notify(obs, .reparented, body: tc.body)
        }
    }
}
