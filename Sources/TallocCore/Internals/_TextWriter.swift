// luatalloc — TallocCore
// SPDX-License-Identifier: MIT
//
// Text out in pieces: a fixed buffer that goes to a sink when full, with the few printf conversions the
// reports use (%-30s, %6lu, %3lu, %d, %p). No String is built; the text never exists whole.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

struct _TextWriter {
    private let buffer: UnsafeMutableRawPointer
    private let capacity: Int
    private var count = 0
    private let sink: (UnsafeRawBufferPointer) -> Bool
    /// The sink said stop: nothing more is written.
    private(set) var stopped = false

    /// Writes into `capacity` bytes at `buffer` (at least 64), handing them to `sink` when full.
    init(buffer: UnsafeMutableRawPointer, capacity: Int, sink: @escaping (UnsafeRawBufferPointer) -> Bool) {
        assert(capacity >= 64)
        self.buffer = buffer
        self.capacity = capacity
        self.sink = sink
    }

    /// Hands what is buffered to the sink. False when the sink stopped (now or before).
    @discardableResult
    mutating func flush() -> Bool {
        if stopped { return false }
        if count > 0 {
            let ok = sink(UnsafeRawBufferPointer(start: buffer, count: count))
            count = 0
            if !ok { stopped = true }
        }
        return !stopped
    }

    mutating func write(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress else { return }
        var off = 0
        while off < bytes.count && !stopped {
            if count == capacity { flush(); continue }
            let n = Swift.min(capacity - count, bytes.count - off)
            memcpy(buffer + count, base + off, n)
            count += n
            off += n
        }
    }

    mutating func write(_ s: StaticString) {
        write(UnsafeRawBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount))
    }

    mutating func write(byte: UInt8) {
        if stopped { return }
        if count == capacity && !flush() { return }
        buffer.storeBytes(of: byte, toByteOffset: count, as: UInt8.self)
        count += 1
    }

    /// `n` spaces (`n` may be huge: it streams).
    mutating func writeSpaces(_ n: UInt) {
        var left = n
        while left > 0 && !stopped {
            if count == capacity { flush(); continue }
            let k = Swift.min(UInt(capacity - count), left)
            memset(buffer + count, 0x20, Int(k))
            count += Int(k)
            left -= k
        }
    }

    /// `value` in decimal, right-aligned in `width` columns (printf's `%*ld`).
    mutating func writeDecimal(_ value: Int, width: Int = 0) {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 24) { buf in
            var v = value.magnitude
            var i = 24
            repeat {
                i -= 1
                buf[i] = UInt8(truncatingIfNeeded: v % 10) &+ 0x30
                v /= 10
            } while v != 0
            if value < 0 { i -= 1; buf[i] = 0x2D }
            let digits = 24 - i
            if width > digits { writeSpaces(UInt(width - digits)) }
            write(UnsafeRawBufferPointer(UnsafeMutableBufferPointer(rebasing: buf[i...])))
        }
    }

    /// glibc's `%p`: "0x" and lowercase hex, "(nil)" for nil.
    mutating func writePointer(_ p: UnsafeRawPointer?) {
        guard let p else { write("(nil)"); return }
        write("0x")
        let v = UInt(bitPattern: p)
        var shift = (UInt.bitWidth - 4)
        while shift > 0 && (v >> UInt(shift)) & 0xF == 0 { shift -= 4 }
        while shift >= 0 {
            let d = UInt8(truncatingIfNeeded: (v >> UInt(shift)) & 0xF)
            write(byte: d < 10 ? 0x30 &+ d : 0x57 &+ d)
            shift -= 4
        }
    }
}
