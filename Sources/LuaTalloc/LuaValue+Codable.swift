// luatalloc — the embeddable runtime: Codable bridging between Swift values and LuaValue
// SPDX-License-Identifier: MIT
//
// What maps to what (both ways):
//   struct / class / keyed enum   table with string keys (field names), nil fields left out
//   Array, Set, unkeyed           sequence {v1, v2, ...} (keys 1...n; a nil element leaves a hole)
//   Dictionary<String, V>         table with those string keys (Int keys are written as strings too,
//                                 and read from integer or string keys)
//   Int..., UInt...               integer (a UInt64 above Int.max is an error); read from an integer or a
//                                 float with an integral value, range-checked
//   Double, Float                 float; read from either number subtype
//   String, Bool                  string, boolean ([UInt8] / Data: a sequence of byte integers)
//   Optional                      nil when absent
//   LuaValue                      itself (so a field of type LuaValue carries a context, a function, any
//                                 table)
// Errors are Swift's EncodingError and DecodingError, with the coding path of the failing field.

/// Encodes any `Encodable` into a `LuaValue` (the Lua side of `Codable`).
///
///     struct Limits: Codable { var depth: Int; var names: [String] }
///     try lua.setGlobal("limits", LuaValueEncoder().encode(Limits(depth: 3, names: ["a"])))
///     // Lua sees limits.depth == 3, limits.names[1] == "a"
public struct LuaValueEncoder {
    /// Passed to `encode(to:)` implementations as `encoder.userInfo`.
    public var userInfo: [CodingUserInfoKey: Any] = [:]

    /// An encoder.
    public init() {}

    /// The Lua value of `value`.
    /// - Throws: `EncodingError.invalidValue` (with the coding path) for what Lua cannot hold.
    public func encode<T: Encodable>(_ value: T) throws -> LuaValue {
        if let v = value as? LuaValue { return v }
        let node = _EncodingNode()
        let encoder = _LuaEncoder(node: node, codingPath: [], userInfo: userInfo)
        try value.encode(to: encoder)
        return node.value
    }
}

/// Decodes a `LuaValue` into any `Decodable` (the Lua side of `Codable`).
///
///     struct Verdict: Decodable { var allow: Bool; var reason: String? }
///     let v = try LuaValueDecoder().decode(Verdict.self, from: lua.call("check", "x")[0])
///     // a failure names the field: "allow": expected Bool, found a string
public struct LuaValueDecoder {
    /// Passed to `init(from:)` implementations as `decoder.userInfo`.
    public var userInfo: [CodingUserInfoKey: Any] = [:]

    /// A decoder.
    public init() {}

    /// `value` as a `T`.
    /// - Throws: `DecodingError` (`typeMismatch`, `keyNotFound`, `valueNotFound`, `dataCorrupted`) with the
    ///   coding path of the failing field.
    public func decode<T: Decodable>(_ type: T.Type, from value: LuaValue) throws -> T {
        if T.self == LuaValue.self { return value as! T }
        return try T(from: _LuaDecoder(value: value, codingPath: [], userInfo: userInfo))
    }
}

extension LuaValue {
    /// The Lua value of `value` (`LuaValueEncoder().encode(value)`).
    public init<T: Encodable>(encoding value: T) throws {
        self = try LuaValueEncoder().encode(value)
    }

    /// The value decoded as `T` (`LuaValueDecoder().decode(type, from: self)`).
    public func decode<T: Decodable>(_ type: T.Type = T.self) throws -> T {
        try LuaValueDecoder().decode(type, from: self)
    }
}

// MARK: - LuaValue is Codable

/// Whether the value being encoded by another encoder was checked already (its outermost table was).
enum _LuaValueEncoding {
    @TaskLocal static var checked = false
}

