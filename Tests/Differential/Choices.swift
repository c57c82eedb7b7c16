// luatalloc — the differential harness (TallocCore against Debian's libtalloc 2.4.0)
// SPDX-License-Identifier: MIT
//
// Where the generator's choices come from: a seeded PRNG for the tests, libFuzzer's bytes for the fuzzer.
// Both streams are exactly the ones the two copies of the harness used before they were merged, so test
// seeds and the fuzzer's corpus (Fuzz/corpus) keep meaning the same operation sequences.

/// A source of choices for `DiffGenerator`. `below(n)` is the one primitive; `exhausted` ends a sequence
/// (a PRNG never runs out). A `RandomNumberGenerator` too, for the standard library's `randomElement`.
public protocol ChoiceSource: RandomNumberGenerator {
    /// A choice in `0..<max(n, 1)`.
    mutating func below(_ n: Int) -> Int
    /// Whether the source has run out (its later choices are all 0).
    var exhausted: Bool { get }
}

extension ChoiceSource {
    public mutating func chance(_ percent: Int) -> Bool { below(100) < percent }
    public mutating func pick<T>(_ items: [T]) -> T { items[below(items.count)] }
}

/// SplitMix64 (Steele, Lea, Flood 2014): tiny, seedable, good enough to drive a fuzzer. The tests' source.
public struct SplitMix64: ChoiceSource {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    public mutating func below(_ n: Int) -> Int { Int(next() % UInt64(max(n, 1))) }
    public var exhausted: Bool { false }
}

/// The fuzzer's bytes as the source of choices: every `below(n)` consumes one byte (two when n > 256), so
/// libFuzzer's mutations map to local changes of the sequence. When the input is exhausted, `exhausted` is
/// set and the sequence ends; choices are then 0, which always yields a valid (if dull) operation. The
/// bytes must outlive the source (libFuzzer's buffer lives for the call).
public struct ByteChoices: ChoiceSource {
    private let bytes: UnsafeBufferPointer<UInt8>
    private var position = 0
    public private(set) var exhausted = false
    private var state: UInt64 = 0
    public init(_ bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }
    private mutating func byte() -> UInt64 {
        guard position < bytes.count else { exhausted = true; return 0 }
        defer { position += 1 }
        return UInt64(bytes[position])
    }
    /// Four input bytes mixed through SplitMix64 (never constant, so rejection sampling terminates).
    public mutating func next() -> UInt64 {
        var v: UInt64 = 0
        for _ in 0..<4 { v = v << 8 | byte() }
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state ^ v
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    public mutating func below(_ n: Int) -> Int {
        let n = max(n, 1)
        if n == 1 { return 0 }
        let v = n > 256 ? (byte() << 8 | byte()) : byte()
        return Int(v % UInt64(n))
    }
}
