// luatalloc — TallocCore
// SPDX-License-Identifier: MIT
//
// The allocator itself, as static functions of `_Core` on raw chunks, one concern per file:
//
//     _Core.swift              logging, aborting, and talloc_chunk_from_ptr (the magic check)
//     _Core+Allocate.swift     allocation, pools and pooled objects
//     _Core+Links.swift        the sibling list and the walk up to the ancestors
//     _Core+Names.swift        renaming, and the name copy a chunk may own
//     _Core+Steal.swift        steal
//     _Core+References.swift   references, unreference, unlink
//     _Core+Free.swift         the free protocol and its registry of frees in progress
//     _Core+Realloc.swift      realloc's paths
//     _Core+Limits.swift       memory limits
//
// The pool header's arithmetic is in _Pool.swift, the chunk header in _Chunk.swift, the invariant
// checker in _Invariants.swift. Every function here takes raw chunks and trusts them; validation happens
// at the public boundary (TallocContext). Nothing here recurses: frees and subtree walks are loops over
// the tree links.
//
// The common cases of allocation (a pool's bump), steal and a pool member's growth in place are
// `@inlinable`, and callers inline them with no call and no stack frame; everything that can fail, log,
// run user code or move memory limits stays out of line (the W1-W5 benchmarks measure both).

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

@usableFromInline
enum _Core {
    // MARK: - Logging and aborting

    /// Hands a log line to the process-wide log handler (read under its lock, called outside it).
    /// Sends a line to the log handler; the text is built only when a handler is installed.
    static func log(_ message: @autoclosure () -> String) {
        guard let handler = _Globals.logHandler else { return }
        handler(message())
    }

    /// Writes to standard error without stdio's shared state.
    static func writeStderr(_ text: String) {
        var t = text
        t.withUTF8 { _ = writeStderr(bytes: UnsafeRawBufferPointer($0)) }
    }

    /// The same for bytes; false when stderr stops taking them.
    static func writeStderr(bytes b: UnsafeRawBufferPointer) -> Bool {
        guard let base = b.baseAddress else { return true }
        var off = 0
        while off < b.count {
            let n = write(2, base + off, b.count - off)
            if n <= 0 { return false }
            off += n
        }
        return true
    }

    /// talloc_abort: log the reason, call the abort handler, and trap. Unlike talloc, we never carry on
    /// after a handler returns (SEMANTICS §7 #11).
    static func abort(_ reason: String) -> Never {
        log(reason + "\n")
        _Globals.abortHandler?(reason)
        fatalError(reason)
    }

    /// talloc_chunk_from_ptr: the chunk of a body pointer, or an abort with talloc's message.
    @inlinable @inline(__always)
    static func chunk(_ body: UnsafeRawPointer) -> _Chunk {
        let tc = _Chunk.from(body: body)
        if _slowPath(tc.pointee.flags & (_Flag.free | _Flag.magicMask) != _magic) {
            abortBadMagic(tc)
        }
        return tc
    }

    @inline(never) @usableFromInline
    static func abortBadMagic(_ tc: _Chunk) -> Never {
        if tc.pointee.flags & (_Flag.free | _Flag.magicMask) == (_magicFree | _Flag.free) {
            log("talloc: access after free error - first free may be at \(freedName(tc))\n")
            abort("Bad talloc magic value - access after free")
        }
        abort("Bad talloc magic value - unknown value")
    }

    /// The same check, as a value (the throwing twin of `chunk`).
    @inline(__always) @usableFromInline
    static func checkedChunk(_ body: UnsafeRawPointer) -> Result<_Chunk, TallocError> {
        let tc = _Chunk.from(body: body)
        let f = tc.pointee.flags & (_Flag.free | _Flag.magicMask)
        if _fastPath(f == _magic) { return .success(tc) }
        if f == (_magicFree | _Flag.free) { return .failure(.accessAfterFree) }
        return .failure(.unknownValue)
    }

    static func freedName(_ tc: _Chunk) -> String {
        guard let n = tc.pointee.name else { return "(unknown)" }
        return String(cString: n.assumingMemoryBound(to: CChar.self))
    }
}
