// luatalloc — the embeddable runtime: Lua values as Swift values
// SPDX-License-Identifier: MIT

import TallocCore

/// A Lua value copied out of (or into) a `LuaRuntime`.
///
/// Scalars and strings are copied. A table becomes a dictionary of its raw contents (no metamethods
/// run); a `talloc.context` handle becomes the `TallocContext` it names; a function becomes a
/// `LuaFunction` the host can call and pass back. Coroutines and other userdata have no Swift
/// counterpart and come out as `.opaque` markers (they cannot be passed back).
///
/// Build values with literals (`42`, `"name"`, `[1, 2, 3]` for a sequence, `["depth": 3]` for a table),
/// initialisers (`LuaValue(someInt)`, `LuaValue(["a", "b"])`, `LuaValue(optional)`), or from any
/// `Encodable` (`LuaValue(encoding: config)`); read them with `intValue`, `stringValue`, ... or decode them
/// (`value.decode(Config.self)`).
///
/// A value is not `Sendable`: a context or function inside belongs to its runtime's thread (a talloc
/// tree belongs to one thread). Send plain data across threads as your own `Sendable` or `Codable` types.
///
/// Tables are copied with a depth limit (`LuaRuntime.Options.maxTableDepth`), never by unbounded
/// recursion. A table that contains itself, directly or further down, is a **cycle**: the inner
/// occurrence becomes `.cycle(levelsUp:)`, a reference to the table that many levels up from the entry
/// (`t.self = t` gives `["self": .cycle(levelsUp: 1)]`), and passing the value back to Lua rebuilds
/// the same cycle. A table reached twice without a cycle (shared, not recursive) is copied twice, in
/// Swift as copy-on-write storage that is shared, so a graph with much sharing stays cheap to convert.
/// Everything this type does with a value — `==`, hashing, `description`, passing it back to Lua,
/// encoding it — is linear in the *stored* graph (a shared table is visited once), and none of it
/// recurses per level of nesting (see `LuaRuntime.Options.maxTableDepth` for the one exception: Swift's
/// own destruction of a deeply nested value).
///
/// Equality and hashing follow Lua's keys: strings compare as **bytes** (`.string` and `.bytes` with the
/// same bytes are one key; two strings that Swift's `String ==` calls canonically equivalent but whose
/// bytes differ, such as `"\u{E9}"` and `"e\u{301}"`, are two keys, as in Lua). Lua turns a float key
/// with an integral value into an integer key, so `1.0` arrives from Lua as `.integer(1)`; in Swift
/// `.number(1.0)` and `.integer(1)` stay different values. Tables compare by contents (two equal
/// graphs are equal however they share their parts).
public enum LuaValue: Hashable {
    /// `nil` (also what a missing value reads as).
    case `nil`
    /// A boolean.
    case boolean(Bool)
    /// An integer (a Lua number with an integer subtype, `lua_isinteger`).
    case integer(Int)
    /// A float (a Lua number with a float subtype).
    case number(Double)
    /// A string that is valid UTF-8 (its bytes are the string's UTF-8, exactly as Lua has them: no
    /// normalisation; `==` compares them byte for byte).
    case string(String)
    /// A string that is not valid UTF-8: the bytes as they are (Lua strings are byte strings).
    case bytes([UInt8])
    /// A table: its raw key/value pairs.
    case table([LuaValue: LuaValue])
    /// A reference to an enclosing table of the value being converted: 1 is the table holding this entry.
    case cycle(levelsUp: Int)
    /// A live `talloc.context` handle: the context it names. See `LuaRuntime` on who owns it.
    case context(TallocContext)
    /// A Lua function (or a function to pass to Lua): a handle to call and to pass back.
    case function(LuaFunction)
    /// A value with no Swift counterpart: a coroutine, a userdata, a freed context handle (and a function
    /// read where no runtime can hold it, e.g. in an error value).
    case opaque(LuaOpaque)
}