extension LuaValue: Codable {
    /// With `LuaValueEncoder` the value goes in as it is. With other encoders (JSON, ...): nil, booleans,
    /// numbers and strings as themselves, a sequence as an array, a table with string keys as an object;
    /// anything else is an `EncodingError.invalidValue`. Such an encoder knows no sharing: a table
    /// reached twice is written twice, so a value whose shared tables unfold to more than
    /// `LuaValue.maxUnfoldedCount` values (`t = {t, t}` forty times is 2^40) is an
    /// `EncodingError.invalidValue` too, found in time linear in the stored value.
    public func encode(to encoder: any Encoder) throws {
        if let e = encoder as? _LuaEncoder {
            e.node.set(self)
            return
        }
        if case .table = self, !_LuaValueEncoding.checked {
            let n = unfoldedCount(limit: LuaValue.maxUnfoldedCount)
            if n > LuaValue.maxUnfoldedCount {
                throw EncodingError.invalidValue(self, .init(codingPath: encoder.codingPath,
                    debugDescription: "a Lua table whose shared tables unfold to more than \(LuaValue.maxUnfoldedCount) values"))
            }
            try _LuaValueEncoding.$checked.withValue(true) { try encodeContents(to: encoder) }
            return
        }
        try encodeContents(to: encoder)
    }

    /// The most values a table may unfold to (shared tables counted at each place) to be encoded by an
    /// encoder other than `LuaValueEncoder`.
    public static let maxUnfoldedCount = 1 << 20

    private func encodeContents(to encoder: any Encoder) throws {
        switch self {
        case .nil:
            var c = encoder.singleValueContainer()
            try c.encodeNil()
        case .boolean(let b):
            var c = encoder.singleValueContainer()
            try c.encode(b)
        case .integer(let i):
            var c = encoder.singleValueContainer()
            try c.encode(i)
        case .number(let d):
            var c = encoder.singleValueContainer()
            try c.encode(d)
        case .string(let s):
            var c = encoder.singleValueContainer()
            try c.encode(s)
        case .bytes(let b):
            var c = encoder.singleValueContainer()
            try c.encode(b)
        case .table(let t):
            if let seq = LuaValue.table(t).arrayValue, seq.count == t.count {
                var c = encoder.unkeyedContainer()
                for v in seq { try c.encode(v) }
            } else if let fields = LuaValue.table(t).dictionaryValue, fields.count == t.count {
                var c = encoder.container(keyedBy: _LuaCodingKey.self)
                for (k, v) in fields { try c.encode(v, forKey: _LuaCodingKey(k)) }
            } else {
                throw EncodingError.invalidValue(self, .init(codingPath: encoder.codingPath,
                    debugDescription: "a Lua table with keys other than 1...n or strings has no encoding here"))
            }
        case .cycle, .context, .function, .opaque:
            throw EncodingError.invalidValue(self, .init(codingPath: encoder.codingPath,
                debugDescription: "a Lua \(typeName) (\(self)) can only be encoded by LuaValueEncoder"))
        }
    }

    /// With `LuaValueDecoder` the value as it is; with other decoders the value of JSON-like data.
    public init(from decoder: any Decoder) throws {
        if let d = decoder as? _LuaDecoder {
            self = d.value
            return
        }
        if let c = try? decoder.singleValueContainer() {
            if c.decodeNil() { self = .nil; return }
            if let b = try? c.decode(Bool.self) { self = .boolean(b); return }
            if let i = try? c.decode(Int.self) { self = .integer(i); return }
            if let d = try? c.decode(Double.self) { self = .number(d); return }
            if let s = try? c.decode(String.self) { self = .string(s); return }
        }
        if let c = try? decoder.container(keyedBy: _LuaCodingKey.self) {
            var t: [LuaValue: LuaValue] = [:]
            for k in c.allKeys { t[.string(k.stringValue)] = try c.decode(LuaValue.self, forKey: k) }
            self = .table(t)
            return
        }
        var c = try decoder.unkeyedContainer()
        var out: [LuaValue] = []
        while !c.isAtEnd { out.append(try c.decode(LuaValue.self)) }
        self = .array(out)
    }
}

/// A coding key for table fields and sequence positions.
struct _LuaCodingKey: CodingKey {
    let stringValue: String
    let intValue: Int?
    init(_ s: String) { stringValue = s; intValue = nil }
    init?(stringValue: String) { self.init(stringValue) }
    init(intValue: Int) { stringValue = "Index \(intValue)"; self.intValue = intValue }
    static let `super` = _LuaCodingKey("super")
}

