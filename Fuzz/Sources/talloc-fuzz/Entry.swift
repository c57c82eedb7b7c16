// luatalloc fuzzers — talloc-fuzz: the differential harness of the tests (Tests/Differential, product
// TallocDifferential of the main package) driven by libFuzzer's bytes.
// SPDX-License-Identifier: MIT
//
// One input = one operation sequence: the bytes are the generator's choices (`ByteChoices`), with the
// fuzzer's options (destructors that free another chunk, TallocCore-only memory limits checked against an
// exact model). Any difference is printed and the process aborts: a libFuzzer finding. Environment:
//   TALLOC_FUZZ_STEPS=N    operations per input (default 250)
//   TALLOC_FUZZ_VERBOSE=1  print every operation (to replay a finding)
//   TALLOC_FUZZ_STATS=1    print counts every 10,000 inputs

import TallocDifferential

#if canImport(Glibc)
import Glibc
#endif

nonisolated(unsafe) var fuzzStats = DifferentialRun.Stats()
let fuzzOptions: DifferentialRun.Options = {
    var o = DifferentialRun.Options.fuzzer
    o.steps = getenv("TALLOC_FUZZ_STEPS").flatMap { Int(String(cString: $0)) } ?? 250
    o.verbose = getenv("TALLOC_FUZZ_VERBOSE") != nil
    return o
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func talloc_fuzz_one_input(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let buffer = UnsafeBufferPointer(start: size > 0 ? data : nil, count: size)
    if let failure = DifferentialRun.run(ByteChoices(buffer), options: fuzzOptions, stats: &fuzzStats) {
        fputs("\n==== talloc-fuzz FINDING ====\n\(failure)\n", stderr)
        abort()
    }
    if getenv("TALLOC_FUZZ_STATS") != nil, fuzzStats.sequences % 10_000 == 0 {
        fputs("talloc-fuzz: \(fuzzStats.sequences) inputs, \(fuzzStats.operations) operations, "
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
