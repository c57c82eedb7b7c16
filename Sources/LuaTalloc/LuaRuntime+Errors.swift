// luatalloc — the embeddable runtime: statuses and errors
// SPDX-License-Identifier: MIT

import CLua
import CLuaShims

/// The status of a Lua call, as `lua_pcall`, `lua_load` and `lua_resume` return it.
///
/// The corresponding Lua constants are `LUA_OK`, `LUA_YIELD`, `LUA_ERRRUN`, `LUA_ERRSYNTAX`, `LUA_ERRMEM`,
/// `LUA_ERRERR` (lua.h) and `LUA_ERRFILE` (lauxlib.h).
public enum LuaStatus: Int32, Sendable, Hashable, CustomStringConvertible {
    /// No error (`LUA_OK`).
    case ok = 0
    /// A coroutine yielded (`LUA_YIELD`).
    case yield = 1
    /// A run-time error (`LUA_ERRRUN`).
    case runtimeError = 2
    /// A syntax error while loading (`LUA_ERRSYNTAX`).
    case syntaxError = 3
    /// A memory error (`LUA_ERRMEM`): the allocator refused.
    case memoryError = 4
    /// An error in the message handler (`LUA_ERRERR`).
    case handlerError = 5
    /// A file could not be opened or read (`LUA_ERRFILE`).
    case fileError = 6

    /// The status of a raw Lua return code; codes Lua does not define read as `.runtimeError`.
    public init(code: Int32) { self = LuaStatus(rawValue: code) ?? .runtimeError }

    public var description: String {
        switch self {
        case .ok: return "ok"
        case .yield: return "yield"
        case .runtimeError: return "runtime error"
        case .syntaxError: return "syntax error"
        case .memoryError: return "memory error"
        case .handlerError: return "error in error handling"
        case .fileError: return "file error"
        }
    }
}

extension LuaRuntime {
    /// Why a runtime operation failed: what kind of failure, the message, the traceback apart, the Lua
    /// error object as it was raised, and the Swift error behind it when a registered function threw.
    ///
    ///     do { try lua.call("check", 42) } catch {
    ///         switch error.kind {
    ///         case .memory: ...                       // over the memory limit (error.isOutOfMemory)
    ///         case .budget(.instructions): ...        // the instruction budget ran out
    ///         default: print(error.message); print(error.traceback ?? "")
    ///         }
    ///         if let denied = error.hostError as? Denied { ... }   // the very error a Swift function threw
    ///         if case .table = error.value { ... }                 // error({code = 42}) keeps its table
    ///     }
    ///
    /// `description` is what the standalone `lua` prints: the message, then the traceback.
    public struct RuntimeError: Error, CustomStringConvertible {
        /// What failed.
        public enum Kind: Sendable, Hashable {
            /// A syntax error in a chunk (`LUA_ERRSYNTAX`), or bytecode refused.
            case syntax
            /// A run-time error: `error(...)`, a failed operation, an error a Swift function threw, a missing
            /// function (`LUA_ERRRUN`).
            case runtime
            /// A real memory error: an allocation the memory limit (or the system) refused, or the runtime
            /// could not be made. A script's own `error("not enough memory")` is `.runtime`.
            case memory
            /// The instruction or time budget ran out.
            case budget(Budget)
            /// An error while handling an error (`LUA_ERRERR`).
            case errorHandler
            /// A file could not be opened or read (`LUA_ERRFILE`).
            case file
            /// A value could not be copied between Lua and Swift (a table nested too deeply, a function of
            /// another runtime, a value that does not decode).
            case conversion
            /// The runtime is closed (or was reset since the handle was made), or cannot take the call now.
            case closed
        }

        /// Which budget ran out.
        public enum Budget: Sendable, Hashable {
            /// `Options.instructionLimit`.
            case instructions
            /// `Options.timeLimit`.
            case time
        }