// MARK: - Encoding

/// What an encoder writes into: one value, a keyed table or a sequence, built in place (containers made
/// earlier are filled later, so nodes are references).
final class _EncodingNode {
    enum Content {
        case empty
        case value(LuaValue)
        case keyed([(String, _EncodingNode)])
        case unkeyed([_EncodingNode])
    }
    var content: Content = .empty

    func set(_ v: LuaValue) { content = .value(v) }

    var value: LuaValue {
        switch content {
        case .empty: return .table([:])
        case .value(let v): return v
        case .keyed(let fields):
            var t: [LuaValue: LuaValue] = [:]
            for (k, node) in fields {
                let v = node.value
                if !v.isNil { t[.string(k)] = v }
            }
            return .table(t)
        case .unkeyed(let items):
            var t: [LuaValue: LuaValue] = [:]
            for (i, node) in items.enumerated() {
                let v = node.value
                if !v.isNil { t[.integer(i + 1)] = v }
            }
            return .table(t)
        }
    }

    /// The field `key` of a keyed node (made keyed if it was empty), new or replaced.
    func field(_ key: String) -> _EncodingNode {
        var fields: [(String, _EncodingNode)]
        if case .keyed(let f) = content { fields = f } else { fields = [] }
        let node = _EncodingNode()
        if let i = fields.firstIndex(where: { $0.0 == key }) { fields[i].1 = node } else { fields.append((key, node)) }
        content = .keyed(fields)
        return node
    }

    /// A new element at the end of an unkeyed node.
    func append() -> _EncodingNode {
        var items: [_EncodingNode]
        if case .unkeyed(let a) = content { items = a } else { items = [] }
        let node = _EncodingNode()
        items.append(node)
        content = .unkeyed(items)
        return node
    }

    var count: Int { if case .unkeyed(let a) = content { return a.count } else { return 0 } }
}

struct _LuaEncoder: Encoder {
    let node: _EncodingNode
    let codingPath: [any CodingKey]
    let userInfo: [CodingUserInfoKey: Any]

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        if case .keyed = node.content {} else { node.content = .keyed([]) }
        return KeyedEncodingContainer(_KeyedEncoding<Key>(node: node, codingPath: codingPath, userInfo: userInfo))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        if case .unkeyed = node.content {} else { node.content = .unkeyed([]) }
        return _UnkeyedEncoding(node: node, codingPath: codingPath, userInfo: userInfo)
    }

    func singleValueContainer() -> any SingleValueEncodingContainer {
        _SingleEncoding(node: node, codingPath: codingPath, userInfo: userInfo)
    }
}

/// The Lua value of a scalar `Encodable`, or nil when it is not one.
private func scalar<T: Encodable>(_ value: T, _ path: [any CodingKey]) throws -> LuaValue? {
    switch value {
    case let v as LuaValue: return v
    case let v as Bool: return .boolean(v)
    case let v as String: return .string(v)
    case let v as Double: return .number(v)
    case let v as Float: return .number(Double(v))
    case let v as Int: return .integer(v)
    case let v as Int8: return .integer(Int(v))
    case let v as Int16: return .integer(Int(v))
    case let v as Int32: return .integer(Int(v))
    case let v as Int64: return .integer(Int(v))
    case let v as UInt: return try integer(v, path)
    case let v as UInt8: return .integer(Int(v))
    case let v as UInt16: return .integer(Int(v))
    case let v as UInt32: return .integer(Int(v))
    case let v as UInt64: return try integer(v, path)
    default: return nil
    }
}

private func integer<I: BinaryInteger>(_ v: I, _ path: [any CodingKey]) throws -> LuaValue {
    guard let i = Int(exactly: v) else {
        throw EncodingError.invalidValue(v, .init(codingPath: path, debugDescription: "\(v) does not fit in a Lua integer"))
    }
    return .integer(i)
}

