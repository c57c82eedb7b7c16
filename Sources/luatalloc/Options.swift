// luatalloc — the command line, collected in order as lua.c's `collectargs` does.
// SPDX-License-Identifier: MIT

import Glibc

/// An argument as the bytes the shell gave (no UTF-8 repair: `-e` chunks and file names pass through
/// untouched), kept NUL-terminated so it can go to C as it is.
struct CArgument {
    /// The bytes, followed by one NUL.
    let bytesWithNUL: [CChar]

    init(_ pointer: UnsafePointer<CChar>) {
        let count = strlen(pointer)
        bytesWithNUL = Array(UnsafeBufferPointer(start: pointer, count: count + 1))
    }

    init<S: Sequence>(bytes: S) where S.Element == CChar {
        bytesWithNUL = Array(bytes) + [0]
    }

    /// The bytes without the NUL.
    var bytes: ArraySlice<CChar> { bytesWithNUL.dropLast() }
    var count: Int { bytesWithNUL.count - 1 }
    var text: String { String(decoding: bytes.map { UInt8(bitPattern: $0) }, as: UTF8.self) }

    subscript(index: Int) -> CChar { index < count ? bytesWithNUL[index] : 0 }

    /// Runs `body` with a C string pointer valid during the call.
    func withCString<R>(_ body: (UnsafePointer<CChar>) -> R) -> R {
        bytesWithNUL.withUnsafeBufferPointer { body($0.baseAddress!) }
    }
}

/// The options that run Lua code, in command-line order (lua.c's `runargs`).
enum OrderedAction {
    /// `-e stat`: run `stat` with chunk name `=(command line)`.
    case execute(CArgument)
    /// `-l mod` / `-l g=mod`: `g = require("mod")`.
    case library(global: CArgument, module: CArgument)
    /// `-W`: turn warnings on.
    case warningsOn
}

/// What a valid command line asks for.
struct Options {
    /// `-i` (which also implies `showVersion`, as in lua.c).
    var interactive = false
    /// `-v` or `-i`.
    var showVersion = false
    /// At least one `-e`.
    var hasExecute = false
    /// `-E`.
    var ignoreEnvironment = false
    /// `-e`, `-l`, `-W` in order.
    var actions: [OrderedAction] = []
    /// Index in argv of the script (argc when there is none).
    var script = 0
    /// `--memlimit SIZE` in bytes.
    var memoryLimit: Int? = nil
    /// `--report`.
    var report = false
    /// `--dot FILE`.
    var dotFile: CArgument? = nil
    /// `--pool-report`.
    var poolReport = false
    /// `--trace FILE`.
    var traceFile: CArgument? = nil
    /// `--replay FILE`: no script, no Lua: the trace's operations on TallocCore.
    var replayFile: CArgument? = nil
    /// `--pool-capacity N|advice|none` (with `--replay`).
    var poolCapacity: PoolCapacity? = nil
}

/// How `--replay` sizes pools (`--pool-capacity`).
enum PoolCapacity: Equatable {
    /// Every pool this many bytes.
    case bytes(Int)
    /// Each pool as the advice of a first replay says: the capacity that serves all its allocations.
    case advice
    /// No pools: each a plain context.
    case none
}

/// Why a command line was refused; the message matches lua.c's `print_usage` where lua.c has one.
enum OptionError {
    /// `'-e' needs argument`
    case needsArgument(String)
    /// `unrecognized option '-x'`
    case unrecognized(String)
    /// `invalid size '12Q' for '--memlimit'`
    case invalidSize(option: String, value: String)
    /// `invalid capacity 'x' for '--pool-capacity'`
    case invalidCapacity(String)
    /// Options that do not go together (the message says why).
    case conflict(String)

    var message: String {
        switch self {
        case .needsArgument(let option): return "'\(option)' needs argument"
        case .unrecognized(let option): return "unrecognized option '\(option)'"
        case .invalidSize(let option, let value):
            return "invalid size '\(value)' for '\(option)' (a number of bytes, with an optional K, M or G suffix)"
        case .invalidCapacity(let value):
            return "invalid capacity '\(value)' for '--pool-capacity' (a number of bytes with an optional K, M or G suffix, 'advice' or 'none')"
        case .conflict(let message):
            return message
        }
    }
}

