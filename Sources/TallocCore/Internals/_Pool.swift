// luatalloc — TallocCore
// SPDX-License-Identifier: MIT
//
// The pool header and its arithmetic: every change to a pool's `end` and `objectCount` goes through the
// methods here (bump, reclaim of the last chunk, reset), and every member's footprint is `span`.
//
//     [ _PoolHeader (16) | pool's _ChunkHeader (64) | object | member | member | ... free ... ]
//                        ^ offset 0                 ^ start  (carved space)      ^ end      ^ limit
//
// Offsets count from the pool's chunk header. `start` is where the bump space begins (after a pooled
// object's own body), `end` the first byte not carved yet, `limit` the end of the pool's block.

/// `struct talloc_pool_hdr`, 16 bytes in front of a pool's chunk. Offsets are from the pool's chunk header.
///
/// Inside an outer pool these 16 bytes start the nested pool's carved region, where the pool walk
/// (`_PoolWalk`) must tell them from a chunk header and from a hole's filler by their first word alone:
/// `mark` comes first and its low 4 bits are not 0, which a chunk header's first word (a 16-aligned
/// pointer, or nil) can never have.
@usableFromInline
struct _PoolHeader {
    /// `_poolMark`.
    @usableFromInline var mark: UInt32
    /// First free byte of the bump space, as an offset from the pool's chunk header.
    @usableFromInline var end: UInt32
    /// Live chunks carved from the pool, plus one for the pool itself while it is not freed.
    @usableFromInline var objectCount: UInt32
    /// Bytes after the pool's chunk header: the object (pooled objects) and the bump space.
    @usableFromInline var poolSize: UInt32

    @usableFromInline
    init(end: UInt32, objectCount: UInt32, poolSize: UInt32) {
        self.mark = _poolMark
        self.end = end
        self.objectCount = objectCount
        self.poolSize = poolSize
    }
}

/// The first 32 bits of every pool header (low nibble not 0: never the start of a chunk header).
@usableFromInline let _poolMark: UInt32 = 0x9001_CAB5

/// A hole's filler: 16 bytes TallocCore writes where a pool member gave bytes back in the middle of the
/// pool (a shrink in place), so that the pool walk finds a record it wrote itself at every position.
/// The first word's low 4 bits are not 0 (a chunk header starts with a 16-aligned pointer or nil) and
/// its low 32 bits are not `_poolMark`; the second word is the hole's length (a multiple of 16, >= 16).
@usableFromInline let _fillerMagic: UInt64 = 0xF111_E4F0_1D5E_C0D7

/// The bytes a chunk with a body of `size` bytes takes in a pool: header and body, rounded up to 16
/// (talloc's `TC_ALIGN16(TC_HDR_SIZE + size)`). `size` is below MAX_TALLOC_SIZE: no overflow.
@inlinable @inline(__always)
func _span(_ size: Int) -> Int { _align16(_headerSize &+ size) }

extension UnsafeMutablePointer where Pointee == _PoolHeader {
    /// The pool's chunk header, right after this header.
    @inlinable @inline(__always)
    var chunk: _Chunk { (UnsafeMutableRawPointer(self) + _poolPrefixSize).assumingMemoryBound(to: _ChunkHeader.self) }

    /// Where the bump space starts: right after the pool's header and its object's body (a pooled
    /// object's; 0 bytes for a plain pool). `reset()` moves `end` back here.
    @inlinable @inline(__always)
    var start: Int { _span(Int(chunk.pointee.size)) }

    /// Where the pool's block ends: the pool's header and `poolSize` bytes after it.
    @inlinable @inline(__always)
    var limit: Int { _headerSize &+ Int(pointee.poolSize) }

    /// The first byte not carved yet.
    @inlinable @inline(__always)
    var end: Int { Int(pointee.end) }

    /// The live chunks carved from the pool (`objectCount` without the pool itself while it lives).
    @inlinable @inline(__always)
    var members: Int {
        Int(pointee.objectCount) &- (chunk.pointee.flags & _Flag.free == 0 ? 1 : 0)
    }

    /// Bytes left at the end of the bump space.
    @inlinable @inline(__always)
    var available: Int { limit &- end }

    /// Carves `span` bytes (a multiple of 16) at `end` and counts one more object; the offset of the
    /// carved space, or nil (nothing changed) when it does not fit.
    @inlinable @inline(__always)
    func bump(_ span: Int) -> Int? {
        let at = end
        if available < span { return nil }
        pointee.end = UInt32(truncatingIfNeeded: at &+ span)
        pointee.objectCount &+= 1
        return at
    }

    /// One object fewer (a member, or the pool itself, is gone); the objects left.
    @inlinable @inline(__always)
    @discardableResult
    func dropObject() -> UInt32 {
        pointee.objectCount &-= 1
        return pointee.objectCount
    }

    /// Whether the member at `offset` taking `span` bytes is the last one carved (it ends at `end`).
    @inlinable @inline(__always)
    func isLast(offset: Int, span: Int) -> Bool { end == offset &+ span }

    /// Takes back the space of the member at `offset` taking `span` bytes when it is the last one carved
    /// (talloc's reclaim of the last chunk). Returns whether it did.
    @inlinable @inline(__always)
    @discardableResult
    func reclaim(offset: Int, span: Int) -> Bool {
        if !isLast(offset: offset, span: span) { return false }
        pointee.end = UInt32(truncatingIfNeeded: offset)
        return true
    }

    /// Makes the last member, at `offset`, take `span` bytes instead (it grows or shrinks in place).
    @inlinable @inline(__always)
    func resizeLast(offset: Int, span: Int) {
        pointee.end = UInt32(truncatingIfNeeded: offset &+ span)
    }

    /// Forgets every member: the bump space is empty again (only the pool itself is left).
    @inlinable @inline(__always)
    func reset() { pointee.end = UInt32(truncatingIfNeeded: start) }
}

extension UnsafeMutablePointer where Pointee == _ChunkHeader {
    /// The bytes this chunk takes in its pool (`_span` of its size). For a nested pool this is talloc's
    /// arithmetic on the pool's own chunk, which is what a reclaim compares (not its whole block).
    @inlinable @inline(__always)
    var span: Int { _span(Int(pointee.size)) }

    /// Writes a filler over the `length` bytes (a multiple of 16, at least 16) at `offset` from this
    /// pool's chunk header: the bytes are a hole from now on.
    @inlinable @inline(__always)
    func markHole(at offset: Int, length: Int) {
        assert(isPool && offset & 15 == 0 && length >= 16 && length & 15 == 0)
        let p = UnsafeMutableRawPointer(self) + offset
        p.storeBytes(of: _fillerMagic, as: UInt64.self)
        p.storeBytes(of: UInt64(length), toByteOffset: 8, as: UInt64.self)
    }

    /// The 64-bit word at `offset` bytes from this chunk's header (the pool walk's only read).
    @inline(__always)
    func word(at offset: Int) -> UInt64 {
        (UnsafeRawPointer(self) + offset).load(as: UInt64.self)
    }

    /// The chunk header at `offset` bytes from this one (inside a pool: a member's, if the walk says so).
    @inlinable @inline(__always)
    func header(at offset: Int) -> _Chunk {
        (UnsafeMutableRawPointer(self) + offset).assumingMemoryBound(to: _ChunkHeader.self)
    }
}