/// Encodes `value` into `node`.
private func encodeValue<T: Encodable>(_ value: T, into node: _EncodingNode, _ path: [any CodingKey],
                                       _ userInfo: [CodingUserInfoKey: Any]) throws {
    if let v = try scalar(value, path) {
        node.set(v)
        return
    }
    try value.encode(to: _LuaEncoder(node: node, codingPath: path, userInfo: userInfo))
}

struct _KeyedEncoding<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let node: _EncodingNode
    let codingPath: [any CodingKey]
    let userInfo: [CodingUserInfoKey: Any]

    mutating func encodeNil(forKey key: Key) throws { node.field(key.stringValue).set(.nil) }

    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
        try encodeValue(value, into: node.field(key.stringValue), codingPath + [key], userInfo)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type, forKey key: Key)
        -> KeyedEncodingContainer<NestedKey>
    {
        let child = node.field(key.stringValue)
        child.content = .keyed([])
        return KeyedEncodingContainer(_KeyedEncoding<NestedKey>(node: child, codingPath: codingPath + [key], userInfo: userInfo))
    }

    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        let child = node.field(key.stringValue)
        child.content = .unkeyed([])
        return _UnkeyedEncoding(node: child, codingPath: codingPath + [key], userInfo: userInfo)
    }

    mutating func superEncoder() -> any Encoder {
        _LuaEncoder(node: node.field("super"), codingPath: codingPath + [_LuaCodingKey.super], userInfo: userInfo)
    }

    mutating func superEncoder(forKey key: Key) -> any Encoder {
        _LuaEncoder(node: node.field(key.stringValue), codingPath: codingPath + [key], userInfo: userInfo)
    }
}

struct _UnkeyedEncoding: UnkeyedEncodingContainer {
    let node: _EncodingNode
    let codingPath: [any CodingKey]
    let userInfo: [CodingUserInfoKey: Any]

    var count: Int { node.count }

    private var nextPath: [any CodingKey] { codingPath + [_LuaCodingKey(intValue: count)] }

    mutating func encodeNil() throws { node.append().set(.nil) }

    mutating func encode<T: Encodable>(_ value: T) throws {
        let path = nextPath
        try encodeValue(value, into: node.append(), path, userInfo)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
        let path = nextPath
        let child = node.append()
        child.content = .keyed([])
        return KeyedEncodingContainer(_KeyedEncoding<NestedKey>(node: child, codingPath: path, userInfo: userInfo))
    }

    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
        let path = nextPath
        let child = node.append()
        child.content = .unkeyed([])
        return _UnkeyedEncoding(node: child, codingPath: path, userInfo: userInfo)
    }

    mutating func superEncoder() -> any Encoder {
        let path = nextPath
        return _LuaEncoder(node: node.append(), codingPath: path, userInfo: userInfo)
    }
}

struct _SingleEncoding: SingleValueEncodingContainer {
    let node: _EncodingNode
    let codingPath: [any CodingKey]
    let userInfo: [CodingUserInfoKey: Any]

    mutating func encodeNil() throws { node.set(.nil) }

    mutating func encode<T: Encodable>(_ value: T) throws {
        try encodeValue(value, into: node, codingPath, userInfo)
    }
}

// MARK: - Decoding

struct _LuaDecoder: Decoder {
    let value: LuaValue
    let codingPath: [any CodingKey]
    let userInfo: [CodingUserInfoKey: Any]

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        guard case .table(let t) = value else {
            throw DecodingError.typeMismatch([String: LuaValue].self, mismatch("a table", value, codingPath))
        }
        return KeyedDecodingContainer(_KeyedDecoding<Key>(table: t, codingPath: codingPath, userInfo: userInfo))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        guard case .table(let t) = value else {
            throw DecodingError.typeMismatch([LuaValue].self, mismatch("a sequence", value, codingPath))
        }
        return try _UnkeyedDecoding(table: t, codingPath: codingPath, userInfo: userInfo)
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer {
        _SingleDecoding(value: value, codingPath: codingPath, userInfo: userInfo)
    }
}

/// "expected X, found a Lua string".
private func mismatch(_ expected: String, _ value: LuaValue, _ path: [any CodingKey]) -> DecodingError.Context {
    .init(codingPath: path, debugDescription: "expected \(expected), found \(value.isNil ? "nil" : "a Lua \(value.typeName)") (\(value.render(limit: 200)))")
}

