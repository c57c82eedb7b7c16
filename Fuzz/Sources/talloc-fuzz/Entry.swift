// luatalloc fuzzers — the libFuzzer entry point.
// SPDX-License-Identifier: MIT

#if canImport(Glibc)
import Glibc
#endif

@_cdecl("LLVMFuzzerTestOneInput")
public func talloc_fuzz_one_input(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let buffer = UnsafeBufferPointer(start: size > 0 ? data : nil, count: size)
    runFuzzInput(buffer)
    if getenv("TALLOC_FUZZ_STATS") != nil, fuzzStats.inputs % 10_000 == 0 {
        fputs("talloc-fuzz: \(fuzzStats.inputs) inputs, \(fuzzStats.operations) operations, "
              + "\(fuzzStats.limitFailures) limit failures checked, divergences \(fuzzStats.divergences)\n", stderr)
    }
    return 0
}

// SwiftPM links executables with `main` renamed to `<module>_main`; libFuzzer's own `main` is then
// shadowed, so the renamed entry hands over to libFuzzer's driver.
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt

@_cdecl("talloc_fuzz_main")
public func talloc_fuzz_main(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var c = argc
    var v = argv
    return LLVMFuzzerRunDriver(&c, &v) { data, size in talloc_fuzz_one_input(data, size) }
}