@available(*, unavailable, message: "a LuaValue may hold a talloc context or a function, which belong to one thread")
extension LuaValue: Sendable {}

/// A Lua value the runtime cannot copy into Swift: its kind and the address Lua gives it
/// (`lua_topointer`), which tells two such values apart while they live. It cannot be passed back.
public struct LuaOpaque: Hashable, Sendable, CustomStringConvertible {
    /// What kind of Lua value it is (`lua_type`).
    public enum Kind: String, Sendable {
        /// A function read where no runtime can hold it (`LUA_TFUNCTION`).
        case function
        /// A coroutine (`LUA_TTHREAD`).
        case thread
        /// A full userdata that is not a `talloc.context` (`LUA_TUSERDATA`).
        case userdata
        /// A light userdata (`LUA_TLIGHTUSERDATA`).
        case lightUserdata = "light userdata"
        /// A `talloc.context` handle whose context was freed (Lua's `talloc.is_freed(c)` is true).
        case freedContext = "freed talloc.context"
        /// A live `talloc.context` handle seen where contexts cannot go (an error value, which may cross
        /// threads).
        case context = "talloc.context"
    }

    /// What the value is.
    public var kind: Kind
    /// Its address (`lua_topointer`); 0 for a freed context.
    public var address: UInt

    /// A marker of a value of kind `kind` at `address`.
    public init(kind: Kind, address: UInt) {
        self.kind = kind
        self.address = address
    }

    /// `"thread: 0x..."`, as Lua's `tostring` writes such values.
    public var description: String { "\(kind.rawValue): 0x\(String(address, radix: 16))" }
}

// MARK: - Reading values

extension LuaValue {
    /// Whether the value is `nil`.
    public var isNil: Bool { if case .nil = self { return true } else { return false } }

    /// The boolean, for `.boolean`.
    public var boolValue: Bool? { if case .boolean(let b) = self { return b } else { return nil } }

    /// Lua's truth: everything but `nil` and `false` is true.
    public var isTruthy: Bool {
        switch self {
        case .nil: return false
        case .boolean(let b): return b
        default: return true
        }
    }

    /// The integer, for `.integer` or a `.number` with an integral value (as `lua_tointegerx`).
    public var intValue: Int? {
        switch self {
        case .integer(let i): return i
        case .number(let d):
            guard d.rounded() == d, d >= -9.223372036854775808e18, d < 9.223372036854775808e18 else { return nil }
            return Int(d)
        default: return nil
        }
    }

    /// The number, for `.integer` and `.number`.
    public var doubleValue: Double? {
        switch self {
        case .integer(let i): return Double(i)
        case .number(let d): return d
        default: return nil
        }
    }

    /// The text, for `.string` (and `.bytes`, decoded with replacement characters).
    public var stringValue: String? {
        switch self {
        case .string(let s): return s
        case .bytes(let b): return String(decoding: b, as: UTF8.self)
        default: return nil
        }
    }

    /// The contents, for `.table`.
    public var tableValue: [LuaValue: LuaValue]? { if case .table(let t) = self { return t } else { return nil } }

    /// The sequence `t[1], t[2], ...` up to the first missing index, for `.table` (as `ipairs`).
    public var arrayValue: [LuaValue]? {
        guard case .table(let t) = self else { return nil }
        var out: [LuaValue] = []
        var i = 1
        while let v = t[.integer(i)], !v.isNil {
            out.append(v)
            i += 1
        }
        return out
    }

    /// The fields with string keys, for `.table` (other keys are left out, and so are keys that are not
    /// valid UTF-8).
    ///
    /// - warning: Swift's `String` keys compare by canonical equivalence, Lua's by bytes: two Lua keys
    ///   that differ only in Unicode normalisation (`"\u{E9}"`, `"e\u{301}"`) are one key here, and one
    ///   of their values is dropped. `tableValue` (keyed by `LuaValue`, compared by bytes) keeps both.
    public var dictionaryValue: [String: LuaValue]? {
        guard case .table(let t) = self else { return nil }
        var out: [String: LuaValue] = [:]
        for (k, v) in t { if case .string(let s) = k { out[s] = v } }
        return out
    }

