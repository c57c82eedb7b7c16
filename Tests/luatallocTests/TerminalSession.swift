// luatalloc — driving a program in a real terminal (tmux), as a person would: type, read the screen.
// SPDX-License-Identifier: MIT

import Foundation

/// A program running in its own tmux server (a pseudo-terminal with a screen). When the program
/// ends, the shell prints `[exit N]` and keeps the pane open so the screen can still be read.
final class TerminalSession {
    private static let counter = Counter()
    private let socket: String
    let home: String

    /// Starts `program arguments` in a `width`x`height` terminal, with a clean environment
    /// (TERM=xterm, HOME=`home`, plus `environment`) in the fixture directory.
    init(
        _ program: String, _ arguments: [String] = [], home: String, environment: [String: String] = [:],
        width: Int = 120, height: Int = 50
    ) throws {
        socket = "luatalloc-test-\(getpid())-\(Self.counter.next())"
        self.home = home
        var env = ["TERM": "xterm", "HOME": home, "PATH": "/usr/bin:/bin", "LANG": "C"]
        env.merge(environment) { $1 }
        let assignments = env.sorted { $0.key < $1.key }.map { shellQuote("\($0.key)=\($0.value)") }
        // 'trap' keeps the shell alive when Ctrl-C kills the program (the program itself gets SIGINT's
        // default action back, as a caught signal is reset on exec), so that "[exit 130]" can be read.
        let command =
            "trap true INT; cd \(shellQuote(Fixtures.directory)) && env -i \(assignments.joined(separator: " ")) "
            + ([program] + arguments).map(shellQuote).joined(separator: " ")
            + "; echo \"[exit $?]\"; sleep 600"
        try tmux(["-f", "/dev/null", "new-session", "-d", "-x", "\(width)", "-y", "\(height)", command])
    }

    deinit {
        _ = try? tmux(["kill-server"])
    }

    /// Types `text` literally (no Enter).
    func type(_ text: String) throws {
        try tmux(["send-keys", "-l", text])
    }

    /// Types `line` and Enter, then waits until the screen settles.
    func enter(_ line: String) throws {
        try type(line)
        try tmux(["send-keys", "Enter"])
        settle()
    }

    /// Sends tmux key names (`C-c`, `C-d`, `Up`, ...).
    func keys(_ names: String...) throws {
        try tmux(["send-keys"] + names)
        settle()
    }

    /// The screen and its scrollback as tmux prints it.
    func rawScreen() -> String {
        (try? tmux(["capture-pane", "-p", "-N", "-S", "-", "-E", "-"])) ?? ""
    }

    /// The screen and its scrollback, with trailing blanks removed from each line and at the end.
    func screen() -> String {
        let text = rawScreen()
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map {
            String($0.reversed().drop(while: { $0 == " " }).reversed())
        }
        while lines.last == "" { lines.removeLast() }
        return lines.joined(separator: "\n")
    }

    /// Waits until the screen contains `text` (true) or `timeout` passes (false).
    @discardableResult
    func waitFor(_ text: String, timeout: TimeInterval = 10) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let raw = rawScreen()
            if raw.contains(text) || screen().contains(text) { return true }
            usleep(30_000)
        }
        return false
    }

    /// Waits until the screen has not changed for a while (the program is waiting for input).
    func settle(quiet: TimeInterval = 0.25, timeout: TimeInterval = 5) {
        let deadline = Date().addingTimeInterval(timeout)
        var last = screen()
        var stableSince = Date()
        while Date() < deadline {
            usleep(40_000)
            let now = screen()
            if now != last {
                last = now
                stableSince = Date()
            } else if Date().timeIntervalSince(stableSince) >= quiet {
                return
            }
        }
    }

    /// Runs one tmux command and waits for it. Started with posix_spawn and reaped with waitpid (not
    /// Foundation's Process, whose exit monitoring did not always see the short-lived tmux client); the
    /// output goes to a file, not a pipe, because `new-session` starts the tmux server, which inherits
    /// the descriptors and would keep a pipe open forever.
    @discardableResult
    private func tmux(_ arguments: [String]) throws -> String {
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("tmux-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: output) }
        let capture = arguments.first == "capture-pane"
        let status = spawnAndWait(
            "/usr/bin/tmux", ["-L", socket] + arguments, stdoutPath: capture ? output.path : "/dev/null")
        guard status == 0 || !capture else { return "" }
        return (try? String(contentsOf: output, encoding: .utf8)) ?? ""
    }

    private final class Counter: @unchecked Sendable {
        private var value = 0
        private let lock = NSLock()
        func next() -> Int {
            lock.lock()
            defer { lock.unlock() }
            value += 1
            return value
        }
    }
}

/// `text` as one word for sh.
func shellQuote(_ text: String) -> String {
    "'" + text.replacingOccurrences(of: "'", with: "'\\''") + "'"
}

/// A fresh, empty home directory for one session.
func makeHome() throws -> String {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("home-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url.path
}

var tmuxIsInstalled: Bool { FileManager.default.isExecutableFile(atPath: "/usr/bin/tmux") }

/// Starts `program` with stdin and stderr on /dev/null and stdout to `stdoutPath`, with no signal
/// blocked and default signal actions (see `withDefaultSignalMask`), and waits for it. Returns the
/// exit status (or 128 + signal).
func spawnAndWait(_ program: String, _ arguments: [String], stdoutPath: String) -> Int32 {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, stdoutPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    var empty = sigset_t()
    sigemptyset(&empty)
    var defaults = sigset_t()
    sigemptyset(&defaults)
    for signal in [SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE, SIGCHLD] { sigaddset(&defaults, signal) }
    posix_spawnattr_setsigmask(&attributes, &empty)
    posix_spawnattr_setsigdefault(&attributes, &defaults)
    posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
    let argv = ([program] + arguments).map { strdup($0) } + [nil]
    defer { argv.forEach { free($0) } }
    var pid = pid_t()
    guard posix_spawn(&pid, program, &actions, &attributes, argv, environ) == 0 else { return 127 }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
    let low = status & 0x7f
    return low == 0 ? (status >> 8) & 0xff : 128 + low
}
