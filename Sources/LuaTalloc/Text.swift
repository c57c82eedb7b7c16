// luatalloc — the `talloc` Lua module
// SPDX-License-Identifier: MIT
//
// Text the module builds for a script (reports, DOT, pool maps) counts against the state's memory limit
// while it is built, and fails with "not enough memory" before going over: TallocCore streams it in
// pieces into a buffer charged to the state's account, and charges its own working memory there too.

import CLua
import CLuaShims
import Glibc
import TallocCore

/// A growable byte buffer whose memory is charged to a state's account.
struct ChargedBuffer {
    let S: StatePtr
    private(set) var base: UnsafeMutableRawPointer? = nil
    private(set) var count = 0
    private var capacity = 0

    init(_ S: StatePtr) { self.S = S }

    mutating func append(_ piece: UnsafeRawBufferPointer) -> Bool {
        guard piece.count > 0 else { return true }
        if count + piece.count > capacity {
            var cap = Swift.max(capacity * 2, 256)
            while cap < count + piece.count { cap *= 2 }
            let delta = ModuleState.footprint(cap) - (capacity > 0 ? ModuleState.footprint(capacity) : 0)
            guard ModuleState.charge(S, delta) else { return false }
            guard let p = realloc(base, cap) else { _ = ModuleState.charge(S, -delta); return false }
            base = p
            capacity = cap
        }
        memcpy(base! + count, piece.baseAddress!, piece.count)
        count += piece.count
        return true
    }

    mutating func release() {
        if let base {
            free(base)
            _ = ModuleState.charge(S, -ModuleState.footprint(capacity))
        }
        base = nil
        count = 0
        capacity = 0
    }

    var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }
}

enum Text {
    /// Runs `produce` (which streams text to its sink and asks its accountant before it allocates working
    /// memory) into a charged buffer, and pushes the text as a Lua string. Returns 1, or raises "not enough
    /// memory" through `out` when the text or the working memory would go over the state's limit.
    static func push(_ f: Frame, _ out: Out,
                     _ produce: (_ accountant: (Int) -> Bool, _ sink: (UnsafeRawBufferPointer) -> Bool) -> Bool) -> Int32 {
        var buffer = ChargedBuffer(f.S)
        defer { buffer.release() }
        let S = f.S
        let ok = produce({ n in ModuleState.charge(S, n) }, { piece in buffer.append(piece) })
        if !ok { return TallocModule.outOfMemory(f.S, out) }
        return Lua.push(f.L, bytes: buffer.bytes) ? 1 : out.rethrow()
    }
}
