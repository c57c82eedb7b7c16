// luatalloc — TallocCore
// SPDX-License-Identifier: MIT
//
// The chunk header: one in front of every allocation, the user's bytes right after it.
//
//     malloc block of a plain chunk:   [ _ChunkHeader (64) | body ... ]
//     malloc block of a pool:          [ _PoolHeader (16) | _ChunkHeader (64) | object | bump space ... ]
//                                                            ^ the pool's chunk   ^ first member
//
// talloc's header is 96 bytes (11 fields, rounded up to 16). Ours is 64:
// - the tree links `next`, `prev`, `parent`, `child` (4 words). Unlike talloc, *every* chunk keeps its
//   parent (talloc only keeps it in the newest sibling), so `parent` is O(1) and a free always knows
//   where a refusing child must go (talloc's §8.4 bug cannot happen);
// - `name` (1 word) with the `line` field for names that are a source location, formatted lazily;
// - `extra` (1 word): a side record, allocated only for the rare fields (destructor, references,
//   memory limit, an observer for language bindings);
// - `size`, `flags` (magic + flag bits), `poolOffset` (distance back to the pool this chunk was carved
//   from), `line`: four 32-bit fields. Sizes fit: talloc refuses anything >= 256 MiB (MAX_TALLOC_SIZE).

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

@usableFromInline typealias _Chunk = UnsafeMutablePointer<_ChunkHeader>

@usableFromInline
struct _ChunkHeader {
    @usableFromInline var next: _Chunk?
    @usableFromInline var prev: _Chunk?
    @usableFromInline var parent: _Chunk?
    @usableFromInline var child: _Chunk?
    /// A NUL-terminated string owned elsewhere (talloc's `const char *name`), or, with `_Flag.nameIsLocation`,
    /// the file part of a "FILE:LINE" location whose line is in `line`.
    @usableFromInline var name: UnsafeRawPointer?
    @usableFromInline var extra: UnsafeMutablePointer<_Extra>?
    @usableFromInline var size: UInt32
    @usableFromInline var flags: UInt32
    /// For pool memory: bytes from the pool's chunk header back to... this chunk header (this - pool).
    @usableFromInline var poolOffset: UInt32
    @usableFromInline var line: UInt32
}

extension _ChunkHeader {
    /// A new chunk's header, not linked into any tree yet (no parent, siblings or children), with no
    /// name and no side record.
    @inlinable @inline(__always)
    init(size: Int, flags: UInt32, poolOffset: Int) {
        next = nil
        prev = nil
        parent = nil
        child = nil
        name = nil
        extra = nil
        self.size = UInt32(truncatingIfNeeded: size)
        self.flags = flags
        self.poolOffset = UInt32(truncatingIfNeeded: poolOffset)
        line = 0
    }
}

/// Flag bits in the low 16 bits of `flags`; the upper 16 bits hold the magic.
@usableFromInline
enum _Flag {
    @usableFromInline static let free: UInt32 = 0x001
    @usableFromInline static let loop: UInt32 = 0x002
    @usableFromInline static let pool: UInt32 = 0x004
    @usableFromInline static let poolMem: UInt32 = 0x008
    /// A reference handle (talloc's TALLOC_MAGIC_REFERENCE name).
    @usableFromInline static let reference: UInt32 = 0x010
    /// `name` is a file name and `line` its line: the name reads "FILE:LINE".
    @usableFromInline static let nameIsLocation: UInt32 = 0x020
    /// With `nameIsLocation`: the name reads "talloc_new: FILE:LINE".
    @usableFromInline static let nameHasNewPrefix: UInt32 = 0x040
    /// This chunk owns a memory limit (in its side record).
    @usableFromInline static let hasLimit: UInt32 = 0x080
    /// Some ancestor owns a memory limit.
    @usableFromInline static let underLimit: UInt32 = 0x100
    /// The destructor is running (talloc's `(destructor_t)-1` sentinel).
    @usableFromInline static let inDestructor: UInt32 = 0x200
    /// A chunk whose child is being freed by a free that registered it (see `_FreeRegistry`).
    @usableFromInline static let freeingChild: UInt32 = 0x400
    /// `setDestructor` was called while the destructor was running.
    @usableFromInline static let destructorReplaced: UInt32 = 0x800
    /// On the path of a subtree walk (totals, reports): makes walks terminate on detached loops.
    @usableFromInline static let walk: UInt32 = 0x1000
    /// Its `size` counts bytes held outside talloc (a Lua heap); the body itself is empty.
    @usableFromInline static let external: UInt32 = 0x2000
    /// `freeChildren` (talloc_free_children) is walking this chunk's children: user code running in
    /// their destructors may not free or move it (the walk holds its address), and its name child stays.
    @usableFromInline static let childrenBusy: UInt32 = 0x4000
    /// A pool that keeps statistics, or a chunk whose pool (the one it was carved from, or, for a chunk
    /// that did not fit, the one it was meant for) does: its allocations, frees, reallocs and steals
    /// leave the inlined fast paths for the ones that count (`_PoolStats`). Set at creation, never on
    /// chunks of pools without statistics, so those pay nothing: the fast paths test it in the same
    /// mask as the memory-limit flags.
    @usableFromInline static let poolStats: UInt32 = 0x8000