enum ParsedCommandLine {
    case run(Options)
    case help
    case failure(OptionError)
}

private let dash = CChar(UInt8(ascii: "-"))

/// lua.c's `collectargs`, extended with luatalloc's long options. Options are handled up to the first
/// argument that is not an option (the script), `-` (stdin as the script) or `--` (the next one is the
/// script). Each of `-i -v -E -W` must stand alone; `-e` and `-l` take the rest of the argument or the
/// next argument, which must not start with `-`.
func collectArguments(_ arguments: [CArgument]) -> ParsedCommandLine {
    let parsed = collectArgumentsInOrder(arguments)
    guard case .run(let options) = parsed else { return parsed }
    if options.poolCapacity != nil && options.replayFile == nil {
        return .failure(.conflict("'--pool-capacity' resizes the pools of a replay: it needs '--replay FILE'"))
    }
    if options.replayFile != nil {
        let runsLua = options.script < arguments.count || options.hasExecute || !options.actions.isEmpty
            || options.interactive || options.traceFile != nil
        if runsLua {
            return .failure(.conflict("'--replay' runs a trace without Lua: it takes no script, '-e', '-l', '-i', '-W' or '--trace'"))
        }
    }
    return parsed
}

/// `collectArguments` without the checks between options.
private func collectArgumentsInOrder(_ arguments: [CArgument]) -> ParsedCommandLine {
    var options = Options()
    let argc = arguments.count
    var i = 1
    // Takes the parameter of an option that needs one: attached (`-ex`, `--dot=f`) or the next argument.
    func parameter(attached: CArgument?, option: String) -> CArgument? {
        if let attached { return attached }
        i += 1
        guard i < argc, arguments[i][0] != dash else { return nil }
        return arguments[i]
    }
    while i < argc {
        options.script = i
        let argument = arguments[i]
        guard argument[0] == dash else { return .run(options) }  // not an option: the script
        let alone = argument.count == 2
        switch UInt8(bitPattern: argument[1]) {
        case 0:  // '-': the script "name" is '-'
            return .run(options)
        case UInt8(ascii: "-"):
            if argument.count == 2 {  // '--'
                options.script = i + 1
                return .run(options)
            }
            let text = argument.text
            let name: String
            var attached: CArgument? = nil
            if let equals = argument.bytes.firstIndex(of: CChar(UInt8(ascii: "="))) {
                name = String(decoding: argument.bytes[..<equals].map { UInt8(bitPattern: $0) }, as: UTF8.self)
                attached = CArgument(bytes: argument.bytes[(equals + 1)...])
            } else {
                name = text
            }
            switch name {
            case "--memlimit":
                // a negative number is a value (refused as a size below), not a missing argument
                let next = i + 1 < argc ? arguments[i + 1] : nil
                let negative = attached == nil && next.map { $0.count > 1 && $0[0] == dash && $0.bytes.dropFirst().allSatisfy { $0 >= 0x30 && $0 <= 0x39 } } == true
                if negative { i += 1 }
                guard let value = negative ? next : parameter(attached: attached, option: name) else {
                    return .failure(.needsArgument(name))
                }
                guard let size = parseSize(value.text) else {
                    return .failure(.invalidSize(option: name, value: value.text))
                }
                options.memoryLimit = size
            case "--dot":
                guard let value = parameter(attached: attached, option: name), value.count > 0 else {
                    return .failure(.needsArgument(name))
                }
                options.dotFile = value
            case "--report" where attached == nil:
                options.report = true
            case "--pool-report" where attached == nil:
                options.poolReport = true
            case "--trace", "--replay":
                guard let value = parameter(attached: attached, option: name), value.count > 0 else {
                    return .failure(.needsArgument(name))
                }
                if name == "--trace" { options.traceFile = value } else { options.replayFile = value }
            case "--pool-capacity":
                guard let value = parameter(attached: attached, option: name) else {
                    return .failure(.needsArgument(name))
                }
                switch value.text {
                case "advice": options.poolCapacity = .advice
                case "none": options.poolCapacity = PoolCapacity.none
                case "0": options.poolCapacity = .bytes(0)
                default:
                    guard let size = parseSize(value.text) else { return .failure(.invalidCapacity(value.text)) }
                    options.poolCapacity = .bytes(size)
                }
            case "--help" where attached == nil:
                return .help
            default:
                return .failure(.unrecognized(text))
            }
        case UInt8(ascii: "h"):
            guard alone else { return .failure(.unrecognized(argument.text)) }
            return .help
        case UInt8(ascii: "E"):
            guard alone else { return .failure(.unrecognized(argument.text)) }
            options.ignoreEnvironment = true
        case UInt8(ascii: "W"):
            guard alone else { return .failure(.unrecognized(argument.text)) }
            options.actions.append(.warningsOn)
        case UInt8(ascii: "i"), UInt8(ascii: "v"):
            guard alone else { return .failure(.unrecognized(argument.text)) }
            if argument[1] == CChar(UInt8(ascii: "i")) { options.interactive = true }
            options.showVersion = true
        case UInt8(ascii: "e"), UInt8(ascii: "l"):
            let isExecute = argument[1] == CChar(UInt8(ascii: "e"))
            let attached = alone ? nil : CArgument(bytes: argument.bytes.dropFirst(2))
            guard let value = parameter(attached: attached, option: argument.text) else {
                return .failure(.needsArgument(argument.text))
            }
            if isExecute {
                options.hasExecute = true
                options.actions.append(.execute(value))
            } else if let equals = value.bytes.firstIndex(of: CChar(UInt8(ascii: "="))) {
                // '-l g=mod' (lua.c 5.4.4 splits at the first '=')
                options.actions.append(
                    .library(
                        global: CArgument(bytes: value.bytes[..<equals]),
                        module: CArgument(bytes: value.bytes[(equals + 1)...])))
            } else {
                options.actions.append(.library(global: value, module: value))
            }
        default:
            return .failure(.unrecognized(argument.text))
        }
        i += 1
    }
    options.script = argc  // no script name
    return .run(options)
}

