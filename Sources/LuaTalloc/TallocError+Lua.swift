// luatalloc — the `talloc` Lua module
// SPDX-License-Identifier: MIT
//
// What a script reads when a talloc operation fails: the one mapping from `TallocError` to Lua's words,
// and the two ways a body reports it (DESIGN §3):
//
// - an error (`out.fail(e)`): the trampoline raises the message with the caller's position;
// - a refusal (`Refusal.push`): operations that talloc lets fail without aborting (`free`, `unlink`,
//   `reparent`, `realloc(c, 0)`) return `false, reason` (or `nil, reason` where the success value is a
//   context) — unless a Lua destructor raised meanwhile, whose error is raised instead.

import CLua
import CLuaShims
import TallocCore

extension TallocError {
    /// The message of this failure in Lua; `c` (the context the operation was about, if the caller has
    /// it alive) adds detail where there is some (the number of references that block a free).
    func luaMessage(_ c: TallocContext? = nil) -> String {
        switch self {
        case .outOfMemory: return "not enough memory"
        case .sizeTooLarge: return "size too large (talloc allocations are below 256 MiB)"
        case .accessAfterFree: return "attempt to use a freed talloc context"
        case .unknownValue: return "not a talloc context"
        case .destructorRefused: return "a destructor refused the free"
        case .hasReferences:
            if let c { return "the context has references (\(c.referenceCount)); unlink them first" }
            return "the context has references; unlink them first"
        case .notAParent: return "not a parent of the context"
        case .referenced: return "cannot reallocate a referenced context"
        case .isPool: return "cannot reallocate a pool"
        case .wouldCreateLoop: return "cannot move a context into its own subtree"
        case .beingFreed: return "the context is being freed"
        case .typeMismatch: return description
        }
    }
}

extension UnsafeMutablePointer where Pointee == clua_Outcome {
    /// Asks the trampoline to raise `e`'s message. Out of memory also asks for a collection at the next
    /// safe point (a module call, or the pcall that catches this): what holds the memory may become
    /// garbage once the error unwinds. Returns 0.
    @discardableResult
    func fail(_ S: StatePtr, _ e: TallocError, _ c: TallocContext? = nil) -> Int32 {
        if e == .outOfMemory { ltc_requestcollect(S) }
        return error(e.luaMessage(c))
    }
}

/// The `false, reason` convention of the operations talloc lets fail.
enum Refusal {
    /// What stands before the reason: `false` (free, unlink) or `nil` (reparent, realloc: their success
    /// value is a context).
    enum Lead { case `false`, `nil` }

    /// Returns the refusal of `e` (`lead, reason`: 2 results), or raises a Lua destructor's error if one
    /// ran during the operation (it is what the caller must see).
    static func push(_ f: Frame, _ out: Out, _ e: TallocError, _ c: TallocContext? = nil, lead: Lead = .false) -> Int32 {
        if ModuleState.takeError(f) { return out.rethrow() }
        if lead == .false { lua_pushboolean(f.L, 0) } else { lua_pushnil(f.L) }
        return Lua.push(f.L, e.luaMessage(c)) ? 2 : out.rethrow()
    }

    /// After an operation that succeeded: raises a Lua destructor's error if one ran (and was overridden
    /// or caught below); else nothing. Returns whether it raised (the caller then returns 0).
    static func destructorFailed(_ f: Frame, _ out: Out) -> Bool {
        if ModuleState.takeError(f) { out.rethrow(); return true }
        return false
    }
}
