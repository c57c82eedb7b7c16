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
@usableFromInline package typealias TallocUnsafeDestructor = @convention(c) (UnsafeMutableRawPointer, UnsafeMutableRawPointer?) -> Int32

/// What happened to a chunk that carries an observer (`unsafeSetObserver`).
@usableFromInline package enum TallocObserverEvent: Int32, Sendable {
    /// It is gone: its memory goes back right after the call. Its free has completed, or it was freed
    /// without the full protocol (then `.freeing` never came). `body` must not be used after the call.
    case freed = 0
    /// A realloc moved it: `body` is the new body.
    case moved = 1
    /// Its parent changed: a steal, a reparent, or talloc's re-homing of a refusing or referenced child
    /// during a free.
    case reparented = 2
    /// Its free has begun: its destructor (if any) allowed it, and its subtree is still intact.
    case freeing = 3
}

/// Called when a chunk that carries an observer changes, with the chunk's `body`, the
/// `TallocObserverEvent`'s raw value as `event`, and what `unsafeSetObserver` stored (`tag`, `context`,
/// `data`). A C function pointer, so that the side record holds it in one word with no reference
/// counting; hence `event` is the raw value (decode it with `TallocObserverEvent(rawValue:)`).
@usableFromInline package typealias TallocUnsafeObserver = @convention(c) (
    _ body: UnsafeMutableRawPointer, _ event: TallocObserverEvent.RawValue, _ tag: Int,
    _ context: UnsafeMutableRawPointer?, _ data: UnsafeMutableRawPointer?) -> Void

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
    /// The highest `limitCurrent` since the limit was set or its peak last reset.
    @usableFromInline var limitPeak: Int = 0
    /// Freed pools whose blocks stolen members keep alive and whose charge this limit carries (see
    /// `_Core.pin`), linked through their headers.
    @usableFromInline var pinnedPools: _Chunk? = nil
    /// An observer (language bindings): told when the chunk is freed or moves.
    @usableFromInline var observer: TallocUnsafeObserver? = nil
    @usableFromInline var observerContext: UnsafeMutableRawPointer? = nil
    @usableFromInline var observerTag: Int = 0
    @usableFromInline var observerData: UnsafeMutableRawPointer? = nil
    /// A name copy the chunk owns (`setNameCopy`), freed with it.
    @usableFromInline var ownedName: UnsafeMutablePointer<CChar>? = nil
    /// A pool's statistics (`_PoolStats`, with `_Flag.poolStats`), freed when the pool is.
    @usableFromInline var poolStats: UnsafeMutablePointer<_PoolStats>? = nil

    @inline(__always) @usableFromInline
    var hasDestructor: Bool { swiftDestructor != nil || cDestructor != nil }
}

extension UnsafeMutablePointer where Pointee == _Extra {
    /// Tells `observer` that `event` happened to the chunk whose body is `body`.
    @inline(__always)
    func notify(_ observer: TallocUnsafeObserver, _ event: TallocObserverEvent, body: UnsafeMutableRawPointer) {
        observer(body, event.rawValue, pointee.observerTag, pointee.observerContext, pointee.observerData)
    }
}
