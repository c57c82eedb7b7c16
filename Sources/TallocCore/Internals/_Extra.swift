// luatalloc — TallocCore
// SPDX-License-Identifier: MIT
//
// The side record: what talloc keeps in every header but few chunks use. One malloc'd record, reached
// through `_ChunkHeader.extra`, created on first need and freed with the chunk.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A destructor written as a C function: `fn(body, context)` returns 0 to allow the free, -1 to refuse.
public typealias TallocUnsafeDestructor = @convention(c) (UnsafeMutableRawPointer, UnsafeMutableRawPointer?) -> Int32

/// Called when a chunk that carries an observer changes: `event` is 0 when it is freed (its memory goes
/// right after), 1 when a realloc moved it (`body` is the new body), 2 when its parent changed (a steal,
/// or talloc's re-homing during a free), 3 when its free has begun (its destructor allowed it; its
/// subtree is still intact).
public typealias TallocUnsafeObserver = @convention(c) (
    _ body: UnsafeMutableRawPointer, _ event: Int32, _ tag: Int, _ context: UnsafeMutableRawPointer?,
    _ data: UnsafeMutableRawPointer?) -> Void

@usableFromInline
final class _DestructorBox {
    let body: (TallocContext) -> TallocDestructorVerdict
    init(_ body: @escaping (TallocContext) -> TallocDestructorVerdict) { self.body = body }
}

@usableFromInline
struct _Extra {
    /// Newest reference handle pointing at this chunk; handles link through their bodies.
    @usableFromInline var refs: _Chunk? = nil
    /// A Swift closure destructor (retained box) ...
    @usableFromInline var swiftDestructor: UnsafeMutableRawPointer? = nil
    /// ... or a C destructor with its context.
    @usableFromInline var cDestructor: TallocUnsafeDestructor? = nil
    @usableFromInline var cDestructorContext: UnsafeMutableRawPointer? = nil
    /// The memory limit this chunk owns (with `_Flag.hasLimit`): 0 = unlimited.
    @usableFromInline var limitMax: Int = 0
    /// Bytes currently charged to that limit.
    @usableFromInline var limitCurrent: Int = 0
    /// An observer (language bindings): told when the chunk is freed or moves.
    @usableFromInline var observer: TallocUnsafeObserver? = nil
    @usableFromInline var observerContext: UnsafeMutableRawPointer? = nil
    @usableFromInline var observerTag: Int = 0
    @usableFromInline var observerData: UnsafeMutableRawPointer? = nil
    /// A name copy the chunk owns (`setNameCopy`), freed with it.
    @usableFromInline var ownedName: UnsafeMutablePointer<CChar>? = nil

    @inline(__always) @usableFromInline
    var hasDestructor: Bool { swiftDestructor != nil || cDestructor != nil }
}