        /// What failed.
        public var kind: Kind
        /// The Lua status of the failure, when Lua returned one.
        public var status: LuaStatus?
        /// The message: the error object as `tostring` gives it (a string as is, a table through its
        /// `__tostring`, else `"(error object is a table value)"`), without the traceback.
        public var message: String
        /// The traceback (`"stack traceback:\n\t..."`, as `luaL_traceback` writes it) of a run-time error,
        /// nil when there is none (syntax and memory errors, conversions).
        public var traceback: String?
        /// The error that a Swift function registered with Lua threw, when that is what ended the call (the
        /// same instance, not its text). A script that caught it and raised something else loses it.
        public var hostError: (any Error)?
        /// The error object as Lua raised it (`error({code = 42})` gives the table). Contexts and functions
        /// inside come out as `.opaque` markers: an error may travel to another thread, they may not.
        public var value: LuaValue { _value.value }
        var _value: _SendableValue

        /// An error with a message and no Lua value behind it (the value is the message).
        public init(_ kind: Kind, _ message: String, status: LuaStatus? = nil, traceback: String? = nil,
                    hostError: (any Error)? = nil) {
            self.kind = kind
            self.status = status
            self.message = message
            self.traceback = traceback
            self.hostError = hostError
            self._value = _SendableValue(.string(message))
        }

        /// Whether Lua really ran out of memory (the memory limit, or the system): `kind == .memory`.
        public var isOutOfMemory: Bool { kind == .memory }

        /// Whether a budget ran out: `kind == .budget(_)`.
        public var isBudgetExhausted: Bool { if case .budget = kind { return true } else { return false } }

        /// The message, then the traceback on the next lines (as the standalone `lua` prints an error).
        public var description: String {
            guard let traceback else { return message }
            return message + "\n" + traceback
        }

        static let outOfMemory = RuntimeError(.memory, "not enough memory", status: .memoryError)
        static let closedRuntime = RuntimeError(.closed, "the Lua runtime is closed")
        static func conversion(_ message: String) -> RuntimeError { RuntimeError(.conversion, message) }
    }
}

/// A `LuaValue` that holds no context and no function (they are replaced by `.opaque` markers), so it may
/// cross threads.
struct _SendableValue: @unchecked Sendable {
    let value: LuaValue
    init(_ value: LuaValue) { self.value = value.detached() }
}

extension LuaValue {
    /// The value with every context and function replaced by an `.opaque` marker (tables copied).
    func detached() -> LuaValue {
        switch self {
        case .context(let c):
            return .opaque(LuaOpaque(kind: .context, address: UInt(bitPattern: c.unsafePointer)))
        case .function(let f):
            return .opaque(LuaOpaque(kind: .function, address: f.address))
        case .table(let t):
            guard t.contains(where: { $0.key.needsDetaching || $0.value.needsDetaching }) else { return self }
            var out: [LuaValue: LuaValue] = [:]
            for (k, v) in t { out[k.detached()] = v.detached() }
            return .table(out)
        default:
            return self
        }
    }

    private var needsDetaching: Bool {
        switch self {
        case .context, .function: return true
        case .table(let t): return t.contains { $0.key.needsDetaching || $0.value.needsDetaching }
        default: return false
        }
    }
}

extension LuaRuntime {
    /// A Swift error a registered function threw, and the text Lua raised for it.
    struct _HostFailure {
        let message: String
        let error: any Error
    }

