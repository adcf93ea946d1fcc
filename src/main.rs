//! The `vtmirror` binary: the library's command line.

fn main() -> std::process::ExitCode {
    vtmirror::command_line()
}