/// `value` as a `T`: scalars directly, anything else through `T(from:)`.
private func decodeValue<T: Decodable>(_ type: T.Type, _ value: LuaValue, _ path: [any CodingKey],
                                       _ userInfo: [CodingUserInfoKey: Any]) throws -> T {
    if T.self == LuaValue.self { return value as! T }
    if let v = try decodeScalar(type, value, path) { return v }
    return try T(from: _LuaDecoder(value: value, codingPath: path, userInfo: userInfo))
}

/// The scalar `T` of `value`, or nil when `T` is not a scalar type.
private func decodeScalar<T>(_ type: T.Type, _ value: LuaValue, _ path: [any CodingKey]) throws -> T? {
    func number<I: FixedWidthInteger>(_ t: I.Type) throws -> I {
        guard let i = value.intValue else {
            if case .number(let d) = value {
                throw DecodingError.dataCorrupted(.init(codingPath: path, debugDescription: "the Lua number \(d) is not an integer (\(I.self))"))
            }
            throw DecodingError.typeMismatch(I.self, mismatch("\(I.self)", value, path))
        }
        guard let v = I(exactly: i) else {
            throw DecodingError.dataCorrupted(.init(codingPath: path, debugDescription: "the Lua number \(i) does not fit in \(I.self)"))
        }
        return v
    }
    switch type {
    case is Bool.Type:
        guard case .boolean(let b) = value else { throw DecodingError.typeMismatch(Bool.self, mismatch("Bool", value, path)) }
        return (b as! T)
    case is String.Type:
        guard case .string(let s) = value else { throw DecodingError.typeMismatch(String.self, mismatch("String", value, path)) }
        return (s as! T)
    case is Double.Type:
        guard let d = value.doubleValue else { throw DecodingError.typeMismatch(Double.self, mismatch("Double", value, path)) }
        return (d as! T)
    case is Float.Type:
        guard let d = value.doubleValue else { throw DecodingError.typeMismatch(Float.self, mismatch("Float", value, path)) }
        return (Float(d) as! T)
    case is Int.Type: return (try number(Int.self) as! T)
    case is Int8.Type: return (try number(Int8.self) as! T)
    case is Int16.Type: return (try number(Int16.self) as! T)
    case is Int32.Type: return (try number(Int32.self) as! T)
    case is Int64.Type: return (try number(Int64.self) as! T)
    case is UInt.Type: return (try number(UInt.self) as! T)
    case is UInt8.Type: return (try number(UInt8.self) as! T)
    case is UInt16.Type: return (try number(UInt16.self) as! T)
    case is UInt32.Type: return (try number(UInt32.self) as! T)
    case is UInt64.Type: return (try number(UInt64.self) as! T)
    default: return nil
    }
}

struct _KeyedDecoding<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let table: [LuaValue: LuaValue]
    let codingPath: [any CodingKey]
    let userInfo: [CodingUserInfoKey: Any]

    var allKeys: [Key] {
        table.keys.compactMap { k in
            switch k {
            case .string(let s): return Key(stringValue: s)
            case .integer(let i): return Key(intValue: i) ?? Key(stringValue: String(i))
            default: return nil
            }
        }
    }

    /// The value at `key`: its string key, else (a dictionary's Int key) the integer key.
    private func lookup(_ key: Key) -> LuaValue? {
        if let v = table[.string(key.stringValue)] { return v }
        if let i = key.intValue, let v = table[.integer(i)] { return v }
        if let i = Int(key.stringValue), let v = table[.integer(i)] { return v }
        return nil
    }

    func contains(_ key: Key) -> Bool { lookup(key) != nil }

    func decodeNil(forKey key: Key) throws -> Bool { (lookup(key) ?? .nil).isNil }

    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        guard let v = lookup(key) else {
            if T.self == LuaValue.self { return LuaValue.nil as! T }
            throw DecodingError.keyNotFound(key, .init(codingPath: codingPath, debugDescription: "no field '\(key.stringValue)' in the Lua table"))
        }
        return try decodeValue(type, v, codingPath + [key], userInfo)
    }

    func decodeIfPresent<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T? {
        guard let v = lookup(key), !v.isNil else { return nil }
        return try decodeValue(type, v, codingPath + [key], userInfo)
    }

    func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws
        -> KeyedDecodingContainer<NestedKey>
    {
        try _LuaDecoder(value: lookup(key) ?? .nil, codingPath: codingPath + [key], userInfo: userInfo).container(keyedBy: type)
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
        try _LuaDecoder(value: lookup(key) ?? .nil, codingPath: codingPath + [key], userInfo: userInfo).unkeyedContainer()
    }

    func superDecoder() throws -> any Decoder {
        _LuaDecoder(value: table[.string("super")] ?? .nil, codingPath: codingPath + [_LuaCodingKey.super], userInfo: userInfo)
    }

    func superDecoder(forKey key: Key) throws -> any Decoder {
        _LuaDecoder(value: lookup(key) ?? .nil, codingPath: codingPath + [key], userInfo: userInfo)
    }
}