    /// The error of a failed call whose error object is on the top of `L` (popped). `thread`: the
    /// coroutine the error happened in when it is not `L` (an async call); the object is on its top.
    func failure(_ L: LuaState, _ code: Int32, thread: LuaState? = nil) -> RuntimeError {
        let status = LuaStatus(code: code)
        var message: String? = nil
        var traceback: String? = nil
        if let thread {
            // a coroutine's error: its message and traceback now (no handler ran), then the object here
            if lua_checkstack(L, 8) != 0, pushHostTable(L) {
                if status != .memoryError, lth_describe(L, -1, thread) != LUA_OK { clua_pop(L, 1) }
                clua_pop(L, 1)
            }
            lua_xmove(thread, L, 1)
        }
        let E = L
        // what the message handler stored (or lth_describe)
        if lua_checkstack(L, 6) != 0, pushHostTable(L) {
            let host = lua_gettop(L)
            for key in [LTH_HOST_ERRMSG, LTH_HOST_TRACEBACK] {
                let t = lua_rawgeti(L, host, lua_Integer(key))
                if t == LUA_TSTRING {
                    if key == LTH_HOST_ERRMSG { message = LuaRuntime.string(L, -1) } else { traceback = LuaRuntime.string(L, -1) }
                }
                clua_pop(L, 1)
                if t != LUA_TNIL && t != LUA_TBOOLEAN {
                    // back to false: the key holds a value, so writing it allocates nothing
                    lua_pushboolean(L, 0)
                    ltc_setexisting(L, host, lua_Integer(key))
                }
            }
            clua_pop(L, 1)
        }
        // the error object itself
        var value: LuaValue = .nil
        let t = lua_type(E, -1)
        if t == LUA_TSTRING || t == LUA_TNUMBER || t == LUA_TBOOLEAN || t == LUA_TNIL {
            value = _LuaReader.scalarValue(E, -1)
        } else if let v = try? readValues(E, from: lua_gettop(E), to: lua_gettop(E)).first {
            value = v
        } else {
            value = .opaque(LuaOpaque(kind: .userdata, address: UInt(bitPattern: lua_topointer(E, -1))))
        }
        clua_pop(E, 1)
        if message == nil {
            switch value {
            case .string(let s): message = s
            case .bytes(let b): message = String(decoding: b, as: UTF8.self)
            case .integer, .number: message = value.description
            default: message = "(error object is a \(value.typeName) value)"
            }
        }
        var error = RuntimeError(.runtime, message!, status: status, traceback: traceback)
        error._value = _SendableValue(value)
        switch status {
        case .syntaxError: error.kind = .syntax
        // Lua 5.4's lua_error turns the string "not enough memory" into a memory error: a script's own
        // error("not enough memory", 0) has this status too. A real one follows a refusal.
        case .memoryError: error.kind = memoryRanOutDuringEntry ? .memory : .runtime
        case .handlerError: error.kind = .errorHandler
        case .fileError: error.kind = .file
        default: break
        }
        if let b = budget, b.pointee.exhausted != 0 {
            error.kind = .budget(b.pointee.exhausted == 2 ? .time : .instructions)
        } else if error.kind == .runtime, LuaRuntime.isMemoryMessage(value), memoryRanOutDuringEntry {
            // "not enough memory" raised again by a C function (the module, pcall) after a real refusal
            error.kind = .memory
        }
        if error.kind == .memory, let L = state {
            // Lua's emergency collections run no finalizers, so contexts whose handles became garbage
            // still hold their memory: a full collection (finalizers included) gives it back, and the
            // runtime can load and run again.
            _ = clua_gc(L, LUA_GCCOLLECT)
        }
        if error.kind == .runtime, case .string(let s) = value {
            error.hostError = hostFailures.last(where: { s == $0.message || s.hasSuffix(": " + $0.message) })?.error
        }
        return error
    }

    /// Lua's stack could not grow (lua_checkstack): a memory error when an allocation was just refused,
    /// else too many values.
    func stackError() -> RuntimeError {
        if heapState.pointee.collect.pending != 0 { return .outOfMemory }
        return RuntimeError(.runtime, "stack overflow (too many values for Lua's stack)", status: .runtimeError)
    }

    /// Remembers an error a Swift function threw (the last few of the entry: a script that catches them in
    /// a loop does not make the list grow).
    func noteHostFailure(_ message: String, _ error: any Error) {
        if hostFailures.count >= 16 { hostFailures.removeFirst() }
        hostFailures.append(_HostFailure(message: message, error: error))
    }

    /// "not enough memory", as Lua's allocator raises it or with a position before it (luaL_error).
    static func isMemoryMessage(_ value: LuaValue) -> Bool {
        guard case .string(let s) = value else { return false }
        return s == "not enough memory" || s.hasSuffix(": not enough memory")
    }

    /// Whether an allocation was refused since the outermost entry began (the allocator's count, and the
    /// memory errors a wrapped pcall caught), or the module asked for a collection because memory ran out.
    var memoryRanOutDuringEntry: Bool {
        heapState.pointee.refusals != entryRefusals || (heapState.pointee.collect.pending != 0 && !entryPending)
    }

    /// The Lua string at `idx` (known to be a string), decoded as UTF-8 (invalid sequences repaired).
    static func string(_ L: LuaState, _ idx: Int32) -> String {
        var len = 0
        guard let p = clua_tostring_strict(L, idx, &len) else { return "" }
        return String(decoding: UnsafeRawBufferPointer(start: p, count: len), as: UTF8.self)
    }
}
