// luatalloc — TallocCore
// SPDX-License-Identifier: MIT
//
// References: hidden handle chunks that give a chunk more parents; unreference and unlink.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension _Core {
    /// _talloc_reference_loc: a handle chunk under `owner` pointing at `target`. Nil on failure.
    /// A chunk being freed gets no new reference: its free would leave the handle pointing at freed memory.
    static func reference(_ target: _Chunk, owner: _Chunk?, file: UnsafeRawPointer? = nil, line: UInt32 = 0) -> _Chunk? {
        if target.pointee.flags & _Flag.loop != 0 { return nil }
        guard let e = target.makeExtra() else { return nil }
        guard let h = allocate(owner, size: MemoryLayout<_ReferenceBody>.stride) else { return nil }
        h.pointee.flags |= _Flag.reference
        // A handle's name is never read as a name (it reads ".reference"): it keeps where the reference
        // was made, for the "reference at FILE:LINE" log lines.
        h.pointee.name = file
        h.pointee.line = line
        let b = h.referenceBody
        b.pointee = _ReferenceBody(next: e.pointee.refs, prev: nil, target: target, _reserved: nil)
        if let first = e.pointee.refs { first.referenceBody.pointee.prev = h }
        e.pointee.refs = h
        return h
    }

    /// Takes a handle out of its target's list (talloc_reference_destructor).
    static func detachHandle(_ h: _Chunk) {
        let b = h.referenceBody
        let target = b.pointee.target
        if let prev = b.pointee.prev {
            prev.referenceBody.pointee.next = b.pointee.next
        } else {
            target.pointee.extra!.pointee.refs = b.pointee.next
        }
        if let next = b.pointee.next { next.referenceBody.pointee.prev = b.pointee.prev }
        b.pointee.next = nil
        b.pointee.prev = nil
    }

    /// talloc's "\treference at LOC" lines, newest reference first.
    /// O(references), and nothing at all without a log handler (a chunk may have hundreds of thousands).
    static func logReferences(_ tc: _Chunk) {
        guard let handler = _Globals.logHandler else { return }
        var h = tc.refs
        while let x = h {
            handler("\treference at \(referenceLocation(x))\n")
            h = x.referenceBody.pointee.next
        }
    }

    static func referenceLocation(_ h: _Chunk) -> String {
        guard let f = h.pointee.name else { return "(unknown)" }
        return String(cString: f.assumingMemoryBound(to: CChar.self)) + ":" + String(h.pointee.line)
    }

    static func referenceCount(_ tc: _Chunk) -> Int {
        var n = 0
        var h = tc.refs
        while let x = h { n += 1; h = x.referenceBody.pointee.next }
        _Work.note(n)
        return n
    }

    /// The chunk owning a reference handle (its real parent); nil for a handle at top level.
    @inline(__always)
    static func owner(ofHandle h: _Chunk) -> _Chunk? { h.pointee.parent }

    /// talloc_unreference: frees the newest handle of `tc` owned by `context` (nil = the null context / no
    /// parent). False when there is none.
    static func unreference(_ tc: _Chunk, context contextIn: _Chunk?) -> Bool {
        let context = _NullTracking.parent(contextIn)
        var h = tc.refs
        var steps = 0
        defer { _Work.note(steps) }
        while let x = h {
            if owner(ofHandle: x) == context {
                _ = free(x)
                return true
            }
            h = x.referenceBody.pointee.next
            steps &+= 1
        }
        return false
    }

    /// talloc_unlink: removes one parent of `tc`. 0 on success, -1 otherwise.
    static func unlink(_ tc: _Chunk, from contextIn: _Chunk?) -> Int32 {
        let context = _NullTracking.parent(contextIn)
        if unreference(tc, context: context) { return 0 }
        if context != tc.pointee.parent { return -1 }
        // The newest referrer becomes the parent — unless it lives inside tc's own subtree: talloc then
        // builds a loop detached from every root (SEMANTICS §3.3 3, test_lifeless), which nothing can
        // free and every upward walk circles. Such a reference cannot keep tc alive: it is dropped, and
        // the next referrer is tried; with none left, tc is freed as an unreferenced chunk would be.
        while let newest = tc.refs {
            let newParent = owner(ofHandle: newest)
            if let np = newParent, isAncestorOrSelf(tc, of: np) {
                _ = free(newest)
                continue
            }
            if !unreference(tc, context: newParent) { return -1 }
            steal(tc, to: newParent)
            return 0
        }
        return free(tc)
    }
}