struct _UnkeyedDecoding: UnkeyedDecodingContainer {
    let table: [LuaValue: LuaValue]
    let codingPath: [any CodingKey]
    let userInfo: [CodingUserInfoKey: Any]
    let count: Int?
    var currentIndex = 0

    /// A table whose keys are 1...n (holes allowed: n is the largest key).
    init(table: [LuaValue: LuaValue], codingPath: [any CodingKey], userInfo: [CodingUserInfoKey: Any]) throws {
        var n = 0
        for k in table.keys {
            guard case .integer(let i) = k, i >= 1, i <= table.count * 2 + 16 else {
                throw DecodingError.typeMismatch([LuaValue].self, .init(codingPath: codingPath,
                    debugDescription: "expected a sequence, found a Lua table with the key \(k)"))
            }
            n = Swift.max(n, i)
        }
        self.table = table
        self.codingPath = codingPath
        self.userInfo = userInfo
        self.count = n
    }

    var isAtEnd: Bool { currentIndex >= count! }

    private var path: [any CodingKey] { codingPath + [_LuaCodingKey(intValue: currentIndex)] }

    private mutating func next<T>(_ type: T.Type) throws -> LuaValue {
        guard !isAtEnd else {
            throw DecodingError.valueNotFound(type, .init(codingPath: path, debugDescription: "the Lua sequence has only \(count!) elements"))
        }
        let v = table[.integer(currentIndex + 1)] ?? .nil
        return v
    }

    mutating func decodeNil() throws -> Bool {
        let v = try next(LuaValue.self)
        if v.isNil { currentIndex += 1; return true }
        return false
    }

    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
        let v = try next(type)
        let r = try decodeValue(type, v, path, userInfo)
        currentIndex += 1
        return r
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws -> KeyedDecodingContainer<NestedKey> {
        let v = try next([String: LuaValue].self)
        let c = try _LuaDecoder(value: v, codingPath: path, userInfo: userInfo).container(keyedBy: type)
        currentIndex += 1
        return c
    }

    mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer {
        let v = try next([LuaValue].self)
        let c = try _LuaDecoder(value: v, codingPath: path, userInfo: userInfo).unkeyedContainer()
        currentIndex += 1
        return c
    }

    mutating func superDecoder() throws -> any Decoder {
        let v = try next(LuaValue.self)
        let d = _LuaDecoder(value: v, codingPath: path, userInfo: userInfo)
        currentIndex += 1
        return d
    }
}

struct _SingleDecoding: SingleValueDecodingContainer {
    let value: LuaValue
    let codingPath: [any CodingKey]
    let userInfo: [CodingUserInfoKey: Any]

    func decodeNil() -> Bool { value.isNil }

    func decode<T: Decodable>(_ type: T.Type) throws -> T {
        if value.isNil && T.self != LuaValue.self {
            throw DecodingError.valueNotFound(type, .init(codingPath: codingPath, debugDescription: "expected \(T.self), found nil"))
        }
        return try decodeValue(type, value, codingPath, userInfo)
    }
}