/// `64M` → 67108864. A decimal number of bytes with an optional `K`, `M` or `G` suffix (powers of
/// 1024, either case); nil for anything else, for zero and on overflow.
func parseSize(_ text: String) -> Int? {
    var digits = Substring(text)
    var unit = 1
    if let last = digits.last, !last.isNumber {
        switch last {
        case "k", "K": unit = 1 << 10
        case "m", "M": unit = 1 << 20
        case "g", "G": unit = 1 << 30
        default: return nil
        }
        digits = digits.dropLast()
    }
    guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }),
        let number = Int(digits), number > 0
    else { return nil }
    let (bytes, overflow) = number.multipliedReportingOverflow(by: unit)
    return overflow ? nil : bytes
}

/// The usage text: lua.c's lines, then luatalloc's own options.
func usageText(progname: String) -> String {
    return """
        usage: \(progname) [options] [script [args]]
        Available options are:
          -e stat   execute string 'stat'
          -i        enter interactive mode after executing 'script'
          -l mod    require library 'mod' into global 'mod'
          -l g=mod  require library 'mod' into global 'g'
          -v        show version information
          -E        ignore environment variables
          -W        turn warnings on
          --        stop handling options
          -         stop handling options and execute stdin
        talloc options:
          --memlimit SIZE  limit Lua's heap and all talloc contexts to SIZE bytes
                           (suffix K, M or G, e.g. 64M)
          --report         print the talloc report of every context still alive
                           at exit (on stderr)
          --dot FILE       write the final talloc tree as Graphviz source to FILE
          --pool-report    print at exit, on stderr, each site that made pools:
                           capacity, peak, spills, advice, and the pools
                           pinned by members stolen out of them (with -W, warn
                           when a pool is pinned)
          --trace FILE     record every talloc operation of the script in FILE
          --replay FILE    replay a trace without the script (no Lua): peak
                           memory, allocations and pool statistics, on stdout;
                           within --memlimit (1G when not given)
          --pool-capacity N|advice|none
                           with --replay: every pool N bytes (K, M, G), each
                           pool as its advice says, or no pools
          -h, --help       show this help and exit

        """
}