    /// The context, for `.context`.
    public var contextValue: TallocContext? { if case .context(let c) = self { return c } else { return nil } }

    /// The function, for `.function`.
    public var functionValue: LuaFunction? { if case .function(let f) = self { return f } else { return nil } }

    /// `t[key]` for a table (raw: no metamethod), else `nil`.
    public subscript(key: LuaValue) -> LuaValue {
        guard case .table(let t) = self else { return .nil }
        return t[key] ?? .nil
    }

    /// A table of the values at keys 1, 2, ... (a Lua sequence).
    public static func array(_ values: [LuaValue]) -> LuaValue {
        var t: [LuaValue: LuaValue] = [:]
        for (i, v) in values.enumerated() where !v.isNil { t[.integer(i + 1)] = v }
        return .table(t)
    }

    /// A table with string keys.
    public static func dictionary(_ fields: [String: LuaValue]) -> LuaValue {
        var t: [LuaValue: LuaValue] = [:]
        for (k, v) in fields where !v.isNil { t[.string(k)] = v }
        return .table(t)
    }

    /// Whether pushing the value allocates nothing in Lua (nil, booleans, numbers).
    var pushesWithoutAllocating: Bool {
        switch self {
        case .nil, .boolean, .integer, .number: return true
        default: return false
        }
    }

    /// The Lua type name (`type(v)` in Lua): "nil", "boolean", "number", "string", "table", "userdata", ...
    public var typeName: String {
        switch self {
        case .nil: return "nil"
        case .boolean: return "boolean"
        case .integer, .number: return "number"
        case .string, .bytes: return "string"
        case .table, .cycle: return "table"
        case .context: return "userdata"
        case .function: return "function"
        case .opaque(let o):
            switch o.kind {
            case .function: return "function"
            case .thread: return "thread"
            case .userdata, .freedContext, .lightUserdata, .context: return "userdata"
            }
        }
    }
}

// MARK: - Initialisers

extension LuaValue {
    /// An integer.
    public init<I: BinaryInteger>(_ value: I) {
        if let i = Int(exactly: value) { self = .integer(i) } else { self = .number(Double(value)) }
    }
    /// A float (a Lua number with a float subtype).
    public init<F: BinaryFloatingPoint>(_ value: F) { self = .number(Double(value)) }
    /// A boolean.
    public init(_ value: Bool) { self = .boolean(value) }
    /// A string (`Substring`s and other `StringProtocol` values too).
    public init<S: StringProtocol>(_ value: S) { self = .string(String(value)) }
    /// A Lua string of any bytes (valid UTF-8 or not).
    public init(bytes: [UInt8]) {
        if let s = String(validating: bytes, as: UTF8.self) { self = .string(s) } else { self = .bytes(bytes) }
    }
    /// A context (its handle in Lua).
    public init(_ context: TallocContext) { self = .context(context) }
    /// A function.
    public init(_ function: LuaFunction) { self = .function(function) }
    /// A sequence `{values[0], values[1], ...}` (keys 1, 2, ...).
    public init(_ values: [LuaValue]) { self = .array(values) }
    /// A table with string keys.
    public init(_ fields: [String: LuaValue]) { self = .dictionary(fields) }
    /// A table with any keys.
    public init(_ table: [LuaValue: LuaValue]) { self = .table(table) }
    /// The wrapped value, or nil.
    public init<T>(_ value: T?) where T: LuaValueConvertible {
        self = value.map { $0.luaValue } ?? .nil
    }
}