    /// A chunk that cannot be freed right now: being freed, in its destructor, or its children are.
    @usableFromInline static let busy: UInt32 = loop | inDestructor | childrenBusy

    @usableFromInline static let mask: UInt32 = 0xFFFF
    @usableFromInline static let magicMask: UInt32 = ~mask
}

@usableFromInline let _headerSize = 64
@usableFromInline let _poolPrefixSize = 16
/// talloc's MAX_TALLOC_SIZE: every allocator refuses sizes at or above 256 MiB.
@usableFromInline let _maxSize = 0x1000_0000

@inlinable @inline(__always)
func _align16(_ n: Int) -> Int { (n &+ 15) & ~15 }

/// The magic in the upper bits of every live chunk's `flags`. talloc randomises it per process to make
/// forged headers harder; ours is a constant, so that allocation reads no lazily initialised global (a
/// `swift_once` check costs ~20 instructions per allocation). A constant magic is easy to forge in user
/// bytes, so nothing trusts it alone: the pool walk reads only positions TallocCore wrote while user code
/// could not write there (see `_PoolWalk`), and the public entry points take only pointers to chunks.
@usableFromInline let _magic: UInt32 = 0xA110_0000
/// Freed chunks carry this non-random magic so a read after free cannot leak the real one (bug 13211).
@usableFromInline let _magicFree: UInt32 = 0xE814_0000

extension UnsafeMutablePointer where Pointee == _ChunkHeader {
    @inlinable @inline(__always)
    var body: UnsafeMutableRawPointer { UnsafeMutableRawPointer(self) + _headerSize }

    @inlinable @inline(__always)
    static func from(body: UnsafeRawPointer) -> _Chunk {
        UnsafeMutableRawPointer(mutating: body - _headerSize).assumingMemoryBound(to: _ChunkHeader.self)
    }

    @inlinable @inline(__always)
    func has(_ flag: UInt32) -> Bool { pointee.flags & flag != 0 }

    @inlinable @inline(__always)
    var isPool: Bool { pointee.flags & _Flag.pool != 0 }
    @inlinable @inline(__always)
    var isPoolMem: Bool { pointee.flags & _Flag.poolMem != 0 }
    @inlinable @inline(__always)
    var isReference: Bool { pointee.flags & _Flag.reference != 0 }

    /// The pool this chunk was carved from (pool memory only).
    @inlinable @inline(__always)
    var carvingPool: _Chunk {
        assert(isPoolMem)
        return (UnsafeMutableRawPointer(self) - Int(pointee.poolOffset)).assumingMemoryBound(to: _ChunkHeader.self)
    }

    /// The pool header in front of a pool's chunk.
    @inlinable @inline(__always)
    var poolHeader: UnsafeMutablePointer<_PoolHeader> {
        assert(isPool)
        return (UnsafeMutableRawPointer(self) - _poolPrefixSize).assumingMemoryBound(to: _PoolHeader.self)
    }

    /// The chunk's side record, created on first use. Nil when malloc fails.
    @inline(__always) @usableFromInline
    func makeExtra() -> UnsafeMutablePointer<_Extra>? {
        if let e = pointee.extra { return e }
        guard let raw = malloc(MemoryLayout<_Extra>.stride) else { return nil }
        let e = raw.bindMemory(to: _Extra.self, capacity: 1)
        e.initialize(to: _Extra())
        pointee.extra = e
        return e
    }

    /// The newest reference handle pointing at this chunk.
    @inlinable @inline(__always)
    var refs: _Chunk? { pointee.extra?.pointee.refs }
}


/// The body of a reference handle chunk (talloc's `struct talloc_reference_handle`).
@usableFromInline
struct _ReferenceBody {
    @usableFromInline var next: _Chunk?
    @usableFromInline var prev: _Chunk?
    /// The referenced chunk.
    @usableFromInline var target: _Chunk
    @usableFromInline var _reserved: UnsafeRawPointer?
}

extension UnsafeMutablePointer where Pointee == _ChunkHeader {
    @inlinable @inline(__always)
    var referenceBody: UnsafeMutablePointer<_ReferenceBody> {
        assert(isReference)
        return body.assumingMemoryBound(to: _ReferenceBody.self)
    }
}
