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
    /// A C destructor, whose context is `destructorData` ...
    @usableFromInline var cDestructor: TallocUnsafeDestructor? = nil
    /// ... or, without one, a Swift closure destructor (a retained `_DestructorBox`), or nil. One word
    /// for both: a chunk has one destructor at a time.
    @usableFromInline var destructorData: UnsafeMutableRawPointer? = nil

    /// The Swift destructor's box (nil while a C destructor is set). Written through `destructorData`.
    @inlinable var swiftDestructor: UnsafeMutableRawPointer? { cDestructor == nil ? destructorData : nil }
    /// The C destructor's context (nil without a C destructor).
    @inlinable var cDestructorContext: UnsafeMutableRawPointer? { cDestructor != nil ? destructorData : nil }
    /// An observer (language bindings): told when the chunk is freed or moves.
    @usableFromInline var observer: TallocUnsafeObserver? = nil
    @usableFromInline var observerContext: UnsafeMutableRawPointer? = nil
    @usableFromInline var observerTag: Int = 0
    @usableFromInline var observerData: UnsafeMutableRawPointer? = nil
    /// A name copy the chunk owns (`setNameCopy`), freed with it.
    @usableFromInline var ownedName: UnsafeMutablePointer<CChar>? = nil
    /// What fewer chunks still use (a memory limit, a pool's statistics), or nil: see `_Rare`.
    @usableFromInline var rare: UnsafeMutablePointer<_Rare>? = nil

    // The rare record's fields, read as 0/nil and written nowhere while there is none (`makeRare` makes
    // it where a limit is set or statistics start: every writer runs after one of those).

    /// The memory limit this chunk owns (with `_Flag.hasLimit`): 0 = unlimited.
    @inlinable var limitMax: Int {
        get { rare?.pointee.limitMax ?? 0 }
        set { rare?.pointee.limitMax = newValue }
    }
    /// Bytes currently charged to that limit.
    @inlinable var limitCurrent: Int {
        get { rare?.pointee.limitCurrent ?? 0 }
        set { rare?.pointee.limitCurrent = newValue }
    }
    /// The highest `limitCurrent` since the limit was set or its peak last reset.
    @inlinable var limitPeak: Int {
        get { rare?.pointee.limitPeak ?? 0 }
        set { rare?.pointee.limitPeak = newValue }
    }
    /// Freed pools whose blocks stolen members keep alive and whose charge this limit carries (see
    /// `_Core.pin`), linked through their headers.
    @inlinable var pinnedPools: _Chunk? {
        get { rare?.pointee.pinnedPools }
        set { rare?.pointee.pinnedPools = newValue }
    }
    /// A pool's statistics (`_PoolStats`, with `_Flag.poolStats`), freed when the pool is.
    @inlinable var poolStats: UnsafeMutablePointer<_PoolStats>? {
        get { rare?.pointee.poolStats }
        set { rare?.pointee.poolStats = newValue }
    }

    @inline(__always) @usableFromInline
    var hasDestructor: Bool { swiftDestructor != nil || cDestructor != nil }
}

/// The part of the side record only chunks with a memory limit or pool statistics use, in a record of its
/// own so that the side record every bound chunk carries stays small (a Lua context's: 72 bytes, 80 from
/// malloc, instead of 112: 128). Made by `makeRare`, freed with the side record.
@usableFromInline
struct _Rare {
    @usableFromInline var limitMax: Int = 0
    @usableFromInline var limitCurrent: Int = 0
    @usableFromInline var limitPeak: Int = 0
    @usableFromInline var pinnedPools: _Chunk? = nil
    @usableFromInline var poolStats: UnsafeMutablePointer<_PoolStats>? = nil
}

extension UnsafeMutablePointer where Pointee == _Extra {
    /// The rare record, made on first use. False when malloc fails.
    func makeRare() -> Bool {
        if pointee.rare != nil { return true }
        guard let raw = malloc(MemoryLayout<_Rare>.stride) else { return false }
        let r = raw.bindMemory(to: _Rare.self, capacity: 1)
        r.initialize(to: _Rare())
        pointee.rare = r
        return true
    }

    /// Tells `observer` that `event` happened to the chunk whose body is `body`.
    @inline(__always)
    func notify(_ observer: TallocUnsafeObserver, _ event: TallocObserverEvent, body: UnsafeMutableRawPointer) {
        observer(body, event.rawValue, pointee.observerTag, pointee.observerContext, pointee.observerData)
    }
}