/// A Swift value with a natural Lua value: numbers, strings, booleans, contexts, functions, and arrays and
/// dictionaries of them (and `LuaValue` itself). For anything else, `Codable` (`LuaValue(encoding:)`).
public protocol LuaValueConvertible {
    /// The Lua value.
    var luaValue: LuaValue { get }
}

extension LuaValue: LuaValueConvertible { public var luaValue: LuaValue { self } }
extension Int: LuaValueConvertible { public var luaValue: LuaValue { .integer(self) } }
extension Int8: LuaValueConvertible { public var luaValue: LuaValue { .integer(Int(self)) } }
extension Int16: LuaValueConvertible { public var luaValue: LuaValue { .integer(Int(self)) } }
extension Int32: LuaValueConvertible { public var luaValue: LuaValue { .integer(Int(self)) } }
extension Int64: LuaValueConvertible { public var luaValue: LuaValue { .integer(Int(self)) } }
extension UInt8: LuaValueConvertible { public var luaValue: LuaValue { .integer(Int(self)) } }
extension UInt16: LuaValueConvertible { public var luaValue: LuaValue { .integer(Int(self)) } }
extension UInt32: LuaValueConvertible { public var luaValue: LuaValue { .integer(Int(self)) } }
extension Double: LuaValueConvertible { public var luaValue: LuaValue { .number(self) } }
extension Float: LuaValueConvertible { public var luaValue: LuaValue { .number(Double(self)) } }
extension Bool: LuaValueConvertible { public var luaValue: LuaValue { .boolean(self) } }
extension String: LuaValueConvertible { public var luaValue: LuaValue { .string(self) } }
extension Substring: LuaValueConvertible { public var luaValue: LuaValue { .string(String(self)) } }
extension TallocContext: LuaValueConvertible { public var luaValue: LuaValue { .context(self) } }
extension LuaFunction: LuaValueConvertible { public var luaValue: LuaValue { .function(self) } }
extension Optional: LuaValueConvertible where Wrapped: LuaValueConvertible {
    public var luaValue: LuaValue { map { $0.luaValue } ?? .nil }
}
extension Array: LuaValueConvertible where Element: LuaValueConvertible {
    /// A sequence.
    public var luaValue: LuaValue { .array(map { $0.luaValue }) }
}
extension Dictionary: LuaValueConvertible where Key == String, Value: LuaValueConvertible {
    /// A table with string keys.
    public var luaValue: LuaValue { .dictionary(mapValues { $0.luaValue }) }
}

extension LuaValue {
    /// The value of anything `LuaValueConvertible` (`LuaValue(convertible: [1, 2])`).
    public init(convertible value: some LuaValueConvertible) { self = value.luaValue }
}

// MARK: - Literals

extension LuaValue: ExpressibleByNilLiteral, ExpressibleByBooleanLiteral, ExpressibleByIntegerLiteral,
    ExpressibleByFloatLiteral, ExpressibleByStringLiteral, ExpressibleByStringInterpolation,
    ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral
{
    /// `nil`.
    public init(nilLiteral: ()) { self = .nil }
    /// `true` or `false`.
    public init(booleanLiteral value: Bool) { self = .boolean(value) }
    /// An integer (`lua_pushinteger`).
    public init(integerLiteral value: Int) { self = .integer(value) }
    /// A float (`lua_pushnumber`).
    public init(floatLiteral value: Double) { self = .number(value) }
    /// A string (also with interpolation: `"item \(n)"`).
    public init(stringLiteral value: String) { self = .string(value) }
    /// A sequence: keys 1, 2, ...
    public init(arrayLiteral elements: LuaValue...) { self = .array(elements) }
    /// A table with these keys and values (`["depth": 3, 1: "first"]`); nil values are left out, as in Lua.
    public init(dictionaryLiteral elements: (LuaValue, LuaValue)...) {
        var t: [LuaValue: LuaValue] = [:]
        for (k, v) in elements where !v.isNil { t[k] = v }
        self = .table(t)
    }
}
