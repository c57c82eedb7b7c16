// luatalloc — TallocCore
// SPDX-License-Identifier: MIT
//
// Renaming a chunk, and the name copy a chunk may own.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension _Core {
    /// Gives `tc` a plain C-string name (nil reads "UNNAMED"): not a location, and no longer a copy the
    /// chunk owned (`setNameCopy`), which is freed now.
    @inline(__always)
    static func rename(_ tc: _Chunk, to name: UnsafeRawPointer?) {
        tc.pointee.name = name
        tc.pointee.flags &= ~(_Flag.nameIsLocation | _Flag.nameHasNewPrefix)
        dropOwnedName(tc)
    }

    /// Frees the name copy `tc` owns, unless it is still the name.
    @inline(__always)
    static func dropOwnedName(_ tc: _Chunk) {
        if _slowPath(tc.pointee.extra != nil) { dropOwnedNameSlow(tc) }
    }

    @inline(never)
    static func dropOwnedNameSlow(_ tc: _Chunk) {
        guard let e = tc.pointee.extra, let copy = e.pointee.ownedName else { return }
        if tc.pointee.flags & _Flag.nameIsLocation == 0 && tc.pointee.name == UnsafeRawPointer(copy) { return }
        e.pointee.ownedName = nil
        Glibc.free(copy)
    }
}
