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

/// A text a body returns or raises, made of pieces that the trampoline joins into one Lua string after the
/// body returned (LTC_RETTEXT, LTC_ERRORTEXT). A big piece — a chunk's name, an interned name, a Lua
/// string on the stack — is pointed at, never copied into Swift: Lua copies it once, into memory the
/// state's limit counts, and a text that does not fit is "not enough memory" (finding F2: a 3.5 MB name
/// went through two or three Swift arrays no limit saw). Small pieces are copied into the outcome's own
/// message buffer. At most one piece may be bytes a finalizer could free (a chunk's name): the trampoline
/// copies it first.
struct TextPieces {
    private let out: Out
    private var used = 0

    init(_ out: Out) {
        self.out = out
        out.pointee.npieces = 0
        out.pointee.volatilepiece = -1
    }

    /// `count` bytes at `base`, valid until the trampoline made the text. `volatile`: a chunk's bytes (a
    /// finalizer run by an allocation could free them; only one piece may be).
    mutating func add(_ base: UnsafeRawPointer?, _ count: Int, volatile: Bool = false) {
        let i = Int(out.pointee.npieces)
        guard i < Int(CLUA_MAXPIECES) else { return }
        withUnsafeMutableBytes(of: &out.pointee.pieces) { raw in
            raw.baseAddress!.assumingMemoryBound(to: clua_Piece.self)[i] = clua_Piece(p: base, len: count)
        }
        if volatile { out.pointee.volatilepiece = Int32(i) }
        out.pointee.npieces += 1
    }

    /// A literal.
    mutating func add(_ s: StaticString) {
        add(UnsafeRawPointer(s.utf8Start), s.utf8CodeUnitCount)
    }

    /// Small bytes made here (a line number, an address), copied into the outcome's message buffer; what
    /// does not fit is left out (the pieces made so are a few dozen bytes).
    mutating func add<S: Sequence>(copying bytes: S) where S.Element == UInt8 {
        let capacity = MemoryLayout.size(ofValue: out.pointee.message) - 1  // (ltc_finish ends it with a NUL)
        let buffer = UnsafeMutableRawPointer(out).advanced(by: MemoryLayout<clua_Outcome>.offset(of: \.message)!)
        let start = used
        for b in bytes where used < capacity {
            buffer.storeBytes(of: b, toByteOffset: used, as: UInt8.self)
            used += 1
        }
        add(UnsafeRawPointer(buffer + start), used - start)
    }

    /// The name of `c` as talloc_get_name gives it: its string in place (one volatile piece), or a
    /// location "talloc_new: FILE:LINE" with FILE in place, ".reference", "UNNAMED".
    mutating func addName(of c: TallocContext) {
        let parts = c.unsafeNameParts
        guard let s = parts.string else { add("UNNAMED"); return }
        if parts.isLocation {
            if parts.talloc_new { add("talloc_new: ") }
            add(UnsafeRawPointer(s), strlen(s), volatile: true)
            add(copying: ":\(parts.line)".utf8)
        } else {
            add(UnsafeRawPointer(s), strlen(s), volatile: true)
        }
    }

    /// Returns the text as the last of `results` results.
    func returnText(results: Int32 = 1) -> Int32 {
        out.pointee.kind = Int32(LTC_RETTEXT)
        return results
    }

    /// Raises the text with the caller's position prepended. Returns 0.
    func raise() -> Int32 {
        out.pointee.kind = Int32(LTC_ERRORTEXT)
        return 0
    }
}
